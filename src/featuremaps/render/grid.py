"""Feature maps as a labelled grid of coloured tiles, with their value ranges."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageDraw

from featuremaps.drawing import apply_colormap, font, format_number, text_size
from featuremaps.errors import SettingsError

__all__ = ["Normalization", "render_grid", "save_maps"]

Normalization = Literal["map", "shared"]
NORMALIZATIONS: tuple[str, ...] = ("map", "shared")

_PAD = 6
_LABEL = 12
_BACKGROUND = (255, 255, 255)
_INK = (30, 30, 30)
_MUTED = (100, 100, 100)


def _as_maps(maps: torch.Tensor | np.ndarray) -> np.ndarray:
    array = maps.detach().cpu().float().numpy() if isinstance(maps, torch.Tensor) else np.asarray(maps, np.float32)
    if array.ndim == 2:
        array = array[None]
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3 or 0 in array.shape:
        raise SettingsError(f"maps must have shape (D, H, W) or (H, W); got {tuple(array.shape)}")
    return array


def _tile_size(height: int, width: int, tile: int) -> tuple[int, int]:
    scale = tile / max(height, width)
    return max(1, round(width * scale)), max(1, round(height * scale))


def render_grid(
    maps: torch.Tensor | np.ndarray,
    *,
    names: Sequence[str] | None = None,
    indices: Sequence[int] | None = None,
    columns: int | None = None,
    cmap: str = "viridis",
    normalize: Normalization = "map",
    tile_size: int = 128,
    scale: float | None = None,
    clip: float = 0.0,
    title: str | None = None,
) -> Image.Image:
    """Draw feature maps as a grid: one coloured tile per map, labelled, ranges shown.

    Args:
        maps: ``(D, H, W)`` (or one map ``(H, W)``).
        names: a label per map (``filter_names``, channel names); default ``#i``.
        indices: the map index shown on each tile when ``maps`` is a selection.
        columns: tiles per row; default about sqrt(D), at most 8.
        cmap: any matplotlib colormap name.
        normalize: ``"map"`` stretches each map over the whole colormap (its own range
            is printed under it); ``"shared"`` uses one range for all maps, drawn as a
            colour bar, so maps can be compared.
        tile_size: pixels of the longer side of a tile; small maps are enlarged with
            nearest-neighbour sampling so each unit stays a visible square.
        scale: screen pixels per map unit; when given it replaces ``tile_size`` so maps
            of different sizes (different strides) keep their true relative size.
        clip: percent of values saturated at each end of the colour scale (0 = the
            scale spans min..max). A few extreme values, such as the false edge that
            zero padding makes at a border, otherwise flatten the rest of a map;
            with ``clip`` the printed range reads ``<=low .. >=high``.
        title: a line above the grid; the maps' shape is added to it.

    Returns:
        an RGB PIL image.
    """
    array = _as_maps(maps)
    depth, height, width = array.shape
    if normalize not in NORMALIZATIONS:
        raise SettingsError(f"normalize must be one of {', '.join(NORMALIZATIONS)}; got {normalize!r}")
    if names is not None and len(names) != depth:
        raise SettingsError(f"names has {len(names)} entries for {depth} maps")
    if indices is not None and len(indices) != depth:
        raise SettingsError(f"indices has {len(indices)} entries for {depth} maps")
    if not 0.0 <= clip < 50.0:
        raise SettingsError(f"clip must be a percentage in [0, 50); got {clip}")
    if tile_size < 16:
        raise SettingsError(f"tile_size must be >= 16 pixels; got {tile_size}")
    if scale is not None and not 0 < scale <= 64:
        raise SettingsError(f"scale must be in (0, 64] pixels per unit; got {scale}")
    columns = columns or min(depth, 8, max(1, math.ceil(math.sqrt(depth))))
    rows = math.ceil(depth / columns)
    if scale is not None:
        tile_w, tile_h = max(1, round(width * scale)), max(1, round(height * scale))
    else:
        tile_w, tile_h = _tile_size(height, width, tile_size)
    cell_w = max(tile_w, 110 if normalize == "map" else 60) + _PAD
    cell_h = tile_h + _LABEL * 2 + 3 * _PAD if normalize == "map" else tile_h + _LABEL + 2 * _PAD
    header = f"{depth} map{'s' if depth != 1 else ''}, each {height}x{width}"
    heading = f"{title}  ({header})" if title else header
    bar_h = 44 if normalize == "shared" else 0
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    heading_w = text_size(measure, heading, 14)[0] + 2 * _PAD
    canvas = Image.new("RGB", (max(columns * cell_w + _PAD, 360, heading_w), 30 + rows * cell_h + bar_h + _PAD),
                       _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((_PAD, 8), heading, fill=_INK, font=font(14))
    shared = _value_range(array, clip)
    for k in range(depth):
        values = array[k]
        low, high = _value_range(values, clip) if normalize == "map" else shared
        rgb = apply_colormap(values, low, high, cmap)
        resample = Image.Resampling.NEAREST if tile_w >= width else Image.Resampling.BOX
        tile = Image.fromarray(rgb).resize((tile_w, tile_h), resample)
        left = _PAD + (k % columns) * cell_w
        top = 30 + (k // columns) * cell_h
        index = indices[k] if indices is not None else k
        label = f"#{index} {names[k]}" if names is not None else f"#{index}"
        draw.text((left, top), _fit(draw, label, cell_w - _PAD), fill=_INK, font=font(_LABEL))
        canvas.paste(tile, (left, top + _LABEL + _PAD // 2))
        draw.rectangle(
            (left - 1, top + _LABEL + _PAD // 2 - 1, left + tile_w, top + _LABEL + _PAD // 2 + tile_h), outline=_MUTED
        )
        if normalize == "map":
            label = _range_label(low, high, clip)
            draw.text((left, top + _LABEL + tile_h + _PAD), label, fill=_MUTED, font=font(_LABEL - 1))
    if normalize == "shared":
        _colour_bar(canvas, draw, shared, cmap, top=30 + rows * cell_h, clip=clip)
    return canvas


def _value_range(values: np.ndarray, clip: float) -> tuple[float, float]:
    if clip == 0.0:
        return float(values.min()), float(values.max())
    low, high = np.percentile(values, [clip, 100.0 - clip])
    return float(low), float(high)


def _range_label(low: float, high: float, clip: float) -> str:
    if high == low:
        return "constant " + format_number(low)
    if clip:
        return f"<={format_number(low)} .. >={format_number(high)}"
    return f"{format_number(low)} .. {format_number(high)}"


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int) -> str:
    while len(text) > 4 and text_size(draw, text, _LABEL)[0] > width:
        text = text[:-2] + "…"
    return text


def _colour_bar(
    canvas: Image.Image, draw: ImageDraw.ImageDraw, value_range: tuple[float, float], cmap: str, top: int,
    clip: float,
) -> None:
    width = min(canvas.width - 2 * _PAD, 320)
    gradient = apply_colormap(np.tile(np.linspace(0, 1, width), (12, 1)), 0.0, 1.0, cmap)
    canvas.paste(Image.fromarray(gradient), (_PAD, top))
    low, high = value_range
    left_label, right = (f"<={format_number(low)}", f">={format_number(high)}") if clip else (
        format_number(low), format_number(high))
    draw.text((_PAD, top + 15), left_label, fill=_INK, font=font(_LABEL))
    draw.text((_PAD + width - text_size(draw, right, _LABEL)[0], top + 15), right, fill=_INK, font=font(_LABEL))
    draw.text((_PAD + width + 8, top), "shared scale", fill=_MUTED, font=font(_LABEL))


def save_maps(maps: torch.Tensor, path: str | Path) -> Path:
    """Save raw maps ``(D, H, W)`` as a float32 ``.npy`` file (``np.load`` reads it back)."""
    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise SettingsError(f"raw maps are saved as .npy; got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, maps.detach().cpu().to(torch.float32).numpy())
    return path
