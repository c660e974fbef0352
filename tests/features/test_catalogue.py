"""The layer catalogue against hand-computed strides and receptive fields, and gradient support."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from featuremaps.models import list_layers, load_model


def _table(model, names, input_size=None):
    layers = {layer.name: layer for layer in list_layers(model, input_size)}
    return {name: (layers[name].output_shape, layers[name].jump[0], layers[name].receptive_field[0])
            for name in names}


def test_tinyvgg_by_hand():
    # conv 3x3 adds 2 x jump; a 2x2 pool adds 1 x jump and doubles the jump
    assert _table(load_model("tinyvgg"), ["conv1_1", "conv1_2", "pool1", "conv2_1", "conv2_2", "pool2"]) == {
        "conv1_1": ((10, 62, 62), 1, 3), "conv1_2": ((10, 60, 60), 1, 5), "pool1": ((10, 30, 30), 2, 6),
        "conv2_1": ((10, 28, 28), 2, 10), "conv2_2": ((10, 26, 26), 2, 14), "pool2": ((10, 13, 13), 4, 16),
    }


def test_resnet18_by_hand():
    # conv1 7x7/2: 7; maxpool 3x3/2: 7 + 2*2 = 11; layer1: four 3x3 convs at jump 4: 11 + 4*8 = 43;
    # layer2: 3x3/2 at jump 4 (+8), three 3x3 at jump 8 (+16 each): 99; layer3: +16 + 3*32 = 211; layer4: 435
    assert _table(load_model("resnet18"), ["conv1", "maxpool", "layer1", "layer2", "layer3", "layer4"]) == {
        "conv1": ((64, 112, 112), 2, 7), "maxpool": ((64, 56, 56), 4, 11), "layer1": ((64, 56, 56), 4, 43),
        "layer2": ((128, 28, 28), 8, 99), "layer3": ((256, 14, 14), 16, 211), "layer4": ((512, 7, 7), 32, 435),
    }


def test_vgg16_by_hand():
    expected_rf = [3, 5, 6, 10, 14, 16, 24, 32, 40, 44, 60, 76, 92, 100, 132, 164, 196, 212]
    layers = [l for l in list_layers(load_model("vgg16")) if l.type in ("Conv2d", "MaxPool2d")]
    assert [int(l.receptive_field[0]) for l in layers] == expected_rf
    assert [int(l.jump[0]) for l in layers if l.type == "MaxPool2d"] == [2, 4, 8, 16, 32]
    assert layers[-1].output_shape == (512, 7, 7)


def test_a_reused_module_has_one_entry_per_call():
    layers = {l.name: l for l in list_layers(load_model("resnet18"))}
    first, second = layers["layer1.0.relu"], layers["layer1.0.relu:1"]
    assert (first.call, second.call, first.module, second.module) == (0, 1, "layer1.0.relu", "layer1.0.relu")
    assert first.receptive_field[0] == 19 and second.receptive_field[0] == 27 and second.merged


def test_classifier_layers_see_the_whole_image():
    layers = {l.name: l for l in list_layers(load_model("resnet18"))}
    assert layers["fc"].global_field and layers["fc"].output_shape == (1000,) and layers["fc"].jump is None
    assert layers["avgpool"].global_field


class _Branches(nn.Module):
    """Two paths of different reach, added and concatenated, with a functional pad and pool."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 2, 3, stride=2, padding=1)
        self.wide = nn.Conv2d(2, 2, 5, padding=2, dilation=1)
        self.narrow = nn.Conv2d(2, 2, 1)
        self.head = nn.Conv2d(4, 1, 3, padding=(0, 1))

    def forward(self, x):
        x = self.stem(x)
        x = torch.nn.functional.pad(x, (1, 0, 2, 0))
        x = torch.nn.functional.avg_pool2d(x, 2, stride=1)
        mixed = self.wide(x) + self.narrow(x)
        return self.head(torch.cat([mixed, x], dim=1))


def test_receptive_field_equals_the_gradient_support_through_branches():
    model = _Branches()
    for p in model.parameters():
        nn.init.constant_(p, 0.1)
    layers = {l.name: l for l in list_layers(model, (1, 40, 40))}
    head = layers["head"]
    x = torch.rand(1, 1, 40, 40, requires_grad=True)
    y, xx = 6, 9
    model(x)[0, 0, y, xx].backward()
    rows, cols = torch.nonzero(x.grad[0, 0], as_tuple=True)
    top, left, bottom, right = head.region(y, xx)
    assert (rows.min(), cols.min(), rows.max(), cols.max()) == (max(top, 0), max(left, 0), bottom, right)
    assert head.merged and layers["wide"].receptive_field != layers["narrow"].receptive_field


class _ChannelsLastGated(nn.Module):
    """ConvNeXt-style channels-last pointwise layer and a squeeze-excitation gate."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.mlp = nn.Linear(4, 4)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(4, 4, 1), nn.Sigmoid())
        self.out = nn.Conv2d(4, 4, 3, padding=1)

    def forward(self, x):
        x = self.conv(x)
        x = self.mlp(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = x * self.gate(x)
        return self.out(x)


def test_permutes_keep_the_field_and_gates_are_marked_as_global_context():
    layers = {l.name: l for l in list_layers(_ChannelsLastGated(), (3, 16, 16))}
    assert layers["mlp"].output_shape == (16, 16, 4) and layers["mlp"].receptive_field[0] == 3
    assert layers["mlp"].extra["channels_last"]
    assert layers["gate"].global_field
    assert layers["out"].receptive_field[0] == 5 and layers["out"].global_context


def test_timm_model_catalogue(require):
    require("timm")
    layers = {l.name: l for l in list_layers(load_model("timm:resnet18"))}
    assert layers["layer4"].receptive_field[0] == 435 and layers["layer4"].jump[0] == 32


def test_catalogue_restores_train_mode():
    model = load_model("tinyvgg").train()
    list_layers(model)
    assert all(m.training for m in model.modules())


def test_strict_catalogue_names_the_failing_layer():
    from featuremaps.errors import SettingsError

    with pytest.raises(SettingsError, match=r"tinyvgg cannot run on an input of 3x96x96: layer fc failed "
                                            r"\(RuntimeError: mat1 and mat2"):
        list_layers(load_model("tinyvgg"), (3, 96, 96))
    partial = list_layers(load_model("tinyvgg"), (3, 96, 96), strict=False)
    assert partial.stopped_at[0] == "fc" and partial[-1].name == "flatten"


def test_channel_indexing_keeps_the_receptive_field():
    """torchvision's transform_input (Inception-v3, GoogLeNet with weights) slices x[:, 0]; a spatial
    attention map is a mean over channels: neither loses the spatial grid (issue 15, item 11)."""
    import torchvision

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.gate = nn.Conv2d(1, 2, 3, padding=1)

        def forward(self, x):
            x = torch.cat([x[:, 0].unsqueeze(1) * 0.5 + 0.1, x[:, 1:2], x[:, 2:3]], 1)
            y = self.conv(x)
            return y[:, :2] * torch.sigmoid(self.gate(y.mean(dim=1, keepdim=True)))

    fields = {e.name: (e.receptive_field, e.global_field) for e in list_layers(Attention(), (3, 16, 16))}
    assert fields["conv"] == ((3.0, 3.0), False) and fields["gate"] == ((5.0, 5.0), False)
    googlenet = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False, transform_input=True)
    first = {e.name: e for e in list_layers(googlenet, (3, 224, 224))}
    assert first["conv1"].receptive_field == (7.0, 7.0) and not first["conv1"].global_field
    assert not first["inception5b"].global_field


class _Uneven(nn.Module):
    """Linear layers only (so the gradient support is exactly the receptive field): a strided conv, adaptive
    pooling with a non-integer ratio, transposed convolutions with stride, padding, output padding and
    dilation, a reflect pad, a residual sum and a resize."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(1, 2, 3, stride=2, padding=1)
        self.flat = nn.ConvTranspose2d(2, 2, 3, padding=(0, 1))  # stride 1: one field for every unit
        self.pool = nn.AdaptiveAvgPool2d((7, 9))
        self.up = nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1, output_padding=1)
        self.up3 = nn.ConvTranspose2d(2, 2, (4, 3), stride=(3, 2), padding=(1, 0), dilation=(1, 2))
        self.mix = nn.Conv2d(2, 1, 3)

    def forward(self, x):
        x = self.pool(self.flat(self.down(x)))
        x = self.up3(self.up(x))
        x = torch.nn.functional.pad(x, (2, 1, 1, 2), mode="reflect") + torch.nn.functional.pad(x, (1, 2, 2, 1))
        x = self.mix(x)
        return x + torch.nn.functional.interpolate(x, scale_factor=1.0)


@pytest.mark.parametrize("input_size", [(1, 23, 31), (1, 40, 17)])
def test_uneven_layers_give_each_unit_its_exact_region(input_size):
    model = _Uneven()
    for p in model.parameters():
        nn.init.uniform_(p, 0.5, 1.0)  # positive: no cancellation, every path shows in the gradient
    layers = {l.name: l for l in list_layers(model, input_size)}
    assert not layers["flat"].uneven and layers["pool"].uneven and layers["mix"].uneven
    x = torch.rand(1, *input_size, requires_grad=True)
    for name in ("flat", "pool", "up", "up3", "mix"):
        layer = layers[name]
        _, height, width = layer.output_shape
        for y, xx in {(0, 0), (height // 2, width // 3), (height - 1, width - 1), (1, width - 2), (3, 4), (5, 1)}:
            x.grad = None
            out = {}
            handle = getattr(model, name).register_forward_hook(lambda m, i, o, out=out: out.setdefault("y", o))
            model(x)
            handle.remove()
            out["y"][0, :, y, xx].sum().backward()
            rows, cols = torch.nonzero(x.grad[0, 0], as_tuple=True)
            try:
                top, left, bottom, right = layer.region(y, xx)
            except ValueError as error:  # the dilated stride-2 transposed conv leaves odd columns without input
                assert "sees only padding" in str(error) and len(rows) == 0, (name, y, xx)
                continue
            top, left = max(top, 0), max(left, 0)
            bottom, right = min(bottom, input_size[1] - 1), min(right, input_size[2] - 1)
            assert (rows.min(), cols.min(), rows.max(), cols.max()) == (top, left, bottom, right), (name, y, xx)


def test_adaptive_pooling_uses_pytorchs_bins_vgg16_at_160():
    layers = {l.name: l for l in list_layers(load_model("vgg16"), (3, 160, 160))}
    pool5, avgpool = layers["features.30"], layers["avgpool"]
    assert pool5.output_shape[1:] == (5, 5) and avgpool.output_shape[1:] == (7, 7) and avgpool.uneven
    for unit in range(7):
        first, last = unit * 5 // 7, -(-(unit + 1) * 5 // 7) - 1  # torch: floor(i*in/out) .. ceil((i+1)*in/out)
        top = max(pool5.region(first, 0)[0], 0)
        bottom = min(pool5.region(last, 0)[2], 159)
        assert avgpool.region(unit, 0)[0::2] == (top, bottom)
    # an integer ratio stays one field for all units
    assert not {l.name: l for l in list_layers(load_model("vgg16"))}["avgpool"].uneven


class _Op(nn.Module):
    """One functional step of a random stack (its own module, so the catalogue lists it)."""

    def __init__(self, kind: str, settings: dict, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.kind, self.settings, self.weight = kind, settings, weight

    def forward(self, x):
        if self.kind == "conv":
            return F.conv2d(x, self.weight, **self.settings)
        if self.kind == "transposed":
            return F.conv_transpose2d(x, self.weight, **self.settings)
        if self.kind == "pool":
            return F.avg_pool2d(x, **self.settings)
        if self.kind == "pad":
            return F.pad(x, **self.settings)
        return F.interpolate(x, **self.settings)

    def extra_repr(self) -> str:
        return f"{self.kind} {self.settings}"


def _random_op(rng: np.random.Generator, channels: int) -> _Op:
    def ints(low: int, high: int) -> tuple[int, int]:
        return int(rng.integers(low, high)), int(rng.integers(low, high))

    weight = torch.from_numpy(rng.uniform(0.5, 1.0, (channels, channels, *ints(1, 5))).astype(np.float32))
    kind = str(rng.choice(["conv", "transposed", "pool", "pad", "resize", "resize"]))
    if kind == "conv":
        return _Op(kind, {"stride": ints(1, 4), "padding": ints(0, 3), "dilation": ints(1, 3)}, weight)
    if kind == "transposed":
        stride, dilation = ints(1, 4), ints(1, 3)
        extra = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
        return _Op(kind, {"stride": stride, "padding": ints(0, 6), "dilation": dilation, "output_padding": extra},
                   weight.transpose(0, 1))
    if kind == "pool":
        kernel = ints(1, 4)
        return _Op(kind, {"kernel_size": kernel, "stride": ints(1, 4), "ceil_mode": bool(rng.integers(2)),
                          "padding": (int(rng.integers(0, kernel[0] // 2 + 1)), int(rng.integers(0, kernel[1] // 2 + 1)))})
    if kind == "pad":
        return _Op(kind, {"pad": tuple(int(v) for v in rng.integers(0, 3, 4)),
                          "mode": str(rng.choice(["constant", "reflect", "replicate", "circular"]))})
    mode = str(rng.choice(["nearest", "nearest-exact", "bilinear", "bicubic", "area", "bilinear-antialias"]))
    settings: dict = {"mode": mode.split("-antialias")[0], "antialias": mode.endswith("antialias")}
    if settings["mode"] in ("bilinear", "bicubic"):
        settings["align_corners"] = bool(rng.integers(2))
    if rng.integers(2):
        settings["size"] = ints(3, 30)
    else:
        settings["scale_factor"] = tuple(float(v) for v in rng.choice([0.5, 0.4, 0.75, 1.3, 1.5, 2.0, 2.7, 3.0], 2))
    return _Op("resize", settings)


@pytest.mark.parametrize("seed", range(40))
def test_every_units_pixels_equal_its_gradient_support_on_random_stacks(seed):
    """Random stacks of convolutions (stride, padding, dilation), average pooling (ceil mode), transposed
    convolutions (padding up to above dilation*(kernel-1)), pads of every mode and resizes of every mode
    (size or non-integer scale factors, align_corners both ways, antialias): for units at the corners, the
    middle and random places of every layer, ``pixels`` is the bounding box of the gradient support
    (positive weights: nothing cancels), or the unit is said to read only padding when nothing reaches it."""
    rng = np.random.default_rng(seed)
    size = (int(rng.integers(9, 26)), int(rng.integers(9, 26)))
    x = torch.rand(1, 2, *size)
    ops: list[_Op] = []
    while len(ops) < 4:
        op = _random_op(rng, 2)
        try:
            out = nn.Sequential(*ops, op)(x)
        except (RuntimeError, ValueError):
            continue
        if out.shape[-1] >= 1 and out.shape[-2] >= 1 and max(out.shape[-2:]) <= 64:
            ops.append(op)
    model = nn.Sequential(*ops)
    layers = list_layers(model, (2, *size))
    x.requires_grad_(True)
    checked = 0
    for index, layer in enumerate(layers):
        _, height, width = layer.output_shape
        units = {(0, 0), (height - 1, width - 1), (height // 2, width // 2), (0, width - 1)}
        units |= {(int(rng.integers(height)), int(rng.integers(width))) for _ in range(3)}
        for y, xx in sorted(units):
            x.grad = None
            model[: index + 1](x)[0, :, y, xx].sum().backward()
            rows, cols = torch.nonzero(x.grad[0].abs().sum(0), as_tuple=True)
            if len(rows) == 0:
                with pytest.raises(ValueError, match="sees only padding"):
                    layer.pixels(y, xx)
            else:
                expected = (int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max()))
                assert layer.pixels(y, xx) == expected, (layer.name, model[: index + 1], (y, xx))
            checked += 1
    assert checked >= 4 * 2


def test_pixels_leave_out_what_no_unit_reads_alexnet_at_300():
    # conv1 (11, stride 4, padding 2) gives 74 columns; pool1 (3, stride 2) reads 73 of them: input
    # columns 297-299 are read by no unit of pool1, so by nothing after it
    layers = {l.name: l for l in list_layers(torchvision.models.alexnet(), (3, 300, 300))}
    for name in ("features.2", "features.5", "features.12"):
        last = layers[name].output_shape[-1] - 1
        assert layers[name].pixels(last, last)[2:] == (296, 296)
        assert layers[name].region(last, last)[3] >= 296  # the textbook field: padding included
    assert layers["features.5"].region(16, 16)[3] == 304
