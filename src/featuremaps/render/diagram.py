"""Drawing a :class:`ConvScene`: one layout, drawn on any :class:`Canvas`.

A picture has four columns: the padded input (one grid per channel, padding cells grey
and dashed), the filters (one row per filter, one kernel per input channel of its group),
the products of the current window with their sums, and the output maps (one per filter)
filling up cell by cell. Above them: the layer's settings and the output-size formula with
the numbers, per axis; below: the sum for the current cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featuremaps.conv.layer import ConvStep
from featuremaps.illustrate.scene import ConvScene
from featuremaps.render.drawing import Canvas, Colour, apply_colormap

__all__ = ["WINDOW", "GridBox", "SceneLayout", "draw_scene", "layout_scene"]

WINDOW: Colour = (230, 0, 120)
"""Outline of the current window, filter and output cell (used nowhere else)."""
GHOST: Colour = (120, 120, 200)
TAP: Colour = (255, 150, 0, 110)
INK: Colour = (30, 30, 30)
MUTED: Colour = (125, 125, 125)
GRID_LINE: Colour = (190, 190, 190)
PAD_FILL: Colour = (232, 232, 232)
INSERT_FILL: Colour = (252, 238, 196)  # the zeros a transposed convolution inserts between input pixels
PAD_VEIL: Colour = (255, 255, 255, 150)
DONE_FILL: Colour = (214, 232, 250)
NEW_FILL: Colour = (255, 222, 186)
_MARGIN = 16
_LABEL = 22
_GAP = 30
_TOP = 104
_BAND = 18  # space above and left of an input grid for the stride-jump arrows


@dataclass(frozen=True)
class GridBox:
    """A grid of square cells at ``(left, top)`` on the canvas."""

    left: float
    top: float
    rows: int
    cols: int
    cell: float

    @property
    def width(self) -> float:
        return self.cols * self.cell

    @property
    def height(self) -> float:
        return self.rows * self.cell

    def cell_box(self, row: int, col: int) -> tuple[float, float, float, float]:
        return self.left + col * self.cell, self.top + row * self.cell, self.cell, self.cell

    def span(self, top: int, left: int, bottom: int, right: int) -> tuple[float, float, float, float]:
        """``(x, y, w, h)`` of the cells ``top..bottom`` x ``left..right`` (inclusive)."""
        return (self.left + left * self.cell, self.top + top * self.cell,
                (right - left + 1) * self.cell, (bottom - top + 1) * self.cell)


@dataclass(frozen=True)
class SceneLayout:
    """Where everything of a scene goes; the same for every frame."""

    width: int
    height: int
    inputs: tuple[GridBox, ...]
    filters: tuple[tuple[GridBox, ...], ...]
    products: tuple[GridBox, ...]
    outputs: tuple[GridBox, ...]
    footer: float
    numbers: bool


def _cell_size(limit: float, count: float, low: float, high: float) -> float:
    return float(max(low, min(high, limit / max(count, 1))))


def layout_scene(scene: ConvScene) -> SceneLayout:
    """Place the grids of ``scene``; cells shrink as grids grow, within readable bounds."""
    layer = scene.layer
    channels, pad_h, pad_w = scene.padded.shape
    depth, out_h, out_w = scene.output_shape
    kh, kw = layer.kernel_size
    per_group = layer.in_channels // layer.groups
    numbers = scene.kind == "grid"
    low = 20.0 if numbers else 4.0
    # input: every channel stacked; keep the column under ~800 px tall and 460 px wide
    input_cell = min(_cell_size(460, pad_w, low, 38), _cell_size(800 - channels * 48, channels * pad_h, low, 38))
    kernel_cell = _cell_size(150, max(kh, kw), 18, 34)
    output_cell = min(_cell_size(300, out_w, low, 38), _cell_size(620 - depth * _LABEL, depth * out_h, low, 38))
    x: float = _MARGIN
    y: float
    inputs, y = [], _TOP + _LABEL
    for _ in range(channels):
        inputs.append(GridBox(x + 2 * _BAND, y + _LABEL + _BAND, pad_h, pad_w, input_cell))
        y += _LABEL + _BAND + pad_h * input_cell + 8
    bottom = y
    x += 2 * _BAND + max(pad_w * input_cell, 170, 7.6 * len(_input_title(scene)) - 2 * _BAND) + _GAP
    filters, y = [], _TOP + _LABEL
    filter_w = per_group * (kw * kernel_cell + 10)
    for _ in range(depth):
        row = tuple(GridBox(x + c * (kw * kernel_cell + 10), y + _LABEL, kh, kw, kernel_cell) for c in range(per_group))
        filters.append(row)
        y += _LABEL + kh * kernel_cell + 12
    bottom = max(bottom, y)
    x += max(filter_w, 190) + _GAP
    products, y = [], _TOP + _LABEL
    for _ in range(per_group):
        products.append(GridBox(x, y + _LABEL, kh, kw, kernel_cell))
        y += _LABEL + kh * kernel_cell + _LABEL + 8
    bottom = max(bottom, y + _LABEL)
    x += max(kw * kernel_cell, 200) + _GAP
    outputs, y = [], _TOP + _LABEL
    for _ in range(depth):
        outputs.append(GridBox(x, y + _LABEL, out_h, out_w, output_cell))
        y += _LABEL + out_h * output_cell + 8
    bottom = max(bottom, y)
    width = int(x + max(out_w * output_cell, 150) + _MARGIN)
    return SceneLayout(
        width=max(width, 760), height=int(bottom + 70 + (36 if layer.transposed else 0)), inputs=tuple(inputs), filters=tuple(filters),
        products=tuple(products), outputs=tuple(outputs), footer=bottom + 16, numbers=numbers,
    )


def _number(value: float) -> str:
    """Short cell text: integers as is, others with 2 decimals and no leading zero."""
    if abs(value - round(value)) < 1e-6:
        return str(int(round(value)))
    if abs(value) >= 100:
        return f"{value:.0f}"
    text = f"{value:.2f}"
    return text.replace("0.", ".", 1) if text.startswith(("0.", "-0.")) else text


def equation(step: ConvStep) -> str:
    """``map 0 at (y=0, x=0) = 0.603 + 0.441 + 0.327 + bias 0 = 1.371``: the channel sums and the bias with as
    many decimals as it takes for the printed numbers to add up to the printed total (at most 6)."""
    terms = [*step.channel_sums, step.bias]
    for decimals in range(2, 7):
        shown = [round(t, decimals) for t in terms]
        if abs(sum(shown) - round(step.total, decimals)) < 0.5 * 10 ** -decimals:
            break
    text = [f"{t:.{decimals}f}".rstrip("0").rstrip(".") if abs(t - round(t)) > 1e-9 else str(int(round(t)))
            for t in terms]
    total = f"{step.total:.{decimals}f}".rstrip("0").rstrip(".")
    relu = f"  ReLU: max(0, {total}) = {step.output:.{decimals}f}".rstrip("0").rstrip(".") if step.relu else ""
    return (f"map {step.filter} at (y={step.y}, x={step.x}) = {' + '.join(text[:-1])} + bias {text[-1]} = {total}"
            f"{relu}")


def _font_size(cell: float, text: str = "-0.00") -> int:
    return int(max(8, min(15, cell * (0.42 if len(text) <= 3 else 0.34))))


def draw_scene(
    scene: ConvScene, canvas: Canvas, layout: SceneLayout, *, step: int, done: int | None = None,
    ghosts: tuple[int, ...] = (), jumps: tuple[tuple[int, int], ...] = (), title: str | None = None,
) -> None:
    """Draw the scene at ``step``: its window, filter and products; output cells ``0..done`` filled.

    Args:
        step: the step whose window, filter and products are shown.
        done: last step whose output is filled in (default ``step``; ``len(scene) - 1``
            draws every map complete).
        ghosts: steps whose windows are drawn dashed (a previous or next position).
        jumps: ``(from_step, to_step)`` pairs drawn as arrows beside the input grids,
            labelled with the stride the window moved by.
    """
    done = step if done is None else done
    current = scene.step(step)
    layer = scene.layer
    _draw_header(scene, canvas, title)
    _draw_inputs(scene, canvas, layout, current, [scene.step(g) for g in ghosts],
                 [(scene.step(a), scene.step(b)) for a, b in jumps])
    _draw_filters(scene, canvas, layout, current)
    _draw_products(canvas, layout, current)
    _draw_outputs(scene, canvas, layout, current, done)
    canvas.text(_MARGIN, layout.footer, equation(current), size=15, colour=INK, css="equation")
    lines = [f"window: padded rows {current.window[0]}..{current.window[2]}, cols {current.window[1]}.."
             f"{current.window[3]} (y x {layer.window_stride[0]}, x x {layer.window_stride[1]}; taps every "
             f"{layer.dilation[0]}x{layer.dilation[1]} cells)", *_transposed_notes(scene)]
    for k, line in enumerate(lines):
        canvas.text(_MARGIN, layout.footer + 24 + 18 * k, line, size=12, colour=MUTED)


def _input_title(scene: ConvScene) -> str:
    channels, height, width = scene.input.shape
    _, pad_h, pad_w = scene.padded.shape
    spread = "zeros inserted and " if scene.layer.transposed else ""
    framed = "cropped" if _cropped(scene) else "padded"
    return f"input {channels}x{height}x{width}, {spread}{framed} to {pad_h}x{pad_w}"


def _cropped(scene: ConvScene) -> list[str]:
    """The sides a transposed layer's padding above dilation*(kernel-1) crops (its border is negative)."""
    pad = scene.padding
    return [f"{-v} {side}" for v, side in ((pad.top, "top"), (pad.bottom, "bottom"), (pad.left, "left"),
                                           (pad.right, "right")) if v < 0]


def _transposed_notes(scene: ConvScene) -> list[str]:
    layer = scene.layer
    if not layer.transposed:
        return []
    notes = [f"transposed: the window moves 1 cell over the input with {layer.stride[0] - 1}x{layer.stride[1] - 1} "
             "zeros inserted between pixels"]
    cropped = _cropped(scene)
    if cropped:
        reach = [d * (k - 1) for d, k in zip(layer.dilation, layer.kernel_size)]
        notes.append(f"padding {layer.padding} is above dilation*(kernel-1) = {reach[0]}x{reach[1]}: the zero-inserted "
                     f"input loses {', '.join(cropped)} (PyTorch crops it too)")
    return notes


def _draw_header(scene: ConvScene, canvas: Canvas, title: str | None) -> None:
    layer = scene.layer
    pad = scene.padding
    channels, height, width = scene.input.shape
    depth, out_h, out_w = scene.output_shape
    if layer.transposed and title is None:
        given = layer.padding
        extra = layer.geometry.output_padding
        title = (
            f"{channels}x{height}x{width} input  ->  transposed conv, {depth} filters {layer.kernel_size[0]}x"
            f"{layer.kernel_size[1]}, stride {layer.stride[0]}x{layer.stride[1]} ({layer.stride[0] - 1}x"
            f"{layer.stride[1] - 1} zeros inserted), padding {given}, output padding {extra[0]}x{extra[1]}, dilation "
            f"{layer.dilation[0]}x{layer.dilation[1]}{f', groups {layer.groups}' if layer.groups > 1 else ''}  ->  "
            f"{depth}x{out_h}x{out_w} maps"
        )
    heading = title or (
        f"{channels}x{height}x{width} input  ->  {depth} filters {layer.kernel_size[0]}x{layer.kernel_size[1]}, "
        f"stride {layer.stride[0]}x{layer.stride[1]}, padding {pad.top},{pad.bottom},{pad.left},{pad.right} "
        f"({layer.padding_mode}), dilation {layer.dilation[0]}x{layer.dilation[1]}"
        f"{f', groups {layer.groups}' if layer.groups > 1 else ''}  ->  {depth}x{out_h}x{out_w} maps"
    )
    canvas.text(_MARGIN, 10, heading, size=16, colour=INK, css="title")
    for k, line in enumerate(scene.formula):
        canvas.text(_MARGIN, 36 + 20 * k, line, size=14, colour=INK, css="formula")
    legend_y = 80
    x = _MARGIN
    entries: list[tuple[str, Colour | None, Colour, bool]] = [("padding", PAD_FILL, GRID_LINE, True)]
    if layer.transposed:
        entries.append(("inserted zero", INSERT_FILL, GRID_LINE, True))
    entries += [("window", TAP, WINDOW, False), ("other windows (stride jumps)", None, GHOST, True),
                ("computed", DONE_FILL, GRID_LINE, False), ("current", NEW_FILL, WINDOW, False)]
    for label, fill, outline, dashed in entries:
        canvas.rect(x, legend_y, 14, 14, fill=fill, outline=outline, width=2 if outline == WINDOW else 1, dashed=dashed)
        canvas.text(x + 20, legend_y + 7, label, size=12, colour=MUTED, anchor="lm")
        x += 40 + int(canvas.text_width(label, 12) * 1.15)  # browsers set SVG text a little wider


def _draw_inputs(scene: ConvScene, canvas: Canvas, layout: SceneLayout, current: ConvStep,
                 ghosts: list[ConvStep], jumps: list[tuple[ConvStep, ConvStep]]) -> None:
    channels, pad_h, pad_w = scene.padded.shape
    padded = scene.padded.numpy()
    first = layout.inputs[0]
    _, height, width = scene.input.shape
    canvas.text(first.left - 2 * _BAND, _TOP, _input_title(scene), size=14, colour=INK)
    names = ("R", "G", "B") if scene.kind == "image" and channels == 3 else None
    for c, grid in enumerate(layout.inputs):
        active = c in current.channels
        label = f"channel {c}{f' ({names[c]})' if names else ''}{'' if active else ' (not read by this filter)'}"
        canvas.text(grid.left - 2 * _BAND, grid.top - _LABEL - _BAND + 4, label, size=12,
                    colour=INK if active else MUTED)
        for r in range(pad_h):
            for col in range(pad_w):
                value = float(padded[c, r, col])
                is_pad = bool(scene.is_padding[r, col])
                inserted = bool(scene.is_inserted[r, col])
                x, y, w, h = grid.cell_box(r, col)
                data = {"c": c, "r": r, "col": col}
                if layout.numbers:
                    fill = INSERT_FILL if inserted else PAD_FILL if is_pad else (255, 255, 255)
                    css = "inserted" if inserted else "pad" if is_pad else "cell"
                    canvas.rect(x, y, w, h, fill=fill, outline=GRID_LINE, dashed=is_pad, css=css, data=data)
                    text = _number(value)
                    canvas.text(x + w / 2, y + h / 2, text, size=_font_size(grid.cell, text),
                                colour=MUTED if is_pad else INK, anchor="mm")
                else:
                    level = int(round(np.clip(value, 0, 1) * 255))
                    canvas.rect(x, y, w, h, fill=(level, level, level), css="pad" if is_pad else "cell", data=data)
                    if inserted:
                        canvas.rect(x, y, w, h, fill=(*INSERT_FILL, 200))
                    elif is_pad:
                        canvas.rect(x, y, w, h, fill=PAD_VEIL)
        if not layout.numbers:
            _outline_padding(scene, canvas, grid)
        if not active:
            continue
        for ghost in ghosts:
            gx, gy, gw, gh = grid.span(*ghost.window)
            canvas.rect(gx, gy, gw, gh, outline=GHOST, width=2, dashed=True)
        for start, end in jumps:
            _draw_jump(scene, canvas, grid, start, end)
        for r in current.padded_rows:
            for col in current.padded_cols:
                x, y, w, h = grid.cell_box(r, col)
                if layout.numbers:
                    canvas.rect(x, y, w, h, fill=TAP)
                    continue
                # image mode: the window is see-through and prints the pixel values it multiplies
                canvas.rect(x, y, w, h, outline=(255, 150, 0))
                value = float(padded[c, r, col])
                text = _number(value)
                if grid.cell >= 14:
                    canvas.text(x + w / 2, y + h / 2, text, size=_font_size(grid.cell, text),
                                colour=INK if value > 0.55 else (255, 255, 255), anchor="mm", css="pixel")
        x, y, w, h = grid.span(*current.window)
        canvas.rect(x, y, w, h, outline=WINDOW, width=3, css="window", data={"c": c})


def _draw_jump(scene: ConvScene, canvas: Canvas, grid: GridBox, start: ConvStep, end: ConvStep) -> None:
    """An arrow above the grid (a jump along x) or left of it (along y), labelled with the stride."""
    if start.y == end.y:
        x0, x1 = grid.span(*start.window)[0], grid.span(*end.window)[0]
        y = grid.top - _BAND / 2
        canvas.line(x0, y, x1, y, colour=GHOST, width=2, arrow=True)
        canvas.text(max(x0, x1) + 4, y, f"+{scene.layer.window_stride[1]} (stride x)", size=11, colour=GHOST,
                    anchor="lm")
    else:
        y0, y1 = grid.span(*start.window)[1], grid.span(*end.window)[1]
        x = grid.left - _BAND / 2
        canvas.line(x, y0, x, y1, colour=GHOST, width=2, arrow=True)
        canvas.text(x - 6, (y0 + y1) / 2, f"+{scene.layer.window_stride[0]}", size=11, colour=GHOST, anchor="rm")


def _outline_padding(scene: ConvScene, canvas: Canvas, grid: GridBox) -> None:
    pad = scene.padding
    _, height, width = scene.input.shape
    if scene.layer.transposed:
        height, width = scene.layer.geometry.zero_inserted((height, width))[0]
    frame_h, frame_w = scene.padded.shape[1:]
    top, left = max(pad.top, 0), max(pad.left, 0)  # a negative border: the input is cropped, drawn to the edge
    bottom, right = min(pad.top + height, frame_h) - 1, min(pad.left + width, frame_w) - 1
    x, y, w, h = grid.span(top, left, bottom, right)
    canvas.rect(grid.left, grid.top, grid.width, grid.height, outline=GRID_LINE, dashed=True)
    canvas.rect(x, y, w, h, outline=INK)


def _draw_filters(scene: ConvScene, canvas: Canvas, layout: SceneLayout, current: ConvStep) -> None:
    layer = scene.layer
    weights = layer.weight.numpy()
    first = layout.filters[0][0]
    per_group = layer.in_channels // layer.groups
    canvas.text(first.left, _TOP, f"{layer.depth} filters, each {per_group}x{layer.kernel_size[0]}x"
                f"{layer.kernel_size[1]}", size=14, colour=INK)
    for d, row in enumerate(layout.filters):
        bias = f", bias {_number(float(layer.bias[d]))}" if layer.bias is not None else ""
        group = d // (layer.depth // layer.groups)
        reads = f" (channels {group * per_group}..{(group + 1) * per_group - 1})" if layer.groups > 1 else ""
        canvas.text(row[0].left, row[0].top - _LABEL + 4, f"filter {d}: {layer.filter_names[d]}{bias}{reads}",
                    size=12, colour=INK if d == current.filter else MUTED)
        for c, grid in enumerate(row):
            for i in range(grid.rows):
                for j in range(grid.cols):
                    x, y, w, h = grid.cell_box(i, j)
                    value = float(weights[d, c, i, j])
                    canvas.rect(x, y, w, h, fill=(255, 255, 255), outline=GRID_LINE, css="weight",
                                data={"d": d, "c": c, "i": i, "j": j})
                    text = _number(value)
                    canvas.text(x + w / 2, y + h / 2, text, size=_font_size(grid.cell, text), colour=INK, anchor="mm")
            if d == current.filter:
                canvas.rect(grid.left, grid.top, grid.width, grid.height, outline=WINDOW, width=3)


def _draw_products(canvas: Canvas, layout: SceneLayout, current: ConvStep) -> None:
    first = layout.products[0]
    canvas.text(first.left, _TOP, "patch x filter", size=14, colour=INK)
    for k, grid in enumerate(layout.products):
        channel = current.channels[k]
        canvas.text(grid.left, grid.top - _LABEL + 4, f"channel {channel}", size=12, colour=INK)
        for i in range(grid.rows):
            for j in range(grid.cols):
                x, y, w, h = grid.cell_box(i, j)
                value = float(current.products[k, i, j])
                canvas.rect(x, y, w, h, fill=(255, 248, 235), outline=GRID_LINE, css="product")
                text = _number(value)
                canvas.text(x + w / 2, y + h / 2, text, size=_font_size(grid.cell, text), colour=INK, anchor="mm")
        canvas.text(grid.left, grid.top + grid.height + 4, f"sum = {_number(current.channel_sums[k])}", size=13,
                    colour=INK, css="channel-sum")


def _draw_outputs(scene: ConvScene, canvas: Canvas, layout: SceneLayout, current: ConvStep, done: int) -> None:
    depth, out_h, out_w = scene.output_shape
    maps = scene.maps.numpy()
    first = layout.outputs[0]
    canvas.text(first.left, _TOP, f"{depth} maps, {depth}x{out_h}x{out_w}", size=14, colour=INK)
    for d, grid in enumerate(layout.outputs):
        low, high = float(maps[d].min()), float(maps[d].max())
        value_range = "" if layout.numbers else f", {_number(low)} (dark) .. {_number(high)} (bright)"
        canvas.text(grid.left, grid.top - _LABEL + 4, f"map {d}: {out_h}x{out_w}{value_range}", size=12,
                    colour=INK if d == current.filter else MUTED)
        colours = apply_colormap(maps[d], low, high, "viridis")
        for y in range(out_h):
            for x in range(out_w):
                index = scene.step_index(d, y, x)
                bx, by, w, h = grid.cell_box(y, x)
                computed = index <= done
                data = {"d": d, "y": y, "x": x}
                if not computed:
                    canvas.rect(bx, by, w, h, fill=(255, 255, 255), outline=GRID_LINE, css="out-empty", data=data)
                    continue
                if layout.numbers:
                    fill = NEW_FILL if index == scene.step_index(current.filter, current.y, current.x) else DONE_FILL
                    canvas.rect(bx, by, w, h, fill=fill, outline=GRID_LINE, css="out", data=data)
                    text = _number(float(maps[d, y, x]))
                    canvas.text(bx + w / 2, by + h / 2, text, size=_font_size(grid.cell, text), colour=INK,
                                anchor="mm", css="out-value", data=data)
                else:
                    red, green, blue = (int(v) for v in colours[y, x])
                    canvas.rect(bx, by, w, h, fill=(red, green, blue), css="out", data=data)
        if d == current.filter:
            cx, cy, w, h = grid.cell_box(current.y, current.x)
            canvas.rect(cx, cy, w, h, outline=WINDOW, width=3, css="current")
