"""Segmentation pictures: an index mask as a palette PNG, and colours over the image with a legend."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from featuremaps.drawing import font, to_pil
from featuremaps.errors import SettingsError

__all__ = ["PALETTE", "render_segmentation", "save_index_mask"]

PALETTE: tuple[tuple[int, int, int], ...] = (
    (60, 60, 60), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (220, 190, 255),
    (170, 110, 40), (255, 250, 200), (128, 0, 0), (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128),
)
"""Colour of index i: ``PALETTE[i % 20]`` (index 0 dark grey: the background of trained heads)."""


def _colour(index: int, offset: int = 0) -> tuple[int, int, int]:
    return PALETTE[(index + offset) % len(PALETTE)]


def save_index_mask(mask: np.ndarray, path: str | Path, *, offset: int = 0) -> Path:
    """Write ``mask`` ``(H, W)`` as a palette PNG: each pixel's value is its index (0-255).

    The palette (``PALETTE`` shifted by ``offset``) only colours the file in viewers.
    """
    mask = np.asarray(mask)
    if mask.min() < 0 or mask.max() > 255:
        raise SettingsError(f"mask indices must be in 0..255; got {mask.min()}..{mask.max()}")
    picture = Image.fromarray(mask.astype(np.uint8)).convert("P")  # "P" keeps the values as indices
    picture.putpalette([v for i in range(256) for v in _colour(i, offset)])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    picture.save(path)
    return path


def render_segmentation(image: torch.Tensor, mask: np.ndarray, names: Sequence[str], *, alpha: float = 0.5,
                        background: int | None = None, title: str | None = None) -> Image.Image:
    """Colours of ``mask`` over ``image`` ``(C, H, W)``, boundaries outlined, a legend with pixel shares.

    ``background``: an index left untinted (a trained head's background class). Without
    one (clusters), colours start at ``PALETTE[1]`` so that no segment is the dark grey.
    """
    offset = 0 if background is not None else 1
    base = np.asarray(to_pil(image).convert("RGB"), dtype=np.float64)
    mask = np.asarray(mask)
    colours = np.asarray([_colour(i, offset) for i in range(int(mask.max()) + 1)], dtype=np.float64)[mask]
    tint = np.where((mask == background)[..., None], base, base * (1 - alpha) + colours * alpha) \
        if background is not None else base * (1 - alpha) + colours * alpha
    edges = np.zeros(mask.shape, bool)
    edges[:-1] |= mask[:-1] != mask[1:]
    edges[:, :-1] |= mask[:, :-1] != mask[:, 1:]
    tint[edges] = (255, 255, 255)
    picture = Image.fromarray(tint.round().astype(np.uint8))
    zoom = max(1, -(-320 // max(picture.size)))
    picture = picture.resize((picture.width * zoom, picture.height * zoom), Image.Resampling.NEAREST)
    counts = np.bincount(mask.ravel(), minlength=len(names))
    rows = [(i, names[i] if i < len(names) else str(i), int(counts[i])) for i in range(len(counts)) if counts[i]]
    legend_h = 24 + 20 * len(rows)
    canvas = Image.new("RGB", (max(picture.width, 300), picture.height + legend_h + (24 if title else 0)),
                       (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    top = 0
    if title:
        draw.text((4, 4), title, fill=(30, 30, 30), font=font(14))
        top = 24
    canvas.paste(picture, (0, top))
    y = top + picture.height + 8
    total = mask.size
    for index, name, count in rows:
        draw.rectangle((6, y, 20, y + 14), fill=_colour(index, offset), outline=(90, 90, 90))
        draw.text((28, y), f"{index}: {name}  {count / total:.1%} of the pixels", fill=(30, 30, 30), font=font(12))
        y += 20
    return canvas
