"""One page from low to high level: a row per layer, its facts and its most active maps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from PIL import Image, ImageDraw

from featuremaps.features.catalogue import LayerInfo
from featuremaps.render.drawing import apply_colormap, colour_bar, draw_lines, font, lines_height, to_pil, wrap_text
from featuremaps.render.overlay import rank_maps

__all__ = ["describe_layer", "render_overview", "spatial_maps"]

_TEXT_W = 300
_PAD = 8


def spatial_maps(layer: LayerInfo | None, tensor: torch.Tensor) -> torch.Tensor | None:
    """A layer output as maps ``(C, H, W)``, or None when it is not a stack of maps.

    Channels-last outputs (``(H, W, C)``, as in Swin) are turned channels-first when the
    catalogue knows the layout.
    """
    if tensor.ndim != 3:
        return None
    if layer is not None and layer.extra.get("channels_last"):
        return tensor.permute(2, 0, 1)  # (C, H, W)
    return tensor


def describe_layer(layer: LayerInfo) -> str:
    """``layer2 (Sequential) 128x28x28, stride 8, RF 99x99``."""
    shape = "x".join(str(s) for s in layer.output_shape)
    if layer.global_field:
        field = "sees the whole image"
    elif layer.jump is None or layer.receptive_field is None:
        field = "receptive field unknown"
    else:
        field = f"stride {_num(layer.jump)}, RF {_num(layer.receptive_field)}"
        if layer.global_context:
            field += " + global context"
    return f"{layer.name} ({layer.type}) {shape}, {field}"


def _num(pair: Sequence[float]) -> str:
    values = [int(v) if float(v).is_integer() else round(float(v), 2) for v in pair]
    return str(values[0]) if values[0] == values[1] else f"{values[0]}x{values[1]}"


def render_overview(
    image: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    layers: Mapping[str, LayerInfo],
    *,
    max_maps: int = 8,
    tile: int = 72,
    cmap: str = "viridis",
    title: str | None = None,
) -> Image.Image:
    """The input on top, then one row per spatial layer (in the order of ``maps``).

    Each row: name, type, shape, stride and receptive field, then the ``max_maps`` most
    active maps (ranked by :func:`~featuremaps.render.overlay.rank_maps`), each stretched
    over its own range.
    """
    rows = [(name, spatial_maps(layers.get(name), tensor)) for name, tensor in maps.items()]
    rows = [(name, m) for name, m in rows if m is not None]
    thumb = to_pil(image).convert("RGB")
    thumb.thumbnail((tile * 3, tile * 3))
    labels = {}
    for name, _ in rows:
        layer = layers.get(name)
        head, _, rest = (describe_layer(layer) if layer is not None else name).partition(" (")
        labels[name] = (head, "(" + rest if rest else "")
    # the label column is as wide as its longest label (at most _TEXT_W), not a fixed margin
    text_w = min(_TEXT_W, 2 * _PAD + max((max(font(13).getlength(h), font(11).getlength(r))
                                           for h, r in labels.values()), default=100))
    text_w = int(max(text_w, 120))
    width = max(int(text_w) + max_maps * (tile + 4) + 2 * _PAD, 420)
    heading = wrap_text(title or "Feature maps from low to high level", width - 2 * _PAD, 16, max_lines=2)
    head_h = 12 + lines_height(heading, 16)
    height = head_h + thumb.height + _PAD * 2 + len(rows) * (tile + 22)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw_lines(draw, (_PAD, 8), heading, size=16)
    canvas.paste(thumb, (_PAD, head_h))
    x_text = _PAD + thumb.width + 12
    draw.text((x_text, head_h + 4), f"input {'x'.join(str(s) for s in image.shape)}", fill=(30, 30, 30),
              font=font(13))
    note = wrap_text(f"maps ranked by mean positive activation; top {max_maps} shown; each map's colours span its "
                     "own range:", width - x_text - _PAD, 12, max_lines=3)
    y_note = draw_lines(draw, (x_text, head_h + 24), note, size=12, fill=(110, 110, 110))
    canvas.paste(colour_bar(min(200, width - x_text - _PAD), 0.0, 1.0, cmap, ends=("low", "high"), size=11),
                 (x_text, int(y_note) + 4))
    top = head_h + thumb.height + _PAD * 2
    for name, tensor in rows:
        if tensor is None:
            continue
        head, rest = labels[name]
        draw.text((_PAD, top + 4), wrap_text(head, text_w - _PAD, 13, max_lines=1)[0], fill=(30, 30, 30), font=font(13))
        draw.text((_PAD, top + 22), wrap_text(rest, text_w - _PAD, 11, max_lines=1)[0], fill=(90, 90, 90),
                  font=font(11))
        order = rank_maps(tensor)[:max_maps]
        for k, channel in enumerate(order):
            values = tensor[channel].float().cpu().numpy()
            rgb = apply_colormap(values, float(values.min()), float(values.max()), cmap)
            picture = Image.fromarray(rgb)
            scale = tile / max(picture.size)
            size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
            resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BOX
            left = text_w + k * (tile + 4)
            canvas.paste(picture.resize(size, resample), (left, top))
            draw.text((left, top + size[1] + 2), f"#{channel}", fill=(110, 110, 110), font=font(10))
        top += tile + 22
    return canvas
