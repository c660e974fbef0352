"""How an image becomes a model's input: one immutable description, used by every feature.

A :class:`ModelInput` says how to frame, resize and normalise an image for one model. Every
path that feeds a model goes through it: training data, evaluation, prediction, extraction
(one image or a whole dataset), segmentation and the web explorer. So a file gives the same
tensor whichever command reads it.

Stages (each a method), for any image source (path, ``sample:NAME``, bytes, PIL, array,
tensor in ``[0, 1]``)::

    prepare(image)   -> uint8 (C, H, W)   decode safely, colour mode, resize, crop
    prepare_tensor(uint8 (N, C, h, w)) -> uint8 (N, C, H, W): the same framing in torch, batched,
                                          on the tensor's device (decoded JPEGs, generated images)
    normalise(uint8) -> float (.., C, H, W) on the batch's own device: / 255, then mean/std
    tensor(image)    =  normalise(prepare(image))
    display(image)   -> float (C, H, W) in [0, 1]: what the model sees, before normalisation

Framing (``frame``):

- ``"crop"`` (classification, torchvision's ImageNet rule): the shorter side is resized to
  ``resize``, then the centre ``size`` is cut out;
- ``"whole"`` (segmentation): the longer side is resized to ``resize`` and the aspect kept;
  nothing is cut, so a mask covers the whole image;
- ``"stretch"``: resized to exactly ``size`` (training batches of images and masks of mixed shapes).

Decoding is libjpeg-turbo (torchvision) for JPEGs and Pillow otherwise; resizing is torch's
antialiased ``bilinear`` (or ``bicubic``) on the 8-bit pixels, on the CPU or on the batch's
device (within one level of Pillow's resize). The uint8 stage is what fast loaders ship between
processes (a quarter of the bytes of float32).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from featuremaps.errors import SettingsError
from featuremaps.images import LUMA, ImageSource, decode_uint8

__all__ = ["FRAMES", "IMAGENET_MEAN", "IMAGENET_STD", "INTERPOLATIONS", "MAX_INPUT_PIXELS", "Frame", "Interpolation",
           "ModelInput"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
Frame = Literal["crop", "whole", "stretch"]
Interpolation = Literal["bilinear", "bicubic", "nearest"]
FRAMES: tuple[str, ...] = ("crop", "whole", "stretch")
INTERPOLATIONS: tuple[str, ...] = ("bilinear", "bicubic", "nearest")
_MAX_SIDE = 2048
MAX_INPUT_PIXELS = 1024 * 1024
"""The largest model input (H x W); a side is at most 2,048. Real models take 224 to 600 px (segmenters up
to 512 x 1,024): this bounds what a checkpoint's record can ask of every command (a 4,096-px input makes
gigabytes of maps per layer)."""


def _positive(value: Any, limit: int = _MAX_SIDE) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= limit


@dataclass(frozen=True)
class ModelInput:
    """How an image becomes this model's input.

    Attributes:
        channels: 3 (RGB) or 1 (gray, ITU-R 601-2 luma).
        size: ``(H, W)`` of the input with ``frame="crop"``; with ``"whole"`` only a nominal size.
        resize: the shorter side before the crop (``"crop"``), or the longer side (``"whole"``);
            default: the crop's shorter side (no crop margin).
        mean, std: per-channel normalisation after scaling to [0, 1], or None.
        interpolation: resampling filter of the resize.
        frame: ``"crop"`` or ``"whole"`` (see the module docstring).

    Example:
        >>> ModelInput(size=(224, 224), resize=256).prepare("sample:cat").shape
        torch.Size([3, 224, 224])
    """

    channels: int = 3
    size: tuple[int, int] = (224, 224)
    resize: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    interpolation: Interpolation = "bilinear"
    frame: Frame = "crop"

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise SettingsError(f"input channels must be 1 or 3; got {self.channels!r}")
        if (not isinstance(self.size, tuple) or len(self.size) != 2
                or not all(_positive(v) for v in self.size)):
            raise SettingsError(f"input size must be (H, W) with each in 1..{_MAX_SIDE}; got {self.size!r}")
        if self.size[0] * self.size[1] > MAX_INPUT_PIXELS:
            raise SettingsError(f"input size {self.size[0]}x{self.size[1]} is {self.size[0] * self.size[1]:,} pixels, "
                                f"over the limit of {MAX_INPUT_PIXELS:,} for a model input (its maps would need "
                                "gigabytes per layer)")
        if self.resize is not None and not _positive(self.resize):
            raise SettingsError(f"resize must be an int in 1..{_MAX_SIDE} or None; got {self.resize!r}")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is None:
                continue
            if (not isinstance(value, tuple) or len(value) != self.channels
                    or not all(isinstance(v, float) and math.isfinite(v) for v in value)
                    or (name == "std" and min(value) <= 0)):
                raise SettingsError(f"{name} must be {self.channels} finite numbers{' > 0' if name == 'std' else ''}; "
                                    f"got {str(value)[:80]}")
        if (self.mean is None) != (self.std is None):
            raise SettingsError("mean and std go together: give both or neither")
        if self.interpolation not in INTERPOLATIONS:
            raise SettingsError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}; got {self.interpolation!r}")
        if self.frame not in FRAMES:
            raise SettingsError(f"frame must be one of {', '.join(FRAMES)}; got {self.frame!r}")

    # --- description -----------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the input (with ``frame="whole"``, its nominal size)."""
        return (self.channels, *self.size)

    @property
    def resize_to(self) -> int:
        """The side that is resized: ``resize``, or the frame's own default."""
        if self.resize is not None:
            return self.resize
        return min(self.size) if self.frame == "crop" else max(self.size)

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON form checkpoints record (``input_size`` = ``[C, H, W]``)."""
        return {"input_size": list(self.shape), "resize": self.resize,
                "mean": list(self.mean) if self.mean is not None else None,
                "std": list(self.std) if self.std is not None else None,
                "interpolation": self.interpolation, "frame": self.frame}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelInput:
        """Parse :meth:`to_dict`'s form, checking every field (a :class:`SettingsError` names the bad one)."""
        size = data.get("input_size", (3, 224, 224))
        if (not isinstance(size, (list, tuple)) or len(size) != 3 or not all(_positive(v) for v in size)
                or size[0] not in (1, 3)):
            raise SettingsError(f"input_size must be [C, H, W] with C 1 or 3 and H, W in 1..{_MAX_SIDE}; "
                                f"got {str(size)[:60]}")
        if not isinstance(data.get("resize"), (int, type(None))):
            raise SettingsError(f"resize must be an integer or null; got {str(data.get('resize'))[:60]}")
        values: dict[str, Any] = {}
        for key in ("mean", "std"):
            value = data.get(key)
            if value is not None:
                if not isinstance(value, (list, tuple)) or not all(
                        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                    raise SettingsError(f"{key} must be a list of numbers or null; got {str(value)[:60]}")
                value = tuple(float(v) for v in value)
            values[key] = value
        return cls(channels=int(size[0]), size=(int(size[1]), int(size[2])), resize=data.get("resize"),
                   interpolation=data.get("interpolation", "bilinear"), frame=data.get("frame", "crop"), **values)

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """``(H, W)`` of the input made from an image of ``width`` x ``height``."""
        if self.frame != "whole":
            return self.size
        scale = self.resize_to / max(width, height)
        return max(1, round(height * scale)), max(1, round(width * scale))

    def geometry(self, width: int, height: int) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
        """Where an image of ``width`` x ``height`` goes: its resized ``(w, h)`` and the crop box
        ``(left, top, right, bottom)`` in the resized image. One rule for every implementation."""
        if self.frame != "crop":
            out_h, out_w = self.output_size(width, height)
            return (out_w, out_h), (0, 0, out_w, out_h)
        crop_h, crop_w = self.size
        short, long = (width, height) if width <= height else (height, width)
        new_long = int(self.resize_to * long / short)  # torchvision's rule: truncate the longer side
        new = (self.resize_to, new_long) if width <= height else (new_long, self.resize_to)
        new = (max(crop_w, new[0]), max(crop_h, new[1]))
        left, top = int(round((new[0] - crop_w) / 2.0)), int(round((new[1] - crop_h) / 2.0))
        return new, (left, top, left + crop_w, top + crop_h)

    # --- stages ----------------------------------------------------------------------
    def prepare(self, image: ImageSource) -> torch.Tensor:
        """``image`` as this model's uint8 input ``(C, H, W)``: decoded safely, colour mode, resized, framed.

        Decoding is :func:`~featuremaps.images.decode_uint8` (libjpeg-turbo for JPEGs, Pillow
        otherwise); the resize and crop are :meth:`prepare_tensor`'s, so a file and its decoded
        pixels give the same input.
        """
        decoded = decode_uint8(image, mode="rgb" if self.channels == 3 else "gray")
        return self.prepare_tensor(decoded)

    def prepare_tensor(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(C, h, w)`` or ``(N, C, h, w)`` -> uint8 ``(.., channels, H, W)``, framed as :meth:`prepare`.

        The same geometry, done by torch (antialiased) on the tensor's own device, for a batch of
        images of one size; values differ from Pillow's resize by rounding only.
        """
        if images.dtype != torch.uint8 or images.ndim not in (3, 4) or images.shape[-3] not in (1, 3):
            raise SettingsError(f"prepare_tensor takes uint8 images (.., 1 or 3, H, W); got {images.dtype} "
                                f"{tuple(images.shape)}")
        batch = images if images.ndim == 4 else images[None]
        if batch.shape[1] != self.channels:
            if self.channels == 3:
                batch = batch.expand(-1, 3, -1, -1)
            else:
                luma = torch.tensor(LUMA, dtype=torch.float32, device=batch.device).view(1, 3, 1, 1)
                batch = (batch.to(torch.float32) * luma).sum(dim=1, keepdim=True).round_().to(torch.uint8)
        height, width = int(batch.shape[2]), int(batch.shape[3])
        new, (left, top, right, bottom) = self.geometry(width, height)
        if new != (width, height):
            batch = _resize_uint8(batch, (new[1], new[0]), self.interpolation)
        batch = batch[:, :, top:bottom, left:right]
        return batch.contiguous() if images.ndim == 4 else batch[0].contiguous()

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``(C, H, W)`` or ``(N, C, H, W)`` -> float32 model input, on the same device."""
        if images.dtype != torch.uint8:
            raise SettingsError(f"normalise takes uint8 images (from prepare); got {images.dtype}")
        if images.ndim not in (3, 4) or images.shape[-3] != self.channels:
            raise SettingsError(f"expected uint8 images of shape (.., {self.channels}, H, W); got "
                                f"{tuple(images.shape)}")
        tensor = images.to(torch.float32).div_(255.0)
        if self.mean is not None and self.std is not None:
            mean, std = self._mean_std(tensor.device)
            tensor = tensor.sub_(mean).div_(std)
        return tensor

    def standardise(self, images: torch.Tensor) -> torch.Tensor:
        """float ``(N, C, H, W)`` in [0, 1] -> model input, differentiable (no resize, no rounding).

        For inputs that are optimised (feature visualisation): the same mean and std as
        :meth:`normalise`, applied out of place so gradients flow back to ``images``.
        """
        if not images.is_floating_point() or images.ndim != 4 or images.shape[1] != self.channels:
            raise SettingsError(f"expected float images of shape (N, {self.channels}, H, W); got "
                                f"{images.dtype} {tuple(images.shape)}")
        if self.mean is None or self.std is None:
            return images
        mean, std = self._mean_std(images.device)
        return (images - mean.to(images.dtype)) / std.to(images.dtype)

    def _mean_std(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if self.mean is None or self.std is None:
            raise SettingsError("this input has no mean and std to normalise with")
        shape = (-1, 1, 1)
        return (torch.tensor(self.mean, dtype=torch.float32, device=device).view(shape),
                torch.tensor(self.std, dtype=torch.float32, device=device).view(shape))

    def tensor(self, image: ImageSource) -> torch.Tensor:
        """Model input ``(C, H, W)`` for one image: ``normalise(prepare(image))``."""
        return self.normalise(self.prepare(image))

    def batch(self, images: Sequence[ImageSource]) -> torch.Tensor:
        """Model input ``(N, C, H, W)``; with ``frame="whole"`` the images must give one size."""
        prepared = [self.prepare(image) for image in images]
        shapes = {tuple(p.shape) for p in prepared}
        if len(shapes) > 1:
            raise SettingsError(f"these images give inputs of different sizes ({', '.join(map(str, sorted(shapes)))});"
                                " pass them one at a time")
        return self.normalise(torch.stack(prepared))

    def display(self, image: ImageSource) -> torch.Tensor:
        """What the model sees, before normalisation: float ``(C, H, W)`` in [0, 1]."""
        return self.picture(self.prepare(image))

    @staticmethod
    def picture(prepared: torch.Tensor) -> torch.Tensor:
        """uint8 ``(.., C, H, W)`` from :meth:`prepare` -> float in [0, 1] for pictures (the one place that
        turns a prepared input into something to draw; prepare once, use it for the model and the picture)."""
        if prepared.dtype != torch.uint8:
            raise SettingsError(f"picture takes uint8 images (from prepare); got {prepared.dtype}")
        return prepared.to(torch.float32).div_(255.0)



def _resize_uint8(images: torch.Tensor, size: tuple[int, int], interpolation: Interpolation) -> torch.Tensor:
    """uint8 ``(N, C, h, w)`` resized (antialiased) to ``size`` ``(H, W)``, still uint8.

    On the CPU, torch resizes uint8 directly (its fast path: the same pixels as Pillow's resize
    to within 1 level); elsewhere in float32, rounded back.
    """
    antialias = interpolation != "nearest"
    corners = False if antialias else None
    if images.device.type == "cpu":
        return F.interpolate(images, size=size, mode=interpolation, antialias=antialias, align_corners=corners)
    resized = F.interpolate(images.to(torch.float32), size=size, mode=interpolation, antialias=antialias,
                            align_corners=corners)
    return resized.round_().clamp_(0, 255).to(torch.uint8)
