"""extract(): exact values, the in-place guard, truncation, clean-up, selection, batches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from featuremaps.errors import LayerError
from featuremaps.extract import extract
from featuremaps.features import FeatureExtractor
from featuremaps.models import load_model, model_info


@pytest.fixture(scope="module")
def resnet():
    return load_model("resnet18")


def test_values_equal_a_manual_forward(resnet):
    x = torch.rand(2, 3, 96, 128)
    maps = extract(resnet, x, ["maxpool", "layer2", "fc"])
    with torch.no_grad():
        stem = resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(x))))
        layer2 = resnet.layer2(resnet.layer1(stem))
        logits = resnet(x)
    torch.testing.assert_close(maps["maxpool"], stem)
    torch.testing.assert_close(maps["layer2"], layer2)
    torch.testing.assert_close(maps["fc"], logits)
    assert list(maps) == ["maxpool", "layer2", "fc"]


def test_in_place_relu_does_not_change_the_captured_bn1(resnet):
    x = torch.rand(3, 64, 64)
    with torch.no_grad():
        expected = F.batch_norm(resnet.conv1(x[None]), resnet.bn1.running_mean, resnet.bn1.running_var,
                                resnet.bn1.weight, resnet.bn1.bias, False, 0.0, resnet.bn1.eps)[0]
    captured = extract(resnet, x, "bn1")["bn1"]
    assert (expected < 0).any()  # the next op, ReLU(inplace=True), would zero these
    torch.testing.assert_close(captured, expected)


@pytest.mark.parametrize("method", ["graph", "hooks"])
def test_the_forward_stops_after_the_deepest_requested_layer(resnet, method):
    fired = []
    leaves = ("layer1.0.conv1", "layer1.1.conv2", "layer2.0.conv1", "layer4.1.conv2", "fc")
    modules = dict(resnet.named_modules())
    extractor = FeatureExtractor(resnet, ["layer1", "conv1"], method=method)  # its catalogue runs everything once
    handles = [modules[name].register_forward_hook(lambda *a, n=name: fired.append(n)) for name in leaves]
    try:
        extractor(torch.rand(1, 3, 64, 64))
    finally:
        for handle in handles:
            handle.remove()
    assert fired == ["layer1.0.conv1", "layer1.1.conv2"]


class _Exploding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.drop = nn.Dropout()
        self.boom = nn.Conv2d(4, 4, 3)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        x = self.drop(self.conv(x))
        if getattr(self, "explode", False):
            raise RuntimeError("boom in forward")
        return self.head(self.boom(x))


def test_hooks_are_removed_and_modes_restored_when_the_forward_raises():
    model = _Exploding().train()
    model.drop.eval()  # a mixed state must come back exactly
    extractor = FeatureExtractor(model, "head", input_shape=(3, 16, 16), method="hooks")
    extractor(torch.rand(1, 3, 16, 16))
    model.explode = True
    with pytest.raises(RuntimeError, match="boom in forward"):
        extractor(torch.rand(1, 3, 16, 16))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert model.training and model.conv.training and not model.drop.training


def test_selection_by_glob_type_all_and_repeated_calls(resnet):
    x = torch.rand(3, 64, 64)
    assert list(extract(resnet, x, "layer*.conv1")) == [f"layer{i}.{j}.conv1" for i in range(1, 5) for j in (0, 1)]
    assert len(extract(resnet, x, "Conv2d")) == 20
    assert "layer1.0.relu:1" in extract(resnet, x, "layer1.0.relu*")
    assert len(extract(load_model("tinyvgg"), torch.rand(3, 64, 64), "all")) == 12


def test_unknown_layer_lists_valid_names(resnet):
    with pytest.raises(LayerError, match=r"layer 'layer5' not found in resnet18 \(did you mean layer4.*Valid: conv1, "
                                         r"bn1, relu, maxpool, layer1.*featuremaps layers resnet18"):
        extract(resnet, torch.rand(3, 64, 64), "layer5")


def test_images_are_preprocessed_and_batches_stack(resnet):
    single = extract(resnet, "sample:cat", "layer1")["layer1"]
    assert single.shape == (64, 56, 56)
    batch = extract(resnet, ["sample:cat", "sample:coffee"], "layer1")["layer1"]
    assert batch.shape == (2, 64, 56, 56)
    torch.testing.assert_close(batch[0], single)
    ready = model_info(resnet).input.tensor("sample:cat")
    torch.testing.assert_close(extract(resnet, ready, "layer1")["layer1"], single)


def test_gray_model_gets_one_channel():
    maps = extract(load_model("lenet5"), "sample:coffee", "conv1")
    assert maps["conv1"].shape == (6, 28, 28)


def test_other_input_sizes_work_up_to_a_fixed_size_classifier():
    tiny = load_model("tinyvgg")
    maps = extract(tiny, torch.rand(3, 96, 96), "pool2")
    assert maps["pool2"].shape == (10, 21, 21)
    with pytest.raises(LayerError, match=r"layer 'fc' is not reached: the forward pass of tinyvgg fails at fc for "
                                         r"this input size \(RuntimeError: mat1 and mat2"):
        extract(tiny, torch.rand(3, 96, 96), "fc")


def test_threads_extracting_from_one_model_do_not_mix_their_hooks(resnet):
    import threading

    images = [torch.rand(3, 64, 64) for _ in range(4)]
    with torch.no_grad():
        expected = [resnet.layer2(resnet.layer1(resnet.maxpool(resnet.relu(resnet.bn1(resnet.conv1(x[None]))))))[0]
                    for x in images]
    results: dict[int, torch.Tensor] = {}
    failures: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for _ in range(5):
                layer = ("layer2", "layer1")[k % 2]
                maps = extract(resnet, images[k], layer)[layer]
                if layer == "layer2":
                    results[k] = maps
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    for k in (0, 2):
        torch.testing.assert_close(results[k], expected[k])
