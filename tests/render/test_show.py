"""show(): the folder of pictures for a model and an image."""

from __future__ import annotations

import numpy as np
from PIL import Image

from featuremaps.features import default_layers
from featuremaps.models import list_layers, load_model
from featuremaps.render.show import show


def test_show_writes_a_picture_per_layer_and_an_index(tmp_path):
    result = show(load_model("resnet18"), "sample:cat", tmp_path, layers="layer1,layer3", overlay=("layer2", 3),
                  unit=("layer3", 0, 2, 5), max_maps=4)
    assert [row["name"] for row in result.layers] == ["layer1", "layer3"]
    pictures = {}
    for row in result.layers:
        with Image.open(row["picture"]) as picture:
            pictures[row["name"]] = np.asarray(picture.convert("RGB")).astype(float)
    for name, pixels in pictures.items():  # 4 coloured tiles of real maps, not a blank or uniform picture
        colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
        assert colours > 200 and pixels.std() > 20, (name, colours, pixels.std())
    assert pictures["layer1"].shape != pictures["layer3"].shape or \
        np.abs(pictures["layer1"] - pictures["layer3"]).mean() > 5  # different layers, different maps
    assert {p.name for p in result.extra} == {"overlay-layer2-3.png", "unit-layer3-0-2-5.png"}
    html = result.index.read_text()
    assert "overview-page.png" in html and "layer1" in html and "untrained" in html


def test_default_layers_are_the_stages():
    names = [e.name for e in default_layers(list_layers(load_model("resnet18")))]
    assert names == ["conv1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    vgg = default_layers(list_layers(load_model("vgg16")))
    assert len(vgg) == 16 and vgg[0].name == "features.0" and vgg[-1].name == "features.30"
