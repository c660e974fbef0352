"""load_model: built-ins, torchvision, timm, errors and offline weights."""

from __future__ import annotations

import urllib.error

import pytest
import torch

from featuremaps.errors import ModelError
from featuremaps.models import available_models, load_model, model_info


@pytest.mark.parametrize("name, shape, out", [("tinyvgg", (3, 64, 64), 10), ("lenet5", (1, 32, 32), 10),
                                              ("builtin:tinyvgg", (3, 64, 64), 10)])
def test_builtin_models(name, shape, out):
    model = load_model(name)
    assert model_info(model).input_size == shape and not model.training
    assert model(torch.rand(2, *shape)).shape == (2, out)


def test_torchvision_model_by_name_with_num_classes():
    model = load_model("resnet18", num_classes=7)
    assert model.fc.out_features == 7 and model_info(model).source == "torchvision"
    assert model_info(model).input_size == (3, 224, 224) and model_info(model).input.mean is not None


def test_untrained_weights_are_seeded():
    a, b = load_model("tinyvgg", seed=3), load_model("tinyvgg", seed=3)
    assert torch.equal(a.conv1_1.weight, b.conv1_1.weight)
    assert not torch.equal(a.conv1_1.weight, load_model("tinyvgg", seed=4).conv1_1.weight)


def test_segmentation_model_builds_without_downloading_a_backbone(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    model = load_model("fcn_resnet50", num_classes=3)
    assert model.classifier[4].out_channels == 3


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ModelError, match=r"unknown model 'resnet81'; did you mean resnet18.*featuremaps models"):
        load_model("resnet81")


def test_unknown_weights_name_lists_the_choices():
    with pytest.raises(ModelError, match=r"unknown weights 'IMAGENET9K' for resnet18; choose DEFAULT or one of"):
        load_model("resnet18", weights="IMAGENET9K")


def test_offline_download_gives_a_clear_message(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr("torchvision.models._api.load_state_dict_from_url", offline)
    with pytest.raises(ModelError, match=r"cannot download weights ResNet18_Weights.IMAGENET1K_V1 for resnet18 "
                                         r"\(Name or service not known\).*resnet18-f37072fd.pth.*--weights"):
        load_model("resnet18", weights="DEFAULT")


def test_timm_models(require):
    require("timm")
    model = load_model("timm:resnet18", num_classes=5)
    assert model(torch.rand(1, 3, 64, 64)).shape == (1, 5) and model_info(model).source == "timm"
    with pytest.raises(ModelError, match="unknown timm model 'resnet181'; did you mean timm:resnet18"):
        load_model("timm:resnet181")


def test_available_models_lists_all_sources():
    rows = available_models()
    sources = {row["source"] for row in rows}
    names = {row["name"] for row in rows}
    assert {"builtin", "torchvision"} <= sources and {"tinyvgg", "lenet5", "resnet18", "vgg16"} <= names


def test_bad_num_classes():
    with pytest.raises(ModelError, match="num_classes must be an int >= 1; got 0"):
        load_model("tinyvgg", num_classes=0)


def test_timm_weights_without_the_hub_come_from_its_cache_at_once(require, unreachable_hub):
    """Without the network huggingface_hub retries each file for about 25 s (46 s for one model, measured);
    featuremaps asks the Hub once, then loads from the local cache or says where the weights can come from.
    Hermetic: the Hub's address is a closed port on 127.0.0.1 and its cache a temp folder."""
    require("timm")
    import huggingface_hub.constants as hub
    import timm
    from safetensors.torch import save_file

    with pytest.raises(ModelError, match=r"cannot download timm weights for resnet18 \(the Hugging Face Hub cannot be "
                                         r"reached, and they are not in its local cache\).*--weights"):
        load_model("timm:resnet18", weights="DEFAULT")
    assert hub.HF_HUB_OFFLINE is False  # the library's setting is put back

    torch.manual_seed(3)
    cached = timm.create_model("resnet18").state_dict()  # stands for the downloaded weights
    repo = unreachable_hub / "models--timm--resnet18.a1_in1k"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in cached.items()}, str(repo / "snapshots" / commit / "model.safetensors"))
    model = load_model("timm:resnet18", weights="DEFAULT")
    assert model_info(model).weights_label != "untrained (random) weights"
    assert all(torch.equal(value, cached[key]) for key, value in model.state_dict().items())
