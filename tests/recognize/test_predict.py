"""The bundled builtin:shapes model: accuracy on a fresh seed, robustness, predictions and CAM."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from featuremaps.data.datasets import shapes_dataset
from featuremaps.errors import SettingsError
from featuremaps.models import load_model, model_info
from featuremaps.recognize.evaluate import evaluate
from featuremaps.recognize.predict import class_activation_map, default_cam_layer, predict


@pytest.fixture(scope="module")
def shapes_model():
    return load_model("builtin:shapes")


def _star(size: int, colour, background, centre=None, radius=None) -> Image.Image:
    image = Image.new("RGB", (size, size), background)
    cx, cy = centre or (size / 2, size / 2)
    r = radius or size * 0.35
    points = [(cx + (r if k % 2 == 0 else r * 0.45) * math.cos(-math.pi / 2 + k * math.pi / 5),
               cy + (r if k % 2 == 0 else r * 0.45) * math.sin(-math.pi / 2 + k * math.pi / 5)) for k in range(10)]
    ImageDraw.Draw(image).polygon(points, fill=colour)
    return image


def test_bundled_model_reaches_97_percent_on_a_fresh_seed(shapes_model):
    data = shapes_dataset(800, seed=424242)  # a seed the model was never trained or validated on
    scores = evaluate(shapes_model, data)
    assert scores.accuracy >= 0.97, scores.to_dict()
    assert min(scores.recall) >= 0.9


def test_bundled_model_is_small_and_works_as_a_model_name(shapes_model):
    from featuremaps.models.registry import BUILTIN_MODELS

    weights = BUILTIN_MODELS["shapes"].weights_file / "model.safetensors"
    assert weights.stat().st_size < 5 * 1024 * 1024
    assert model_info(shapes_model).class_names == ("circle", "square", "triangle", "star")
    assert model_info(shapes_model).name == "builtin:shapes"


def test_a_red_star_on_white_at_128_pixels(shapes_model, tmp_path):
    path = tmp_path / "red_star.png"
    _star(128, (220, 20, 20), (255, 255, 255)).save(path)
    best = predict(shapes_model, [str(path)], top_k=4)[0]
    assert best.labels[0][0] == "star" and best.labels[0][1] > 0.8
    assert abs(sum(p for _, p in best.labels) - 1.0) < 1e-4 and len(best.labels) == 4


@pytest.mark.parametrize("size, colour, background", [(48, (0, 0, 0), (250, 250, 250)),
                                                      (200, (255, 220, 0), (20, 20, 90)),
                                                      (96, (30, 160, 60), (200, 200, 200))])
def test_stars_of_other_sizes_and_colours(shapes_model, size, colour, background):
    image = np.asarray(_star(size, colour, background))
    assert predict(shapes_model, [image])[0].labels[0][0] == "star"


def test_class_activation_map_points_at_the_shape(shapes_model):
    image = np.asarray(_star(64, (20, 20, 220), (255, 255, 255), centre=(44, 20), radius=14))
    cam, layer, index = class_activation_map(shapes_model, image)
    assert layer == default_cam_layer(shapes_model) and index == 3
    assert cam.ndim == 2 and float(cam.max()) == pytest.approx(1.0)
    rows, cols = cam.shape
    weight = cam / cam.sum()
    centre_y = float((weight.sum(dim=1) * torch.arange(rows)).sum()) / rows
    centre_x = float((weight.sum(dim=0) * torch.arange(cols)).sum()) / cols
    assert centre_x > 0.5 and centre_y < 0.5  # the star is top-right
    # on the input's pixels, units at their receptive field centres: the CAM's peak lies on the star
    assert cam.shape == (64, 64)
    peak_y, peak_x = divmod(int(cam.argmax()), 64)
    assert abs(peak_y - 20) <= 14 and abs(peak_x - 44) <= 14, (peak_y, peak_x)
    with pytest.raises(SettingsError, match=r"class_index must be in 0\.\.3; got 7"):
        class_activation_map(shapes_model, image, class_index=7)


def test_top_k_must_be_positive(shapes_model):
    with pytest.raises(SettingsError, match="top_k must be an int >= 1; got 0"):
        predict(shapes_model, ["sample:cat"], top_k=0)


def test_recognize_decodes_each_image_once_and_runs_one_forward_pass_per_batch(monkeypatch):
    from featuremaps.features.inputs import ModelInput
    from featuremaps.recognize import recognize

    model = load_model("tinyvgg")  # no familiarity statistics: the classifier is the only model that runs
    images = [_star(64, (220, 20, 20), (255, 255, 255)), _star(80, (0, 0, 0), (200, 200, 200)),
              _star(64, (20, 20, 220), (250, 250, 250), centre=(20, 20), radius=15)]
    prepared = []
    original = ModelInput.prepare
    monkeypatch.setattr(ModelInput, "prepare", lambda self, image: prepared.append(1) or original(self, image))
    calls = []
    handle = model.register_forward_hook(lambda *args: calls.append(1))
    found = recognize(model, images, top_k=2, batch_size=3)
    handle.remove()
    assert len(prepared) == 3 and len(calls) == 1
    # the batch's rows are independent: each equals the image recognised alone
    for image, item in zip(images, found):
        alone = recognize(model, [image], top_k=2)[0]
        assert [label for label, _ in item.prediction.labels] == [label for label, _ in alone.prediction.labels]
        assert item.cam is not None and alone.cam is not None and item.cam.shape == (64, 64)
        assert torch.allclose(item.cam, alone.cam, atol=1e-4) and float(item.cam.max()) == pytest.approx(1.0)
        assert item.cam_class == item.prediction.class_index and item.cam_layer == default_cam_layer(model)
    picture = found[0].overlay()
    assert picture.size[0] > 64 and "untrained" in found[0].title()
    # predict is recognize without the map
    assert [p.labels for p in predict(model, images, top_k=2)] == [item.prediction.labels for item in found]
    classes = len(model_info(model).class_names or []) or 10
    with pytest.raises(SettingsError, match=f"cam_class must be in 0..{classes - 1}; got 99"):
        recognize(model, images[:1], cam_class=99)
