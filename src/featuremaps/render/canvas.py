"""Two drawing surfaces with one interface: raster (PIL, for PNG/GIF/MP4) and SVG.

Diagrams are drawn once against :class:`Canvas`; each backend turns the same calls into
pixels or vector markup, so a PNG and an SVG of a diagram show the same thing. SVG
elements can carry a CSS class and ``data-*`` attributes, which tests and the web page use.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Protocol

from PIL import Image, ImageDraw

from featuremaps.render._draw import font, text_size

__all__ = ["Canvas", "Colour", "RasterCanvas", "SvgCanvas"]

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
        width: int = 1, dashed: bool = False, css: str | None = None, data: dict[str, object] | None = None,
    ) -> None: ...

    def line(self, x1: float, y1: float, x2: float, y2: float, *, colour: Colour, width: int = 1,
             arrow: bool = False) -> None: ...

    def text(self, x: float, y: float, text: str, *, size: int = 13, colour: Colour = (30, 30, 30),
             anchor: str = "la", css: str | None = None, data: dict[str, object] | None = None) -> None: ...

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

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        self.image.save(path)
        return path


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
    def _attributes(css: str | None, data: dict[str, object] | None) -> str:
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

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.markup(), encoding="utf-8")
        return path
