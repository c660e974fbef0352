"""Feature visualisation by optimisation: the input that excites a channel, a unit or a class.

:func:`visualize` starts from a flat grey image (:class:`~featuremaps.optvis.param.ImageParam`),
and at every step moves, zooms and turns it a little
(:class:`~featuremaps.optvis.transforms.Robustness`), runs the model through the feature
core (:class:`~featuremaps.features.FeatureExtractor`; the model's own normalisation from its
:class:`~featuremaps.features.inputs.ModelInput`) and follows the gradient of the objectives
(:mod:`~featuremaps.optvis.objectives`) with Adam. Each image of a batch has its own
objective, so 16 channels are optimised in one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import replace

import torch
from torch import nn

from featuremaps.errors import SettingsError, check_seed
from featuremaps.features import FeatureExtractor, catalogue_for
from featuremaps.features.info import model_device, model_info
from featuremaps.optvis.objectives import OUTPUT, Objective
from featuremaps.optvis.param import PARAMS, ImageParam, Param
from featuremaps.optvis.relu import redirected_relu
from featuremaps.optvis.result import Visualization
from featuremaps.optvis.transforms import Robustness

__all__ = ["Visualization", "visualize"]

Progress = Callable[[int, int], None]
"""``(steps done, steps in all)`` over every batch."""

_MAX_STEPS = 20_000
_MAX_SIZE = 1024


def _check_settings(steps: int, size: int | tuple[int, int] | None, lr: float, param: str, batch_size: int,
                    default: tuple[int, int]) -> tuple[int, int]:
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= _MAX_STEPS:
        raise SettingsError(f"steps must be an int in 1..{_MAX_STEPS}; got {steps!r}")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not 0 < lr <= 10:
        raise SettingsError(f"lr must be a number in (0, 10]; got {lr!r}")
    if param not in PARAMS:
        raise SettingsError(f"param must be one of {', '.join(PARAMS)}; got {param!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 256:
        raise SettingsError(f"batch_size must be an int in 1..256; got {batch_size!r}")
    if size is None:
        return default
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if (len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or not 16 <= v <= _MAX_SIZE for v in pair)):
        raise SettingsError(f"size must be an int or (H, W) with each in 16..{_MAX_SIZE}; got {size!r}")
    return (int(pair[0]), int(pair[1]))


def visualize(
    model: nn.Module,
    objectives: Objective | Sequence[Objective],
    *,
    steps: int = 256,
    size: int | tuple[int, int] | None = None,
    lr: float = 0.1,
    param: Param = "fourier",
    decorrelate: bool = True,
    transforms: Robustness | None = Robustness(),
    seed: int = 0,
    batch_size: int = 16,
    redirect: bool = True,
    progress: Progress | None = None,
) -> Visualization:
    """Optimise one image per objective.

    Args:
        model: any model featuremaps loads (its weights are not changed; no ``.grad`` is left on them).
        objectives: :func:`~featuremaps.optvis.channel`, :func:`~featuremaps.optvis.unit`,
            :func:`~featuremaps.optvis.logit`, :func:`~featuremaps.optvis.direction`, or their negation.
        steps: optimisation steps (Adam, learning rate ``lr``).
        size: image side or ``(H, W)``; default the model's input size (a logit of a model with a
            fixed-size classifier needs that size).
        param: ``"fourier"`` (decorrelated spectrum, natural-looking) or ``"pixel"``.
        decorrelate: mix colours through ImageNet's colour correlation (RGB models).
        transforms: the random jitter, scale and rotation each step, or None for none.
        seed: seeds the start and the transforms: the same call gives the same images.
        batch_size: objectives optimised together.
        redirect: for an image whose ReLU gradient is all zero, let it pass where it would switch
            units on (:func:`~featuremaps.optvis.relu.redirected_relu`), so a channel that is zero
            on the grey start can still move.
        progress: called with ``(steps done, steps in all)``.

    Returns:
        A :class:`Visualization`: images ``(N, C, H, W)`` in [0, 1], final values and history.

    Raises:
        LayerError: an objective names a layer the model does not have (the message lists those it has).
        SettingsError: a channel or class out of range, or a bad setting.
    """
    if not isinstance(model, nn.Module):
        raise SettingsError(f"model must be a torch nn.Module; got {type(model).__name__}")
    check_seed(seed)
    chosen = (objectives,) if isinstance(objectives, Objective) else tuple(objectives)
    if not chosen or not all(isinstance(o, Objective) for o in chosen):
        raise SettingsError("objectives must be one or more Objective (channel, unit, logit, direction)")
    info = model_info(model)
    names = info.class_names or ()
    chosen = tuple(replace(o, name=names[o.index]) if o.kind == "logit" and o.name is None and o.index is not None
                   and o.index < len(names) else o for o in chosen)
    height, width = _check_settings(steps, size, lr, param, batch_size, info.input.size)
    layers = sorted({o.layer for o in chosen if o.layer != OUTPUT})
    wants_output = any(o.layer == OUTPUT for o in chosen)
    shape = (info.input.channels, height, width)
    # Only logits: the output is read, and the first layer (cheap to keep) stands in for the selection.
    extractor = FeatureExtractor(model, layers or [catalogue_for(model, shape)[0].name], input_shape=shape)
    missing = [name for name in layers if name not in extractor.names]
    if missing:
        raise SettingsError(f"objectives must name single layers; {', '.join(missing)} matched "
                            f"{', '.join(extractor.names)}")
    device = model_device(model)

    def activations(images: torch.Tensor, grad: bool) -> dict[str, torch.Tensor]:
        batch = info.input.standardise(images)
        if wants_output:
            maps, output = extractor.with_output(batch, grad=grad)
            if not isinstance(output, torch.Tensor) or output.ndim != 2:
                raise SettingsError(f"{info.name}'s output is not (N, classes); a logit objective needs a classifier")
            return {**maps, OUTPUT: output}
        return extractor(batch, grad=grad)

    probe = activations(torch.full((1, info.input.channels, height, width), 0.5, device=device), False)
    for objective in chosen:
        objective.check(tuple(probe[objective.layer].shape[1:]))

    chunks = [chosen[start:start + batch_size] for start in range(0, len(chosen), batch_size)]
    total, done = steps * len(chunks), 0
    images, values, histories = [], [], []
    for number, chunk in enumerate(chunks):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + number)
        image_param = ImageParam(len(chunk), info.input.channels, (height, width), param=param,
                                 decorrelate=decorrelate, generator=generator).to(device)
        optimiser = torch.optim.Adam(image_param.parameters(), lr=lr)
        history = torch.empty(steps, len(chunk))
        for step in range(steps):
            drawn = image_param()
            seen = transforms(drawn, generator) if transforms is not None else drawn
            with redirected_relu() if redirect else nullcontext():
                acts = activations(seen, True)
            objective_values = torch.stack([o.value(acts[o.layer][i]) for i, o in enumerate(chunk)])
            (gradient,) = torch.autograd.grad(-objective_values.sum(), image_param.values)
            optimiser.zero_grad(set_to_none=True)
            image_param.values.grad = gradient
            optimiser.step()
            history[step] = objective_values.detach().float().cpu()
            done += 1
            if progress is not None:
                progress(done, total)
        with torch.no_grad():
            final = image_param().detach()
        acts = activations(final, False)
        values.append(torch.stack([o.value(acts[o.layer][i]) for i, o in enumerate(chunk)]).float().cpu())
        images.append(final.float().cpu())
        histories.append(history)
    settings = {"steps": steps, "size": [height, width], "lr": lr, "param": param, "decorrelate": decorrelate,
                "transforms": transforms is not None, "redirect": redirect, "seed": seed, "batch_size": batch_size}
    return Visualization(images=torch.cat(images), objectives=chosen, values=torch.cat(values),
                         history=torch.cat(histories, dim=1), model=info.name, weights=info.weights_label,
                         settings=settings)
