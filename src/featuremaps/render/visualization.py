"""Feature visualisations as one picture: a grid of images, each with its objective and value."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from PIL import Image, ImageDraw

from featuremaps.render.drawing import draw_lines, font, format_number, lines_height, text_size, to_pil, wrap_text

__all__ = ["render_visualization", "render_with_patches"]

_INK = (30, 30, 30)
_MUTED = (90, 90, 90)
_WARN = (180, 40, 40)


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, size: int) -> str:
    """``text`` cut with an ellipsis so that it fits ``width`` pixels."""
    if text_size(draw, text, size)[0] <= width:
        return text
    while text and text_size(draw, text + "...", size)[0] > width:
        text = text[:-1]
    return text + "..."


_Block = tuple[list[str], int, tuple[int, int, int]]


def _header(heading: str, result: Any, detail: str, width: int) -> list[_Block]:
    """The title, the weights (red when untrained) and the settings, each wrapped to ``width`` (never cut)."""
    return [(wrap_text(heading, width, 16, max_lines=3), 16, _INK),
            (wrap_text(result.weights, width, 12, max_lines=2), 12, _INK if result.trained else _WARN),
            (wrap_text(detail, width, 12, max_lines=3), 12, _MUTED)]


def _header_height(blocks: list[_Block]) -> int:
    return 6 + sum(lines_height(lines, size) + 2 for lines, size, _ in blocks) + 8


def _draw_header(draw: ImageDraw.ImageDraw, blocks: list[_Block], x: int) -> None:
    y: float = 6
    for lines, size, colour in blocks:
        y = draw_lines(draw, (x, y), lines, size=size, fill=colour) + 2


def render_visualization(result: Any, *, title: str | None = None, columns: int | None = None,
                         tile: int = 128) -> Image.Image:
    """The images of ``result`` (a :class:`~featuremaps.optvis.Visualization`) in a grid, ``tile`` pixels each, captioned with objective and value.

    The title names the model and its weights; untrained (random) weights are said in red.
    """
    count = len(result.objectives)
    columns = max(1, min(count, columns or 8))
    rows = math.ceil(count / columns)
    gap, caption = 8, 34
    width = max(columns * (tile + gap) + gap, 360)
    what = "class" if result.objectives[0].kind == "logit" else "channel"
    lowers = all(objective.sign < 0 for objective in result.objectives)
    heading = title or f"{result.model}: {'what lowers' if lowers else 'what excites'} each {what}"
    settings = result.settings
    detail = (f"{settings.get('param', '?')} image, {settings.get('steps', '?')} steps, "
              f"seed {settings.get('seed', '?')}")
    blocks = _header(heading, result, detail, width - 2 * gap)
    blocks += [(wrap_text(result.stuck_reason(i), width - 2 * gap, 12, max_lines=4), 12, _WARN)
               for i in range(count) if result.stuck()[i]][:3]
    header = _header_height(blocks)
    canvas = Image.new("RGB", (width, header + rows * (tile + caption + gap) + gap), "white")
    draw = ImageDraw.Draw(canvas)
    _draw_header(draw, blocks, gap)
    for index, (objective, image) in enumerate(zip(result.objectives, result.images, strict=True)):
        row, column = divmod(index, columns)
        left, top = gap + column * (tile + gap), header + row * (tile + caption + gap)
        picture = to_pil(image).convert("RGB").resize((tile, tile), Image.Resampling.LANCZOS)
        canvas.paste(picture, (left, top))
        draw.text((left, top + tile + 3), _fit(draw, objective.label, tile, 12), fill=_INK, font=font(12))
        stuck = result.stuck()[index]
        value = "did not move" if stuck else f"value {format_number(float(result.values[index]))}"
        draw.text((left, top + tile + 18), _fit(draw, value, tile, 11), fill=_WARN if stuck else _MUTED, font=font(11))
    return canvas


def render_with_patches(result: Any, patches: Sequence[Sequence[Image.Image]], *, columns: int,
                        row_labels: Sequence[str] = (), title: str | None = None, tile: int = 128) -> Image.Image:
    """Each visualisation above the dataset patches that excite the same channel most (OpenAI Microscope's view).

    Args:
        patches: per objective, its top dataset patches (any size; up to 3 are shown, under the image).
        columns: objectives per row; ``row_labels`` name the rows (e.g. the layer and its receptive field).
    """
    count = len(result.objectives)
    rows = math.ceil(count / columns)
    gap, label_width = 10, 110 if row_labels else 0
    small = (tile - 2 * 4) // 3
    block_height = tile + 4 + small + 34
    width = label_width + columns * (tile + gap) + gap
    heading = title or f"{result.model}: what each channel detects"
    blocks = _header(heading, result, f"top: optimised image ({result.settings.get('steps', '?')} steps); below: "
                     "the dataset patches that excite the channel most", width - 2 * gap)
    header = _header_height(blocks)
    canvas = Image.new("RGB", (width, header + rows * (block_height + gap) + gap), "white")
    draw = ImageDraw.Draw(canvas)
    _draw_header(draw, blocks, gap)
    for row in range(rows):
        top = header + row * (block_height + gap)
        if row < len(row_labels):
            for line, text in enumerate(row_labels[row].split("\n")):
                draw.text((gap, top + 4 + 16 * line), _fit(draw, text, label_width - gap, 12), fill=_INK, font=font(12))
    for index, objective in enumerate(result.objectives):
        row, column = divmod(index, columns)
        left, top = label_width + gap + column * (tile + gap), header + row * (block_height + gap)
        canvas.paste(to_pil(result.images[index]).convert("RGB").resize((tile, tile), Image.Resampling.LANCZOS),
                     (left, top))
        for k, patch in enumerate(list(patches[index])[:3] if index < len(patches) else []):
            canvas.paste(patch.convert("RGB").resize((small, small), Image.Resampling.BILINEAR),
                         (left + k * (small + 4), top + tile + 4))
        draw.text((left, top + tile + small + 8), _fit(draw, objective.label, tile, 12), fill=_INK, font=font(12))
        draw.text((left, top + tile + small + 22),
                  _fit(draw, f"value {format_number(float(result.values[index]))}", tile, 11), fill=_MUTED,
                  font=font(11))
    return canvas
