"""Drawing primitives shared by every picture: fonts, colormaps, tensors to pixels, two canvases.

- :func:`font`, :func:`text_size`, :func:`format_number`, :func:`apply_colormap`, :func:`to_pil`.
- Two drawing surfaces with one interface: raster (PIL, for PNG/GIF/MP4) and SVG. Diagrams
  are drawn once against :class:`Canvas`; each backend turns the same calls into pixels or
  vector markup, so a PNG and an SVG of a diagram show the same thing. SVG elements can
  carry a CSS class and ``data-*`` attributes, which tests and the web page use.

Both ``render`` (grids, overlays, animations) and ``illustrate`` (the convolution scene)
draw with these.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import matplotlib
import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from featuremaps.errors import SettingsError
from featuremaps.files import save_picture

__all__ = ["Canvas", "Colour", "RasterCanvas", "SvgCanvas", "apply_colormap", "colour_bar", "draw_lines", "font",
           "format_number", "lines_height", "png_bytes", "png_data_url", "text_size", "to_pil", "wrap_text"]


@lru_cache(maxsize=16)
def font(size: int = 13) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` pixels (no system font needed)."""
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=32)
def _lut(cmap: str) -> np.ndarray:
    try:
        colormap = matplotlib.colormaps[cmap]
    except KeyError:
        known = ", ".join(sorted(name for name in matplotlib.colormaps if not name.endswith("_r"))[:12])
        raise SettingsError(f"unknown colormap {cmap!r}; try one of {known}, ... (any matplotlib colormap)") from None
    return (colormap(np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)  # (256, 3)


def apply_colormap(values: np.ndarray, low: float, high: float, cmap: str = "viridis") -> np.ndarray:
    """Map a 2-D array to RGB ``(H, W, 3)`` uint8, ``low`` -> first colour, ``high`` -> last."""
    values = np.nan_to_num(np.asarray(values, dtype=np.float64))
    span = high - low
    scaled = (values - low) / span if span > 0 else np.zeros_like(values)
    index = np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8)
    return _lut(cmap)[index]


def text_size(draw: ImageDraw.ImageDraw, text: str, size: int) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font(size))
    return round(right - left), round(bottom - top)


def wrap_text(text: str, width: float, size: int = 13, *, max_lines: int = 4) -> list[str]:
    """``text`` in lines of at most ``width`` pixels at font ``size``: broken between words (a word longer
    than a line is broken where it must); past ``max_lines`` the last line ends with an ellipsis."""
    measure = font(size)

    def fits(line: str) -> bool:
        return measure.getlength(line) <= width

    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if fits(candidate):
            current = candidate
            continue
        if current:
            lines.append(current)
        while not fits(word) and len(word) > 1:  # a long name: break it at the last character that fits
            cut = max(1, max(k for k in range(1, len(word) + 1) if fits(word[:k]) or k == 1))
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        last = lines[max_lines - 1]
        while last and not fits(last + "…"):
            last = last[:-1]
        lines = [*lines[: max_lines - 1], last + "…"]
    return lines or [""]


LINE_SPACING = 1.35
"""Line height as a multiple of the font size, in every picture's text blocks."""


def lines_height(lines: list[str], size: int) -> int:
    """Pixels that :func:`draw_lines` takes for ``lines`` at font ``size``."""
    return int(len(lines) * size * LINE_SPACING)


def draw_lines(draw: ImageDraw.ImageDraw, xy: tuple[float, float], lines: list[str], *, size: int = 13,
               fill: Colour = (30, 30, 30), spacing: float = LINE_SPACING, **options: object) -> float:
    """Draw ``lines`` from ``xy`` down; returns the y below the last line."""
    x, y = xy
    for line in lines:
        draw.text((x, y), line, fill=fill, font=font(size), **options)  # type: ignore[arg-type]
        y += size * spacing
    return y


def colour_bar(width: int, low: float, high: float, cmap: str, *, label: str = "", size: int = 12,
               clipped: bool = False, ends: tuple[str, str] | None = None,
               background: Colour = (255, 255, 255)) -> Image.Image:
    """A horizontal colour bar ``width`` pixels wide with its range under it: the colours of ``cmap`` from
    ``low`` (left) to ``high`` (right); ``clipped`` says the ends also stand for values beyond them; ``ends``
    replaces the two numbers with words (``("low", "high")`` where each map has its own range)."""
    bar_height, gap = 12, 3
    label_lines = wrap_text(label, width, size, max_lines=2) if label else []
    line = int(size * 1.4)
    canvas = Image.new("RGB", (width, bar_height + gap + line * (1 + len(label_lines))), background[:3])
    draw = ImageDraw.Draw(canvas)
    inner = max(width - 2, 2)
    gradient = apply_colormap(np.tile(np.linspace(0.0, 1.0, inner), (bar_height, 1)), 0.0, 1.0, cmap)
    canvas.paste(Image.fromarray(gradient), (1, 0))
    draw.rectangle((0, 0, width - 1, bar_height - 1), outline=(120, 120, 120))
    left = format_number(low) + (" or less" if clipped else "")
    right = format_number(high) + (" or more" if clipped else "")
    if ends is not None:
        left, right = ends
    y = bar_height + gap
    draw.text((1, y), left, fill=(30, 30, 30), font=font(size))
    draw.text((width - 1, y), right, fill=(30, 30, 30), font=font(size), anchor="ra")
    for k, text in enumerate(label_lines):
        draw.text((width / 2, y + line * (k + 1)), text, fill=(100, 100, 100), font=font(size), anchor="ma")
    return canvas


def png_bytes(picture: Image.Image) -> bytes:
    """A picture as PNG bytes (what Jupyter's ``_repr_png_`` returns)."""
    import io

    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def png_data_url(picture: Image.Image) -> str:
    """A picture as a ``data:image/png;base64,...`` URL, for HTML."""
    import base64

    return "data:image/png;base64," + base64.b64encode(png_bytes(picture)).decode()


def format_number(value: float) -> str:
    """A short, readable number: 3 significant digits."""
    if value == 0:
        return "0"
    return f"{value:.3g}"


def to_pil(image: torch.Tensor) -> Image.Image:
    """Tensor ``(C, H, W)`` in [0, 1] (C = 1 or 3) to a PIL image."""
    array = image.detach().cpu().clamp(0, 1).mul(255).round().to(torch.uint8)
    if array.shape[0] == 1:
        return Image.fromarray(array[0].numpy())
    return Image.fromarray(array.permute(1, 2, 0).numpy())  # (H, W, 3)


Colour = tuple[int, int, int] | tuple[int, int, int, int]


def _css(colour: Colour | None) -> str:
    if colour is None:
        return "none"
    if len(colour) == 4:
        return f"rgba({colour[0]},{colour[1]},{colour[2]},{colour[3] / 255:.3f})"
    return f"rgb({colour[0]},{colour[1]},{colour[2]})"


class Canvas(Protocol):
    """What a diagram may draw. Coordinates are pixels from the top-left corner."""

    width: int
    height: int

    def rect(
        self, x: float, y: float, w: float, h: float, *, fill: Colour | None = None, outline: Colour | None = None,
        width: int = 1, dashed: bool = False, css: str | None = None, data: Mapping[str, object] | None = None,
    ) -> None: ...

    def line(self, x1: float, y1: float, x2: float, y2: float, *, colour: Colour, width: int = 1,
             arrow: bool = False) -> None: ...

    def text(self, x: float, y: float, text: str, *, size: int = 13, colour: Colour = (30, 30, 30),
             anchor: str = "la", css: str | None = None, data: Mapping[str, object] | None = None) -> None: ...

    def text_width(self, text: str, size: int = 13) -> int: ...


class RasterCanvas:
    """Draws into an RGB PIL image; fills with an alpha value are blended."""

    def __init__(self, width: int, height: int, background: Colour = (255, 255, 255)) -> None:
        self.width, self.height = int(width), int(height)
        self.image = Image.new("RGB", (self.width, self.height), background[:3])
        self._draw = ImageDraw.Draw(self.image, "RGBA")

    def rect(self, x, y, w, h, *, fill=None, outline=None, width=1, dashed=False, css=None, data=None) -> None:
        box = (round(x), round(y), round(x + w) - 1, round(y + h) - 1)
        if fill is not None:
            self._draw.rectangle(box, fill=fill)
        if outline is None:
            return
        if not dashed:
            self._draw.rectangle(box, outline=outline, width=width)
            return
        left, top, right, bottom = box
        for (ax, ay), (bx, by) in (((left, top), (right, top)), ((right, top), (right, bottom)),
                                   ((left, bottom), (right, bottom)), ((left, top), (left, bottom))):
            self._dashed(ax, ay, bx, by, outline, width)

    def _dashed(self, ax: int, ay: int, bx: int, by: int, colour: Colour, width: int, dash: int = 4) -> None:
        length = max(abs(bx - ax), abs(by - ay))
        for start in range(0, length + 1, 2 * dash):
            end = min(start + dash, length)
            t0, t1 = start / max(length, 1), end / max(length, 1)
            self._draw.line((ax + (bx - ax) * t0, ay + (by - ay) * t0, ax + (bx - ax) * t1, ay + (by - ay) * t1),
                            fill=colour, width=width)

    def line(self, x1, y1, x2, y2, *, colour, width=1, arrow=False) -> None:
        self._draw.line((x1, y1, x2, y2), fill=colour, width=width)
        if arrow:
            self._draw.polygon(_arrow_head(x1, y1, x2, y2, 4 + 2 * width), fill=colour)

    def text(self, x, y, text, *, size=13, colour=(30, 30, 30), anchor="la", css=None, data=None) -> None:
        self._draw.text((x, y), text, fill=colour, font=font(size), anchor=anchor)

    def text_width(self, text: str, size: int = 13) -> int:
        return text_size(self._draw, text, size)[0]

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        return save_picture(self.image, path, overwrite=overwrite)


def _arrow_head(x1: float, y1: float, x2: float, y2: float, size: float) -> list[tuple[float, float]]:
    angle = math.atan2(y2 - y1, x2 - x1)
    left = (x2 - size * math.cos(angle - 0.45), y2 - size * math.sin(angle - 0.45))
    right = (x2 - size * math.cos(angle + 0.45), y2 - size * math.sin(angle + 0.45))
    return [(x2, y2), left, right]


_SVG_ANCHORS = {"l": "start", "m": "middle", "r": "end"}
_SVG_BASELINES = {"a": "text-before-edge", "t": "text-before-edge", "m": "central", "s": "alphabetic",
                  "b": "text-after-edge", "d": "text-after-edge"}


class SvgCanvas:
    """Collects SVG elements; :meth:`markup` returns the document."""

    def __init__(self, width: int, height: int, background: Colour = (255, 255, 255)) -> None:
        self.width, self.height = int(width), int(height)
        self._measure = RasterCanvas(1, 1)
        self._parts: list[str] = [f"<rect width='100%' height='100%' fill='{_css(background)}'/>"]

    @staticmethod
    def _attributes(css: str | None, data: Mapping[str, object] | None) -> str:
        parts = [f" class='{html.escape(css)}'"] if css else []
        parts += [f" data-{key}='{html.escape(str(value))}'" for key, value in (data or {}).items()]
        return "".join(parts)

    def rect(self, x, y, w, h, *, fill=None, outline=None, width=1, dashed=False, css=None, data=None) -> None:
        stroke = f" stroke='{_css(outline)}' stroke-width='{width}'" if outline is not None else ""
        dash = " stroke-dasharray='4 4'" if dashed and outline is not None else ""
        self._parts.append(
            f"<rect x='{x:.1f}' y='{y:.1f}' width='{w:.1f}' height='{h:.1f}' fill='{_css(fill)}'{stroke}{dash}"
            f"{self._attributes(css, data)}/>"
        )

    def line(self, x1, y1, x2, y2, *, colour, width=1, arrow=False) -> None:
        self._parts.append(
            f"<line x1='{x1:.1f}' y1='{y1:.1f}' x2='{x2:.1f}' y2='{y2:.1f}' stroke='{_css(colour)}' "
            f"stroke-width='{width}'/>"
        )
        if arrow:
            points = " ".join(f"{px:.1f},{py:.1f}" for px, py in _arrow_head(x1, y1, x2, y2, 4 + 2 * width))
            self._parts.append(f"<polygon points='{points}' fill='{_css(colour)}'/>")

    def text(self, x, y, text, *, size=13, colour=(30, 30, 30), anchor="la", css=None, data=None) -> None:
        self._parts.append(
            f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' fill='{_css(colour)}' "
            f"text-anchor='{_SVG_ANCHORS[anchor[0]]}' dominant-baseline='{_SVG_BASELINES[anchor[1]]}'"
            f"{self._attributes(css, data)}>{html.escape(text)}</text>"
        )

    def text_width(self, text: str, size: int = 13) -> int:
        return self._measure.text_width(text, size)

    def markup(self) -> str:
        body = "\n".join(self._parts)
        return (
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{self.width}' height='{self.height}' "
            f"viewBox='0 0 {self.width} {self.height}' font-family='DejaVu Sans, Helvetica, Arial, sans-serif'>\n"
            f"{body}\n</svg>\n"
        )

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        return save_picture(self.markup(), path, overwrite=overwrite)
