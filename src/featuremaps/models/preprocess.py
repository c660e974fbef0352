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
import math
import os
import re
from typing import Any


import numpy as np
import torch
from PIL import Image
from torch import nn

from featuremaps.errors import SettingsError
from featuremaps.images import ImageSource, load_image, open_pil

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ModelInfo", "model_info", "prepare_batch", "preprocess", "resize_crop"]

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
        options: constructor options of a built-in architecture (``{"width": 32}``).
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
    options: dict[str, Any] | None = None
    transforms: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (without ``transforms``), as checkpoints record it."""
        data = asdict(self)
        data.pop("transforms")
        data["input_size"] = list(self.input_size)
        return data

    @classmethod
    def from_dict(cls, data: Any) -> ModelInfo:
        """Parse a record (a checkpoint's ``model`` section), checking every field's type and range.

        Raises:
            SettingsError: naming the field that is missing, of the wrong type or out of range.
        """
        if not isinstance(data, dict):
            raise SettingsError(f"model record must be a JSON object; got {type(data).__name__}")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "transforms"}
        name = known.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
            raise SettingsError(f"model.name must be a model name (letters, digits, _ . : + -), never a path; "
                                f"got {str(name)[:100]!r}")
        if not isinstance(known.get("source"), str) or len(known["source"]) > 40:
            raise SettingsError(f"model.source must be a short string; got {str(known.get('source'))[:60]!r}")
        size = known.get("input_size", (3, 224, 224))
        if (not isinstance(size, (list, tuple)) or len(size) != 3
                or not all(_positive_int(v, 16384) for v in size) or size[0] not in (1, 3)):
            raise SettingsError(f"model.input_size must be [C, H, W] with C 1 or 3 and H, W in 1..16384; "
                                f"got {str(size)[:60]}")
        known["input_size"] = tuple(int(v) for v in size)
        channels = known["input_size"][0]
        if known.get("resize") is not None and not _positive_int(known["resize"], 16384):
            raise SettingsError(f"model.resize must be an int in 1..16384 or null; got {str(known['resize'])[:60]}")
        for key in ("mean", "std"):
            value = known.get(key)
            if value is None:
                continue
            if (not isinstance(value, (list, tuple)) or len(value) != channels
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                               for v in value) or (key == "std" and min(value) <= 0)):
                raise SettingsError(f"model.{key} must be {channels} finite numbers{' > 0' if key == 'std' else ''}; "
                                    f"got {str(value)[:60]}")
            known[key] = tuple(float(v) for v in value)
        names = known.get("class_names")
        if names is not None and (not isinstance(names, list) or len(names) > 100_000
                                  or not all(isinstance(n, str) and len(n) <= 200 for n in names)):
            raise SettingsError("model.class_names must be a list of strings (at most 200 characters each)")
        if known.get("num_classes") is not None and not _positive_int(known["num_classes"], 1_000_000):
            raise SettingsError(f"model.num_classes must be a positive int; got {str(known['num_classes'])[:60]}")
        if known.get("weights") is not None and not isinstance(known["weights"], str):
            raise SettingsError("model.weights must be a string or null")
        options = known.get("options")
        if options is not None:
            if not isinstance(options, dict) or not all(
                    isinstance(k, str) and _NAME.fullmatch(k) and isinstance(v, (bool, int, float, str))
                    for k, v in options.items()):
                raise SettingsError("model.options must map option names to numbers, booleans or strings")
            known["options"] = dict(options)
        return cls(**known)


_NAME = re.compile(r"[A-Za-z0-9_.:+\-]{1,200}")


def _positive_int(value: Any, limit: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= limit


def model_info(model: nn.Module) -> ModelInfo:
    """The model's :class:`ModelInfo`, or a default for a plain ``nn.Module`` (3x224x224, no normalisation)."""
    info = getattr(model, "featuremaps_info", None)
    if isinstance(info, ModelInfo):
        return info
    return ModelInfo(name=type(model).__name__, source="module")


def _as_pil(image: ImageSource, channels: int) -> Image.Image:
    """The image as an 8-bit PIL image in the model's colour mode (``RGB`` or ``L``).

    Files and bytes go through the safe decoder; 8-bit RGB and gray images are used as they
    are; anything else (alpha, CMYK, 16-bit, arrays, tensors) goes through ``load_image``'s
    rules first.
    """
    mode = "RGB" if channels == 3 else "L"
    pil = None
    if isinstance(image, Image.Image):
        pil = image
    elif isinstance(image, (str, os.PathLike, bytes, bytearray)):
        pil = open_pil(image)
    if pil is None or pil.mode not in ("RGB", "L"):
        tensor = load_image(pil if pil is not None else image, mode="rgb" if channels == 3 else "gray")
        array = (tensor.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (H, W, C)
        pil = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    return pil if pil.mode == mode else pil.convert(mode)


def resize_crop(pil: Image.Image, resize: int, size: tuple[int, int]) -> Image.Image:
    """Shorter side to ``resize`` (bilinear, antialiased), then the centre ``(H, W)`` crop."""
    width, height = pil.size
    scale = resize / min(width, height)
    new = (max(size[1], round(width * scale)), max(size[0], round(height * scale)))
    if new != (width, height):
        pil = pil.resize(new, Image.Resampling.BILINEAR)
    left, top = (new[0] - size[1]) // 2, (new[1] - size[0]) // 2
    return pil.crop((left, top, left + size[1], top + size[0]))


def preprocess_uint8(info: ModelInfo, image: ImageSource) -> torch.Tensor:
    """The resized, cropped image as uint8 ``(C, H, W)``; :func:`normalise` finishes it.

    ``normalise(preprocess_uint8(info, x)) == preprocess(info, x)`` exactly. Only for models
    without weights transforms (``info.transforms is None``).
    """
    channels, height, width = info.input_size
    pil = resize_crop(_as_pil(image, channels), info.resize or min(height, width), (height, width))
    tensor = torch.from_numpy(np.asarray(pil).copy())
    return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()  # (C, H, W)


def normalise(info: ModelInfo, images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(C, H, W)`` or ``(N, C, H, W)`` -> model input: scale to [0, 1], then mean/std."""
    tensor = images.float().div_(255.0)
    if info.mean is not None and info.std is not None:
        shape = (-1, 1, 1) if tensor.ndim == 3 else (1, -1, 1, 1)
        tensor = (tensor - torch.tensor(info.mean).view(shape)) / torch.tensor(info.std).view(shape)
    return tensor


def preprocess(info: ModelInfo, image: ImageSource) -> torch.Tensor:
    """Decode and preprocess one image into model input ``(C, H, W)``.

    With the weights' own transforms (torchvision weights) those are applied to the decoded
    image; otherwise the image is resized (shorter side to ``info.resize``), centre-cropped to
    the input size with Pillow, scaled to [0, 1] and normalised with ``mean``/``std``.
    """
    channels, height, width = info.input_size
    if info.transforms is not None:
        return info.transforms(load_image(image, mode="rgb" if channels == 3 else "gray"))
    return normalise(info, preprocess_uint8(info, image)).contiguous()


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
        raise SettingsError(f"a tensor input must be (C, H, W) or (N, C, H, W); got {tuple(images.shape)}")
    info = model_info(model)
    if isinstance(images, (list, tuple)):
        return torch.stack([preprocess(info, image) for image in images]), False
    return preprocess(info, images).unsqueeze(0), True  # type: ignore[arg-type]
