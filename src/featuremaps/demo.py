"""``featuremaps demo``: a self-contained HTML report that shows what the library does.

Each section is a function that adds to the report; later features add sections here.
Everything is computed locally from bundled data: no network.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path

from featuremaps.conv import ConvLayer
from featuremaps.conv.geometry import output_size_formula
from featuremaps.illustrate import ConvScene, image_patch, random_grid
from featuremaps.illustrate.receptive import receptive_field_diagram
from featuremaps.images import load_image, samples
from featuremaps.render._draw import to_pil
from featuremaps.render.animate import render_diagram, save_scene
from featuremaps.render.grid import render_grid
from featuremaps.render.report import Report

__all__ = ["DEMO_SAMPLE", "build_demo"]

logger = logging.getLogger(__name__)

DEMO_SAMPLE = "cat"
"""The bundled photo the demo follows through every section."""


def _convolution_section(report: Report) -> None:
    image = load_image(f"sample:{DEMO_SAMPLE}")
    info = next(s for s in samples() if s.name == DEMO_SAMPLE)
    section = report.section("One convolution layer: stride, depth and padding")
    section.text(
        "An image is an array of pixels, shape C x H x W. A convolution layer holds D filters (small "
        "matrices); each filter slides over the image and its sums of products form one feature map, "
        "so D filters give D maps: the depth of the output. The stride is how many pixels the filter "
        "jumps between two outputs (larger stride, smaller map); padding adds pixels at the borders "
        "(padding 'same' keeps H' = ceil(H / stride))."
    )
    section.figure(to_pil(image), f"Input: sample:{DEMO_SAMPLE}, {info.title} ({info.licence}), "
                   f"shape {list(image.shape)}", name="input")
    bank = "sobel_x,sobel_y,laplacian"
    rows = []
    for padding in (0, "same"):
        for stride in (1, 2, 4):
            layer = ConvLayer(image.shape[0], bank, stride=stride, padding=padding, padding_mode="reflect")
            maps = layer(image)
            formula_h, formula_w = output_size_formula(layer.geometry, (image.shape[1], image.shape[2]))
            shape = "x".join(str(s) for s in maps.shape)
            rows.append([stride, padding, shape, formula_h, formula_w])
            section.figure(
                render_grid(maps, names=layer.filter_names, clip=1.0, scale=0.5, columns=3,
                            title=f"stride {stride}, padding {padding}"),
                f"Bank {bank}, stride {stride}, padding {padding!r}{' (reflect)' if padding else ''}: maps {shape}",
                name=f"conv-stride{stride}-padding{padding}",
            )
    section.text(
        "The same 3 filters at every setting, drawn at the same scale (half a screen pixel per map "
        "unit): depth stays 3, stride 2 halves each side of the map and stride 4 quarters it, and "
        "padding decides whether the border pixels get a full window (padding 0 loses a pixel at each "
        "edge for a 3x3 filter). Reflect padding is used so the borders show no false edges."
    )
    section.table(["stride", "padding", "maps D x H' x W'", "height", "width"], rows)
    for depth in (4, 8):
        layer = ConvLayer(image.shape[0], "gabor", depth=depth, kernel_size=9, stride=2, padding="same",
                          padding_mode="reflect")
        maps = layer(image)
        section.figure(
            render_grid(maps, names=layer.filter_names, clip=1.0, tile_size=120, title=f"Gabor bank, depth {depth}"),
            f"Depth {depth}: {depth} Gabor filters (orientations 180/{depth} degrees apart) give {depth} maps, "
            f"shape {list(maps.shape)}",
            name=f"depth-{depth}",
        )
    layer = ConvLayer(image.shape[0], "sobel_x", stride=2, padding=1)
    explanation = layer.explain(image, filter=0, y=60, x=110)
    section.text("Every value of a map is a sum of products; explain() opens one up:")
    section.code(str(explanation))


def _animation_section(report: Report) -> None:
    section = report.section("Watch the maps form: stride, depth and padding together")
    section.text(
        "A 2-channel 7x5 grid of integers, padded by 1 on every side (grey cells), and 3 filters of 3x3 "
        "integer weights at stride 2. Each frame computes one output value: the window (orange) covers "
        "the same cells on both channels, each channel's patch is multiplied by that channel's slice of "
        "the filter, the sums are added with the bias, and the value lands in the map. The window jumps "
        "2 cells at a time. One frame per output value per filter: 3 x 4 x 3 = 36 frames. Made with "
        "`featuremaps animate --input-size 7x5 --channels 2 --depth 3 --kernel-size 3 --stride 2 "
        "--padding 1 -o conv.gif`."
    )
    layer = ConvLayer(2, "random_int", depth=3, kernel_size=3, stride=2, padding=1)
    scene = ConvScene.from_layer(layer, random_grid(7, 5, 2, seed=0))
    with tempfile.TemporaryDirectory() as scratch:
        gif = Path(scratch) / "conv.gif"
        save_scene(scene, gif)
        section.figure(gif, "The convolution, step by step (36 frames).", name="conv-animation")
        section.figure(render_diagram(scene), "The whole picture at once: the first window, the windows one "
                       "stride to the right and one stride down (dashed, with the jumps), and all 3 maps.",
                       name="conv-diagram")
    crop = image_patch(f"sample:{DEMO_SAMPLE}", 14, 20, channels=3)
    image_layer = ConvLayer(3, "sobel", stride=2, padding=(1, 1, 0, 1), padding_mode="reflect", dilation=(1, 2))
    section.figure(
        render_diagram(ConvScene.from_layer(image_layer, crop, kind="image")),
        "A real image: the cat shrunk to 14x20, its R, G and B channels, reflect padding that is not the "
        "same on every side (1, 1, 0, 1), dilation 1x2 (the taps skip a column) and stride 2: two Sobel maps.",
        name="conv-image-diagram",
    )
    section.text(
        "Stacked layers see more: each unit of a deeper layer depends on a window of the layer below, "
        "which depends on a larger window of the input. The receptive field grows by (kernel - 1) x jump "
        "per layer, and the jump (cumulative stride) multiplies by each stride."
    )
    section.figure(receptive_field_diagram("3,3s2,3", 15), "Receptive field of conv 3x3 -> conv 3x3 stride 2 "
                   "-> conv 3x3: one unit of the last layer sees 9x9 input pixels; neighbouring units' fields are "
                   "2 pixels apart.", name="receptive-field")


SECTIONS: list[Callable[[Report], None]] = [_convolution_section, _animation_section]


def build_demo(out_dir: str | Path = "demo-output") -> Path:
    """Write the demo report into ``out_dir``; return the path of its ``index.html``."""
    report = Report(
        "featuremaps demo",
        intro="How a convolution layer turns an image into feature maps, computed on this machine.",
    )
    for add_section in SECTIONS:
        logger.info("demo: %s", add_section.__name__)
        add_section(report)
    return report.write(out_dir)
