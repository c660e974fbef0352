"""What the pictures show: the window where the formula says, the layer's numbers, the padding."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from featuremaps import ConvLayer
from featuremaps.illustrate import ConvScene, image_patch, random_grid
from featuremaps.render.animate import render_diagram, render_frames, save_scene
from featuremaps.render.diagram import WINDOW, _number, layout_scene

SVG = "{http://www.w3.org/2000/svg}"


def _issue_scene() -> ConvScene:
    """The issue's example: 7x5 input, 2 channels, 3 filters 3x3, stride 2, padding 1."""
    x = random_grid(7, 5, 2, seed=0)
    return ConvScene.from_layer(ConvLayer(2, "random_int", depth=3, kernel_size=3, stride=2, padding=1), x)


def _window_box(frame: Image.Image, grid) -> tuple[int, int, int, int]:
    """Bounding box of the window-coloured pixels inside one input grid."""
    pixels = np.asarray(frame)
    left, top = int(grid.left), int(grid.top)
    region = pixels[top : top + int(grid.height) + 1, left : left + int(grid.width) + 1]
    ys, xs = np.nonzero((region == WINDOW).all(axis=2))
    return left + xs.min(), top + ys.min(), left + xs.max(), top + ys.max()


@pytest.mark.parametrize(
    "options, size",
    [
        ({"stride": 2, "padding": 1}, (7, 5)),
        ({"stride": (1, 2), "padding": (0, 1, 2, 0), "dilation": (2, 1), "kernel_size": (2, 3)}, (6, 7)),
    ],
)
def test_the_window_in_every_frame_is_where_the_formula_says(options, size):
    x = random_grid(*size, 2, seed=2)
    layer = ConvLayer(2, "random_int", **({"depth": 2, "kernel_size": 3} | options))
    scene = ConvScene.from_layer(layer, x)
    layout = layout_scene(scene)
    frames = list(render_frames(scene, layout=layout))
    assert len(frames) == len(scene) == layer.depth * np.prod(scene.output_shape[1:])
    (sy, sx), (dy, dx), (kh, kw) = layer.stride, layer.dilation, layer.kernel_size
    for index, frame in enumerate(frames):
        step = scene.step(index)
        top, left = step.y * sy, step.x * sx  # the formula, in padded coordinates
        bottom, right = top + dy * (kh - 1), left + dx * (kw - 1)
        for channel in step.channels:
            grid = layout.inputs[channel]
            x0, y0, w, h = grid.span(top, left, bottom, right)
            assert _window_box(frame, grid) == (round(x0), round(y0), round(x0 + w) - 1, round(y0 + h) - 1)


def test_frames_fill_the_maps_one_cell_at_a_time():
    scene = _issue_scene()
    svg_cells = []
    for done in (0, 5, len(scene) - 1):
        from featuremaps.render.diagram import draw_scene
        from featuremaps.render.drawing import SvgCanvas

        layout = layout_scene(scene)
        canvas = SvgCanvas(layout.width, layout.height)
        draw_scene(scene, canvas, layout, step=done)
        root = ET.fromstring(canvas.markup())
        svg_cells.append(sum(1 for e in root.iter(f"{SVG}rect") if e.get("class") == "out"))
    assert svg_cells == [1, 6, len(scene)]


def test_the_numbers_drawn_are_the_layer_output():
    scene = _issue_scene()
    root = ET.fromstring(render_diagram(scene, svg=True))
    maps = scene.layer(scene.input).numpy()
    drawn = {
        (int(e.get("data-d")), int(e.get("data-y")), int(e.get("data-x"))): e.text
        for e in root.iter(f"{SVG}text") if e.get("class") == "out-value"
    }
    assert len(drawn) == maps.size
    for (d, y, x), text in drawn.items():
        assert text == _number(float(maps[d, y, x]))
    equation = next(e.text for e in root.iter(f"{SVG}text") if e.get("class") == "equation")
    first = scene.step(0)
    assert equation.endswith(f"= {_number(first.total)}")
    formula = [e.text for e in root.iter(f"{SVG}text") if e.get("class") == "formula"]
    assert formula == list(scene.formula) and formula[0].endswith("= 4") and formula[1].endswith("= 3")


def test_padding_cells_in_the_drawing_for_asymmetric_padding():
    x = random_grid(4, 5, 1, seed=0)
    scene = ConvScene.from_layer(ConvLayer(1, "random_int", depth=1, padding=(0, 2, 1, 3)), x)
    root = ET.fromstring(render_diagram(scene, svg=True))
    pads = {(int(e.get("data-r")), int(e.get("data-col"))) for e in root.iter(f"{SVG}rect") if e.get("class") == "pad"}
    expected = {(r, c) for r in range(6) for c in range(9) if not (r < 4 and 1 <= c < 6)}
    assert pads == expected


def test_all_channels_and_filters_are_drawn():
    scene = _issue_scene()
    root = ET.fromstring(render_diagram(scene, svg=True))
    weights = {(int(e.get("data-d")), int(e.get("data-c"))) for e in root.iter(f"{SVG}rect")
               if e.get("class") == "weight"}
    assert weights == {(d, c) for d in range(3) for c in range(2)}
    texts = [e.text or "" for e in root.iter(f"{SVG}text")]
    assert {"channel 0", "channel 1"} <= set(texts)
    assert [t for t in texts if re.fullmatch(r"map \d: 4x3", t)] == ["map 0: 4x3", "map 1: 4x3", "map 2: 4x3"]


def test_png_and_svg_diagrams_and_image_scenes(tmp_path):
    scene = _issue_scene()
    assert save_scene(scene, tmp_path / "d.png") == 1 and save_scene(scene, tmp_path / "d.svg") == 1
    with Image.open(tmp_path / "d.png") as png:
        assert png.size == (layout_scene(scene).width, layout_scene(scene).height)
    ET.parse(tmp_path / "d.svg")
    crop = image_patch("sample:cat", 10, 14)
    image_scene = ConvScene.from_layer(ConvLayer(3, "sobel", stride=2), crop, kind="image")
    picture = render_diagram(image_scene)
    assert picture.width > 600
    root = ET.fromstring(render_diagram(image_scene, svg=True))
    assert not [e for e in root.iter(f"{SVG}text") if e.get("class") == "out-value"]  # pixels, not numbers


def test_image_scenes_print_the_pixels_under_the_window():
    scene = ConvScene.from_layer(ConvLayer(3, "sobel", padding=1), image_patch("sample:cat", 6, 8), kind="image")
    root = ET.fromstring(render_diagram(scene, svg=True))
    printed = [e.text for e in root.iter(f"{SVG}text") if e.get("class") == "pixel"]
    from featuremaps.render.animate import diagram_steps

    step = scene.step(diagram_steps(scene)[0])  # the step the diagram draws
    assert printed == [_number(float(v)) for v in step.patch.flatten()]  # channel by channel, row by row


@pytest.mark.parametrize("seed", range(6))
def test_the_equation_adds_up_as_printed(seed):
    from featuremaps.render.diagram import equation

    layer = ConvLayer(3, "random", depth=2, padding=1, bias=[0.123456, -0.3], seed=seed)
    scene = ConvScene.from_layer(layer, image_patch("sample:coffee", 5, 5), kind="image")
    for index in range(0, len(scene), 7):
        text = equation(scene.step(index))
        left, total = text.split(" = ", 1)[1].rsplit(" = ", 1)
        terms = [float(t) for t in left.replace("bias ", "").split(" + ")]
        decimals = max(len(t.split(".")[1]) if "." in t else 0 for t in [*left.replace("bias ", "").split(" + "), total])
        assert abs(sum(terms) - float(total)) < 0.5 * 10 ** -decimals + 1e-12, text
