"""``extract``: the feature maps of chosen layers of any PyTorch model, for one image or a batch.

A thin wrapper over the feature core: the image becomes model input through the model's
:class:`~featuremaps.features.inputs.ModelInput`, and :class:`~featuremaps.features.FeatureExtractor`
runs the model up to the deepest chosen layer.

- Layers are chosen by exact name (``layer2``, ``layer1.0.relu:1``), glob pattern
  (``layer*.conv1``), module type (``Conv2d``), a list of those, or ``"all"``.
- Values are the layer's output at that point: a later in-place operation (ResNet's
  ``ReLU(inplace=True)`` after ``bn1``) cannot change them.
- Later layers are not computed; the model's train/eval modes are left as they were.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from featuremaps.errors import SettingsError
from featuremaps.features import FeatureExtractor, LayerSelection
from featuremaps.features.info import model_device, model_info
from featuremaps.images import ImageSource

__all__ = ["extract", "model_batch"]


def model_batch(model: nn.Module, images: ImageSource | Sequence[ImageSource] | torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Model input ``(N, C, H, W)`` on the model's device, and whether a single image was given.

    Paths, ``sample:NAME``, bytes, PIL images and arrays go through the model's input
    description; a tensor is ready model input (``(C, H, W)`` or ``(N, C, H, W)``), used as is.
    """
    device = model_device(model)
    if isinstance(images, torch.Tensor):
        if images.ndim == 3:
            return images.unsqueeze(0).to(device), True
        if images.ndim == 4:
            return images.to(device), False
        raise SettingsError(f"a tensor input must be (C, H, W) or (N, C, H, W); got {tuple(images.shape)}")
    model_input = model_info(model).input
    if isinstance(images, (list, tuple)):
        return model_input.batch(list(images)).to(device), False
    single: ImageSource = images  # type: ignore[assignment]  # not a list or tuple: one image
    return model_input.tensor(single).unsqueeze(0).to(device), True


def extract(
    model: nn.Module,
    image: ImageSource | Sequence[ImageSource] | torch.Tensor,
    layers: LayerSelection = "all",
) -> dict[str, torch.Tensor]:
    """Feature maps of the selected layers.

    Args:
        model: any ``nn.Module`` (from :func:`~featuremaps.load_model` or your own).
        image: a path, ``sample:NAME``, PIL image or array (prepared for the model),
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
    batch, single = model_batch(model, image)
    maps = FeatureExtractor(model, layers, input_shape=tuple(batch.shape[1:]))(batch)
    return {name: tensor[0] for name, tensor in maps.items()} if single else maps
