"""The confusion matrix as a picture: counts in cells, coloured by the share of each true class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from featuremaps.render.drawing import apply_colormap, draw_lines, font, lines_height, text_size, wrap_text

__all__ = ["render_confusion"]


def render_confusion(confusion: np.ndarray, class_names: Sequence[str], *, title: str | None = None,
                     cell: int = 56) -> Image.Image:
    """Rows are true classes, columns predicted; colour = row share (recall on the diagonal)."""
    matrix = np.asarray(confusion)
    k = matrix.shape[0]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    names = [wrap_text(name, 200, 13, max_lines=1)[0] for name in class_names]  # long names end in an ellipsis
    label_w = max(text_size(measure, name, 13)[0] for name in names) + 16
    width = max(label_w + k * cell + 20, 360)
    total = matrix.sum()
    accuracy = np.trace(matrix) / total if total else 0.0
    heading = wrap_text(title or "Confusion matrix", width - 16, 15, max_lines=3)
    subtitle = wrap_text(f"accuracy {accuracy:.1%} on {int(total)} images; rows: true class, columns: predicted",
                         width - 16, 12, max_lines=3)
    top = 8 + lines_height(heading, 15) + lines_height(subtitle, 12) + 10
    height = top + label_w + k * cell + 36
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    y = draw_lines(draw, (8, 8), heading, size=15)
    draw_lines(draw, (8, y), subtitle, size=12, fill=(100, 100, 100))
    class_names = names
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    colours = apply_colormap(shares, 0.0, 1.0, "Blues")
    grid_top = top + label_w
    for i, name in enumerate(class_names):
        draw.text((label_w - 8, grid_top + i * cell + cell / 2), name, fill=(30, 30, 30), font=font(13), anchor="rm")
        column = Image.new("RGB", (label_w, 20), (255, 255, 255))
        ImageDraw.Draw(column).text((label_w - 4, 10), name, fill=(30, 30, 30), font=font(13), anchor="rm")
        rotated = column.rotate(90, expand=True)
        canvas.paste(rotated, (label_w + i * cell + (cell - 20) // 2, top))
        for j in range(k):
            x, y = label_w + j * cell, grid_top + i * cell
            colour = tuple(int(v) for v in colours[i, j])
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=colour, outline=(210, 210, 210))
            ink = (255, 255, 255) if shares[i, j] > 0.55 else (30, 30, 30)
            draw.text((x + cell / 2, y + cell / 2), str(int(matrix[i, j])), fill=ink, font=font(14), anchor="mm")
    return canvas
