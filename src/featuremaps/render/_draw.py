"""Small drawing helpers shared by the renderers: fonts, colormaps, tensor to pixels."""

from __future__ import annotations

from functools import lru_cache

import matplotlib
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from featuremaps.errors import SettingsError

__all__ = ["apply_colormap", "font", "format_number", "text_size", "to_pil"]


@lru_cache(maxsize=16)
def font(size: int = 13) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` pixels (no system font needed)."""
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=32)
def _lut(cmap: str) -> np.ndarray:
    try:
        colormap = matplotlib.colormaps[cmap]
    except KeyError:
        known = ", ".join(sorted(name for name in matplotlib.colormaps if not name.endswith("_r"))[:12])
        raise SettingsError(f"unknown colormap {cmap!r}; try one of {known}, ... (any matplotlib colormap)") from None
    return (colormap(np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)  # (256, 3)


def apply_colormap(values: np.ndarray, low: float, high: float, cmap: str = "viridis") -> np.ndarray:
    """Map a 2-D array to RGB ``(H, W, 3)`` uint8, ``low`` -> first colour, ``high`` -> last."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float64))
    span = high - low
    scaled = (values - low) / span if span > 0 else np.zeros_like(values)
    index = np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8)
    return _lut(cmap)[index]


def text_size(draw: ImageDraw.ImageDraw, text: str, size: int) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font(size))
    return right - left, bottom - top


def format_number(value: float) -> str:
    """A short, readable number: 3 significant digits."""
    if value == 0:
        return "0"
    return f"{value:.3g}"


def to_pil(image: torch.Tensor) -> Image.Image:
    """Tensor ``(C, H, W)`` in [0, 1] (C = 1 or 3) to a PIL image."""
    array = image.detach().cpu().clamp(0, 1).mul(255).round().to(torch.uint8)
    if array.shape[0] == 1:
        return Image.fromarray(array[0].numpy())
    return Image.fromarray(array.permute(1, 2, 0).numpy())  # (H, W, 3)
