"""The feature core: the truncated graph and the hooks give the same outputs; compile; gradients; threads."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

from featuremaps.errors import SettingsError
from featuremaps.features import FeatureExtractor, catalogue_for
from featuremaps.models import load_model

SRC = Path(__file__).resolve().parents[2] / "src" / "featuremaps"


def _layers(model: nn.Module, shape: tuple[int, int, int], every: int) -> list[str]:
    """Every ``every``-th layer of the catalogue, plus the first and the last."""
    names = [entry.name for entry in catalogue_for(model, shape)]
    return sorted(set(names[::every]) | {names[0], names[-1]}, key=names.index)


@pytest.mark.parametrize("name, shape, every", [
    ("resnet18", (3, 96, 96), 3),
    ("vgg16", (3, 64, 64), 2),
    ("mobilenet_v3_small", (3, 96, 96), 5),
    ("convnext_tiny", (3, 64, 64), 7),
    ("densenet121", (3, 64, 64), 13),
    ("tinyvgg", (3, 64, 64), 1),
    ("lenet5", (1, 32, 32), 1),
    ("builtin:shapes", (3, 64, 64), 1),
])
def test_graph_and_hooks_give_identical_outputs(name, shape, every):
    model = load_model(name)
    layers = _layers(model, shape, every)
    batch = torch.rand(2, *shape, generator=torch.Generator().manual_seed(1))
    graph = FeatureExtractor(model, layers, input_shape=shape, method="graph")
    hooks = FeatureExtractor(model, layers, input_shape=shape, method="hooks")
    assert graph.method == "graph" and hooks.method == "hooks"
    from_graph, from_hooks = graph(batch), hooks(batch)
    assert list(from_graph) == list(from_hooks) == layers
    for layer in layers:
        torch.testing.assert_close(from_graph[layer], from_hooks[layer], rtol=0, atol=0, msg=layer)


def test_in_place_operations_after_a_captured_layer_do_not_change_it():
    class InPlace(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.bn(self.conv(x))
            view = y.view(y.shape[0], -1)
            view.clamp_(min=0)  # through a view
            y += 1  # operator.iadd
            return torch.relu_(y)

    model = InPlace().eval()
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        expected = model.bn(model.conv(x))
    assert (expected < 0).any()
    maps = FeatureExtractor(model, ["bn"], input_shape=(3, 8, 8), method="graph")(x)
    torch.testing.assert_close(maps["bn"], expected)


def test_the_model_output_and_gradients_for_grad_cam():
    model = load_model("builtin:shapes")
    x = torch.rand(1, 3, 64, 64)
    for method in ("graph", "hooks"):
        extractor = FeatureExtractor(model, ["relu2_2"], method=method)
        maps, logits = extractor.with_output(x, grad=True)
        (gradient,) = torch.autograd.grad(logits[0, 1], maps["relu2_2"])
        assert gradient.shape == maps["relu2_2"].shape and gradient.abs().sum() > 0
        with torch.no_grad():
            torch.testing.assert_close(logits, model(x))


def test_compile_runs_the_truncated_graph_on_the_cpu():
    model = load_model("tinyvgg")
    x = torch.rand(2, 3, 64, 64)
    plain = FeatureExtractor(model, ["relu1_2", "pool2"])(x)
    compiled = FeatureExtractor(torch.compile(model), ["relu1_2", "pool2"])  # a compiled model works too
    assert compiled.compile and compiled.method == "graph"
    result = compiled(x)
    for name in ("relu1_2", "pool2"):
        torch.testing.assert_close(result[name], plain[name], rtol=1e-4, atol=1e-5)


def test_a_model_fx_cannot_trace_falls_back_to_hooks():
    class DataDependent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return y * 2 if float(y.mean()) > 0 else y  # a branch on a value: FX cannot trace it

    model = DataDependent().eval()
    extractor = FeatureExtractor(model, ["conv"], input_shape=(3, 8, 8))
    assert extractor.method == "hooks"
    assert extractor(torch.rand(1, 3, 8, 8))["conv"].shape == (1, 4, 6, 6)
    with pytest.raises(SettingsError, match="torch.fx cannot trace DataDependent"):
        FeatureExtractor(model, ["conv"], input_shape=(3, 8, 8), method="graph")
    with pytest.raises(SettingsError, match="compile needs the graph method|torch.fx cannot trace"):
        FeatureExtractor(model, ["conv"], input_shape=(3, 8, 8), compile=True)


def test_the_model_modes_are_restored():
    model = load_model("resnet18").train()
    model.layer1.eval()
    FeatureExtractor(model, ["layer2"], input_shape=(3, 64, 64))(torch.rand(1, 3, 64, 64))
    assert model.training and model.layer2.training and not model.layer1.training


def test_only_the_hooks_module_registers_hooks():
    """The rule of the feature core: no other module puts hooks on a model."""
    offenders = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("register_forward"):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert offenders and all(o.startswith("features/hooks.py") for o in offenders), offenders
