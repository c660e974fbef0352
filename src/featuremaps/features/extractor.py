"""The feature extractor: the one way featuremaps gets a layer's output out of a model.

``FeatureExtractor(model, layers)`` holds the model, its layer catalogue and the selection.
Calling it on a batch returns copies of the selected layers' outputs, exactly as computed
(a later in-place operation cannot change them), and computes nothing after the deepest
one. Two ways, with identical outputs (tested on ResNet, VGG, MobileNetV3, ConvNeXt,
DenseNet and the built-ins):

- ``graph`` (preferred): the model traced with ``torch.fx`` and cut after the deepest
  layer (:mod:`featuremaps.features.graph`); no hooks, so it runs in parallel threads, and
  it compiles (``compile=True``, or a model already wrapped by ``torch.compile``);
- ``hooks`` (fallback, for models FX cannot trace): forward hooks, under the model's lock
  (:mod:`featuremaps.features.hooks`), the forward pass stopped by the last hook.

The model runs in eval mode and every module's mode is put back afterwards. With
``grad=True`` the outputs stay in the autograd graph (Grad-CAM, feature visualisation);
otherwise the pass runs in ``torch.inference_mode``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal, cast

import torch
from torch import nn

from featuremaps.errors import SettingsError
from featuremaps.features.catalogue import LayerInfo
from featuremaps.features.graph import OUTPUT, traced, truncated_module
from featuremaps.features.hooks import StopForward, first_tensor, model_lock, module_calls
from featuremaps.features.info import base_module, model_info
from featuremaps.features.selection import LayerSelection, catalogue_for, select_layers

__all__ = ["INPUT", "METHODS", "FeatureExtractor", "Method"]

INPUT = "input"
"""The model input's name among :meth:`FeatureExtractor.cut`'s leaves (and in a lineage: its channels are the
image's R, G, B)."""

Method = Literal["auto", "graph", "hooks"]
METHODS: tuple[str, ...] = ("auto", "graph", "hooks")


class FeatureExtractor:
    """Outputs of chosen layers of one model.

    Args:
        model: any ``nn.Module`` taking one image batch (a ``torch.compile``d one too).
        layers: names, glob patterns, module types, a list or comma-separated string of
            those, or ``"all"`` (see :func:`~featuremaps.features.select_layers`).
        input_shape: ``(C, H, W)`` the catalogue is made for; default: the model's own.
        method: ``"auto"`` (graph when FX can trace the model, else hooks), ``"graph"`` or ``"hooks"``.
        compile: run the truncated graph through ``torch.compile``.

    Example:
        >>> extractor = FeatureExtractor(load_model("resnet18"), ["layer1", "layer4"])
        >>> maps = extractor(torch.rand(2, 3, 224, 224))
        >>> [tuple(m.shape) for m in maps.values()]
        [(2, 64, 56, 56), (2, 512, 7, 7)]
    """

    def __init__(self, model: nn.Module, layers: LayerSelection = "all", *,
                 input_shape: Sequence[int] | None = None, method: Method = "auto", compile: bool = False) -> None:
        if method not in METHODS:
            raise SettingsError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
        compiled = base_module(model) is not model
        self.model = base_module(model)
        self.info = model_info(self.model)
        shape = tuple(input_shape) if input_shape is not None else self.info.input_size
        self.catalogue = catalogue_for(self.model, shape)
        self.layers: list[LayerInfo] = select_layers(self.catalogue, layers, model_name=self.info.name)
        self.compile = bool(compile or compiled)
        self.method: Literal["graph", "hooks"] = self._choose(method)
        self._modules: dict[tuple[bool, Any], nn.Module] = {}
        self._build_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Copies and pickles leave the built graph modules and the lock behind (made again on use)."""
        state = dict(self.__dict__)
        state.pop("_build_lock", None)
        state["_modules"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._build_lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        """The selected layers' names, in forward order."""
        return [entry.name for entry in self.layers]

    def _choose(self, method: Method) -> Literal["graph", "hooks"]:
        if method == "hooks" or (method == "auto" and not getattr(self.model, "featuremaps_traceable", True)):
            if self.compile:
                raise SettingsError(f"compile needs the graph method; {self.info.name} is extracted with hooks")
            return "hooks"
        try:
            trace = traced(self.model)
        except Exception as error:  # noqa: BLE001 - any tracing failure: hooks (or a clear error)
            if method == "graph" or self.compile:
                raise SettingsError(f"torch.fx cannot trace {self.info.name} ({type(error).__name__}: "
                                    f"{' '.join(str(error).split())[:200]}); use method='hooks' (not compiled)") from None
            return "hooks"
        missing = [e.name for e in self.layers if (e.module, e.call) not in trace.calls]
        if missing:
            if method == "graph" or self.compile:
                raise SettingsError(f"the traced graph of {self.info.name} has no output for {', '.join(missing)}")
            return "hooks"
        return "graph"

    # --- running ---------------------------------------------------------------------
    def __call__(self, batch: torch.Tensor, *, grad: bool = False) -> dict[str, torch.Tensor]:
        """Outputs ``{layer: tensor}`` for model input ``batch`` ``(N, C, H, W)``, in forward order."""
        maps, _ = self._run(batch, grad=grad, with_output=False)
        return maps

    def with_output(self, batch: torch.Tensor, *, grad: bool = False) -> tuple[dict[str, torch.Tensor], Any]:
        """The selected outputs and the model's own output (the whole forward pass runs)."""
        return self._run(batch, grad=grad, with_output=True)

    def cut(self, batch: torch.Tensor, at: Collection[str]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """One forward pass in which autograd is cut at the layers named in ``at`` and at the input.

        Each cut layer's output becomes a leaf tensor (``requires_grad``) and the rest of the
        model runs on a copy of it, so the gradient of a later value reaches only the nearest
        cut layers upstream: how much each of their maps contributes (feature lineage).

        Returns:
            ``(outputs, leaves)``: the selected layers' outputs, in the autograd graph back to
            the nearest leaves; and the leaves, ``{"input": batch, layer: output}``.
        """
        unknown = sorted(set(at) - set(self.names))
        if unknown:
            raise SettingsError(f"cut layers must be among the selected layers; not selected: {', '.join(unknown)}")
        with torch.enable_grad():
            source = batch.detach().requires_grad_(True)
            leaves = {INPUT: source}
            outputs, _ = self._run_hooks(source, with_output=False, cut=frozenset(at), leaves=leaves)
        return outputs, leaves

    def module(self, *, reduce: Callable[[torch.Tensor], Any] | None = None) -> nn.Module:
        """The truncated graph as an ``nn.Module`` returning ``{layer: output}`` (or ``reduce(output)``).

        Put it in eval mode yourself; it shares the model's parameters. Only with the graph method.
        """
        if self.method != "graph":
            raise SettingsError(f"{self.info.name} cannot be traced; its features come from hooks, not a module")
        return self._graph_module(False, reduce)

    def _graph_module(self, with_output: bool, reduce: Callable[[torch.Tensor], Any] | None = None) -> nn.Module:
        key = (with_output, reduce)
        trace = traced(self.model)  # before the build lock: a first trace waits for other threads' passes
        with self._build_lock:
            built = self._modules.get(key)
            if built is None:
                wanted = [(e.name, (e.module, e.call)) for e in self.layers]
                graph: nn.Module = truncated_module(trace, wanted, with_output=with_output, reduce=reduce)
                if self.compile:
                    graph = cast(nn.Module, torch.compile(graph))  # a compiled module is still an nn.Module
                self._modules[key] = built = graph
        return built

    def _run(self, batch: torch.Tensor, *, grad: bool, with_output: bool) -> tuple[dict[str, torch.Tensor], Any]:
        if not isinstance(batch, torch.Tensor) or batch.ndim != 4:
            raise SettingsError(f"a batch must be a tensor (N, C, H, W); got "
                                f"{tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__}")
        context = torch.enable_grad() if grad else torch.inference_mode()
        if self.method == "hooks":
            with context:
                return self._run_hooks(batch, with_output=with_output)
        graph = self._graph_module(with_output)
        with _eval_mode(self.model), context:
            result = graph(batch)
        output = result.pop(OUTPUT, None) if with_output else None
        return {name: result[name] for name in self.names}, output

    def _run_hooks(self, batch: torch.Tensor, *, with_output: bool, cut: frozenset[str] = frozenset(),
                   leaves: dict[str, torch.Tensor] | None = None) -> tuple[dict[str, torch.Tensor], Any]:
        wanted = {(e.module, e.call): e.name for e in self.layers}
        captured: dict[str, torch.Tensor] = {}

        def on_output(name: str, call: int, output: Any) -> Any:
            key = wanted.get((name, call))
            if key is None:
                return None
            tensor = first_tensor(output)
            replacement = None
            if tensor is not None:
                if key in cut and leaves is not None:
                    captured[key] = tensor
                    leaves[key] = leaf = tensor.detach().requires_grad_(True)
                    replacement = _replace_first(output, leaf.clone())
                    if replacement is None:
                        raise SettingsError(f"layer {key} returns a nested output; it cannot be a cut point")
                elif torch.is_grad_enabled():
                    captured[key] = tensor  # the rest of the model runs on a copy (its in-place ops too)
                    replacement = _replace_first(output, tensor.clone())
                else:
                    captured[key] = tensor.detach().clone()  # a later in-place op must not change it
            if not with_output and len(captured) == len(wanted):
                raise StopForward
            return replacement

        output = None
        with module_calls(self.model, on_output, modules={module for module, _ in wanted}):
            try:
                output = self.model(batch)
            except StopForward:
                pass
        missing = [name for name in self.names if name not in captured]
        if missing:
            raise SettingsError(f"layers {', '.join(missing)} did not run in {self.info.name}'s forward pass")
        return {name: captured[name] for name in self.names}, output


def _replace_first(output: Any, tensor: torch.Tensor) -> Any:
    """``output`` with its first tensor replaced (a plain tensor output is simply ``tensor``)."""
    if isinstance(output, torch.Tensor):
        return tensor
    if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor):
        return (tensor, *output[1:])
    return None  # nested outputs: keep the original (the capture still holds the right values)


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the block when any module is in training mode (under the model's lock), else nothing."""
    if not any(module.training for module in model.modules()):
        yield
        return
    with model_lock(model):
        modes = {module: module.training for module in model.modules()}
        try:
            model.eval()
            yield
        finally:
            for module, training in modes.items():
                module.train(training)
