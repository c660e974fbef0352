"""Shape arithmetic against torch's own convolution and pooling, and receptive fields."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

from featuremaps import SettingsError, conv_output_size, receptive_field
from featuremaps.conv.geometry import ConvGeometry, Padding, normalize_padding, output_size_formula


@given(
    size=st.tuples(st.integers(1, 20), st.integers(1, 20)),
    kernel=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    stride=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    padding=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
)
def test_conv_output_size_equals_torch_conv2d(size, kernel, stride, padding, dilation):
    x = torch.zeros(1, 1, *size)
    w = torch.zeros(1, 1, *kernel)
    try:
        expected = tuple(F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation).shape[2:])
    except RuntimeError:
        with pytest.raises(SettingsError, match="is larger than the padded input"):
            conv_output_size(size, kernel, stride, padding, dilation)
        return
    assert conv_output_size(size, kernel, stride, padding, dilation) == expected
    assert conv_output_size(size[0], kernel[0], stride[0], padding[0], dilation[0]) == expected[0]


@given(
    size=st.integers(1, 30),
    kernel=st.integers(1, 5),
    stride=st.integers(1, 4),
    dilation=st.integers(1, 3),
)
def test_same_padding_gives_ceil_of_size_over_stride(size, kernel, stride, dilation):
    assert conv_output_size(size, kernel, stride, "same", dilation) == -(-size // stride)


@given(size=st.integers(1, 30), kernel=st.integers(1, 5), dilation=st.integers(1, 3))
def test_same_padding_at_stride_1_matches_torch(size, kernel, dilation):
    x = torch.zeros(1, 1, size, size)
    w = torch.zeros(1, 1, kernel, kernel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch notes it copies the input for even kernels
        expected = F.conv2d(x, w, padding="same", dilation=dilation).shape[2]
    assert conv_output_size(size, kernel, 1, "same", dilation) == expected


@given(
    size=st.integers(1, 30),
    kernel=st.integers(1, 5),
    stride=st.integers(1, 4),
    padding=st.integers(0, 2),
    ceil_mode=st.booleans(),
)
def test_ceil_mode_geometry_matches_torch_max_pool(size, kernel, stride, padding, ceil_mode):
    assume(padding <= kernel // 2)
    x = torch.zeros(1, 1, size, size)
    try:
        expected = F.max_pool2d(x, kernel, stride, padding, ceil_mode=ceil_mode).shape[2]
    except RuntimeError:
        return
    geometry = ConvGeometry.create(kernel, stride, padding, ceil_mode=ceil_mode)
    assert geometry.output_size((size, size))[0] == expected


def test_output_size_formula_shows_the_numbers():
    h, w = output_size_formula(ConvGeometry.create((3, 2), stride=(2, 1), padding=(1, 0)), (7, 5))
    assert h == "H' = floor((7 + 1 + 1 - 1*(3 - 1) - 1) / 2) + 1 = 4"
    assert w == "W' = floor((5 + 0 + 0 - 1*(2 - 1) - 1) / 1) + 1 = 4"


@pytest.mark.parametrize(
    "spec, expected",
    [
        (2, Padding(2, 2, 2, 2)),
        ((1, 3), Padding(1, 1, 3, 3)),
        ((0, 1, 2, 3), Padding(0, 1, 2, 3)),
        ("valid", Padding(0, 0, 0, 0)),
        ("same", "same"),
    ],
)
def test_padding_forms(spec, expected):
    assert normalize_padding(spec) == expected


@pytest.mark.parametrize(
    "spec, message",
    [
        (-1, "padding must not be negative; got -1"),
        ((1, -2), r"padding must not be negative; got \(1, -2\)"),
        ("full", "padding must be an int >= 0"),
        ((1, 2, 3), "padding must be an int >= 0"),
        (1.5, "padding must be an int >= 0"),
    ],
)
def test_bad_padding_is_named(spec, message):
    with pytest.raises(SettingsError, match=message):
        normalize_padding(spec)


@pytest.mark.parametrize("name, value", [("stride", 0), ("dilation", 0), ("stride", (1, 0)), ("kernel_size", -3)])
def test_values_below_one_are_refused_with_their_name(name, value):
    options = {"kernel_size": 3, name: value}
    with pytest.raises(SettingsError, match=rf"{name} must be an int >= 1 or a pair of them; got"):
        ConvGeometry.create(**options)


def test_kernel_larger_than_padded_input_gives_the_numbers():
    with pytest.raises(
        SettingsError, match=r"kernel width 5 \(dilated extent 9\) is larger than the padded input width 8 "
        r"\(input 6 \+ padding 1 \+ 1\)"
    ):
        conv_output_size((20, 6), 5, padding=1, dilation=2)


def test_receptive_field_of_a_small_stack_by_hand():
    # conv 3x3 -> conv 3x3 stride 2 -> conv 3x3, each padded by 1.
    layers = [ConvGeometry.create(3, 1, 1), ConvGeometry.create(3, 2, 1), ConvGeometry.create(3, 1, 1)]
    fields = receptive_field(layers)
    assert [f.size for f in fields] == [(3, 3), (5, 5), (9, 9)]
    assert [f.jump for f in fields] == [(1, 1), (2, 2), (2, 2)]
    assert [f.start for f in fields] == [(-1, -1), (-2, -2), (-4, -4)]
    # unit (1, 2) of the last layer sees rows -2..6 and columns 0..8
    assert fields[-1].region(1, 2) == (-2, 0, 6, 8)


def test_receptive_field_matches_gradient_support():
    """The input pixels that influence one output unit are exactly its receptive field."""
    torch.manual_seed(0)
    convs = [
        torch.nn.Conv2d(1, 1, 3, padding=1),
        torch.nn.Conv2d(1, 1, (3, 5), stride=2, padding=(1, 2), dilation=(1, 2)),
        torch.nn.Conv2d(1, 1, 3, padding=0),
    ]
    x = torch.rand(1, 1, 40, 40, requires_grad=True)
    out = x
    for conv in convs:
        torch.nn.init.uniform_(conv.weight, 0.5, 1.0)
        out = conv(out)
    y, xx = 4, 3
    out[0, 0, y, xx].backward()
    rows, cols = torch.nonzero(x.grad[0, 0], as_tuple=True)
    geometries = [
        ConvGeometry.create(tuple(c.kernel_size), tuple(c.stride), tuple(c.padding), tuple(c.dilation)) for c in convs
    ]
    top, left, bottom, right = receptive_field(geometries)[-1].region(y, xx)
    assert (int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max())) == (top, left, bottom, right)


def test_same_padding_in_a_stack_needs_the_input_size():
    with pytest.raises(SettingsError, match="pass input_size"):
        receptive_field([ConvGeometry.create(3, 2, "same")])
    fields = receptive_field([ConvGeometry.create(4, 2, "same")], input_size=(10, 10))
    assert fields[0].start == (-1, -1) and fields[0].size == (4, 4)


@given(
    size=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    kernel=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    stride=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    padding=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    extra=st.tuples(st.integers(0, 3), st.integers(0, 3)),
)
def test_transposed_output_size_equals_torch_conv_transpose2d(size, kernel, stride, padding, dilation, extra):
    assume(all(p <= d * (k - 1) for p, d, k in zip(padding, dilation, kernel)))
    assume(all(e < max(s, d) for e, s, d in zip(extra, stride, dilation)))
    try:
        expected = tuple(F.conv_transpose2d(torch.zeros(1, 1, *size), torch.zeros(1, 1, *kernel), stride=stride,
                                            padding=padding, output_padding=extra, dilation=dilation).shape[2:])
    except RuntimeError:
        expected = (0, 0)
    if min(expected) < 1:
        with pytest.raises(SettingsError, match="removes every"):
            conv_output_size(size, kernel, stride, padding, dilation, transposed=True, output_padding=extra)
        return
    assert conv_output_size(size, kernel, stride, padding, dilation, transposed=True, output_padding=extra) == expected


@pytest.mark.parametrize("i, k, s, p, a, expected", [
    (2, 3, 1, 0, 0, 4),  # Dumoulin & Visin fig. 4.1: no padding, unit strides (relationship 8)
    (6, 4, 1, 2, 0, 5),  # fig. 4.2: padding (relationship 9)
    (5, 3, 1, 1, 0, 5),  # fig. 4.3: half padding (relationship 10)
    (7, 3, 1, 2, 0, 5),  # fig. 4.4: full padding (relationship 11)
    (2, 3, 2, 0, 0, 5),  # fig. 4.5: no padding, strides (relationship 12)
    (3, 3, 2, 1, 0, 5),  # fig. 4.6: padding and strides (relationship 13)
    (3, 3, 2, 1, 1, 6),  # fig. 4.7: padding, strides and an odd input size: a = 1 (relationship 14)
])
def test_transposed_sizes_of_the_convolution_arithmetic_guide(i, k, s, p, a, expected):
    assert conv_output_size(i, k, s, p, transposed=True, output_padding=a) == expected
    # the transpose goes back: the direct convolution maps that size to i
    assert conv_output_size(expected, k, s, p) == i


def test_transposed_formula_and_refusals():
    geometry = ConvGeometry.create(3, stride=2, padding=1, transposed=True, output_padding=1)
    assert output_size_formula(geometry, (4, 5)) == ("H' = (4 - 1)*2 - 1 - 1 + 1*(3 - 1) + 1 + 1 = 8",
                                                     "W' = (5 - 1)*2 - 1 - 1 + 1*(3 - 1) + 1 + 1 = 10")
    assert geometry.zero_inserted((4, 5)) == ((7, 9), Padding(1, 2, 1, 2))
    for kwargs, message in [
        ({"padding": "same"}, "takes padding as numbers"),
        ({"output_padding": 2, "stride": 2}, "smaller than the stride or the dilation"),
    ]:
        with pytest.raises(SettingsError, match=message):
            ConvGeometry.create(3, **{"transposed": True, **kwargs})
    with pytest.raises(SettingsError, match="only to a transposed"):
        ConvGeometry.create(3, output_padding=1)
    with pytest.raises(SettingsError, match="regions of different sizes"):
        receptive_field([geometry])
