"""Feature visualisation: parameterisation, transforms, objectives, and the checks of what it finds."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from featuremaps import load_model, model_info
from featuremaps.batch import ExtractConfig, Store, run_extract
from featuremaps.data.shapes import draw_shape
from featuremaps.errors import LayerError, SettingsError
from featuremaps.optvis import ImageParam, Robustness, channel, direction, logit, unit, visualize


@pytest.fixture(scope="module")
def shapes_model():
    return load_model("builtin:shapes")


def _probabilities(model, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(model(model_info(model).input.standardise(images)), dim=1)


# --- parameterisation and transforms ------------------------------------------------------
@pytest.mark.parametrize("param", ["fourier", "pixel"])
@pytest.mark.parametrize("channels", [1, 3])
def test_image_param_gives_images_in_range_and_is_seeded(param, channels):
    def make(seed: int) -> torch.Tensor:
        return ImageParam(2, channels, (24, 30), param=param, generator=torch.Generator().manual_seed(seed))().detach()

    first, again, other = make(3), make(3), make(4)
    assert first.shape == (2, channels, 24, 30)
    assert 0 < float(first.min()) and float(first.max()) < 1
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert abs(float(first.mean()) - 0.5) < 0.1  # starts grey on average
    flat = ImageParam(1, channels, (24, 30), param=param, start=0.01)().detach()
    assert float(flat.std()) < float(first.std())  # the paper's start: flatter


def test_fourier_spectrum_scale_falls_with_frequency():
    param = ImageParam(1, 3, (32, 32))
    assert float(param.scale[0, 1]) > float(param.scale[0, 8]) > float(param.scale[16, 16])


def test_colour_decorrelation_mixes_channels():
    base = ImageParam(1, 3, (8, 8), param="pixel", decorrelate=False)
    mixed = ImageParam(1, 3, (8, 8), param="pixel", decorrelate=True)
    with torch.no_grad():
        for p in (base, mixed):
            p.values.zero_()
            p.values[0, 0] = 2.0  # only the first free channel
    plain, decorrelated = base().detach(), mixed().detach()
    assert torch.allclose(plain[0, 1], torch.full((8, 8), 0.5))  # plain: the other colours stay grey
    assert not torch.allclose(decorrelated[0, 1], torch.full((8, 8), 0.5))  # decorrelated: all three move


def test_robustness_keeps_the_shape_and_is_the_identity_when_off():
    images = torch.rand(3, 3, 20, 28)
    still = Robustness(pad=0, jitter=0, scale=(1.0, 1.0), degrees=0.0)(images, torch.Generator().manual_seed(0))
    assert torch.allclose(still, images, atol=1e-5)
    moved = Robustness()(images, torch.Generator().manual_seed(0))
    assert moved.shape == images.shape and not torch.allclose(moved, images, atol=1e-2)
    assert torch.allclose(moved[..., 0, 0], torch.full((3, 3), 0.5), atol=0.2)  # grey border comes in


# --- objectives ---------------------------------------------------------------------------
def test_objective_values():
    maps = torch.arange(2 * 3 * 3, dtype=torch.float32).view(2, 3, 3)
    assert float(channel("l", 1).value(maps)) == pytest.approx(float(maps[1].mean()))
    assert float(unit("l", 1).value(maps)) == float(maps[1, 1, 1])
    assert float(unit("l", 0, 0, 2).value(maps)) == float(maps[0, 0, 2])
    assert float((-channel("l", 1)).value(maps)) == pytest.approx(-float(maps[1].mean()))
    weighted = direction("l", {0: 2.0, 1: -0.5}).value(maps)
    assert float(weighted) == pytest.approx(2 * float(maps[0].mean()) - 0.5 * float(maps[1].mean()))
    assert float(logit(2).value(torch.tensor([0.1, 0.2, 0.7]))) == pytest.approx(0.7)
    assert (-channel("conv", 3)).label == "-conv:3"


@pytest.mark.parametrize("make, message", [
    (lambda: channel("l", -1), "channel must be an int >= 0"),
    (lambda: unit("l", 0, 3), "both y and x"),
    (lambda: direction("l", {}), "at least one"),
    (lambda: direction("l", {0: float("nan")}), "finite"),
    (lambda: channel("", 0), "layer must be a layer name"),
])
def test_objective_arguments_are_checked(make, message):
    with pytest.raises(SettingsError, match=message):
        make()


def test_visualize_refuses_bad_layers_channels_and_settings(shapes_model):
    with pytest.raises(LayerError, match="'nolayer' not found in builtin:shapes.*conv1_1"):
        visualize(shapes_model, channel("nolayer", 0), steps=1)
    with pytest.raises(SettingsError, match="index 99 is out of range; conv2_2 has 32 maps"):
        visualize(shapes_model, channel("conv2_2", 99), steps=1)
    with pytest.raises(SettingsError, match="index 7 is out of range; output has 4 classes"):
        visualize(shapes_model, logit(7), steps=1)
    with pytest.raises(SettingsError, match="no spatial maps"):
        visualize(shapes_model, unit("fc", 0), steps=1)
    with pytest.raises(SettingsError, match="steps must be"):
        visualize(shapes_model, channel("conv2_2", 0), steps=0)
    with pytest.raises(SettingsError, match="size must be"):
        visualize(shapes_model, channel("conv2_2", 0), size=4)
    with pytest.raises(SettingsError, match="objectives must be"):
        visualize(shapes_model, [])


# --- what it finds ------------------------------------------------------------------------
def test_visualize_is_reproducible_and_leaves_the_model_alone(shapes_model):
    before = {k: v.clone() for k, v in shapes_model.state_dict().items()}
    first = visualize(shapes_model, [channel("conv1_2", 0), unit("conv2_1", 1)], steps=6, seed=5)
    again = visualize(shapes_model, [channel("conv1_2", 0), unit("conv2_1", 1)], steps=6, seed=5)
    assert torch.equal(first.images, again.images)
    assert first.images.shape == (2, 3, 64, 64)
    assert all(torch.equal(v, shapes_model.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in shapes_model.parameters())
    assert first.history.shape == (6, 2) and first.trained
    assert first.to_dict()["images"][1]["label"] == "conv2_1:1 @ centre"


def test_negative_objective_lowers_the_channel(shapes_model):
    up = visualize(shapes_model, channel("conv2_2", 3), steps=24)
    down = visualize(shapes_model, -channel("conv2_2", 3), steps=24)
    up_mean, down_mean = float(up.values[0]), -float(down.values[0])  # down's objective is minus the mean
    start = float(up.history[0, 0])
    assert up_mean > start > down_mean


def test_an_objective_that_cannot_move_is_said():
    """Issue 22, item 8: the negative of a unit after a ReLU that is 0 stays 0; the result says so."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    with torch.no_grad():
        model[0].bias[2] = -100.0  # map 2 is below 0 everywhere: after the ReLU, 0 at every position
    found = visualize(model, [-unit("1", 2), channel("0", 0)], steps=8, size=32)
    assert found.stuck() == [True, False]
    assert "cannot go below 0 (after a ReLU)" in found.stuck_reason(0) and found.stuck_reason(1) == ""
    entries = found.to_dict()["images"]
    assert entries[0]["moved"] is False and entries[1]["moved"] is True and "did not move" in entries[0]["note"]
    assert found.render().size[1] > visualize(model, [channel("0", 0)] * 2, steps=2, size=32).render().size[1]


def test_class_logit_visualisations_are_classified_as_their_class(shapes_model):
    """The check of the issue: each class's visualisation is that class with probability >= 0.9."""
    result = visualize(shapes_model, [logit(i) for i in range(4)], steps=48)
    probabilities = _probabilities(shapes_model, result.images)
    assert [o.name for o in result.objectives] == ["circle", "square", "triangle", "star"]
    assert probabilities.argmax(dim=1).tolist() == [0, 1, 2, 3]
    assert float(probabilities.diagonal().min()) >= 0.9


def test_visualisations_beat_the_strongest_real_image_of_an_extraction_store(shapes_model, tmp_path):
    """Each channel's visualisation excites it more than any of 48 real images of the store."""
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(48):
        Image.fromarray(draw_shape(seed=99, index=index).image).save(folder / f"{index:03d}.png")
    config = ExtractConfig(model="builtin:shapes", weights="DEFAULT", layers=("relu2_2",), pool="avg",
                           batch_size=16, top_k=2)
    run_extract(folder, tmp_path / "store", config)
    vectors = np.asarray(Store(tmp_path / "store").features("relu2_2").column("vector").to_pylist())
    strongest = vectors.max(axis=0)  # (32,) the best real image's map mean, per channel
    channels = [int(c) for c in np.argsort(strongest)[-6:]]  # channels that real images do excite
    result = visualize(shapes_model, [channel("relu2_2", c) for c in channels], steps=64)
    ratio = result.values.numpy() / strongest[channels]
    assert (ratio > 1).all(), dict(zip(channels, ratio.round(2)))


def test_visualize_through_the_cli(run_cli, tmp_path):
    out = tmp_path / "vis.png"
    done = run_cli("visualize", "--model", "builtin:shapes", "--classes", "circle,star", "--steps", "8",
                   "-o", str(out), "--save", str(tmp_path / "vis.npy"), "--json")
    assert done.returncode == 0, done.stderr
    import json

    data = json.loads(done.stdout)
    assert [i["label"] for i in data["images"]] == ["logit 0 circle", "logit 3 star"]
    assert data["weights"] == "trained weights (bundled with featuremaps)"
    assert Image.open(out).size[0] >= 300
    assert np.load(tmp_path / "vis.npy").shape == (2, 3, 64, 64)
    bad = run_cli("visualize", "--model", "builtin:shapes", "--layer", "conv2_2", "--channels", "5-2",
                  "-o", str(out))
    assert bad.returncode == 2 and "runs backwards" in bad.stderr and "Traceback" not in bad.stderr
    neither = run_cli("visualize", "--model", "builtin:shapes", "-o", str(out))
    assert neither.returncode == 2 and "exactly one of --channels" in neither.stderr


def test_untrained_weights_are_said_in_the_picture_and_json():
    model = load_model("tinyvgg")
    result = visualize(model, channel("conv1_1", 0), steps=2)
    assert result.weights == "untrained (random) weights" and not result.trained
    assert result.to_dict()["trained"] is False


def test_microscope_shows_each_channels_visualisation(tmp_path):
    import json
    import re

    from featuremaps.batch.microscope import PATCH, build_microscope

    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(8):
        Image.fromarray(draw_shape(seed=5, index=index).image).save(folder / f"{index}.png")
    run_extract(folder, tmp_path / "store", ExtractConfig(model="builtin:shapes", weights="DEFAULT",
                                                          layers=("relu2_2",), batch_size=8, top_k=2))
    stages = []
    site = build_microscope(tmp_path / "store", tmp_path / "site", visualize=True, vis_steps=3,
                            progress=lambda stage, done, total: stages.append(stage)).parent
    page = (site / "relu2_2" / "index.html").read_text()
    data = json.loads(re.search(r"id='data'>(.*?)</script>", page, re.S).group(1))
    assert data["weights"] == "trained weights (bundled with featuremaps)"
    assert [c["vis"] for c in data["channels"][:2]] == [["vis-0.jpg", 0, 0], ["vis-0.jpg", 0, PATCH]]
    with Image.open(site / "relu2_2" / "vis-0.jpg") as sprite:
        assert sprite.size == (PATCH, 32 * PATCH)
    assert {"images", "visualize"} <= set(stages)


@pytest.fixture(scope="module")
def objects_model():
    return load_model("builtin:objects")


def test_objects_class_logits_are_classified_as_their_class(objects_model):
    # 64 steps: at 48 the circle reached 0.87 on one CPU and 0.9+ on another (float sums differ by machine)
    result = visualize(objects_model, [logit(i) for i in range(9)], steps=64)
    probabilities = _probabilities(objects_model, result.images)
    assert probabilities.argmax(dim=1).tolist() == list(range(9))
    assert float(probabilities.diagonal().min()) >= 0.9, probabilities.diagonal()


def test_both_parameterisations_reach_the_strongest_real_image(objects_model):
    """On builtin:objects' stage2: within 32 steps the decorrelated Fourier image reaches, for each of the 4
    channels real images excite most, the mean of the strongest of 120 real images. Which of Fourier and
    pixels gets there first varies with the channels and the batch: benchmarks/visualize_bench.py reports
    both (16 channels, 256 steps: Fourier first on 14 of 16, a median 7.5 steps against 8.5)."""
    from featuremaps.data.datasets import objects_dataset
    from featuremaps.features import FeatureExtractor

    info = model_info(objects_model)
    real = info.input.normalise(objects_dataset(120, seed=4242, model_input=info.input).images)
    with torch.no_grad():
        strongest = FeatureExtractor(objects_model, ["stage2"])(real)["stage2"].mean(dim=(2, 3)).max(dim=0).values
    channels = [int(c) for c in strongest.argsort(descending=True)[:4]]
    fourier = visualize(objects_model, [channel("stage2", c) for c in channels], steps=32)
    assert (fourier.steps_to_reach(strongest[channels]) > 0).all()


@pytest.mark.slow
def test_imagenet_class_visualisations_are_classified_as_their_own_class():
    """Images optimised for tabby, espresso, tripod and goldfish: builtin:imagenet (trained on photos) names each
    one as the class it was optimised for."""
    model = load_model("builtin:imagenet")
    info = model_info(model)
    names = list(info.class_names or [])
    wanted = ["tabby", "espresso", "tripod", "goldfish"]
    found = visualize(model, [logit(names.index(name)) for name in wanted], steps=64, size=128, batch_size=4)
    assert [o.label for o in found.objectives] == [f"logit {names.index(n)} {n}" for n in wanted]
    with torch.no_grad():
        scores = model(info.input.standardise(found.images)).softmax(dim=1)
    assert [names[int(i)] for i in scores.argmax(dim=1)] == wanted
    assert found.weights == "trained on ImageNet-1k"
