"""No picture cuts its text: every kind of picture is drawn with long names and long titles, and every piece of
text drawn must lie inside the picture (shortened with an ellipsis or wrapped, never cut by the edge)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import ImageDraw

from featuremaps.images import load_image
from featuremaps.models import list_layers, load_model

LONG = "a_very_long_layer_name_from_a_real_network.stage4.block12.conv_pointwise_expansion"


@pytest.fixture
def texts(monkeypatch):
    """Every text drawn with Pillow: (its box, the picture's size, the text)."""
    drawn: list[tuple[tuple[float, float, float, float], tuple[int, int], str]] = []
    original = ImageDraw.ImageDraw.text

    def record(self, xy, text, *args, **kwargs):
        options = {k: kwargs[k] for k in ("font", "anchor", "spacing", "align", "stroke_width") if k in kwargs}
        drawn.append((self.textbbox(xy, str(text), **options), self.im.size, str(text)))
        return original(self, xy, text, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", record)
    return drawn


def _check(drawn, kind):
    assert drawn, f"{kind}: no text drawn"
    outside = [(text, box, size) for box, size, text in drawn
               if box[0] < -1 or box[1] < -1 or box[2] > size[0] + 1 or box[3] > size[1] + 1]
    assert not outside, f"{kind}: text outside the picture: {outside[:3]}"


def _maps(count=6, size=20):
    return torch.randn(count, size, size, generator=torch.Generator().manual_seed(0))


def test_grids(texts):
    from featuremaps.render.grid import render_grid

    for normalize, clip in (("map", 0.0), ("shared", 1.0)):
        texts.clear()
        render_grid(_maps(), names=[f"{LONG}_{i}" for i in range(6)], title=f"sample:cat through {LONG} " * 3,
                    normalize=normalize, clip=clip, tile_size=48)
        _check(texts, f"grid {normalize}")


def test_overlays_and_receptive_fields(texts):
    from featuremaps.render.overlay import render_overlay, render_receptive_field

    image = load_image("sample:cat")[:, :120, :90]
    layer = next(l for l in list_layers(load_model("tinyvgg"), (3, 120, 90), strict=False) if l.name == "conv2_2")
    render_overlay(image, _maps(1, 26)[0], layer=layer, title=f"{LONG}, channel 7, untrained (random) weights")
    _check(texts, "overlay")
    texts.clear()
    render_receptive_field(image, layer, 25, 0, channel=3, value=0.123456)
    _check(texts, "receptive field")


def test_confusion_and_segmentation(texts):
    from featuremaps.render.confusion import render_confusion
    from featuremaps.render.segmentation import render_segmentation

    names = [f"{LONG[:30]}_{i}" for i in range(5)]
    render_confusion(np.arange(25).reshape(5, 5), names, title=f"held-out accuracy of {LONG} " * 2)
    _check(texts, "confusion")
    texts.clear()
    mask = np.zeros((64, 64), np.int64)
    mask[10:30, 10:30], mask[40:60, 5:60] = 1, 2
    render_segmentation(load_image("sample:cat")[:, :64, :64], mask, ["background", LONG, LONG + "_2"])
    _check(texts, "segmentation")


def test_scene_and_receptive_field_diagrams(texts):
    from featuremaps.conv import ConvLayer
    from featuremaps.illustrate.scene import ConvScene, image_patch, random_grid
    from featuremaps.render.animate import render_diagram
    from featuremaps.render.receptive_diagram import parse_stack, receptive_field_diagram

    for layer, grid, kind in [
        (ConvLayer(2, "random_int", depth=3, stride=2, padding=1, groups=1), random_grid(7, 5, 2), "grid"),
        (ConvLayer(1, "random_int", depth=2, stride=2, padding=1, output_padding=1, transposed=True),
         random_grid(3, 3, 1), "grid"),
        (ConvLayer(3, "sobel", padding=1), image_patch("sample:cat", 6, 8), "image"),
    ]:
        texts.clear()
        render_diagram(ConvScene.from_layer(layer, grid, kind=kind))
        _check(texts, f"scene {kind}{' transposed' if layer.transposed else ''}")
    texts.clear()
    receptive_field_diagram(parse_stack("3,3s2p1,pool2s2,5x3d2"), input_size=(41, 41))
    _check(texts, "receptive-field diagram")


def test_overview_lineage_and_visualization(texts, tmp_path):
    from featuremaps import lineage, render_lineage
    from featuremaps.optvis import channel
    from featuremaps.optvis.optimize import visualize
    from featuremaps.render.show import show
    from featuremaps.render.visualization import render_visualization

    model = load_model("tinyvgg")
    result = show(model, "sample:cat", tmp_path / "show", layers="conv1_1,conv2_2", max_maps=4)
    assert result.index.exists()
    _check(texts, "show (grids and overview)")
    texts.clear()
    render_lineage(lineage(model, "sample:cat", "conv2_2:3"), title=f"{LONG} " * 2)
    _check(texts, "lineage")
    texts.clear()
    render_visualization(visualize(model, [channel("conv2_2", 0), channel("conv2_2", 1)], steps=2, size=32), title=f"{LONG} " * 2)
    _check(texts, "visualization")


def test_visualisations_with_patches_and_the_hierarchy_chart(texts, monkeypatch):
    import matplotlib
    from matplotlib.figure import Figure
    from PIL import Image

    from featuremaps.analysis.hierarchy import Hierarchy, LayerProbe
    from featuremaps.optvis import channel
    from featuremaps.optvis.optimize import visualize
    from featuremaps.render.hierarchy import render_hierarchy
    from featuremaps.render.visualization import render_with_patches

    model = load_model("tinyvgg")
    result = visualize(model, [channel("conv2_2", 0), channel("conv2_2", 1)], steps=2, size=32)
    patches = [[Image.new("RGB", (20, 20), (200, 100, 0))] * 3] * 2
    render_with_patches(result, patches, columns=2, row_labels=[f"{LONG}, RF 14"], title=f"{LONG} " * 2)
    _check(texts, "visualisations with patches")

    outside: list[str] = []
    original = Figure.savefig

    def check_then_save(self, *args, **kwargs):  # matplotlib draws the hierarchy chart: check its texts
        self.canvas.draw()  # legends find their place when drawn
        renderer = self.canvas.get_renderer()
        box = self.bbox
        for text in self.findobj(matplotlib.text.Text):
            if text.get_visible() and text.get_text().strip():
                extent = text.get_window_extent(renderer)
                if extent.x0 < box.x0 - 1 or extent.x1 > box.x1 + 1 or extent.y0 < box.y0 - 1 or extent.y1 > box.y1 + 1:
                    outside.append(text.get_text())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", check_then_save)
    probes = [LayerProbe(f"{LONG[:40]}.{k}", k, 8, 3.0 + 8 * k, 0.2 + 0.2 * k, 0.5 + 0.1 * k, k, k) for k in range(4)]
    results = [Hierarchy(f"builtin:{LONG[:30]}", "trained weights (bundled with featuremaps)", "objects", 1800, 900,
                         0, 0.9, 1 / 9, probes)]
    render_hierarchy(results, title=f"{LONG} " * 2)
    assert not outside, f"hierarchy chart: text outside the figure: {outside[:3]}"
