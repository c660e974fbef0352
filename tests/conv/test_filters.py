"""Named filter banks: shapes, known values, combinations and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from featuremaps import ConvLayer, SettingsError
from featuremaps.conv.filters import BANKS, GROUPS, bank

REQUIRED = ["sobel_x", "sobel_y", "scharr_x", "scharr_y", "prewitt_x", "prewitt_y", "laplacian", "gaussian",
            "box", "sharpen", "emboss", "gabor", "random"]


def test_required_banks_exist():
    assert set(REQUIRED) <= set(BANKS)


def test_sobel_x_is_positive_where_the_image_brightens_to_the_right():
    ramp = torch.arange(8.0).repeat(8, 1)[None]  # (1, 8, 8), brighter to the right
    maps = ConvLayer(1, "sobel_x,sobel_y")(ramp)
    assert torch.all(maps[0] == 8.0) and torch.all(maps[1] == 0.0)


@pytest.mark.parametrize("name", ["gaussian", "box"])
def test_smoothing_kernels_sum_to_one(name):
    for size in [(3, 3), (5, 7)]:
        weights, _ = bank(name, kernel_size=size)
        assert weights.shape == (1, 1, *size) and weights.sum() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("name", ["laplacian", "sobel_x", "scharr_y", "prewitt_x", "emboss"])
def test_derivative_kernels_ignore_flat_regions(name):
    weights, _ = bank(name)
    assert abs(weights.sum() - (1.0 if name == "emboss" else 0.0)) < 1e-6


def test_gabor_depth_sets_the_orientations():
    weights, names = bank("gabor", depth=6, kernel_size=(9, 9))
    assert weights.shape == (6, 1, 9, 9)
    assert names == ("gabor_0deg", "gabor_30deg", "gabor_60deg", "gabor_90deg", "gabor_120deg", "gabor_150deg")
    assert np.allclose(weights.sum(axis=(1, 2, 3)), 0.0, atol=1e-6)


def test_random_bank_is_seeded():
    a, _ = bank("random", depth=5, seed=3)
    b, _ = bank("random", depth=5, seed=3)
    c, _ = bank("random", depth=5, seed=4)
    assert a.shape == (5, 1, 3, 3) and np.array_equal(a, b) and not np.array_equal(a, c)


def test_groups_and_lists_combine():
    weights, names = bank("sobel,laplacian")
    assert names == ("sobel_x", "sobel_y", "laplacian") and weights.shape == (3, 1, 3, 3)
    assert set(GROUPS["classic"]) <= set(BANKS)


def test_fixed_banks_refuse_another_size():
    with pytest.raises(SettingsError, match="filter bank 'sobel_x' is 3x3; kernel_size 5x5 is allowed only for"):
        bank("sobel_x", kernel_size=(5, 5))


def test_depth_must_match_a_fixed_bank():
    with pytest.raises(SettingsError, match=r"filters 'sobel' are 2 filters \(sobel_x, sobel_y\), not depth 4"):
        bank("sobel", depth=4)
    assert bank("sobel", depth=2)[0].shape == (2, 1, 3, 3)


def test_depth_is_ambiguous_for_mixed_lists():
    with pytest.raises(SettingsError, match="depth 3 is ambiguous"):
        bank("gabor,sobel", depth=3)


def test_unknown_bank_lists_the_names():
    with pytest.raises(SettingsError, match="unknown filter bank 'gaussain'; choose from sobel_x.*classic"):
        bank("gaussain")


def test_mixed_sizes_are_refused():
    with pytest.raises(SettingsError, match=r"mix kernel sizes \(3x3, 5x5\)"):
        bank("box,gaussian")  # both sizeable, each with its own default size


def test_hand_made_banks_spread_over_channels_and_random_banks_differ_per_channel():
    sobel, _ = bank("sobel_x", channels=3)
    assert sobel.shape == (1, 3, 3, 3) and np.allclose(sobel[0, 0], sobel[0, 2]) and sobel[0, 0, 1, 2] == 2 / 3
    noise, _ = bank("random", depth=2, channels=3, seed=0)
    assert noise.shape == (2, 3, 3, 3) and not np.allclose(noise[0, 0], noise[0, 1])
    integers, names = bank("random_int", depth=4, kernel_size=(2, 3), channels=2, seed=5)
    assert integers.shape == (4, 2, 2, 3) and set(np.unique(integers)) <= {-1.0, 0.0, 1.0}
    assert names == ("random_int_0", "random_int_1", "random_int_2", "random_int_3")
