"""Caches never answer for a model that changed (issue 23, item 1), and a plain module's unknown input is said."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from featuremaps import FeatureExtractor, load_model, model_info
from featuremaps.features import catalogue_for
from featuremaps.features.info import UnknownInputWarning


def _entry(model: nn.Module, name: str):
    return next(e for e in catalogue_for(model, model_info(model).input_size) if e.name == name)


def test_a_replaced_layer_gets_a_new_catalogue_and_trace():
    model = load_model("tinyvgg", seed=0)
    before = _entry(model, "conv1_1")
    assert before.output_shape[1:] == (62, 62) and before.jump == (1, 1)
    x = torch.rand(1, 3, 64, 64)
    assert FeatureExtractor(model, ["conv1_2"])(x)["conv1_2"].shape[-2:] == (60, 60)  # traces and caches
    model.conv1_1 = nn.Conv2d(3, before.output_shape[0], 3, stride=2)
    after = _entry(model, "conv1_1")
    assert after.output_shape[1:] == (31, 31) and after.jump == (2, 2)
    real = FeatureExtractor(model, ["conv1_2"])(x)["conv1_2"]
    assert real.shape[-2:] == (29, 29) == _entry(model, "conv1_2").output_shape[1:]


def test_a_layer_changed_in_place_gets_a_new_catalogue():
    model = load_model("tinyvgg", seed=0)
    assert _entry(model, "conv1_1").output_shape[1:] == (62, 62)
    model.conv1_1.padding = (1, 1)
    assert _entry(model, "conv1_1").output_shape[1:] == (64, 64)
    x = torch.rand(1, 3, 64, 64)
    assert FeatureExtractor(model, ["conv1_1"])(x)["conv1_1"].shape[-2:] == (64, 64)


def test_an_unchanged_model_keeps_its_cached_catalogue():
    model = load_model("tinyvgg", seed=0)
    first = catalogue_for(model, model_info(model).input_size)
    assert catalogue_for(model, model_info(model).input_size) is first


def test_a_plain_module_says_its_input_is_unknown_once():
    module = torchvision.models.resnet18()
    with pytest.warns(UnknownInputWarning, match="ResNet is a plain nn.Module: featuremaps does not know the input "
                                                 "size and normalisation"):
        info = model_info(module)
    assert info.input.mean is None and info.source == "module"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownInputWarning)
        model_info(module)  # once per model
        model_info(load_model("resnet18"))  # loaded models know theirs
