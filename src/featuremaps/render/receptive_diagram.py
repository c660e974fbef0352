"""Receptive fields of a stack of layers: which cells of every level one output unit sees.

For a unit ``(y, x)`` of the last layer, level ``l`` (0 is the input) holds the region
``receptive_field(layers[l:])`` maps it to; on the input this is the unit's receptive
field, of size ``size`` and spaced by ``jump`` from its neighbours' fields. Cells of a
region that fall outside a level are padding.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from featuremaps.conv.geometry import ConvGeometry, IntPair, ReceptiveField, receptive_field, to_pair
from featuremaps.errors import SettingsError
from featuremaps.render.drawing import RasterCanvas, SvgCanvas

__all__ = ["FieldLevel", "field_levels", "parse_stack", "receptive_field_diagram"]

_SPEC = re.compile(
    r"^(?P<kind>conv|pool)?(?P<k>\d+(?:x\d+)?)(?:s(?P<s>\d+(?:x\d+)?))?(?:p(?P<p>\d+(?:x\d+)?|same))?"
    r"(?:d(?P<d>\d+(?:x\d+)?))?$"
)


def _pair(text: str | None, default: int) -> int | tuple[int, int]:
    if text is None:
        return default
    parts = [int(v) for v in text.split("x")]
    return parts[0] if len(parts) == 1 else (parts[0], parts[1])


def parse_stack(spec: str) -> list[tuple[str, ConvGeometry]]:
    """Parse ``"3p1,3s2p1,pool2s2,3"``: per layer ``[conv|pool]K[sS][pP|psame][dD]``, sizes ``N`` or ``HxW``.

    Returns ``(label, geometry)`` per layer. Stride and dilation default to 1, padding to 0.
    """
    layers = []
    for part in [p.strip().lower() for p in spec.split(",") if p.strip()]:
        match = _SPEC.match(part)
        if match is None:
            raise SettingsError(
                f"cannot read layer {part!r}; write [conv|pool]K[sS][pP][dD], e.g. 3, 3s2p1, pool2s2, 5x3d2"
            )
        padding = match["p"]
        geometry = ConvGeometry.create(
            _pair(match["k"], 1), _pair(match["s"], 1),
            "same" if padding == "same" else _pair(padding, 0), _pair(match["d"], 1),
        )
        layers.append((_label(match["kind"] or "conv", geometry), geometry))
    if not layers:
        raise SettingsError("the stack is empty; give layers like '3,3s2,3'")
    return layers


def _label(kind: str, geometry: ConvGeometry) -> str:
    kh, kw = geometry.kernel_size
    parts = [f"{kind} {kh}x{kw}" if kh != kw else f"{kind} {kh}x{kh}"]
    if geometry.stride != (1, 1):
        parts.append(f"stride {geometry.stride[0]}" if geometry.stride[0] == geometry.stride[1] else
                     f"stride {geometry.stride[0]}x{geometry.stride[1]}")
    if geometry.padding == "same":
        parts.append("pad same")
    elif geometry.padding.height or geometry.padding.width:
        parts.append(f"pad {geometry.padding}")
    if geometry.dilation != (1, 1):
        parts.append(f"dilation {geometry.dilation[0]}")
    return ", ".join(parts)


@dataclass(frozen=True)
class FieldLevel:
    """One level of the stack as seen from the chosen unit.

    Attributes:
        name: ``"input"`` or the layer's label.
        size: ``(H, W)`` of the level.
        region: ``(top, left, bottom, right)`` (inclusive) of the cells the unit sees;
            may extend beyond the level into padding.
        field: receptive field of this level's units on the input (size, jump, start).
    """

    name: str
    size: IntPair
    region: tuple[int, int, int, int]
    field: ReceptiveField


def field_levels(
    layers: Sequence[tuple[str, ConvGeometry]], input_size: int | Sequence[int], unit: Sequence[int] | None = None
) -> list[FieldLevel]:
    """The region the unit ``(y, x)`` of the last layer sees at every level, input first.

    ``unit`` defaults to the centre of the last layer.
    """
    geometries = [geometry for _, geometry in layers]
    sizes = [to_pair(input_size, "input_size")]
    for geometry in geometries:
        sizes.append(geometry.output_size(sizes[-1]))
    last = sizes[-1]
    y, x = (last[0] // 2, last[1] // 2) if unit is None else (int(unit[0]), int(unit[1]))
    if not (0 <= y < last[0] and 0 <= x < last[1]):
        raise SettingsError(f"unit ({y}, {x}) is outside the last layer of {last[0]}x{last[1]}")
    fields = [ReceptiveField((1, 1), (1, 1), (0, 0)), *receptive_field(geometries, input_size=sizes[0])]
    levels = []
    for level in range(len(layers) + 1):
        if level == len(layers):
            region = (y, x, y, x)
        else:
            region = receptive_field(geometries[level:], input_size=sizes[level])[-1].region(y, x)
        name = "input" if level == 0 else layers[level - 1][0]
        levels.append(FieldLevel(name, sizes[level], region, fields[level]))
    return levels


_INK = (30, 30, 30)
_MUTED = (120, 120, 120)
_LINE = (200, 200, 200)
_SEEN = (255, 150, 0, 150)
_SEEN_PAD = (255, 150, 0, 70)
_UNIT = (230, 0, 120)
_PAD = (235, 235, 235)


def receptive_field_diagram(
    layers: Sequence[tuple[str, ConvGeometry]] | str,
    input_size: int | Sequence[int],
    *,
    unit: Sequence[int] | None = None,
    svg: bool = False,
):
    """Draw the levels side by side, input on the left, at one cell size so maps visibly shrink.

    Returns a PIL image, or SVG markup when ``svg`` is True.
    """
    stack = parse_stack(layers) if isinstance(layers, str) else list(layers)
    levels = field_levels(stack, input_size, unit)
    widest = max(max(level.size) for level in levels)
    cell = max(6.0, min(26.0, 420 / widest))
    margin, gap, top = 20, 46, 92
    # padding cells a region reaches beyond its level, per side: (top, bottom, left, right)
    reach = [
        (max(0, -lv.region[0]), max(0, lv.region[2] - lv.size[0] + 1), max(0, -lv.region[1]),
         max(0, lv.region[3] - lv.size[1] + 1))
        for lv in levels
    ]
    widths = [max((lv.size[1] + r[2] + r[3]) * cell, 150) for lv, r in zip(levels, reach)]
    above = max(r[0] for r in reach) * cell  # every level's real grid starts at the same height
    below = max((lv.size[0] + r[1]) * cell for lv, r in zip(levels, reach))
    width = int(margin * 2 + sum(widths) + gap * (len(levels) - 1))
    labels_y = top + above + below + 12
    canvas: SvgCanvas | RasterCanvas = (SvgCanvas(width, int(labels_y + 64)) if svg
                                        else RasterCanvas(width, int(labels_y + 64)))
    last = levels[-1]
    canvas.text(margin, 12, f"Receptive field of unit (y={last.region[0]}, x={last.region[1]}) of the last layer",
                size=16, colour=_INK, css="title")
    field = last.field
    canvas.text(margin, 36, f"on the input: {field.size[0]}x{field.size[1]} pixels, rows {levels[0].region[0]}.."
                f"{levels[0].region[2]}, cols {levels[0].region[1]}..{levels[0].region[3]}; neighbouring units' "
                f"fields are {field.jump[0]}x{field.jump[1]} pixels apart (jump)", size=13, colour=_INK)
    canvas.text(margin, 58, "orange: cells the unit depends on; dashed grey: padding", size=12, colour=_MUTED)
    left: float = margin
    for index, (level, r, w) in enumerate(zip(levels, reach, widths)):
        h, wd = level.size
        ox, oy = left + r[2] * cell, top + above
        for row in range(-r[0], h + r[1]):
            for col in range(-r[2], wd + r[3]):
                inside = 0 <= row < h and 0 <= col < wd
                seen = level.region[0] <= row <= level.region[2] and level.region[1] <= col <= level.region[3]
                if not inside and not seen:
                    continue
                x, y = ox + col * cell, oy + row * cell
                canvas.rect(x, y, cell, cell, fill=(255, 255, 255) if inside else _PAD, outline=_LINE,
                            dashed=not inside, css="cell" if inside else "pad")
                if seen:
                    is_unit = index == len(levels) - 1
                    fill = _UNIT if is_unit else (_SEEN if inside else _SEEN_PAD)
                    canvas.rect(x, y, cell, cell, fill=fill, css="seen",
                                data={"level": index, "row": row, "col": col})
        canvas.rect(ox, oy, wd * cell, h * cell, outline=_INK)
        rows = level.region[2] - level.region[0] + 1
        cols = level.region[3] - level.region[1] + 1
        canvas.text(left, labels_y, level.name, size=13, colour=_INK)
        canvas.text(left, labels_y + 18, f"{h}x{wd}; sees {rows}x{cols} here", size=12, colour=_MUTED)
        if index:
            canvas.text(left, labels_y + 36, f"RF {level.field.size[0]}x{level.field.size[1]}, jump "
                        f"{level.field.jump[0]}x{level.field.jump[1]}", size=12, colour=_MUTED)
        if index + 1 < len(levels):
            canvas.line(left + w + 8, oy + 12, left + w + gap - 8, oy + 12, colour=_MUTED, width=2, arrow=True)
        left += w + gap
    return canvas.markup() if isinstance(canvas, SvgCanvas) else canvas.image
