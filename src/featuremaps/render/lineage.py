"""The lineage as a picture: a tree from low (the bottom row) to high (the unit, on top).

Each node is a card: its map (colour-mapped, the unit that contributed most marked), the
crop of the model input that unit sees (its receptive field), the layer and channel, and
its share of its parent. Lines join each child to the parents it feeds: thicker for a
larger share, blue where it adds and red where it takes away.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from featuremaps.features.extractor import INPUT
from featuremaps.render.drawing import (
    apply_colormap,
    draw_lines,
    font,
    format_number,
    lines_height,
    text_size,
    to_pil,
    wrap_text,
)

# A featuremaps.analysis.lineage.Lineage and its nodes; not imported, because a Lineage draws itself with this
# module (its _repr_png_), so the tracer imports the picture and not the other way round.
Lineage = Any
LineageNode = Any

__all__ = ["receptive_crop", "render_lineage"]

_THUMB = 80
_CARD_W = _THUMB + 20
_GAP = 14
_ROW_GAP = 64
_TEXT = 4 * 14 + 6
_CARD_H = 2 * _THUMB + _TEXT + 14
_LEFT = 150
_ADD = (40, 110, 220)
_TAKE = (215, 50, 50)
_INK = (30, 30, 30)
_BOX = (255, 40, 120)


def _map_thumbnail(values: np.ndarray, position: tuple[int, int] | None) -> Image.Image:
    low, high = float(values.min()), float(values.max())
    tile = Image.fromarray(apply_colormap(values, low, high, "viridis")).resize((_THUMB, _THUMB), Image.Resampling.NEAREST)
    if position is not None and values.ndim == 2:
        draw = ImageDraw.Draw(tile)
        sy, sx = _THUMB / values.shape[0], _THUMB / values.shape[1]
        y, x = position
        draw.rectangle([x * sx, y * sy, (x + 1) * sx - 1, (y + 1) * sy - 1], outline=_BOX, width=2)
    return tile


def receptive_crop(display: torch.Tensor, node: LineageNode) -> Image.Image:
    """The input around the node's strongest unit: its receptive field boxed, with some context
    around small fields (at least 24 pixels); padding is drawn grey."""
    image = to_pil(display if display.shape[0] in (1, 3) else display[:3]).convert("RGB")
    if node.region is None:
        crop = image.resize((_THUMB, _THUMB), Image.Resampling.BILINEAR)
        canvas = Image.new("RGB", (_THUMB, _THUMB), (250, 250, 250))
        canvas.paste(crop)
        return canvas
    top, left, bottom, right = node.region
    # clipped to the image: a field larger than the input (an 851-px field on a 224-px image) shows the image
    top, left = max(top, 0.0), max(left, 0.0)
    bottom, right = min(bottom, image.height - 1.0), min(right, image.width - 1.0)
    side = max(bottom - top + 1, right - left + 1, 24.0)
    cy, cx = (top + bottom + 1) / 2, (left + right + 1) / 2
    box = (int(round(cx - side / 2)), int(round(cy - side / 2)))
    window = Image.new("RGB", (int(side), int(side)), (128, 128, 128))
    window.paste(image, (-box[0], -box[1]))
    scale = _THUMB / side
    canvas = window.resize((_THUMB, _THUMB), Image.Resampling.NEAREST if side < _THUMB else Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(canvas)
    draw.rectangle([(left - box[0]) * scale, (top - box[1]) * scale, (right + 1 - box[0]) * scale - 1,
                    (bottom + 1 - box[1]) * scale - 1], outline=_BOX, width=2)
    return canvas


def _layer_label(name: str) -> str:
    return "input" if name == INPUT else (name if len(name) <= 15 else "…" + name[-14:])


def render_lineage(result: Lineage, *, title: str | None = None,
                   roles: Mapping[tuple[str, int], str] | None = None) -> Image.Image:
    """The lineage tree as an image (see the module docstring).

    Args:
        roles: ``(layer, channel) -> what it detects`` (e.g. from :mod:`featuremaps.analysis.hierarchy`),
            printed on the cards.
    """
    levels: dict[int, list[LineageNode]] = {}
    for node in result.nodes:
        levels.setdefault(node.level, []).append(node)
    widest = max(len(nodes) for nodes in levels.values())
    width = _LEFT + widest * (_CARD_W + _GAP) + _GAP
    exact = "exact: children + bias = value" if result.exact else f"approximate ({result.method})"
    heading = wrap_text(title or f"lineage of {result.unit} in {result.model}", width - 2 * _GAP, 18, max_lines=3)
    notes = wrap_text(f"{result.weights}  |  {exact}", width - 2 * _GAP, 13, max_lines=2)
    legend = wrap_text("share: the child's part of all its siblings' |contributions|; blue adds, red takes away; "
                       "box: receptive field", width - 2 * _GAP, 12, max_lines=3)
    header = 14 + lines_height(heading, 18) + lines_height(notes, 13) + lines_height(legend, 12)
    height = header + len(levels) * (_CARD_H + _ROW_GAP)
    picture = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(picture)
    y = draw_lines(draw, (_GAP, 8), heading, size=18)
    y = draw_lines(draw, (_GAP, y), notes, size=13, fill=(90, 90, 90))
    draw_lines(draw, (_GAP, y), legend, size=12, fill=(90, 90, 90))
    spots: dict[int, tuple[int, int]] = {}
    for level, nodes in levels.items():
        top = header + level * (_CARD_H + _ROW_GAP)
        offset = _LEFT + (widest - len(nodes)) * (_CARD_W + _GAP) // 2
        layer_names = sorted({_layer_label(n.layer) for n in nodes})
        label = "unit" if level == 0 else f"{level} step{'s' if level > 1 else ''} down"
        draw.text((_GAP, top + 8), label, fill=_INK, font=font(14))
        for row, name in enumerate(layer_names[:4]):
            draw.text((_GAP, top + 30 + row * 16), name, fill=(90, 90, 90), font=font(12))
        if level > 0:  # how much the cards hold: the maps left out hold the rest
            parents = sorted({edge.parent for edge in result.edges if edge.child in {n.id for n in nodes}})
            held = [result.shown_share(parent) for parent in parents]
            if held:
                share = f"{held[0]:.0%}" if len(held) == 1 else f"{min(held):.0%}-{max(held):.0%}"
                text = (f"these cards: {share} of {'the' if len(held) == 1 else 'each'} parent's |contributions|; "
                        "the maps left out hold the rest")
                lines = wrap_text(text, _LEFT - 2 * _GAP, 12, max_lines=5)
                draw_lines(draw, (_GAP, top + 30 + min(len(layer_names), 4) * 16), lines, size=12,
                           fill=(150, 60, 0))
        for index, node in enumerate(nodes):
            left = offset + index * (_CARD_W + _GAP)
            spots[node.id] = (left + _CARD_W // 2, top)
            values = result.maps.get(node.id)
            draw.rectangle([left, top, left + _CARD_W, top + _CARD_H], outline=(200, 200, 200))
            if values is not None:
                picture.paste(_map_thumbnail(values, node.position), (left + 6, top + 6))
            if result.display is not None:
                picture.paste(receptive_crop(result.display, node), (left + 6, top + 10 + _THUMB))
            text_top = top + 14 + 2 * _THUMB
            channel = ("RGB"[node.channel] if node.layer == INPUT and node.channel < 3 else f"ch {node.channel}")
            if node.level == 0 and result.label:
                channel = f"{node.channel}: {result.label}"[:16]
            draw.text((left + 6, text_top), _layer_label(node.layer), fill=_INK, font=font(11))
            draw.text((left + 6, text_top + 14), channel, fill=_INK, font=font(12))
            shares = [edge.share for edge in result.edges if edge.child == node.id]
            line = f"{shares[0]:+.0%}" if len(shares) == 1 else (f"{len(shares)} parents" if shares else
                                                                  f"= {format_number(node.value)}")
            draw.text((left + 6, text_top + 28), line, fill=_INK, font=font(12))
            role = (roles or {}).get((node.layer, node.channel), "")
            if role:
                draw.text((left + 6, text_top + 42), role.split(" (")[0][:14], fill=(150, 60, 0), font=font(12))
    for edge in result.edges:
        if edge.parent not in spots or edge.child not in spots:
            continue
        px, py = spots[edge.parent]
        cx, cy = spots[edge.child]
        colour = _ADD if edge.contribution >= 0 else _TAKE
        thickness = max(1, min(8, round(abs(edge.share) * 20)))
        draw.line([(cx, cy), (px, py + _CARD_H)], fill=colour, width=thickness)
    note = f"{result.dropped} weaker maps left out" if result.dropped else ""
    if note:
        w, _ = text_size(draw, note, 12)
        draw.text((width - w - _GAP, 34), note, fill=(90, 90, 90), font=font(12))
    return picture
