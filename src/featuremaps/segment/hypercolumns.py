"""Hypercolumns: for every pixel, the values of chosen layers' maps at that pixel, stacked.

Each layer's maps are placed on the pixels with :func:`~featuremaps.features.align_maps`
(every unit at the centre of its receptive field), so maps of unpadded convolutions land
on the right pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from featuremaps.errors import LayerError
from featuremaps.features import FeatureExtractor, align_maps, catalogue_for, default_layers
from featuremaps.features.catalogue import LayerInfo
from featuremaps.features.info import model_info

__all__ = ["align_maps", "default_segmentation_layers", "hypercolumns"]


def default_segmentation_layers(model: nn.Module, input_size: Sequence[int]) -> list[str]:
    """Up to three stages with a stride of at most 8: fine and coarser maps together."""
    catalogue = catalogue_for(model, tuple(input_size))
    stages = [e for e in default_layers(catalogue) if e.jump is not None and max(e.jump) <= 8
              and e.type not in ("MaxPool2d", "AvgPool2d")]
    if not stages:
        raise LayerError(f"{model_info(model).name} has no layer with a stride of at most 8 for segmentation")
    if len(stages) > 3:
        stages = [stages[0], stages[len(stages) // 2], stages[-1]]
    return [e.name for e in stages]


def hypercolumns(
    model: nn.Module, batch: torch.Tensor, layers: Sequence[str], *, colour: torch.Tensor | None = None,
    position: bool = False,
) -> torch.Tensor:
    """Per-pixel features ``(N, F, H, W)`` for model input ``batch`` ``(N, C, H, W)``.

    Args:
        layers: layer names (see ``featuremaps layers``); their maps are aligned and stacked.
        colour: optional ``(N, 3 or 1, H, W)`` image in [0, 1] to append (colour helps to
            separate regions).
        position: append the pixel's ``y / H`` and ``x / W``.
    """
    size = (int(batch.shape[2]), int(batch.shape[3]))
    extractor = FeatureExtractor(model, list(layers), input_shape=tuple(batch.shape[1:]))
    maps = extractor(batch)
    parts = [align_maps(maps[entry.name], entry, size) for entry in extractor.layers]
    if colour is not None:
        parts.append(colour.float().to(batch.device))
    if position:
        y = torch.linspace(0, 1, size[0], device=batch.device)[None, None, :, None].expand(batch.shape[0], 1, -1, size[1])
        x = torch.linspace(0, 1, size[1], device=batch.device)[None, None, None, :].expand(batch.shape[0], 1, size[0], -1)
        parts += [y, x]
    return torch.cat(parts, dim=1)


def dense_classifier(model: nn.Module, input_size: Sequence[int]) -> tuple[LayerInfo, nn.Linear] | None:
    """The spatial layer and the linear classifier on its flattened maps, if the model ends that way.

    A ``Linear`` whose inputs are exactly the flattened maps ``(C, h, w)`` of the last spatial
    layer (TinyVGG, LeNet-5) is a ``C x h x w`` convolution in disguise: applied at every window
    position of a larger image it gives dense class scores (as in fully convolutional networks).
    """
    catalogue = catalogue_for(model, tuple(input_size))
    modules = dict(model.named_modules())
    spatial = None
    for entry in catalogue:
        if entry.is_spatial and not entry.global_field and entry.jump is not None:
            spatial = entry
        module = modules.get(entry.module)
        if isinstance(module, nn.Linear) and spatial is not None:
            channels, h, w = spatial.output_shape
            return (spatial, module) if module.in_features == channels * h * w else None
    return None


def class_maps(spatial_maps: torch.Tensor, spatial: LayerInfo, linear: nn.Linear, window: tuple[int, int, int],
               size: tuple[int, int]) -> torch.Tensor:
    """Class probabilities of every window ``(N, K, H, W)``, each placed at its window's centre pixel.

    Args:
        spatial_maps: the maps ``(N, C, h', w')`` the classifier reads, at any input size.
        spatial: their catalogue entry (jump, start, receptive field) at that size.
        window: ``(C, h, w)``: the maps' shape at the classifier's own input size.
    """
    channels, h, w = window
    if spatial.receptive_field is None or spatial.jump is None:
        raise LayerError(f"layer {spatial.name} has no local receptive field; its windows cannot be placed")
    kernel = linear.weight.view(linear.out_features, channels, h, w)
    logits = F.conv2d(spatial_maps.float(), kernel.float(), linear.bias.float() if linear.bias is not None else None)
    placed = LayerInfo(
        name=f"{spatial.name}+classifier", module=spatial.module, call=spatial.call, type="Conv2d", depth=0,
        output_shape=(linear.out_features, int(logits.shape[2]), int(logits.shape[3])), jump=spatial.jump,
        receptive_field=(spatial.receptive_field[0] + (h - 1) * spatial.jump[0],
                         spatial.receptive_field[1] + (w - 1) * spatial.jump[1]),
        start=spatial.start,
    )
    return align_maps(F.softmax(logits, dim=1), placed, size)
