"""Feature lineage: contributions add up to the unit's value exactly, checked against hand computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from featuremaps import extract, load_model
from featuremaps.analysis.lineage import Lineage, default_stations, lineage
from featuremaps.errors import LayerError, SettingsError
from featuremaps.features.catalogue import list_layers

TOLERANCE = 1e-4


def _randomise_normalisation(model: nn.Module, seed: int = 0) -> nn.Module:
    """Batch norm with non-trivial statistics and shifts, conv biases non-zero: the bias check must work."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                size = module.num_features
                module.running_mean.copy_(torch.randn(size, generator=generator) * 0.3)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(size, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(size, generator=generator) * 0.2)
            elif isinstance(module, nn.Conv2d) and module.bias is not None:
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)
    return model.eval()


def _assert_exact(result: Lineage) -> None:
    expanded = [node for node in result.nodes if node.exact is not None]
    assert expanded, "nothing was expanded"
    for node in expanded:
        scale = max(1.0, abs(node.value))
        assert abs(node.residual) <= TOLERANCE * scale, (node, result.method)
        assert node.exact, node
    assert result.exact
    by_id = {node.id: node for node in result.nodes}
    for node in result.nodes[1:]:  # a child's value is what it gave its parents
        given = sum(edge.contribution for edge in result.edges if edge.child == node.id)
        assert given == pytest.approx(by_id[node.id].value, rel=1e-5, abs=1e-6)


def _strongest_unit(model: nn.Module, image: torch.Tensor, layer: str, channel: int | None = None) -> str:
    """The strongest unit of the map (of the most active map when no channel is given): a unit
    gated off by a ReLU would make the test trivially 0 = 0."""
    maps = extract(model, image, [layer])[layer]
    if channel is None:
        channel = int(maps.mean(dim=(1, 2)).argmax())
    y, x = divmod(int(maps[channel].argmax()), maps.shape[2])
    return f"{layer}:{channel}:{y}:{x}"


@pytest.mark.parametrize("unit", ["layer2:5", "layer3.0.relu:1", "fc:7"])
def test_resnet18_contributions_add_up(unit: str) -> None:
    model = _randomise_normalisation(load_model("resnet18", seed=1))
    image = torch.rand(3, 96, 96)
    if unit == "layer3.0.relu:1":
        unit = _strongest_unit(model, image, unit)
    result = lineage(model, image, unit, levels=3, top=3)
    _assert_exact(result)
    assert result.method.startswith("exact")
    assert result.weights == "untrained (random) weights"
    assert result.root.bias != 0.0  # the shifts really are counted


def test_resnet_block_output_splits_into_skip_and_branch() -> None:
    model = _randomise_normalisation(load_model("resnet18", seed=2))
    image = torch.rand(3, 96, 96)
    result = lineage(model, image, _strongest_unit(model, image, "layer1.1.relu:1"), levels=1, top=16)
    root = result.root
    assert result.stations[-2:] == ["layer1.0.relu:1", "layer1.1.relu"]  # the block input and the branch's ReLU
    assert root.skip is not None and root.branch is not None
    # the skip is the identity: what came through it is exactly the block input's contributions
    skip_children = [(e, n) for e, n in result.children(root) if n.layer == "layer1.0.relu:1"]
    for edge, _ in skip_children:
        assert edge.via_skip == pytest.approx(edge.contribution, rel=1e-5, abs=1e-6)
    branch_children = [(e, n) for e, n in result.children(root) if n.layer == "layer1.1.relu"]
    for edge, _ in branch_children:
        assert edge.via_skip == 0.0
    assert root.skip + root.branch == pytest.approx(root.value, rel=1e-4, abs=1e-5)  # ReLU after the sum, no bias


def test_vgg16_contributions_add_up() -> None:
    model = _randomise_normalisation(load_model("vgg16", seed=3))
    result = lineage(model, torch.rand(3, 64, 64), "features.22:11", levels=2, top=2)
    _assert_exact(result)
    assert result.stations[:2] == ["features.1", "features.4"]


def test_tinyvgg_trained_contributions_add_up() -> None:
    model = load_model("builtin:shapes")
    result = lineage(model, "sample:cat", "relu2_2:3", levels=3, top=3)
    _assert_exact(result)
    assert result.weights == "trained weights (bundled with featuremaps)"
    assert {node.layer for node in result.nodes} == {"relu2_2", "relu2_1", "pool1", "relu1_1"}


def test_tinyresnet_contributions_add_up_to_the_input() -> None:
    model = _randomise_normalisation(load_model("tinyresnet", seed=4))
    image = torch.rand(3, 128, 128)
    result = lineage(model, image, _strongest_unit(model, image, "stage2.0.relu2"), levels=8, top=2)
    _assert_exact(result)
    assert "input" in {node.layer for node in result.nodes}  # followed down to the image's channels
    assert all(node.exact is None for node in result.nodes if node.layer == "input")


def test_builtin_objects_house_unit_adds_up() -> None:
    """The bundled trained TinyResNet, its best house unit on a held-out house: exact over two stages."""
    from featuremaps.data.objects import example_object

    model = load_model("builtin:objects")
    result = lineage(model, example_object("house"), "stage4:59", stations=["stage1", "stage2", "stage3"],
                     levels=2, top=4)
    _assert_exact(result)
    assert result.weights == "trained weights (bundled with featuremaps)"
    assert any(edge.via_skip for edge in result.edges)  # part of it came through residual skips
    assert {node.layer for node in result.nodes} == {"stage4.1.relu2", "stage3", "stage2"}


class _OneConv(nn.Module):
    def __init__(self, conv: nn.Conv2d, norm: nn.Module | None = None) -> None:
        super().__init__()
        self.relu0 = nn.ReLU()
        self.conv = conv
        self.norm = norm if norm is not None else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.norm(self.conv(self.relu0(x))))


def _window_contributions(x: torch.Tensor, weight: torch.Tensor, conv: nn.Conv2d, channel: int, y: int,
                          x_pos: int) -> np.ndarray:
    """sum(window * kernel slice) per input channel, by hand (padding, dilation, stride, groups)."""
    padded = F.pad(x, [conv.padding[1]] * 2 + [conv.padding[0]] * 2,
                   mode="constant" if conv.padding_mode == "zeros" else conv.padding_mode)
    group_size = conv.in_channels // conv.groups
    group = channel // (conv.out_channels // conv.groups)
    out = np.zeros(conv.in_channels)
    for k in range(group_size):
        c_in = group * group_size + k
        for i in range(conv.kernel_size[0]):
            for j in range(conv.kernel_size[1]):
                row = y * conv.stride[0] + i * conv.dilation[0]
                col = x_pos * conv.stride[1] + j * conv.dilation[1]
                out[c_in] += float(padded[0, c_in, row, col]) * float(weight[channel, k, i, j])
    return out


@pytest.mark.parametrize("options", [
    {"padding": 2, "dilation": 2, "groups": 2},
    {"padding": 1, "stride": 2, "padding_mode": "reflect"},
    {"padding": 0, "groups": 2, "bias": True},
])
def test_convolution_unit_is_window_dot_kernel_slice_plus_bias(options: dict) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, **options)
    channel, y, x = 4, 2, 3
    with torch.no_grad():
        conv.bias[channel] = 3.0  # the unit passes the ReLU
    model = _OneConv(conv).eval()
    image = torch.rand(4, 12, 12) - 0.3
    assert model(image[None])[0, channel, y, x] > 0
    result = lineage(model, image, f"relu:{channel}:{y}:{x}", levels=1, top=16)
    by_hand = _window_contributions(torch.relu(image)[None], conv.weight.detach(), conv, channel, y, x)
    found = np.zeros(4)
    for edge, child in result.children(result.root):
        assert child.layer == "relu0"
        found[child.channel] = edge.contribution
    np.testing.assert_allclose(found, by_hand, atol=TOLERANCE)
    assert result.root.bias == pytest.approx(float(conv.bias[channel].detach()), abs=1e-6)
    _assert_exact(result)


def test_batch_norm_is_folded_into_its_convolution() -> None:
    torch.manual_seed(1)
    conv = nn.Conv2d(3, 5, 3, padding=1)
    norm = _randomise_normalisation(nn.Sequential(nn.BatchNorm2d(5)))[0]
    model = _OneConv(conv, norm).eval()
    image = torch.rand(3, 8, 8)
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    scale = scale.detach()
    folded_weight = (conv.weight * scale[:, None, None, None]).detach()
    folded_bias = float(((conv.bias - norm.running_mean) * scale + norm.bias)[2].detach())
    out = model(image[None])[0]
    y, x = int(out[2].argmax()) // 8, int(out[2].argmax()) % 8
    result = lineage(model, image, f"relu:2:{y}:{x}", levels=1, top=16)
    by_hand = _window_contributions(torch.relu(image)[None], folded_weight, conv, 2, y, x)
    found = np.zeros(3)
    for edge, child in result.children(result.root):
        found[child.channel] = edge.contribution
    np.testing.assert_allclose(found, by_hand, atol=TOLERANCE)
    assert result.root.bias == pytest.approx(folded_bias, abs=1e-5)


class _Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(3, 3, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 1, 1))
        self.mix = nn.Conv2d(5, 4, 1)
        self.out = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.mix(torch.cat([self.a(x), self.b(x)], dim=1)))


def test_concatenation_splits_by_source() -> None:
    torch.manual_seed(2)
    model = _Concat().eval()
    result = lineage(model, torch.rand(3, 10, 10), "out:1", levels=2, top=5)
    _assert_exact(result)
    layers = {node.layer for node, in [(n,) for n in result.nodes if n.level == 1]}
    assert layers == {"a.1", "b.2"}


class _Gated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.act1 = nn.SiLU()
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.act2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act2(self.conv2(self.act1(self.conv1(x))))


def test_other_operations_are_labelled_approximate() -> None:
    torch.manual_seed(3)
    result = lineage(_Gated().eval(), torch.rand(3, 8, 8), "act2:0", levels=2, top=4)
    assert "silu" in result.approximate_ops
    assert result.method.startswith("gradient x input")
    assert not result.exact


def test_default_stations_feed_convolutions() -> None:
    stations = default_stations(list_layers(load_model("builtin:shapes")))
    assert stations == ["relu1_1", "pool1", "relu2_1", "pool2"]  # relu1_2 is pooled before the next conv


def test_a_container_target_counts_the_stations_inside_it() -> None:
    model = _randomise_normalisation(load_model("resnet18", seed=5))
    result = lineage(model, torch.rand(3, 64, 64), "layer2:0", levels=1)
    assert result.root.layer == "layer2.1.relu:1"
    assert "layer2.1.relu" in result.stations


def test_model_is_left_as_it_was() -> None:
    model = load_model("builtin:shapes")
    for param in model.parameters():
        param.requires_grad_(False)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lineage(model, "sample:cat", "relu2_2:1", levels=2, top=2)
    assert model.training and all(not p.requires_grad for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(not m._forward_hooks for m in model.modules())


@pytest.mark.parametrize(("unit", "error", "words"), [
    ("relu9:1", LayerError, "not found"),
    ("relu2_2", SettingsError, "LAYER:CHANNEL"),
    ("relu2_2:x", SettingsError, "must be whole numbers; got x"),
    ("relu2_2:32", SettingsError, "out of range"),
    ("relu2_2:1:26:0", SettingsError, "y 26 is out of range"),
    ("fc:1:2:3", SettingsError, "no maps"),
])
def test_bad_units_are_named(unit: str, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        lineage(load_model("builtin:shapes"), "sample:cat", unit)


@pytest.mark.parametrize(("option", "value"), [("levels", 0), ("top", 17), ("max_nodes", 2), ("levels", True)])
def test_bad_numbers_are_refused(option: str, value: object) -> None:
    with pytest.raises(SettingsError, match=option):
        lineage(load_model("builtin:shapes"), "sample:cat", "relu2_2:1", **{option: value})


@pytest.fixture(scope="module")
def imagenet() -> nn.Module:
    return load_model("builtin:imagenet")


@pytest.mark.parametrize("unit", ["blocks.5.0.conv_pw:3", "blocks.3.1:7", "conv_head:10", "classifier:281",
                                  "blocks.1.0.bn1:2:20:30"])
def test_imagenet_lineage_is_exact_through_relu6_depthwise_and_residual_sums(imagenet, unit) -> None:
    result = lineage(imagenet, "sample:cat", unit, levels=2, top=3)
    assert result.method == "exact (piecewise-linear path)" and result.approximate_ops == []
    _assert_exact(result)


def test_a_saturated_relu6_unit_is_exact_its_six_counted_as_a_constant(imagenet) -> None:
    """A ReLU6 unit above 6 outputs the constant 6: no input map contributes to it, and the bias holds it all."""
    maps = extract(imagenet, "sample:cat", ["blocks.1.0.bn1"])["blocks.1.0.bn1"]  # (C, H, W), after its ReLU6
    channel, y, x = (int(v) for v in (maps == 6.0).nonzero()[0])
    result = lineage(imagenet, "sample:cat", f"blocks.1.0.bn1:{channel}:{y}:{x}", levels=1, top=3)
    root = result.root
    assert root.value == 6.0 and result.method == "exact (piecewise-linear path)"
    assert abs(root.bias - 6.0) < TOLERANCE and abs(root.residual) < TOLERANCE


class _Clamped(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 3)
        self.kind = kind
        self.act = nn.Hardtanh(-0.1, 0.1) if kind == "hardtanh" else nn.ReLU6(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        y = y.clamp(-0.05, 0.08) if self.kind == "clamp" else self.act(y)
        return self.conv2(y)


@pytest.mark.parametrize("kind", ["hardtanh", "relu6", "clamp"])
def test_clamps_to_constant_bounds_are_exact(kind: str) -> None:
    torch.manual_seed(3)
    model = _Clamped(kind).eval()
    x = torch.rand(3, 12, 12) * (40.0 if kind == "relu6" else 1.0)  # enough to saturate ReLU6 above 6
    result = lineage(model, x, "conv2:1:4:4", levels=1, top=4, stations=["conv1"] if kind == "clamp" else None)
    assert result.method == "exact (piecewise-linear path)", result.approximate_ops
    _assert_exact(result)


class _Adds(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.conv1, self.relu, self.conv2 = nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3)
        self.shift = nn.Parameter(torch.full((1, 4, 1, 1), 0.3))
        self.norm = nn.BatchNorm2d(4, track_running_stats=False)
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv1(x)
        if self.kind == "constant":
            y = y + 0.5
        elif self.kind == "parameter":
            y = y + self.shift
        else:
            y = self.norm(y)
        return self.conv2(self.relu(y))


@pytest.mark.parametrize("kind, named", [("constant", "add of a constant (no bias accounts for it)"),
                                         ("parameter", "add of a constant (no bias accounts for it)"),
                                         ("batch", "batch_norm on batch statistics")])
def test_a_step_with_an_unaccounted_constant_is_never_called_exact(kind: str, named: str) -> None:
    torch.manual_seed(4)
    model = _Adds(kind).eval()
    result = lineage(model, torch.rand(3, 12, 12), "conv2:0:3:3", levels=1, top=4)
    assert result.method == "gradient x input (approximate)", result.approximate_ops
    assert any(op.startswith(named) for op in result.approximate_ops), result.approximate_ops
    assert not result.exact
