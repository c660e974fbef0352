"""ConvLayer against torch and an independent loop, explain(), and its error messages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

from featuremaps import ConvLayer, SettingsError, conv2d
from featuremaps.conv.geometry import Padding

_NUMPY_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _naive_conv(x, weight, bias, stride, padding: Padding, mode, dilation, groups):
    """Sum of products by explicit loops: the definition, independent of torch."""
    x, weight = x.double().numpy(), weight.double().numpy()
    padded = np.pad(x, ((0, 0), (padding.top, padding.bottom), (padding.left, padding.right)), _NUMPY_MODES[mode])
    depth, per_group, kh, kw = weight.shape
    (sy, sx), (dy, dx) = stride, dilation
    out_h = (padded.shape[1] - dy * (kh - 1) - 1) // sy + 1
    out_w = (padded.shape[2] - dx * (kw - 1) - 1) // sx + 1
    out = np.zeros((depth, out_h, out_w))
    for d in range(depth):
        group = d // (depth // groups)
        channels = padded[group * per_group : (group + 1) * per_group]
        for i in range(out_h):
            for j in range(out_w):
                window = channels[:, i * sy : i * sy + dy * (kh - 1) + 1 : dy, j * sx : j * sx + dx * (kw - 1) + 1 : dx]
                out[d, i, j] = (window * weight[d]).sum() + (bias[d] if bias is not None else 0.0)
    return torch.from_numpy(out)


@dataclass
class Case:
    """One random convolution: settings, filters, bias and input."""

    options: dict
    padding: Padding
    weight: torch.Tensor
    bias: torch.Tensor | None
    x: torch.Tensor

    def layer(self, **extra) -> ConvLayer:
        return ConvLayer(self.x.shape[0], self.weight, bias=self.bias, **self.options, **extra)


@st.composite
def conv_cases(draw) -> Case:
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    channels = groups * draw(st.integers(1, 2))
    depth = groups * draw(st.integers(1, 3))
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = Padding(*(draw(st.integers(0, 2)) for _ in range(4)))
    size = (draw(st.integers(3, 11)), draw(st.integers(3, 11)))
    extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    assume(extent[0] <= size[0] + padding.height and extent[1] <= size[1] + padding.width)
    options = {
        "stride": (draw(st.integers(1, 3)), draw(st.integers(1, 3))),
        "padding": (padding.top, padding.bottom, padding.left, padding.right),
        "padding_mode": draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"])),
        "dilation": dilation,
        "groups": groups,
    }
    generator = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    weight = torch.randn(depth, channels // groups, *kernel, generator=generator)
    bias = torch.randn(depth, generator=generator) if draw(st.booleans()) else None
    return Case(options, padding, weight, bias, torch.rand(channels, *size, generator=generator))


@given(case=conv_cases())
def test_layer_equals_conv2d_on_the_padded_input_and_a_naive_loop(case):
    layer = case.layer()
    maps = layer(case.x)
    options = case.options
    torch_mode = "constant" if options["padding_mode"] == "zeros" else options["padding_mode"]
    reference = F.conv2d(
        F.pad(case.x[None], case.padding.for_torch(), mode=torch_mode), case.weight, case.bias,
        stride=options["stride"], dilation=options["dilation"], groups=options["groups"],
    )[0]
    torch.testing.assert_close(maps, reference)
    naive = _naive_conv(case.x, case.weight, case.bias, options["stride"], case.padding, options["padding_mode"],
                        options["dilation"], options["groups"])
    torch.testing.assert_close(maps.double(), naive, atol=1e-5, rtol=1e-5)
    assert layer.output_shape(case.x.shape) == tuple(maps.shape)
    assert layer.depth == case.weight.shape[0] == maps.shape[0]


@given(case=conv_cases(), data=st.data())
def test_explain_equals_the_map_value(case, data):
    layer = case.layer(relu=data.draw(st.booleans()))
    x, size, channels = case.x, case.x.shape[1:], case.x.shape[0]
    maps = layer(x)
    depth, kernel = layer.depth, layer.kernel_size
    groups = layer.groups
    d = data.draw(st.integers(0, depth - 1))
    y = data.draw(st.integers(0, maps.shape[1] - 1))
    xx = data.draw(st.integers(0, maps.shape[2] - 1))
    step = layer.explain(x, filter=d, y=y, x=xx)
    assert step.value == float(maps[d, y, xx])
    assert step.output == pytest.approx(step.value, abs=1e-5)
    assert step.total == pytest.approx(float(step.products.double().sum()) + step.bias, abs=1e-9)
    assert step.patch.shape == step.weights.shape == (channels // groups, *kernel)
    # every in-image tap holds the input pixel; padding taps sit outside the image
    for i, row in enumerate(step.rows):
        for j, col in enumerate(step.cols):
            inside = 0 <= row < size[0] and 0 <= col < size[1]
            assert bool(step.in_padding[i, j]) == (not inside)
            if inside:
                torch.testing.assert_close(step.patch[:, i, j], x[list(step.channels), row, col])


def test_explain_by_hand():
    x = torch.arange(16.0).reshape(1, 4, 4)
    layer = ConvLayer(1, np.ones((1, 1, 2, 2)), stride=2, padding=(1, 0, 1, 0), bias=0.5)
    step = layer.explain(x, filter=0, y=0, x=1)
    assert step.rows == (-1, 0) and step.cols == (1, 2)
    assert step.patch.tolist() == [[[0.0, 0.0], [1.0, 2.0]]]
    assert step.in_padding.tolist() == [[True, True], [False, False]]
    assert step.total == 3.5 == step.value
    assert "sum of 4 products 3 + bias 0.5 = 3.5" in str(step)


def test_batch_and_single_image_agree():
    layer = ConvLayer(3, "sobel", stride=2, padding="same")
    batch = torch.rand(4, 3, 17, 12)
    maps = layer(batch)
    assert maps.shape == (4, 2, 9, 6)
    torch.testing.assert_close(maps[2], layer(batch[2]))


def test_same_padding_at_stride_one_matches_torch_same():
    weight = torch.randn(2, 3, 4, 2)
    x = torch.rand(3, 9, 8)
    layer = ConvLayer(3, weight, padding="same")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        expected = F.conv2d(x[None], weight, padding="same")[0]
    torch.testing.assert_close(layer(x), expected)


def test_from_module_copies_a_torch_conv():
    conv = torch.nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 1), dilation=(1, 2), groups=2,
                           padding_mode="reflect")
    layer = ConvLayer.from_module(conv)
    x = torch.rand(2, 4, 10, 9)
    torch.testing.assert_close(layer(x), conv(x).detach())


def test_functional_conv2d_matches_the_layer():
    weight = torch.randn(3, 1, 3, 3)
    x = torch.rand(2, 1, 8, 8)
    layer = ConvLayer(1, weight, stride=2, padding=(0, 1, 0, 1), padding_mode="replicate")
    torch.testing.assert_close(conv2d(x, weight, stride=2, padding=(0, 1, 0, 1), padding_mode="replicate"), layer(x))


def test_relu_and_bias():
    layer = ConvLayer(1, np.ones((2, 1, 1, 1)), bias=[-0.5, 0.25], relu=True)
    x = torch.tensor([[[0.2, 0.8]]])
    torch.testing.assert_close(layer(x), torch.tensor([[[0.0, 0.3]], [[0.45, 1.05]]]))


def test_bank_filters_apply_to_the_channel_mean():
    rgb = torch.rand(3, 12, 12)
    gray = rgb.mean(dim=0, keepdim=True)
    torch.testing.assert_close(ConvLayer(3, "classic")(rgb), ConvLayer(1, "classic")(gray))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stride": 0}, "stride must be an int >= 1 or a pair of them; got 0"),
        ({"dilation": (1, 0)}, r"dilation must be an int >= 1 or a pair of them; got \(1, 0\)"),
        ({"padding": -2}, "padding must not be negative; got -2"),
        ({"groups": 2}, "in_channels 3 is not divisible by groups 2"),
        ({"groups": 0}, "groups must be an int >= 1; got 0"),
        ({"depth": 0}, "depth must be an int >= 1; got 0"),
        ({"padding_mode": "mirror"}, "padding_mode must be one of zeros, reflect, replicate, circular; got 'mirror'"),
        ({"filters": "sobl"}, "unknown filter bank 'sobl'; choose from sobel_x, sobel_y"),
        ({"filters": np.zeros((2, 2, 3, 3))}, r"dimension 1 must be in_channels / groups = 3 / 1 = 3; got 2"),
        ({"filters": np.zeros((2, 3, 3))[None, None]}, r"must have shape \(D, C/groups, kh, kw\)"),
        ({"bias": [1.0, 2.0]}, r"bias must be one number or one per filter \(8\); got 2 values"),
    ],
)
def test_bad_settings_name_the_parameter(kwargs, message):
    options = {"filters": "random"} | kwargs
    filters = options.pop("filters")
    with pytest.raises(SettingsError, match=message):
        ConvLayer(3, filters, **options)


def test_kernel_larger_than_padded_input_at_call_time():
    layer = ConvLayer(1, "random", kernel_size=(3, 7), padding=1)
    with pytest.raises(SettingsError, match=r"kernel width 7 is larger than the padded input width 6 \(input 4"):
        layer(torch.rand(1, 10, 4))


def test_reflect_padding_needs_a_larger_input():
    layer = ConvLayer(1, "box", padding=3, padding_mode="reflect")
    with pytest.raises(SettingsError, match="reflect padding of 3 along height must be smaller than the input height 3"):
        layer(torch.rand(1, 3, 9))


def test_wrong_number_of_channels():
    with pytest.raises(SettingsError, match=r"layer expects 3 input channels; got an input of shape \(1, 8, 8\)"):
        ConvLayer(3, "sobel")(torch.rand(1, 8, 8))


def test_integer_input_is_refused():
    with pytest.raises(TypeError, match="floating-point tensor; got torch.uint8"):
        ConvLayer(1, "sobel")(torch.zeros(1, 5, 5, dtype=torch.uint8))


def test_explain_position_out_of_range():
    layer = ConvLayer(1, "sobel", stride=2)
    with pytest.raises(SettingsError, match=r"y must be an int in 0\.\.3; got 4"):
        layer.explain(torch.rand(1, 9, 9), filter=0, y=4, x=0)
    with pytest.raises(SettingsError, match=r"filter must be an int in 0\.\.1; got 2"):
        layer.explain(torch.rand(1, 9, 9), filter=2, y=0, x=0)


def test_filters_from_npy_file(tmp_path):
    weights = np.random.default_rng(1).standard_normal((4, 1, 3, 5)).astype(np.float32)
    np.save(tmp_path / "f.npy", weights)
    layer = ConvLayer(1, tmp_path / "f.npy")
    assert layer.depth == 4 and layer.kernel_size == (3, 5)
    torch.testing.assert_close(layer.weight, torch.from_numpy(weights))


def test_pickled_npy_is_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SettingsError, match=r"obj\.npy' is not a readable \.npy array"):
        ConvLayer(1, tmp_path / "obj.npy")


def test_missing_npy_file(tmp_path):
    with pytest.raises(SettingsError, match=r"filter file '.*missing\.npy' not found"):
        ConvLayer(1, tmp_path / "missing.npy")


def test_a_string_never_opens_a_file(tmp_path):
    """Bank names come from forms and configs: a str naming a real .npy file is refused, not read."""
    np.save(tmp_path / "secret.npy", np.ones((1, 1, 3, 3), np.float32))
    with pytest.raises(SettingsError, match=r"unknown filter bank '.*secret\.npy'.*pass pathlib\.Path"):
        ConvLayer(1, str(tmp_path / "secret.npy"))
    with pytest.raises(SettingsError, match=r"unknown filter bank '/etc/passwd'"):
        ConvLayer(1, "/etc/passwd")


@pytest.mark.parametrize("channels, depth, groups, kernel, stride, padding, dilation, extra", [
    (3, 4, 1, 3, 2, 1, 1, 1),
    (4, 6, 2, (4, 3), (3, 2), (1, 0), (1, 2), (2, 1)),
    (1, 1, 1, 2, 1, 0, 1, 0),
    (6, 6, 3, 3, 2, 2, 2, 1),
])
def test_transposed_layer_equals_torch_conv_transpose2d(channels, depth, groups, kernel, stride, padding, dilation,
                                                         extra):
    torch.manual_seed(0)
    module = torch.nn.ConvTranspose2d(channels, depth, kernel, stride=stride, padding=padding, output_padding=extra,
                                      groups=groups, dilation=dilation)
    layer = ConvLayer.from_module(module)
    x = torch.rand(2, channels, 5, 7)
    with torch.no_grad():
        expected = module(x)
    assert layer.transposed and layer.window_stride == (1, 1)
    assert torch.allclose(layer(x), expected, atol=1e-5)
    assert layer.output_shape(x.shape) == tuple(expected.shape)
    assert torch.equal(layer.transposed_weight(), module.weight.detach())
    for filter_, y, xx in [(0, 0, 0), (depth - 1, 3, 2), (depth // 2, expected.shape[2] - 1, expected.shape[3] - 1)]:
        step = layer.explain(x[0], filter=filter_, y=y, x=xx)
        assert step.total == pytest.approx(float(expected[0, filter_, y, xx]), abs=1e-5)
        # an inserted zero or padding under every tap that reads no input pixel
        assert bool((step.patch[:, step.in_padding] == 0).all())


def test_transposed_layer_by_hand():
    # one pixel of value 2 and an all-ones 3x3 filter at stride 2: the pixel is spread over a 3x3 block
    layer = ConvLayer(1, np.ones((1, 1, 3, 3), dtype=np.float32), stride=2, transposed=True)
    image = torch.zeros(1, 2, 2)
    image[0, 0, 0] = 2.0
    maps = layer(image)[0]
    assert maps.shape == (5, 5) and float(maps.sum()) == 18.0 and bool((maps[:3, :3] == 2).all())
    assert layer.pad(image)[0, 0].shape == (7, 7)  # (2 - 1) * 2 + 1 = 3, plus a border of 2 on each side
    with pytest.raises(SettingsError, match="pads with zeros"):
        ConvLayer(1, "sobel", transposed=True, padding_mode="reflect")
    with pytest.raises(SettingsError, match="transposed_weight is for a transposed layer"):
        ConvLayer(1, "sobel").transposed_weight()


def test_transposed_padding_above_the_reach_crops_like_torch_on_random_settings():
    """PyTorch accepts a transposed convolution whose padding exceeds dilation*(kernel-1): it crops the
    zero-inserted input. 200 random settings PyTorch accepts, several above the reach: the same maps."""
    rng = np.random.default_rng(23)
    above = 0
    for _ in range(200):
        kernel, stride, dilation = (tuple(int(v) for v in rng.integers(1, 5, 2)) for _ in range(3))
        padding = tuple(int(v) for v in rng.integers(0, 7, 2))
        extra = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
        size = tuple(int(v) for v in rng.integers(1, 7, 2))
        module = torch.nn.ConvTranspose2d(2, 3, kernel, stride=stride, padding=padding, output_padding=extra,
                                          dilation=dilation)
        x = torch.rand(1, 2, *size)
        try:
            with torch.no_grad():
                expected = module(x)
        except RuntimeError:  # torch refuses it too
            expected = torch.zeros(0)
        if expected.numel() == 0:  # no output left: a clear refusal
            with pytest.raises(SettingsError, match="removes every (row|column) of the transposed output"):
                ConvLayer.from_module(module)(x)
            continue
        above += any(p > d * (k - 1) for p, d, k in zip(padding, dilation, kernel))
        layer = ConvLayer.from_module(module)
        assert layer.output_shape(x.shape) == tuple(expected.shape)
        assert torch.allclose(layer(x), expected, atol=1e-5), (kernel, stride, padding, dilation, extra, size)
        step = layer.explain(x[0], filter=2, y=expected.shape[2] - 1, x=0)
        assert step.total == pytest.approx(float(expected[0, 2, -1, 0]), abs=1e-5)
    assert above >= 40
