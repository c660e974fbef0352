"""ConvScene: every step's numbers come from the layer; order, padding cells and JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

from featuremaps import ConvLayer, SettingsError
from featuremaps.illustrate import ConvScene, image_patch, random_grid
from featuremaps.illustrate.scene import MAX_STEPS
from featuremaps.render.animate import render_diagram


def _scene(**options) -> ConvScene:
    size = options.pop("size", (7, 5))
    channels = options.pop("channels", 2)
    x = random_grid(*size, channels, seed=1)
    layer = ConvLayer(channels, options.pop("filters", "random_int"), **({"depth": 3} | options))
    return ConvScene.from_layer(layer, x)


@given(
    size=st.tuples(st.integers(3, 8), st.integers(3, 8)),
    kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)),
    mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]),
    groups=st.sampled_from([1, 2]),
    data=st.data(),
)
def test_every_step_matches_the_layer_and_explain(size, kernel, stride, dilation, padding, mode, groups, data):
    extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    assume(extent[0] <= size[0] + padding[0] + padding[1] and extent[1] <= size[1] + padding[2] + padding[3])
    assume(mode != "reflect" or max(padding[:2]) < size[0] and max(padding[2:]) < size[1])
    x = random_grid(*size, 2, seed=data.draw(st.integers(0, 99)))
    layer = ConvLayer(2, "random_int", depth=2 * groups, kernel_size=kernel, stride=stride, dilation=dilation,
                      padding=padding, padding_mode=mode, groups=groups, bias=1.0)
    scene = ConvScene.from_layer(layer, x)
    maps = layer(x)
    assert scene.output_shape == tuple(maps.shape) and len(scene) == maps.numel()
    index = data.draw(st.integers(0, len(scene) - 1))
    step = scene.step(index)
    # order: filter, then row, then column
    assert index == scene.step_index(step.filter, step.y, step.x)
    assert step.padded_rows == tuple(step.y * stride[0] + i * dilation[0] for i in range(kernel[0]))
    assert step.padded_cols == tuple(step.x * stride[1] + j * dilation[1] for j in range(kernel[1]))
    assert step.rows == tuple(r - padding[0] for r in step.padded_rows)  # the input frame
    explained = layer.explain(x, filter=step.filter, y=step.y, x=step.x)
    assert type(step) is type(explained)  # one type, one coordinate frame for both
    assert step.value == explained.value == float(maps[step.filter, step.y, step.x])
    assert (step.rows, step.cols, step.channels) == (explained.rows, explained.cols, explained.channels)
    assert step.total == pytest.approx(explained.total, abs=1e-6)
    torch.testing.assert_close(step.products, explained.products, atol=1e-6, rtol=0)


def test_padding_cells_are_placed_for_asymmetric_padding():
    scene = _scene(padding=(0, 2, 1, 3), size=(4, 5))
    assert scene.padded.shape == (2, 6, 9)
    expected = np.ones((6, 9), bool)
    expected[0:4, 1:6] = False  # 0 rows on top, 2 below; 1 column left, 3 right
    np.testing.assert_array_equal(scene.is_padding, expected)
    torch.testing.assert_close(scene.padded[:, 0:4, 1:6], scene.input)
    assert (scene.padded[:, scene.is_padding] == 0).all()
    assert scene.source[0, 0].tolist() == [-1, -1] and scene.source[2, 3].tolist() == [2, 2]


@pytest.mark.parametrize("mode, row, col", [("reflect", 1, 1), ("replicate", 0, 0), ("circular", 3, 4)])
def test_padding_sources_follow_the_mode(mode, row, col):
    scene = _scene(padding=1, padding_mode=mode, size=(4, 5))
    assert scene.source[0, 0].tolist() == [row, col]  # the top-left padding cell copies this input pixel
    torch.testing.assert_close(scene.padded[:, 0, 0], scene.input[:, row, col])


def test_frame_steps_keep_every_nth_and_the_last():
    scene = _scene(stride=2, padding=1)  # 3 x 4 x 3 = 36 steps
    assert len(scene) == 36 and scene.frame_steps() == list(range(36))
    assert scene.frame_steps(10) == [0, 10, 20, 30, 35]
    with pytest.raises(SettingsError, match="every must be an int >= 1; got 0"):
        scene.frame_steps(0)


def test_json_export_replays_the_scene(tmp_path):
    scene = _scene(stride=(2, 1), padding=(1, 0, 0, 1), bias=0.5)
    data = json.loads(scene.write_json(tmp_path / "s.json").read_text())
    assert data["output"]["shape"] == list(scene.output_shape)
    assert len(data["steps"]) == len(scene)
    assert data["padding"] == {"top": 1, "bottom": 0, "left": 0, "right": 1, "mode": "zeros"}
    values = np.array(data["output"]["values"])
    for step in data["steps"]:
        assert step["value"] == pytest.approx(values[step["filter"], step["y"], step["x"]], abs=1e-6)
        assert step["total"] == pytest.approx(np.sum(step["products"]) + step["bias"], abs=1e-5)
    np.testing.assert_allclose(values, scene.layer(scene.input).numpy(), atol=1e-6)


def test_scene_size_is_limited():
    with pytest.raises(SettingsError, match=r"the scene would have .* steps .* the limit is 20,000"):
        ConvScene.from_layer(ConvLayer(1, "random", depth=8), torch.rand(1, 60, 60))
    assert MAX_STEPS == 20_000


def test_image_patch_keeps_the_aspect_and_range():
    patch = image_patch("sample:cat", 12, 20)
    assert patch.shape == (3, 12, 20) and 0 <= float(patch.min()) and float(patch.max()) <= 1
    assert image_patch("sample:cat", 12, 20, channels=1).shape == (1, 12, 20)
    with pytest.raises(SettingsError, match="1 \\(gray\\) or 3 \\(RGB\\) channels; got 2"):
        image_patch("sample:cat", 5, 5, channels=2)


def test_random_grid_is_seeded_integers():
    a, b = random_grid(4, 6, 2, seed=3), random_grid(4, 6, 2, seed=3)
    assert a.shape == (2, 4, 6) and torch.equal(a, b) and torch.equal(a, a.round()) and a.max() <= 9
    with pytest.raises(SettingsError, match="height must be an int >= 1; got 0"):
        random_grid(0, 3)


def test_transposed_scene_draws_the_zero_inserted_input_and_matches_the_layer():
    layer = ConvLayer(1, "random_int", depth=2, stride=2, padding=1, output_padding=1, transposed=True)
    grid = random_grid(4, 5, 1, seed=3)
    scene = ConvScene.from_layer(layer, grid)
    assert scene.output_shape == (2, 8, 10) and scene.padded.shape == (1, 10, 12)
    # 4x5 pixels spread to 7x9 with 1 zero between neighbours: 63 - 20 = 43 inserted zeros
    assert scene.is_inserted.sum() == 43 and (~scene.is_padding).sum() == 20
    assert bool((scene.padded[0][torch.from_numpy(scene.is_inserted)] == 0).all())
    assert torch.equal(scene.padded[0][torch.from_numpy(~scene.is_padding)], grid[0].flatten())
    for index in range(len(scene)):
        step = scene.step(index)
        assert step.total == pytest.approx(step.value, abs=1e-5)
    data = scene.to_dict()
    assert data["layer"]["transposed"] and data["layer"]["window_stride"] == [1, 1]
    assert sum(map(sum, data["padded"]["is_inserted"])) == 43


def test_a_transposed_scene_with_padding_above_the_reach_is_cropped_and_says_so(tmp_path):
    # kernel 3 (reach 2), padding 3: the zero-inserted 7x7 input loses a row and column on each side
    layer = ConvLayer(1, "random_int", depth=1, stride=2, padding=3, transposed=True)
    grid = random_grid(4, 4, 1, seed=5)
    scene = ConvScene.from_layer(layer, grid)
    expected = F.conv_transpose2d(grid[None], layer.transposed_weight(), stride=2, padding=3)[0]
    assert scene.output_shape == tuple(expected.shape) == (1, 3, 3) and scene.padded.shape == (1, 5, 5)
    assert torch.allclose(scene.maps, expected, atol=1e-5)
    # the kept pixels (rows/cols 1 and 2 of the input, at frame rows 1 and 3) and nothing else are real
    assert (~scene.is_padding).sum() == 4 and torch.equal(scene.padded[0][torch.from_numpy(~scene.is_padding)],
                                                          grid[0, 1:3, 1:3].flatten())
    svg = render_diagram(scene, svg=True)
    assert "zeros inserted and cropped to 5x5" in svg
    assert "padding 3 is above dilation*(kernel-1) = 2x2: the zero-inserted input loses 1 top, 1 bottom, 1 left, " \
        "1 right (PyTorch crops it too)" in svg
