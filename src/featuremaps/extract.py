"""``extract``: the feature maps of chosen layers of any PyTorch model, exactly as computed.

- Layers are chosen by exact name (``layer2``, ``layer1.0.relu:1``), glob pattern
  (``layer*.conv1``), module type (``Conv2d``), a list of those, or ``"all"``.
- Values are the layer's output at that point: each captured tensor is copied at once, so
  a later in-place operation (ResNet's ``ReLU(inplace=True)`` after ``bn1``) cannot change it.
- The forward pass stops as soon as the last requested output is captured: later layers
  are not computed.
- Hooks live only inside the call and are removed in ``finally``; the model runs in eval
  mode and every module's train/eval mode is put back afterwards, even when it raises.
"""

from __future__ import annotations

import difflib
import fnmatch
import weakref
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from featuremaps.errors import LayerError
from featuremaps.images import ImageSource
from featuremaps.models.catalogue import LayerInfo, list_layers
from featuremaps.models.locks import model_lock
from featuremaps.models.preprocess import model_info, prepare_batch

__all__ = ["LayerSelection", "capture", "catalogue_for", "extract", "select_layers"]

LayerSelection = str | Sequence[str]
_CATALOGUES: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, ...], list[LayerInfo]]] = (
    weakref.WeakKeyDictionary()
)


def catalogue_for(model: nn.Module, input_shape: Sequence[int]) -> list[LayerInfo]:
    """``list_layers`` for an input of ``(C, H, W)``, cached per model and shape."""
    shape = tuple(int(v) for v in input_shape)
    with model_lock(model):
        per_model = _CATALOGUES.setdefault(model, {})
        if shape not in per_model:
            per_model[shape] = list_layers(model, shape, strict=False)
        return per_model[shape]


def _summary(names: list[str]) -> str:
    if len(names) <= 12:
        return ", ".join(names)
    return ", ".join(names[:8]) + ", ..., " + ", ".join(names[-3:]) + f" ({len(names)} layers)"


def select_layers(catalogue: list[LayerInfo], layers: LayerSelection, *, model_name: str = "the model") -> list[LayerInfo]:
    """The catalogue entries a selection names, in forward order.

    Raises:
        LayerError: an item matches nothing; the message lists close and valid names.
    """
    items = [part.strip() for part in layers.split(",")] if isinstance(layers, str) else [str(x) for x in layers]
    items = [item for item in items if item]
    if not items:
        raise LayerError("no layers given; name layers, a pattern like 'layer*', a type like 'Conv2d', or 'all'")
    names = [entry.name for entry in catalogue]
    chosen: set[str] = set()
    for item in items:
        if item == "all":
            matches = names
        elif item in names:
            matches = [item]
        else:
            matches = [e.name for e in catalogue if e.type == item]
            if not matches and any(ch in item for ch in "*?["):
                matches = [name for name in names if fnmatch.fnmatchcase(name, item)]
        stopped = getattr(catalogue, "stopped_at", None)
        if not matches and stopped is not None:
            raise LayerError(
                f"layer {item!r} is not reached: the forward pass of {model_name} fails at {stopped[0]} for this "
                f"input size ({stopped[1]}); layers before it work"
            )
        if not matches:
            close = difflib.get_close_matches(item, names, n=4, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            top = [e.name for e in catalogue if e.depth == 0 and e.call == 0]
            raise LayerError(
                f"layer {item!r} not found in {model_name}{hint} Valid: {_summary(top or names)} "
                f"(see 'featuremaps layers {model_name}' for all {len(names)})"
            )
        chosen.update(matches)
    return [entry for entry in catalogue if entry.name in chosen]


class _Stop(Exception):
    """Raised by the last needed hook to end the forward pass early."""


def capture(
    model: nn.Module, batch: torch.Tensor, selected: Sequence[LayerInfo], *, stop_early: bool = True
) -> dict[str, torch.Tensor]:
    """Run ``model`` on ``batch`` ``(N, C, H, W)`` and return copies of the selected outputs.

    The model is put in eval mode for the call and every module's mode is restored.
    """
    wanted = {(entry.module, entry.call): entry.name for entry in selected}
    modules = dict(model.named_modules())
    captured: dict[str, torch.Tensor] = {}
    calls: dict[str, int] = {}
    handles = []

    def hook_for(name: str):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            call = calls.get(name, 0)
            calls[name] = call + 1
            key = wanted.get((name, call))
            if key is None:
                return
            tensor = output if isinstance(output, torch.Tensor) else next(
                (t for t in (output.values() if isinstance(output, dict) else output) if isinstance(t, torch.Tensor)),
                None,
            )
            if tensor is not None:
                captured[key] = tensor.detach().clone()  # a later in-place op must not change it
            if stop_early and len(captured) == len(wanted):
                raise _Stop

        return hook

    with model_lock(model):  # hooks live on the modules: one capture per model at a time
        modes = {module: module.training for module in model.modules()}
        try:
            for name in {module for module, _ in wanted}:
                handles.append(modules[name].register_forward_hook(hook_for(name)))
            model.eval()
            with torch.inference_mode():
                try:
                    model(batch)
                except _Stop:
                    pass
        finally:
            for handle in handles:
                handle.remove()
            for module, training in modes.items():
                module.train(training)
    return {entry.name: captured[entry.name] for entry in selected if entry.name in captured}


def _device_of(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def extract(
    model: nn.Module,
    image: ImageSource | Sequence[ImageSource] | torch.Tensor,
    layers: LayerSelection = "all",
) -> dict[str, torch.Tensor]:
    """Feature maps of the selected layers.

    Args:
        model: any ``nn.Module`` (from :func:`~featuremaps.load_model` or your own).
        image: a path, ``sample:NAME``, PIL image or array (preprocessed for the model),
            a list of them (a batch), or a tensor ``(C, H, W)`` / ``(N, C, H, W)`` taken as
            ready model input.
        layers: names, glob patterns, module types, a list or comma-separated string of
            those, or ``"all"``.

    Returns:
        layer name -> tensor, in forward order: ``(C, H, W)`` for one image, ``(N, C, H, W)``
        for a batch (or the layer's own output shape), on the model's device.

    Example:
        >>> maps = extract(load_model("resnet18"), "sample:cat", ["layer1", "layer4"])
        >>> [tuple(m.shape) for m in maps.values()]
        [(64, 56, 56), (512, 7, 7)]
    """
    batch, single = prepare_batch(model, image)
    batch = batch.to(_device_of(model))
    catalogue = catalogue_for(model, tuple(batch.shape[1:]))
    selected = select_layers(catalogue, layers, model_name=model_info(model).name)
    maps = capture(model, batch, selected)
    return {name: tensor[0] for name, tensor in maps.items()} if single else maps
