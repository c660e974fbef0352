"""Segmentation pictures: an index mask as a palette PNG, and colours over the image with a legend."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from featuremaps.errors import SettingsError
from featuremaps.files import save_picture
from featuremaps.render.drawing import draw_lines, font, lines_height, to_pil, wrap_text

__all__ = ["PALETTE", "render_segmentation", "save_index_mask"]

PALETTE: tuple[tuple[int, int, int], ...] = (
    (60, 60, 60), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128),
)
"""Colour of index i: ``PALETTE[i % 20]`` (index 0 dark grey: the background of trained heads)."""


def _colour(index: int, offset: int = 0) -> tuple[int, int, int]:
    return PALETTE[(index + offset) % len(PALETTE)]


def save_index_mask(mask: np.ndarray, path: str | Path, *, offset: int = 0, overwrite: bool = False) -> Path:
    """Write ``mask`` ``(H, W)`` as a palette PNG: each pixel's value is its index (0-255).

    The palette (``PALETTE`` shifted by ``offset``) only colours the file in viewers.
    """
    mask = np.asarray(mask)
    if mask.min() < 0 or mask.max() > 255:
        raise SettingsError(f"mask indices must be in 0..255; got {mask.min()}..{mask.max()}")
    picture = Image.fromarray(mask.astype(np.uint8)).convert("P")  # "P" keeps the values as indices
    picture.putpalette([v for i in range(256) for v in _colour(i, offset)])
    return save_picture(picture, path, overwrite=overwrite)


def render_segmentation(image: torch.Tensor, mask: np.ndarray, names: Sequence[str], *,
                        background: int | None = None, title: str | None = None,
                        panel_side: int | None = None) -> Image.Image:
    """Two panels: the image ``(C, H, W)`` with the segment boundaries drawn on it, and the segments as solid
    fills in exactly the legend's colours (boundaries white); a legend with each segment's share of the pixels.

    ``background``: a trained head's background class (drawn in ``PALETTE[0]``, dark grey). Without one
    (clusters), colours start at ``PALETTE[1]`` so that no segment is the dark grey. The segments are not
    blended with the image: a blend would not match the legend's colours.

    ``panel_side``: the panels' longer side at most this many pixels (a page shows the picture at its
    own size, so the text stays readable); the legend's shares are the full mask's.
    """
    offset = 0 if background is not None else 1
    mask = np.asarray(mask)
    counts = np.bincount(mask.ravel(), minlength=len(names))
    total = mask.size
    if panel_side is not None and max(mask.shape) > panel_side:
        scale = panel_side / max(mask.shape)
        size = (max(1, round(mask.shape[1] * scale)), max(1, round(mask.shape[0] * scale)))
        mask = np.asarray(Image.fromarray(mask.astype(np.int32)).resize(size, Image.Resampling.NEAREST))
        image = torch.nn.functional.interpolate(image[None].float(), size=(size[1], size[0]), mode="area")[0]
    base = np.asarray(to_pil(image).convert("RGB"), dtype=np.float64)
    fills = np.asarray([_colour(i, offset) for i in range(int(mask.max()) + 1)], dtype=np.float64)[mask]
    edges = np.zeros(mask.shape, bool)
    edges[:-1] |= mask[:-1] != mask[1:]
    edges[:, :-1] |= mask[:, :-1] != mask[:, 1:]
    outlined = base.copy()
    outlined[edges] = (255, 255, 255)
    fills[edges] = (255, 255, 255)
    zoom = max(1, -(-256 // max(mask.shape)))
    if panel_side is not None:
        zoom = max(1, min(zoom, panel_side // max(mask.shape)))
    panels = [Image.fromarray(a.round().astype(np.uint8)).resize((mask.shape[1] * zoom, mask.shape[0] * zoom),
                                                                   Image.Resampling.NEAREST) for a in (outlined, fills)]
    gap = 12
    width = max(2 * panels[0].width + gap + 8, 320)
    rows = [(i, names[i] if i < len(names) else str(i), int(counts[i])) for i in range(len(counts)) if counts[i]]
    legend = [(index, wrap_text(f"{index}: {name}  {count / total:.1%} of the pixels", width - 36, 12, max_lines=2))
              for index, name, count in rows]
    heading = wrap_text(title, width - 8, 14, max_lines=3) if title else []
    top = 6 + lines_height(heading, 14) + 18  # the title, then the panels' captions
    legend_h = 10 + sum(lines_height(lines, 12) + 6 for _, lines in legend)
    canvas = Image.new("RGB", (width, top + panels[0].height + legend_h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw_lines(draw, (4, 6), heading, size=14)
    for k, (panel, caption) in enumerate(zip(panels, ("image, segment boundaries in white", "segments"))):
        x = 4 + k * (panel.width + gap)
        canvas.paste(panel, (x, top))
        draw.text((x, top - 16), wrap_text(caption, panel.width, 12, max_lines=1)[0], fill=(100, 100, 100),
                  font=font(12))
    y: float = top + panels[0].height + 10
    for index, lines in legend:
        draw.rectangle((6, y, 20, y + 14), fill=_colour(index, offset), outline=(90, 90, 90))
        y = draw_lines(draw, (28, y), lines, size=12) + 6
    return canvas
