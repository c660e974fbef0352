"""Skeletons: the architecture without weights gives the same layer catalogue as the real model, costs no
memory, and a model built at the same time in another thread keeps its real weights."""

from __future__ import annotations

import threading

import pytest
import torch

from featuremaps.features.catalogue import list_layers
from featuremaps.features.info import model_info
from featuremaps.models import load_model
from featuremaps.models.skeleton import empty_weights, is_skeleton, load_skeleton, parameter_count


def _rows(model: torch.nn.Module) -> list[tuple]:
    return [(layer.name, layer.type, layer.output_shape, layer.jump, layer.receptive_field, layer.start, layer.spans,
             layer.parameters) for layer in list_layers(model, model_info(model).input_size, strict=False)]


@pytest.mark.parametrize("name", ["tinyvgg", "builtin:objects", "resnet18", "mobilenet_v3_small", "densenet121",
                                  "inception_v3", "swin_t", "regnet_y_400mf"])
def test_a_skeleton_has_the_real_models_catalogue(name):
    skeleton, real = load_skeleton(name), load_model(name)
    assert is_skeleton(skeleton) and not is_skeleton(real)
    assert parameter_count(skeleton) == parameter_count(real)
    assert _rows(skeleton) == _rows(real)


def test_a_skeleton_of_a_huge_model_costs_nothing():
    skeleton = load_skeleton("regnet_y_128gf")  # RegNet computes its widths with tensors while it is built
    assert parameter_count(skeleton) == 644_812_894
    assert all(p.device.type == "meta" for p in skeleton.parameters())


def test_the_switch_is_per_thread():
    inside = threading.Event()
    release = threading.Event()
    built: dict[str, torch.nn.Module] = {}

    def skeleton_builder() -> None:
        with empty_weights():
            inside.set()
            release.wait(30)
            built["skeleton"] = load_model("tinyvgg")

    thread = threading.Thread(target=skeleton_builder)
    thread.start()
    inside.wait(30)
    built["real"] = load_model("tinyvgg")  # while the other thread is inside empty_weights()
    release.set()
    thread.join(30)
    assert is_skeleton(built["skeleton"]) and not is_skeleton(built["real"])
    assert torch.isfinite(built["real"](torch.rand(1, 3, 64, 64))).all()


def test_the_imagenet_skeleton_reads_no_weights_and_warns_nothing(monkeypatch):
    # it used to read the 17 MB file and copy it into meta tensors: a no-op, with one warning per tensor
    import warnings

    from featuremaps.models import imagenet

    monkeypatch.setattr(imagenet, "_weights", lambda: pytest.fail("a skeleton read the weights"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = load_skeleton("builtin:imagenet")
    assert is_skeleton(model)
