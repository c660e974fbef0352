"""Overlay, receptive field on the image, ranking and the overview page."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from featuremaps.errors import SettingsError
from featuremaps.extract import extract
from featuremaps.models import list_layers, load_model, model_info
from featuremaps.render.overlay import rank_maps, render_overlay, render_receptive_field
from featuremaps.render.overview import describe_layer, render_overview


def test_rank_maps_by_mean_positive_activation():
    maps = torch.zeros(3, 4, 4)
    maps[0] = -5.0  # negative everywhere: nothing passes a ReLU
    maps[1, 0, 0] = 1.0
    maps[2] = 0.5
    assert rank_maps(maps) == [2, 1, 0]


def test_overlay_is_the_image_size_zoomed_and_coloured():
    image = torch.zeros(3, 32, 48)
    feature = torch.zeros(4, 6)
    feature[2, 3] = 1.0
    picture = render_overlay(image, feature, alpha=1.0)
    assert picture.width == 48 * 10 and picture.height > 32 * 10  # zoomed to about 448 px, a colour bar under it
    pixels = np.asarray(picture)
    bar = pixels[32 * 10 + 8 : 32 * 10 + 18, 10:300]  # the colour bar: inferno from black to yellow, left to right
    assert bar[:, 5].sum() < bar[:, -5].sum()
    assert pixels[16 * 10 + 5, 24 * 10 + 5].sum() > pixels[2, 2].sum()  # bright where the map is high
    with pytest.raises(SettingsError, match=r"alpha must be in \[0, 1\]; got 2"):
        render_overlay(image, feature, alpha=2)


def test_receptive_field_box_is_drawn_where_the_catalogue_says():
    model = load_model("tinyvgg")
    layer = {l.name: l for l in list_layers(model)}["conv2_2"]  # RF 14, jump 2, start 0
    image = torch.ones(3, 64, 64)
    picture = np.asarray(render_receptive_field(image, layer, 5, 7))
    zoom = 7
    inside = picture[(5 * 2 + 7) * zoom, (7 * 2 + 7) * zoom]  # centre of rows 10..23, cols 14..27
    outside = picture[2 * zoom, 60 * zoom]
    assert inside.sum() > outside.sum()  # the rest of the image is veiled
    box = (picture == (255, 40, 120)).all(axis=2)
    rows, cols = np.nonzero(box)
    assert (rows.min(), cols.min()) == (10 * zoom, 14 * zoom)
    assert (rows.max() + 1, cols.max() + 1) == (24 * zoom, 28 * zoom)
    with pytest.raises(SettingsError, match=r"unit \(30, 0\) is outside conv2_2's maps of shape \[10, 26, 26\]"):
        render_receptive_field(image, layer, 30, 0)


def test_overview_has_a_row_per_spatial_layer():
    model = load_model("tinyvgg")
    maps = extract(model, "sample:cat", "conv1_1,pool1,pool2,fc")
    layers = {l.name: l for l in list_layers(model)}
    small = render_overview(model_info(model).input.display("sample:cat"), dict(list(maps.items())[:1]), layers)
    full = render_overview(model_info(model).input.display("sample:cat"), maps, layers)
    assert full.height > small.height and full.width >= small.width  # the label column fits the longest label
    assert describe_layer(layers["pool2"]) == "pool2 (MaxPool2d) 10x13x13, stride 4, RF 16"
    assert describe_layer(layers["fc"]).endswith("sees the whole image")


def test_an_overlay_places_each_unit_at_its_receptive_field_centre():
    """Issue 23, item 2: overlays use the feature core's alignment, not a plain resize. A 5x5 conv with
    stride 4 on 64 px: unit (0, 0) sees pixels 0..4, centre 2; a plain resize would put it at 1.6."""
    import torch
    from torch import nn

    from featuremaps.features import list_layers
    from featuremaps.render.overlay import placed_map

    model = nn.Sequential(nn.Conv2d(3, 1, 5, stride=4))
    layer = next(e for e in list_layers(model, (3, 64, 64)) if e.name == "0")
    assert layer.output_shape[-2:] == (15, 15) and layer.start == (0.0, 0.0) and layer.jump == (4.0, 4.0)
    assert tuple(layer.receptive_field) == (5.0, 5.0)  # unit (0, 0): pixels 0..4, centre 2
    hot = torch.zeros(15, 15)
    hot[0, 0] = 1.0
    placed = placed_map(hot, layer, (64, 64))
    assert placed[2, 2] == pytest.approx(1.0) and placed.max() == pytest.approx(1.0)
    assert placed[6, 6] == pytest.approx(0.0)  # the next unit's centre
    hot[0, 0], hot[7, 9] = 0.0, 1.0
    assert placed_map(hot, layer, (64, 64))[2 + 4 * 7, 2 + 4 * 9] == pytest.approx(1.0)
    # a map already at the picture's size (a Grad-CAM) is left as it is
    cam = torch.rand(64, 64)
    assert placed_map(cam, None, (64, 64)) == pytest.approx(cam.numpy(), abs=1e-6)
