"""Maps on the image: a map upsampled and blended over the input, and a unit's receptive field.

Pictures are drawn on the model's input as the model saw it (resized and cropped, not
normalised: ``model_info(model).input.display(image)``), so a unit's receptive field lands on
the right pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from featuremaps.errors import SettingsError
from featuremaps.features import align_maps
from featuremaps.features.catalogue import LayerInfo
from featuremaps.render.drawing import apply_colormap, colour_bar, font, format_number, lines_height, to_pil, wrap_text

__all__ = ["rank_maps", "render_overlay", "render_receptive_field"]

_BOX = (255, 40, 120)
_INK = (30, 30, 30)
_MUTED = (100, 100, 100)
_MIN_SIDE = 448


def _zoom(height: int, width: int) -> int:
    """Integer factor that brings small inputs to about 448 pixels, so boxes and text stay legible."""
    return max(1, -(-_MIN_SIDE // max(height, width)))


def rank_maps(maps: torch.Tensor) -> list[int]:
    """Channel indices of ``maps`` ``(C, H, W)``, most active first.

    Activity is the mean of the positive part, ``mean(max(x, 0))``: what passes a ReLU,
    which for maps after a ReLU is simply their mean.
    """
    if maps.ndim != 3:
        raise SettingsError(f"maps must be (C, H, W); got {tuple(maps.shape)}")
    activity = maps.float().clamp(min=0).mean(dim=(1, 2))
    return torch.argsort(activity, descending=True, stable=True).tolist()


def _unit_box(layer: LayerInfo, y: int, x: int, height: int, width: int) -> tuple[float, float, float, float]:
    top, left, bottom, right = layer.pixels(y, x) if layer.spans is not None else layer.region(y, x)
    return max(top, 0), max(left, 0), min(bottom, height - 1), min(right, width - 1)


def placed_map(feature_map: torch.Tensor, layer: LayerInfo | None, size: tuple[int, int]) -> np.ndarray:
    """``feature_map`` ``(h, w)`` on the picture's ``(H, W)`` pixels: each unit at its receptive field's
    centre (:func:`~featuremaps.features.align_maps`) when ``layer`` (its catalogue entry) knows its field;
    a map without one (or already at the picture's size, like a Grad-CAM) is resized (bilinear)."""
    tensor = feature_map[None, None].float().cpu()
    local = layer is not None and layer.jump is not None and layer.start is not None and \
        layer.receptive_field is not None and tuple(layer.output_shape[-2:]) == tuple(feature_map.shape)
    if local and layer is not None:
        return align_maps(tensor, layer, size)[0, 0].numpy()
    return F.interpolate(tensor, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def render_overlay(
    image: torch.Tensor, feature_map: torch.Tensor, *, alpha: float = 0.55, cmap: str = "inferno",
    layer: LayerInfo | None = None, title: str | None = None, scale_label: str = "map value",
) -> Image.Image:
    """``feature_map`` ``(h, w)`` placed on ``image`` ``(C, H, W)`` (:func:`placed_map`), colour-mapped, blended; under
    it the title, what the box is, and a colour bar from the map's lowest to highest value (``scale_label``).

    With ``layer`` (its catalogue entry), the receptive field of the map's most active
    unit is outlined.
    """
    if not 0.0 <= alpha <= 1.0:
        raise SettingsError(f"alpha must be in [0, 1]; got {alpha}")
    if feature_map.ndim != 2:
        raise SettingsError(f"feature_map must be (h, w); got {tuple(feature_map.shape)}")
    _, height, width = image.shape
    resized = placed_map(feature_map, layer, (height, width))
    low, high = float(feature_map.min()), float(feature_map.max())  # the map's own values, as the bar says
    colours = apply_colormap(resized, low, high, cmap).astype(np.float64)
    base = np.asarray(to_pil(image).convert("RGB"), dtype=np.float64)
    blended = Image.fromarray((base * (1 - alpha) + colours * alpha).round().astype(np.uint8))
    zoom = _zoom(height, width)
    blended = blended.resize((width * zoom, height * zoom), Image.Resampling.BICUBIC)
    lines: list[tuple[str, int, tuple[int, int, int]]] = []
    if title:
        lines += [(line, 15, _INK) for line in wrap_text(title, blended.width - 12, 15, max_lines=3)]
    if layer is not None and layer.jump is not None:
        flat = int(torch.argmax(feature_map))
        y, x = divmod(flat, feature_map.shape[1])
        top, left, bottom, right = _unit_box(layer, y, x, height, width)
        ImageDraw.Draw(blended).rectangle((left * zoom, top * zoom, (right + 1) * zoom - 1, (bottom + 1) * zoom - 1),
                                          outline=_BOX, width=3)
        label = (f"pink box: the receptive field of the most active unit, (y={y}, x={x}) = "
                 f"{format_number(float(feature_map[y, x]))}")
        lines += [(line, 13, _MUTED) for line in wrap_text(label, blended.width - 12, 13, max_lines=3)]
    bar = colour_bar(min(blended.width - 12, 360), low, high, cmap, label=scale_label)
    text_h = sum(lines_height([line], size) for line, size, _ in lines)
    canvas = Image.new("RGB", (blended.width, blended.height + 8 + text_h + 6 + bar.height + 8), (255, 255, 255))
    canvas.paste(blended, (0, 0))
    draw = ImageDraw.Draw(canvas)
    y_text: float = blended.height + 8
    for line, size, colour in lines:
        draw.text((6, y_text), line, fill=colour, font=font(size))
        y_text += lines_height([line], size)
    canvas.paste(bar, (6, int(y_text) + 6))
    return canvas


def render_receptive_field(
    image: torch.Tensor, layer: LayerInfo, y: int, x: int, *, channel: int | None = None,
    value: float | None = None,
) -> Image.Image:
    """The input region unit ``(y, x)`` of ``layer`` sees, outlined on ``image`` ``(C, H, W)``."""
    if layer.jump is None or layer.receptive_field is None:
        raise SettingsError(f"layer {layer.name} has no local receptive field (its units see the whole image)")
    if len(layer.output_shape) != 3 or not (0 <= y < layer.output_shape[1] and 0 <= x < layer.output_shape[2]):
        raise SettingsError(f"unit ({y}, {x}) is outside {layer.name}'s maps of shape {list(layer.output_shape)}")
    _, height, width = image.shape
    zoom = _zoom(height, width)
    picture = to_pil(image).convert("RGB").resize((width * zoom, height * zoom), Image.Resampling.BICUBIC)
    top, left, bottom, right = (v * zoom for v in _unit_box(layer, y, x, height, width))
    box = (left, top, right + zoom - 1, bottom + zoom - 1)
    mask = Image.new("L", picture.size, 150)
    ImageDraw.Draw(mask).rectangle(box, fill=0)
    picture = Image.composite(Image.new("RGB", picture.size, (0, 0, 0)), picture, mask)
    draw = ImageDraw.Draw(picture)
    full = layer.region(y, x)
    draw.rectangle(box, outline=_BOX, width=3)
    cx, cy = (full[1] + full[3] + 1) / 2 * zoom, (full[0] + full[2] + 1) / 2 * zoom
    draw.ellipse((cx - 4, cy - 4, cx + 4, cy + 4), fill=_BOX)
    size = f"{int(layer.receptive_field[0])}x{int(layer.receptive_field[1])}"
    lines = [
        f"{layer.name}{f', channel {channel}' if channel is not None else ''}, unit (y={y}, x={x})"
        + (f" = {format_number(value)}" if value is not None else ""),
        f"sees input rows {int(full[0])}..{int(full[2])}, cols {int(full[1])}..{int(full[3])}: {size} pixels"
        + (" (part of it padding)" if (top, left, bottom, right) != tuple(v * zoom for v in full) else ""),
    ]
    wrapped = [part for line in lines for part in wrap_text(line, picture.width - 8, 14, max_lines=3)]
    canvas = Image.new("RGB", (picture.width, picture.height + 10 + 20 * len(wrapped)), (255, 255, 255))
    canvas.paste(picture, (0, 0))
    text = ImageDraw.Draw(canvas)
    for k, line in enumerate(wrapped):
        text.text((4, picture.height + 5 + 20 * k), line, fill=_INK, font=font(14))
    return canvas
