"""The confusion matrix as a picture: counts in cells, coloured by the share of each true class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from featuremaps.drawing import apply_colormap, font, text_size

__all__ = ["render_confusion"]


def render_confusion(confusion: np.ndarray, class_names: Sequence[str], *, title: str | None = None,
                     cell: int = 56) -> Image.Image:
    """Rows are true classes, columns predicted; colour = row share (recall on the diagonal)."""
    matrix = np.asarray(confusion)
    k = matrix.shape[0]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = max(text_size(measure, name, 13)[0] for name in class_names) + 16
    top = 64
    width, height = label_w + k * cell + 20, top + label_w + k * cell + 36
    canvas = Image.new("RGB", (max(width, 300), height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    total = matrix.sum()
    accuracy = np.trace(matrix) / total if total else 0.0
    draw.text((8, 8), title or "Confusion matrix", fill=(30, 30, 30), font=font(15))
    draw.text((8, 30), f"accuracy {accuracy:.1%} on {int(total)} images; rows: true class, columns: predicted",
              fill=(100, 100, 100), font=font(12))
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
