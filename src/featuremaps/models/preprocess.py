"""What a model expects as input, and how an image is turned into it.

Every model that :func:`~featuremaps.load_model` returns carries a :class:`ModelInfo`
(``model.featuremaps_info``). Preprocessing uses the weights' own transforms when they
are known (torchvision weights), else the default: resize the shorter side to
``resize`` (input size x 256/224 for ImageNet-style models, the input size itself for
small built-in models), centre-crop to the input size, then normalise with ``mean`` /
``std`` when given. A tensor is taken as ready model input and is not preprocessed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torchvision.transforms import v2 as transforms

from featuremaps.images import ImageSource, load_image

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ModelInfo", "model_info", "prepare_batch", "preprocess"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class ModelInfo:
    """Where a model comes from and what input it expects.

    Attributes:
        name: architecture name as ``load_model`` takes it (``"resnet18"``, ``"timm:..."``).
        source: ``builtin``, ``torchvision``, ``timm``, ``checkpoint`` or ``module``.
        weights: the weights it carries (``None`` = untrained, random initialisation).
        input_size: ``(C, H, W)``.
        resize: shorter side before the centre crop.
        mean, std: per-channel normalisation, or None.
        class_names: output class names, when known.
        num_classes: outputs of the classifier, when known.
        transforms: the weights' own preprocessing (not saved in checkpoints).
    """

    name: str
    source: str
    weights: str | None = None
    input_size: tuple[int, int, int] = (3, 224, 224)
    resize: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    class_names: list[str] | None = None
    num_classes: int | None = None
    transforms: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without ``transforms``), as checkpoints record it."""
        data = asdict(self)
        data.pop("transforms")
        data["input_size"] = list(self.input_size)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInfo:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "transforms"}
        known["input_size"] = tuple(known.get("input_size", (3, 224, 224)))
        for key in ("mean", "std"):
            if known.get(key) is not None:
                known[key] = tuple(known[key])
        return cls(**known)


def model_info(model: nn.Module) -> ModelInfo:
    """The model's :class:`ModelInfo`, or a default for a plain ``nn.Module`` (3x224x224, no normalisation)."""
    info = getattr(model, "featuremaps_info", None)
    if isinstance(info, ModelInfo):
        return info
    return ModelInfo(name=type(model).__name__, source="module")


def preprocess(info: ModelInfo, image: ImageSource) -> torch.Tensor:
    """Decode and preprocess one image into model input ``(C, H, W)``."""
    channels, height, width = info.input_size
    tensor = load_image(image, mode="rgb" if channels == 3 else "gray" if channels == 1 else "auto")
    if info.transforms is not None:
        return info.transforms(tensor)
    resize = info.resize or min(height, width)
    steps: list[Any] = [
        transforms.Resize(resize, interpolation=transforms.InterpolationMode.BILINEAR, antialias=True),
        transforms.CenterCrop((height, width)),
    ]
    if info.mean is not None and info.std is not None:
        steps.append(transforms.Normalize(list(info.mean), list(info.std)))
    return transforms.Compose(steps)(tensor)


def prepare_batch(
    model: nn.Module, images: ImageSource | Sequence[ImageSource]
) -> tuple[torch.Tensor, bool]:
    """Model input ``(N, C, H, W)`` and whether a single image was given.

    Paths, ``sample:NAME``, bytes, PIL images and arrays are preprocessed; a tensor is
    ready model input (``(C, H, W)`` or ``(N, C, H, W)``) and is used as is.
    """
    if isinstance(images, torch.Tensor):
        if images.ndim == 3:
            return images.unsqueeze(0), True
        if images.ndim == 4:
            return images, False
        from featuremaps.errors import SettingsError

        raise SettingsError(f"a tensor input must be (C, H, W) or (N, C, H, W); got {tuple(images.shape)}")
    info = model_info(model)
    if isinstance(images, (list, tuple)):
        return torch.stack([preprocess(info, image) for image in images]), False
    return preprocess(info, images).unsqueeze(0), True  # type: ignore[arg-type]
