"""Safe image input: any common source in, a float32 tensor ``[C, H, W]`` in ``[0, 1]`` out.

Rules (the same for every source):

- Formats: PNG, JPEG (including MPO, the multi-picture JPEG that phones write), BMP, GIF
  (first frame), TIFF and WebP. Anything else Pillow recognises is refused as unsupported;
  Pillow is never asked to run an external program (EPS, for example).
- EXIF orientation is applied, so the tensor is upright as a viewer would show it.
- Transparency (RGBA, LA, palette images with a transparent colour) is composited on a
  background, white by default (``background=``), so no channel is silently dropped.
- CMYK, YCbCr, LAB and HSV images are converted to RGB; bilevel images to grayscale.
- 16-bit images are scaled by 65535, 8-bit by 255; float images must already lie in
  ``[0, 1]``.
- Grayscale stays one channel (``mode="auto"``) unless ``mode="rgb"`` is asked for;
  ``mode="gray"`` turns colour into one luma channel (ITU-R 601-2, as Pillow's ``L``).
- Images over ``max_pixels`` (:data:`MAX_PIXELS`, 64 megapixels, by default) are
  refused from their header, before any pixel is decoded: a decompression bomb never
  reaches memory.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from featuremaps.errors import ImageError, SettingsError

__all__ = [
    "MAX_PIXELS",
    "SUPPORTED_FORMATS",
    "ImageSource",
    "Sample",
    "load_image",
    "open_pil",
    "sample_path",
    "samples",
]

ImageSource = Union[str, os.PathLike, bytes, bytearray, Image.Image, np.ndarray, torch.Tensor]
ColourMode = Literal["auto", "rgb", "gray"]

MAX_PIXELS = 64_000_000
"""Default limit on width × height; larger images are refused before decoding."""

SUPPORTED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
"""Pillow format names that featuremaps decodes."""

SAMPLE_PREFIX = "sample:"
_COLOUR_MODES = ("auto", "rgb", "gray")
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Sample:
    """A bundled sample photo and where it comes from."""

    name: str
    file: str
    title: str
    author: str
    licence: str
    source: str
    url: str

    @property
    def path(self) -> Path:
        return Path(str(resources.files("featuremaps") / "assets" / "samples" / self.file))


@lru_cache(maxsize=1)
def _sample_table() -> dict[str, Sample]:
    text = (resources.files("featuremaps") / "assets" / "samples" / "samples.json").read_text()
    return {entry["name"]: Sample(**entry) for entry in json.loads(text)}


def samples() -> list[Sample]:
    """The bundled sample photos, in a stable order (``featuremaps samples`` lists them)."""
    return list(_sample_table().values())


def sample_path(name: str) -> Path:
    """Path of the bundled sample ``name`` (with or without the ``sample:`` prefix)."""
    name = name.removeprefix(SAMPLE_PREFIX)
    table = _sample_table()
    if name not in table:
        raise ImageError(
            f"{SAMPLE_PREFIX}{name}",
            f"no such sample; available: {', '.join(table)} (see 'featuremaps samples')",
        )
    return table[name].path


def describe_source(src: object) -> str:
    """A short human name for an image source, used in error messages."""
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    if isinstance(src, (bytes, bytearray)):
        return f"<{len(src)} bytes>"
    if isinstance(src, Image.Image):
        return f"<PIL image {src.mode} {src.width}x{src.height}>"
    if isinstance(src, np.ndarray):
        return f"<array {src.dtype} {tuple(src.shape)}>"
    if isinstance(src, torch.Tensor):
        return f"<tensor {src.dtype} {tuple(src.shape)}>"
    return f"<{type(src).__name__}>"


def load_image(
    src: ImageSource,
    *,
    mode: ColourMode = "auto",
    background: tuple[int, int, int] = (255, 255, 255),
    max_pixels: int = MAX_PIXELS,
) -> torch.Tensor:
    """Read an image from any common source.

    Args:
        src: a path, ``"sample:NAME"``, encoded bytes, a PIL image, a numpy array
            ``(H, W)`` or ``(H, W, C)``, or a tensor ``(H, W)`` or ``(C, H, W)``.
        mode: ``"auto"`` keeps grayscale as one channel and colour as three;
            ``"rgb"`` always gives three; ``"gray"`` always gives one.
        background: RGB colour (0-255) that transparent pixels are composited on.
        max_pixels: images with more pixels are refused before decoding.

    Returns:
        float32 tensor ``(C, H, W)`` with values in ``[0, 1]``, ``C`` in ``{1, 3}``.

    Raises:
        ImageError: the source cannot be read; the message names it and says why.

    Example:
        >>> load_image("sample:cat").shape
        torch.Size([3, 300, 451])
    """
    if mode not in _COLOUR_MODES:
        raise SettingsError(f"mode must be one of {', '.join(_COLOUR_MODES)}; got {mode!r}")
    name = describe_source(src)
    if isinstance(src, torch.Tensor):
        array = _tensor_to_hwc(src, name)
        return _finish(array, mode, background, name)
    if isinstance(src, np.ndarray):
        return _finish(_check_array(src, name), mode, background, name)
    pil = src if isinstance(src, Image.Image) else open_pil(src, max_pixels=max_pixels)
    return _finish(_pil_to_hwc(pil, name), mode, background, name)


def open_pil(src: str | os.PathLike | bytes | bytearray, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode a path, ``sample:NAME`` or bytes into an upright, fully loaded PIL image.

    Raises:
        ImageError: missing or empty file, not an image, unsupported format, too many
            pixels, or truncated/corrupt data.
    """
    name = describe_source(src)
    if isinstance(src, (bytes, bytearray)):
        data = bytes(src)
    elif isinstance(src, (str, os.PathLike)):
        text = str(src)
        path = sample_path(text) if text.startswith(SAMPLE_PREFIX) else Path(text)
        data = _read_file(path, name)
    else:
        raise ImageError(name, "expected a path, 'sample:NAME', bytes, a PIL image, an array or a tensor")
    if not data:
        raise ImageError(name, "file is empty (0 bytes)")
    return _decode(data, name, max_pixels)


def _read_file(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageError(name, "file not found") from None
    except IsADirectoryError:
        raise ImageError(name, "is a directory, not an image file") from None
    except PermissionError:
        raise ImageError(name, "permission denied") from None
    except OSError as error:
        raise ImageError(name, f"cannot read file ({error.strerror or error})") from None


def _decode(data: bytes, name: str, max_pixels: int) -> Image.Image:
    with warnings.catch_warnings():
        # We apply our own pixel limit below; Pillow's warning would only be noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=list(SUPPORTED_FORMATS))
        except UnidentifiedImageError:
            raise ImageError(name, _unidentified_reason(data)) from None
        except Image.DecompressionBombError as error:
            raise ImageError(name, f"too many pixels ({error})") from None
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise ImageError(name, f"corrupt image header ({error})") from None
        pixels = image.width * image.height
        if pixels > max_pixels:
            raise ImageError(
                name,
                f"{image.width}x{image.height} = {pixels:,} pixels is over the limit of "
                f"{max_pixels:,} (a possible decompression bomb; pass max_pixels= to raise it)",
            )
        try:
            image.seek(0)  # GIF, TIFF, MPO: the first frame
            image.load()
            image = ImageOps.exif_transpose(image)
        except (OSError, SyntaxError, ValueError, EOFError, IndexError) as error:
            raise ImageError(name, f"truncated or corrupt image data ({error})") from None
    return image


def _unidentified_reason(data: bytes) -> str:
    """Tell 'not an image' from 'an image format featuremaps does not decode'."""
    try:
        # Identification only reads the header; nothing is decoded or executed.
        with Image.open(io.BytesIO(data)) as other:
            fmt = other.format
    except Exception:  # noqa: BLE001 - any failure here means: not an image we know
        return "not an image (no known image format matches the file's content)"
    return f"unsupported image format {fmt}; supported: {', '.join(SUPPORTED_FORMATS)}"


def _pil_to_hwc(image: Image.Image, name: str) -> np.ndarray:
    """PIL image -> float64 array (H, W, C) in [0, 1], C in {1, 2, 3, 4} (2/4 carry alpha)."""
    image_mode = image.mode
    if image_mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image_mode == "PA":
        image = image.convert("RGBA")
    elif image_mode == "1":
        image = image.convert("L")
    elif image_mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGB")
    elif image_mode in ("RGBa", "La"):
        image = image.convert("RGBA" if image_mode == "RGBa" else "LA")
    image_mode = image.mode
    if image_mode.startswith("I;16"):
        array = np.asarray(image, dtype=np.float64) / 65535.0
    elif image_mode == "I":
        array = np.asarray(image, dtype=np.float64)
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise ImageError(name, "32-bit integer image with values outside 0..65535 is not supported")
        array = array / 65535.0
    elif image_mode == "F":
        array = _check_float_range(np.asarray(image, dtype=np.float64), name)
    elif image_mode in ("L", "LA", "RGB", "RGBA"):
        array = np.asarray(image, dtype=np.float64) / 255.0
    else:
        raise ImageError(name, f"unsupported pixel mode {image_mode}")
    return array[:, :, None] if array.ndim == 2 else array


def _check_float_range(array: np.ndarray, name: str) -> np.ndarray:
    if not np.isfinite(array).all():
        raise ImageError(name, "float image contains NaN or infinite values")
    if array.size and (array.min() < 0.0 or array.max() > 1.0):
        raise ImageError(
            name,
            f"float values span [{array.min():.4g}, {array.max():.4g}]; featuremaps expects "
            "[0, 1] (divide 8-bit data by 255 first)",
        )
    return array


def _check_array(array: np.ndarray, name: str) -> np.ndarray:
    """numpy (H, W) or (H, W, C) of any supported dtype -> float64 (H, W, C) in [0, 1]."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ImageError(name, "expected shape (H, W) or (H, W, C) with C in 1, 2, 3, 4")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError(name, "image has no pixels")
    if array.dtype == np.uint8:
        return array.astype(np.float64) / 255.0
    if array.dtype == np.uint16:
        return array.astype(np.float64) / 65535.0
    if array.dtype == np.bool_:
        return array.astype(np.float64)
    if np.issubdtype(array.dtype, np.floating):
        return _check_float_range(array.astype(np.float64), name)
    raise ImageError(name, f"unsupported dtype {array.dtype}; use uint8, uint16, bool or float in [0, 1]")


def _tensor_to_hwc(tensor: torch.Tensor, name: str) -> np.ndarray:
    """Tensor (H, W) or (C, H, W) -> numpy (H, W, C) (torchvision's channel-first order)."""
    if tensor.ndim == 3:
        tensor = tensor.permute(1, 2, 0)  # (H, W, C)
    elif tensor.ndim != 2:
        raise ImageError(name, "expected a tensor of shape (H, W) or (C, H, W)")
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return _check_array(tensor.detach().cpu().numpy(), name)


def _finish(
    array: np.ndarray, mode: ColourMode, background: tuple[int, int, int], name: str
) -> torch.Tensor:
    """Composite alpha, apply the colour mode, and return float32 (C, H, W)."""
    channels = array.shape[2]
    if channels in (2, 4):
        colour, alpha = array[:, :, :-1], array[:, :, -1:]
        bg = np.asarray(background, dtype=np.float64) / 255.0
        if channels == 2:
            bg = np.asarray([float(np.dot(bg, _LUMA))])
        array = colour * alpha + bg * (1.0 - alpha)
    if mode == "rgb" and array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    elif mode == "gray" and array.shape[2] == 3:
        array = (array @ np.asarray(_LUMA))[:, :, None]
    tensor = torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1), dtype=np.float32))  # (C, H, W)
    return tensor.clamp_(0.0, 1.0)
