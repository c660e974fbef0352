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
- Memory: pixels go from Pillow's 8- or 16-bit buffer straight into the float32 tensor
  (no float64 copy). With ``max_side`` the image is shrunk while it is still in Pillow's
  buffer (JPEGs are decoded at a reduced scale), so the full-size float image is never
  made: the peak is Pillow's buffer, at most 4 bytes per pixel (5 for palette images).
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from featuremaps.errors import ImageError, SettingsError
from featuremaps.files import FileRefused, read_regular_file
from featuremaps.sample_photos import SAMPLE_PREFIX, Sample, sample_path, samples

__all__ = [
    "LUMA",
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "SUPPORTED_FORMATS",
    "ImageHeader",
    "ImageSource",
    "Sample",
    "decode_jpegs",
    "decode_uint8",
    "image_size",
    "load_image",
    "open_pil",
    "read_header",
    "read_image_file",
    "sample_path",
    "samples",
]

ImageSource = Union[str, os.PathLike, bytes, bytearray, Image.Image, np.ndarray, torch.Tensor]
ColourMode = Literal["auto", "rgb", "gray"]

MAX_PIXELS = 64_000_000
"""Default limit on width × height; larger images are refused before decoding."""

MAX_FILE_BYTES = 512 * 1024 * 1024
"""Largest image file read (512 MiB, beyond any compressed image of :data:`MAX_PIXELS`); checked before
reading, like the rule that only regular files are read (no FIFO, no ``/dev/zero``)."""

SUPPORTED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")
"""Pillow format names that featuremaps decodes."""

_COLOUR_MODES = ("auto", "rgb", "gray")
LUMA = (0.299, 0.587, 0.114)
"""ITU-R 601-2 luma weights of R, G, B (Pillow's ``L`` mode): every colour-to-gray conversion uses them."""


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
    max_side: int | None = None,
) -> torch.Tensor:
    """Read an image from any common source.

    Args:
        src: a path, ``"sample:NAME"``, encoded bytes, a PIL image, a numpy array
            ``(H, W)`` or ``(H, W, C)``, or a tensor ``(H, W)`` or ``(C, H, W)``.
        mode: ``"auto"`` keeps grayscale as one channel and colour as three;
            ``"rgb"`` always gives three; ``"gray"`` always gives one.
        background: RGB colour (0-255) that transparent pixels are composited on.
        max_pixels: images with more pixels are refused before decoding.
        max_side: shrink (antialiased) so the longer side is at most this many pixels,
            before the pixels become floats; None keeps the full size.

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
    if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1):
        raise SettingsError(f"max_side must be an int >= 1 or None; got {max_side!r}")
    name = describe_source(src)
    if isinstance(src, (torch.Tensor, np.ndarray)):
        array = _tensor_to_hwc(src, name) if isinstance(src, torch.Tensor) else _check_array(src, name)
        tensor = _finish(array, mode, background, name)
        return _shrink_tensor(tensor, max_side) if max_side is not None else tensor
    if isinstance(src, Image.Image):
        pil = _shrink_pil(src, _shrunk_size(src.size, max_side)) if max_side is not None else src
    else:
        pil = open_pil(src, max_pixels=max_pixels, max_side=max_side)
    return _finish(_pil_to_hwc(pil, name), mode, background, name)


def _encoded(src: str | os.PathLike | bytes | bytearray, name: str) -> bytes:
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
    return data


def open_pil(
    src: str | os.PathLike | bytes | bytearray, *, max_pixels: int = MAX_PIXELS, max_side: int | None = None
) -> Image.Image:
    """Decode a path, ``sample:NAME`` or bytes into an upright, fully loaded PIL image.

    With ``max_side`` the image is shrunk so its longer side is at most that many pixels:
    JPEGs are decoded at a reduced DCT scale, other formats are reduced in Pillow's buffer.

    Raises:
        ImageError: missing or empty file, not an image, unsupported format, too many
            pixels, or truncated/corrupt data.
    """
    name = describe_source(src)
    return _decode(_encoded(src, name), name, max_pixels, max_side)


def image_size(src: str | os.PathLike | bytes | bytearray, *, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """``(width, height)`` as a viewer shows the image (EXIF rotation applied), from its header only.

    Raises:
        ImageError: as :func:`open_pil`, except for errors in the pixel data, which is not read.
    """
    name = describe_source(src)
    image = _open_header(_encoded(src, name), name, max_pixels)
    width, height = image.size
    rotated = image.getexif().get(_ORIENTATION) in (5, 6, 7, 8)
    return (height, width) if rotated else (width, height)


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says, read without decoding a pixel.

    Attributes:
        format: Pillow's format name (``JPEG``, ``PNG``, ...).
        mode: Pillow's pixel mode (``RGB``, ``L``, ``CMYK``, ...).
        width, height: as stored (before EXIF rotation).
        orientation: the EXIF orientation (1 = upright), None without one.
    """

    format: str
    mode: str
    width: int
    height: int
    orientation: int | None

    @property
    def batch_jpeg(self) -> bool:
        """True for a JPEG that :func:`decode_jpegs` decodes on any device: colour or gray (not CMYK),
        upright (the CUDA decoder cannot rotate)."""
        return self.format in ("JPEG", "MPO") and self.mode in ("RGB", "L") and self.orientation in (None, 1)


def read_header(src: str | os.PathLike | bytes | bytearray, *, max_pixels: int = MAX_PIXELS) -> ImageHeader:
    """The header of an image: format, mode, size, orientation (no pixel is decoded).

    Raises:
        ImageError: missing or empty file, not an image, unsupported format, too many pixels.
    """
    name = describe_source(src)
    image = _open_header(_encoded(src, name), name, max_pixels)
    orientation = image.getexif().get(_ORIENTATION)
    return ImageHeader(str(image.format), image.mode, image.width, image.height,
                       orientation if isinstance(orientation, int) else None)


def decode_uint8(src: ImageSource, *, mode: Literal["rgb", "gray"] = "rgb",
                 max_pixels: int = MAX_PIXELS) -> torch.Tensor:
    """Decode any image source to uint8 ``(C, H, W)`` (C = 3 for ``rgb``, 1 for ``gray``), upright.

    The same rules as :func:`load_image` (formats, pixel limit, EXIF, alpha on white), at 8 bits.
    JPEGs are decoded by libjpeg-turbo through ``torchvision.io.decode_jpeg`` (faster than
    Pillow, the same pixels); anything else, and any JPEG it refuses, by Pillow.
    """
    name = describe_source(src)
    if isinstance(src, (str, os.PathLike, bytes, bytearray)):
        data = _encoded(src, name)
        header = _open_header(data, name, max_pixels)
        if header.format in ("JPEG", "MPO") and header.mode in ("RGB", "L"):
            decoded = _torchvision_jpeg(data, mode)
            if decoded is not None:
                return decoded
        pil = _decode(data, name, max_pixels)
    elif isinstance(src, Image.Image):
        pil = src
    else:
        pil = None
    if pil is not None and pil.mode in ("RGB", "L"):
        wanted = "RGB" if mode == "rgb" else "L"
        array = np.asarray(pil if pil.mode == wanted else pil.convert(wanted))
        tensor = torch.from_numpy(array.copy())
        return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()
    floats = load_image(pil if pil is not None else src, mode=mode, max_pixels=max_pixels)
    return floats.mul_(255.0).round_().to(torch.uint8)


def _torchvision_jpeg(data: bytes, mode: Literal["rgb", "gray"]) -> torch.Tensor | None:
    """One JPEG through libjpeg-turbo (EXIF applied); None when torchvision cannot decode it."""
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:
        return None
    try:
        buffer = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        return decode_jpeg(buffer, mode=ImageReadMode.RGB if mode == "rgb" else ImageReadMode.GRAY,
                           apply_exif_orientation=True)
    except (RuntimeError, ValueError):
        return None  # corrupt or unusual data: Pillow decides, and names the problem


def decode_jpegs(datas: Sequence[torch.Tensor], *, mode: Literal["rgb", "gray"] = "rgb",
                 device: torch.device | str = "cpu") -> list[torch.Tensor | None]:
    """Decode a batch of upright JPEGs (1-D uint8 CPU tensors of their bytes) on ``device``.

    On CUDA this is nvJPEG's batched decoder. Returns uint8 ``(C, H, W)`` per image, or None for
    an image the decoder refuses (decode it with :func:`decode_uint8` instead, which says why).
    Check each file's header first (:func:`read_header`, ``batch_jpeg``): this decoder is only for
    files that passed the format and pixel checks.
    """
    from torchvision.io import ImageReadMode, decode_jpeg

    read_mode = ImageReadMode.RGB if mode == "rgb" else ImageReadMode.GRAY
    if not datas:
        return []
    try:
        return list(decode_jpeg(list(datas), mode=read_mode, device=device))
    except (RuntimeError, ValueError):
        pass  # one bad image fails the whole batch: find it, one by one
    results: list[torch.Tensor | None] = []
    for data in datas:
        try:
            results.append(decode_jpeg(data, mode=read_mode, device=device))
        except (RuntimeError, ValueError):
            results.append(None)
    return results


def read_image_file(path: str | os.PathLike[str], *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of an image file: a regular file of at most ``max_bytes`` (checked before reading).

    Raises:
        ImageError: missing, a folder, not a regular file (a FIFO, ``/dev/zero``), too large, unreadable.
    """
    return _read_file(Path(path), describe_source(path), max_bytes)


def _read_file(path: Path, name: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    try:
        return read_regular_file(path, max_bytes=max_bytes)
    except FileRefused as error:
        raise ImageError(name, error.reason) from None
    except FileNotFoundError:
        raise ImageError(name, "file not found") from None
    except IsADirectoryError:
        raise ImageError(name, "is a directory, not an image file") from None
    except PermissionError:
        raise ImageError(name, "permission denied") from None
    except OSError as error:
        raise ImageError(name, f"cannot read file ({error.strerror or error})") from None


_ORIENTATION = 0x0112
_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _open_header(data: bytes, name: str, max_pixels: int) -> Image.Image:
    """Identify the format and size from the header; refuse unsupported formats and bombs."""
    try:
        image = Image.open(io.BytesIO(data), formats=list(SUPPORTED_FORMATS))
    except UnidentifiedImageError:
        raise ImageError(name, _unidentified_reason(data)) from None
    except Image.DecompressionBombError as error:
        found = re.search(r"\((\d+) pixels\)", str(error))
        count = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise ImageError(name, f"{count} is over the limit of {max_pixels:,} (a possible decompression bomb)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageError(name, f"corrupt image header ({error})") from None
    pixels = image.width * image.height
    if pixels > max_pixels:
        raise ImageError(
            name,
            f"{image.width}x{image.height} = {pixels:,} pixels is over the limit of "
            f"{max_pixels:,} (a possible decompression bomb; pass max_pixels= to raise it)",
        )
    return image


def _decode(data: bytes, name: str, max_pixels: int, max_side: int | None = None) -> Image.Image:
    with warnings.catch_warnings():
        # We apply our own pixel limit below; Pillow's warning would only be noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = _open_header(data, name, max_pixels)
        try:
            orientation = image.getexif().get(_ORIENTATION)
            target = _shrunk_size(image.size, max_side) if max_side is not None else image.size
            if target != image.size and image.format in ("JPEG", "MPO"):
                # DCT scaling: the decoder itself makes an image >= the asked size, 1/2 to 1/8 as large
                image.draft(image.mode, target)
            image.seek(0)  # GIF, TIFF, MPO: the first frame
            image.load()
            if target != image.size:
                image = _shrink_pil(image, target)
            transpose = _TRANSPOSE_FOR_ORIENTATION.get(orientation) if isinstance(orientation, int) else None
            if transpose is not None:
                image = image.transpose(transpose)
        except (OSError, SyntaxError, ValueError, EOFError, IndexError) as error:
            raise ImageError(name, f"truncated or corrupt image data ({error})") from None
    return image


def _shrunk_size(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """``(width, height)`` scaled so the longer side is at most ``max_side`` (never enlarged)."""
    width, height = size
    longest = max(width, height)
    if longest <= max_side:
        return size
    return max(1, round(width * max_side / longest)), max(1, round(height * max_side / longest))


def _shrink_pil(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    """The image at ``target`` ``(width, height)``: an integer box ``reduce``, then an antialiased
    bilinear resize, both in Pillow's own buffer (never a float copy of the full image)."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode == "1":
        image = image.convert("L")
    factor = min(image.width // target[0], image.height // target[1])
    if factor >= 2 and not image.mode.startswith("I;16"):
        image = image.reduce(factor)  # box average by an integer factor, in Pillow's buffer
    if target != image.size:
        image = image.resize(target, Image.Resampling.BILINEAR, reducing_gap=None)
    return image


def _shrink_tensor(tensor: torch.Tensor, max_side: int) -> torch.Tensor:
    """``(C, H, W)`` shrunk (antialiased bilinear) so its longer side is at most ``max_side``."""
    _, height, width = tensor.shape
    if max(height, width) <= max_side:
        return tensor
    scale = max_side / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return F.interpolate(tensor[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]


def _unidentified_reason(data: bytes) -> str:
    """Tell 'not an image' from 'an image format featuremaps does not decode'."""
    try:
        # Identification only reads the header; nothing is decoded or executed.
        with Image.open(io.BytesIO(data)) as other:
            fmt = other.format
    except Exception:  # noqa: BLE001 - any failure here means: not an image we know
        return "not an image (no known image format matches the file's content)"
    return f"unsupported image format {fmt}; supported: {', '.join(SUPPORTED_FORMATS)}"


def _pil_to_hwc(image: Image.Image, name: str) -> _Pixels:
    """PIL image -> raw pixels (H, W, C), C in {1, 2, 3, 4} (2/4 carry alpha), without a float copy."""
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
        pixels = _Pixels(np.asarray(image), 65535.0)
    elif image_mode == "I":
        raw = np.asarray(image)
        if raw.size and (raw.min() < 0 or raw.max() > 65535):
            raise ImageError(name, "32-bit integer image with values outside 0..65535 is not supported")
        pixels = _Pixels(raw, 65535.0)
    elif image_mode == "F":
        pixels = _Pixels(_check_float_range(np.asarray(image, dtype=np.float32), name), 1.0)
    elif image_mode in ("L", "LA", "RGB", "RGBA"):
        pixels = _Pixels(np.asarray(image), 255.0)
    else:
        raise ImageError(name, f"unsupported pixel mode {image_mode}")
    return pixels.hwc()


@dataclass(frozen=True)
class _Pixels:
    """Raw pixels ``(H, W)`` or ``(H, W, C)`` in their own dtype, and the value that means 1.0."""

    raw: np.ndarray
    full: float

    def hwc(self) -> _Pixels:
        return self if self.raw.ndim == 3 else _Pixels(self.raw[:, :, None], self.full)


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


def _check_array(array: np.ndarray, name: str) -> _Pixels:
    """numpy (H, W) or (H, W, C) of any supported dtype -> raw pixels (H, W, C)."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ImageError(name, "expected shape (H, W) or (H, W, C) with C in 1, 2, 3, 4")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError(name, "image has no pixels")
    if array.dtype == np.uint8:
        return _Pixels(array, 255.0)
    if array.dtype == np.uint16:
        return _Pixels(array, 65535.0)
    if array.dtype == np.bool_:
        return _Pixels(array.astype(np.uint8), 1.0)
    if np.issubdtype(array.dtype, np.floating):
        return _Pixels(_check_float_range(array.astype(np.float32, copy=False), name), 1.0)
    raise ImageError(name, f"unsupported dtype {array.dtype}; use uint8, uint16, bool or float in [0, 1]")


def _tensor_to_hwc(tensor: torch.Tensor, name: str) -> _Pixels:
    """Tensor (H, W) or (C, H, W) -> numpy (H, W, C) (torchvision's channel-first order)."""
    if tensor.ndim == 3:
        tensor = tensor.permute(1, 2, 0)  # (H, W, C)
    elif tensor.ndim != 2:
        raise ImageError(name, "expected a tensor of shape (H, W) or (C, H, W)")
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return _check_array(tensor.detach().cpu().numpy(), name)


def _finish(
    pixels: _Pixels, mode: ColourMode, background: tuple[int, int, int], name: str
) -> torch.Tensor:
    """Scale to [0, 1], composite alpha, apply the colour mode: float32 (C, H, W).

    The raw pixels are converted while they are copied into the one float32 tensor.
    """
    raw = pixels.raw
    if raw.dtype == np.uint16:
        raw = raw.astype(np.int32)  # torch has no uint16 arithmetic on every version
    with warnings.catch_warnings():  # Pillow's buffer is read-only; it is only read from here
        warnings.simplefilter("ignore", UserWarning)
        hwc = torch.from_numpy(np.ascontiguousarray(raw))
    height, width, channels = hwc.shape
    tensor = torch.empty((channels, height, width), dtype=torch.float32)  # (C, H, W)
    tensor.copy_(hwc.permute(2, 0, 1))
    if pixels.full != 1.0:
        tensor.mul_(1.0 / pixels.full)
    if channels in (2, 4):
        colour, alpha = tensor[:-1], tensor[-1:]
        bg = torch.tensor(background, dtype=torch.float32) / 255.0
        if channels == 2:
            bg = (bg * torch.tensor(LUMA)).sum(dim=0, keepdim=True)
        tensor = colour.mul_(alpha).add_((1.0 - alpha) * bg.view(-1, 1, 1))
    if mode == "gray" and tensor.shape[0] == 3:
        tensor = (tensor * torch.tensor(LUMA, dtype=torch.float32).view(3, 1, 1)).sum(dim=0, keepdim=True)
    elif mode == "rgb" and tensor.shape[0] == 1:
        tensor = tensor.expand(3, -1, -1).contiguous()
    return tensor.clamp_(0.0, 1.0)
