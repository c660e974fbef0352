"""Feature maps as a labelled grid of coloured tiles, with their value ranges."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image, ImageDraw

from featuremaps.errors import SettingsError
from featuremaps.files import write_output
from featuremaps.render.drawing import (
    apply_colormap,
    colour_bar,
    draw_lines,
    font,
    format_number,
    lines_height,
    text_size,
    wrap_text,
)

__all__ = ["Normalization", "check_tiles", "render_grid", "save_maps"]

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
    tile_size: int = 160,
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
            the heading says how much is clipped.
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
    check_tiles(tile_size, scale)
    columns = columns or min(depth, 8, max(1, math.ceil(math.sqrt(depth))))
    rows = math.ceil(depth / columns)
    if scale is not None:
        tile_w, tile_h = max(1, round(width * scale)), max(1, round(height * scale))
    else:
        tile_w, tile_h = _tile_size(height, width, tile_size)
    cell_w = max(tile_w, 110 if normalize == "map" else 60) + _PAD
    cell_h = tile_h + _LABEL * 2 + 3 * _PAD if normalize == "map" else tile_h + _LABEL + 2 * _PAD
    header = f"{depth} map{'s' if depth != 1 else ''}, each {height}x{width}"
    if normalize == "map":
        header += ("; colours span each map's own range, printed under it" +
                   (f", less {clip:g}% at each end" if clip else ""))
    heading = f"{title}  ({header})" if title else header
    canvas_w = max(columns * cell_w + _PAD, 360)
    heading_lines = wrap_text(heading, canvas_w - 2 * _PAD, 14, max_lines=3)
    head_h = 12 + lines_height(heading_lines, 14)
    shared = _value_range(array, clip)
    bar = colour_bar(min(canvas_w - 2 * _PAD, 320), shared[0], shared[1], cmap, clipped=bool(clip),
                     label="one colour scale for every map") if normalize == "shared" else None
    bar_h = bar.height + _PAD if bar is not None else 0
    canvas = Image.new("RGB", (canvas_w, head_h + rows * cell_h + bar_h + _PAD), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw_lines(draw, (_PAD, 8), heading_lines, size=14)
    tiles: list[tuple[int, int, int, int]] = []
    canvas.info["tiles"] = tiles  # (left, top, width, height) of each map's tile, for pages that link to them
    for k in range(depth):
        values = array[k]
        low, high = _value_range(values, clip) if normalize == "map" else shared
        rgb = apply_colormap(values, low, high, cmap)
        resample = Image.Resampling.NEAREST if tile_w >= width else Image.Resampling.BOX
        tile = Image.fromarray(rgb).resize((tile_w, tile_h), resample)
        left = _PAD + (k % columns) * cell_w
        top = head_h + (k // columns) * cell_h
        index = indices[k] if indices is not None else k
        label = f"#{index} {names[k]}" if names is not None else f"#{index}"
        draw.text((left, top), _fit(draw, label, cell_w - _PAD), fill=_INK, font=font(_LABEL))
        canvas.paste(tile, (left, top + _LABEL + _PAD // 2))
        tiles.append((left, top + _LABEL + _PAD // 2, tile_w, tile_h))
        draw.rectangle(
            (left - 1, top + _LABEL + _PAD // 2 - 1, left + tile_w, top + _LABEL + _PAD // 2 + tile_h), outline=_MUTED
        )
        if normalize == "map":
            label = _range_label(low, high)
            draw.text((left, top + _LABEL + tile_h + _PAD), _fit(draw, label, cell_w - _PAD), fill=_MUTED,
                      font=font(_LABEL - 1))
    if bar is not None:
        canvas.paste(bar, (_PAD, head_h + rows * cell_h))
    return canvas


def check_tiles(tile_size: int, scale: float | None) -> None:
    """Refuse a tile size or scale the grid cannot draw (before any maps are computed)."""
    if isinstance(tile_size, bool) or not isinstance(tile_size, int) or not 16 <= tile_size <= 1024:
        raise SettingsError(f"tile_size must be 16 to 1024 pixels; got {tile_size}")
    if scale is not None and not 0 < scale <= 64:
        raise SettingsError(f"scale must be in (0, 64] pixels per unit; got {scale}")


def _value_range(values: np.ndarray, clip: float) -> tuple[float, float]:
    if clip == 0.0:
        return float(values.min()), float(values.max())
    low, high = np.percentile(values, [clip, 100.0 - clip])
    return float(low), float(high)


def _range_label(low: float, high: float) -> str:
    """The colours' range under a tile: ``-0.6 to 0.56`` (dark to bright; clipping is said in the heading)."""
    if high == low:
        return "constant " + format_number(low)
    return f"{format_number(low)} to {format_number(high)}"


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int) -> str:
    while len(text) > 4 and text_size(draw, text, _LABEL)[0] > width:
        text = text[:-2] + "…"
    return text


def save_maps(maps: torch.Tensor, path: str | Path, *, overwrite: bool = False) -> Path:
    """Save raw maps ``(D, H, W)`` as a float32 ``.npy`` file (``np.load`` reads it back); atomic, and a file
    featuremaps did not write is replaced only with ``overwrite`` (:func:`featuremaps.files.write_output`)."""
    return save_array(maps.detach().cpu().to(torch.float32).numpy(), path, overwrite=overwrite)


def save_array(array: np.ndarray, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``array`` to ``path``, which must end in ``.npy`` (never a name with ``.npy`` added)."""
    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise SettingsError(f"arrays are saved as .npy; {str(path)!r} does not end in .npy")

    def write(temp: Path) -> None:
        with open(temp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)

    return write_output(path, write, overwrite=overwrite)
