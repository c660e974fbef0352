"""``featuremaps conv``, ``banks`` and ``samples`` through the installed entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from featuremaps import ConvLayer, load_image


def test_conv_json_reports_shapes_and_map_statistics(run_cli, tmp_path):
    result = run_cli("conv", "sample:cat", "--filters", "sobel", "--stride", "2", "--padding", "same",
                     "-o", str(tmp_path / "maps.png"), "--save", str(tmp_path / "maps.npy"), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["input_shape"] == [3, 300, 451]
    assert data["output_shape"] == [2, 150, 226]
    assert data["kernel_size"] == [3, 3] and data["stride"] == [2, 2] and data["dilation"] == [1, 1]
    assert data["padding"] == [0, 1, 1, 1] and data["depth"] == 2
    assert [m["name"] for m in data["maps"]] == ["sobel_x", "sobel_y"]
    saved = np.load(tmp_path / "maps.npy")
    assert saved.shape == (2, 150, 226)
    expected = ConvLayer(3, "sobel", stride=2, padding="same")(load_image("sample:cat"))
    np.testing.assert_allclose(saved, expected.numpy(), atol=1e-6)
    assert data["maps"][1]["max"] == pytest.approx(float(expected[1].max()), abs=1e-6)
    with Image.open(tmp_path / "maps.png") as picture:
        assert picture.width > 200 and picture.height > 100


def test_conv_with_npy_filters_and_asymmetric_settings(run_cli, tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30), dtype=np.uint8)).save(tmp_path / "g.png")
    np.save(tmp_path / "f.npy", np.ones((3, 1, 2, 4), np.float32))
    result = run_cli("conv", str(tmp_path / "g.png"), "--filters", str(tmp_path / "f.npy"), "--stride", "2x3",
                     "--padding", "1,0,2,1", "--padding-mode", "reflect", "--dilation", "1x2", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    # H' = floor((20 + 1 + 0 - 2) / 2) + 1 = 10; W' = floor((30 + 2 + 1 - 7) / 3) + 1 = 9
    assert data["output_shape"] == [3, 10, 9]
    assert data["formula"][1].endswith("= 9")


def test_conv_without_outputs_prints_a_summary(run_cli):
    result = run_cli("conv", "sample:camera", "--depth", "4", "--kernel-size", "5")
    assert result.returncode == 0, result.stderr
    assert "output  4x508x508" in result.stdout and "H' = floor((512 + 0 + 0 - 1*(5 - 1) - 1) / 1) + 1 = 508" in result.stdout


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--stride", "0"], 2, "stride must be an int >= 1 or a pair of them; got 0"),
        (["--padding", "-1"], 2, "padding must not be negative"),
        (["--filters", "sobl"], 2, "unknown filter bank 'sobl'"),
        (["--kernel-size", "400"], 2, "kernel height 400 is larger than the padded input height 300"),
        (["--groups", "2"], 2, "in_channels 3 is not divisible by groups 2"),
        (["--stride", "two"], 2, "--stride must be an integer or HxW"),
        (["--bogus"], 2, "No such option: --bogus"),
        (["-o", "maps.gif"], 2, "-o must end in .png"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(run_cli, args, code, message):
    result = run_cli("conv", "sample:cat", *args)
    assert result.returncode == code
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_unreadable_image_exits_1(run_cli, tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    for source, message in [(str(tmp_path / "none.png"), "file not found"), (str(tmp_path / "bad.jpg"), "bad.jpg: ")]:
        result = run_cli("conv", source)
        assert result.returncode == 1 and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_samples_and_banks_list_as_json(run_cli):
    samples = json.loads(run_cli("samples", "--json").stdout)
    assert {"cat", "coffee", "astronaut"} <= {s["name"] for s in samples}
    assert all(s["licence"] and s["source"] for s in samples)
    banks = json.loads(run_cli("banks", "--json").stdout)
    assert {"sobel_x", "gabor", "random", "classic"} <= {b["name"] for b in banks}


def test_help_lists_every_subcommand(run_cli):
    from featuremaps.cli import app

    result = run_cli("--help")
    assert result.returncode == 0
    names = [command.name for command in app.registered_commands]
    assert names and all(name in result.stdout for name in names)


def test_no_arguments_shows_help(run_cli):
    result = run_cli()
    assert result.returncode == 0 and "Convolution:" in result.stdout and "Recognition:" in result.stdout


def test_torch_and_cli_agree_on_gray_input(run_cli, tmp_path):
    result = run_cli("conv", "sample:coffee", "--gray", "--filters", "laplacian", "--json")
    data = json.loads(result.stdout)
    assert data["input_shape"][0] == 1
    expected = ConvLayer(1, "laplacian")(load_image("sample:coffee", mode="gray"))
    assert data["maps"][0]["mean"] == pytest.approx(float(expected.mean()), abs=1e-6)
    assert torch.is_tensor(expected)


def test_conv_transposed_upsamples_like_conv_transpose2d(run_cli):
    result = run_cli("conv", "sample:cat", "--filters", "sobel", "--transposed", "--stride", "2", "--padding", "1",
                     "--output-padding", "1", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["output_shape"] == [2, 600, 902] and data["transposed"] and data["output_padding"] == [1, 1]
    assert data["padding"] == [1, 1, 1, 1]  # the layer's own padding, not the zero border it slides over
    refused = run_cli("conv", "sample:cat", "--output-padding", "1")
    assert refused.returncode == 2 and "output_padding applies only to a transposed convolution" in refused.stderr


def test_tile_size_and_scale_set_the_picture_size(run_cli, tmp_path):
    sizes = {}
    for name, options in (("small", ["--tile-size", "64"]), ("default", []), ("scale", ["--scale", "2"])):
        result = run_cli("conv", "sample:cat", "--filters", "sobel", "-o", str(tmp_path / f"{name}.png"), *options)
        assert result.returncode == 0, result.stderr
        with Image.open(tmp_path / f"{name}.png") as picture:
            sizes[name] = picture.size
    assert sizes["small"][1] < sizes["default"][1] < sizes["scale"][1]  # 64 px, 160 px, 2 x 300 px tiles
    refused = run_cli("conv", "sample:cat", "--scale", "100", "-o", str(tmp_path / "x.png"))
    assert refused.returncode == 2 and "scale must be in (0, 64]" in refused.stderr
    shown = run_cli("show", "sample:cat", "--model", "tinyvgg", "--layers", "conv1_1", "--tile-size", "48",
                    "-o", str(tmp_path / "show"))
    assert shown.returncode == 0, shown.stderr
