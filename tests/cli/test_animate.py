"""``featuremaps animate`` and ``receptive-field`` through the entry point."""

from __future__ import annotations

import json

from PIL import Image


def test_the_issue_command_writes_a_gif_with_one_frame_per_step(run_cli, tmp_path):
    result = run_cli("animate", "--input-size", "7x5", "--channels", "2", "--depth", "3", "--kernel-size", "3",
                     "--stride", "2", "--padding", "1", "-o", str(tmp_path / "conv.gif"), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["output_shape"] == [3, 4, 3] and data["frames"] == 36 and data["input_shape"] == [2, 7, 5]
    with Image.open(tmp_path / "conv.gif") as gif:
        assert gif.n_frames == 36


def test_animate_an_image_crop_to_svg_and_json(run_cli, tmp_path):
    result = run_cli("animate", "sample:cat", "--input-size", "12x16", "--filters", "sobel", "--stride", "2",
                     "--padding", "same", "--padding-mode", "reflect", "-o", str(tmp_path / "cat.svg"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["output_shape"] == [2, 6, 8]
    assert (tmp_path / "cat.svg").read_text().startswith("<svg")
    result = run_cli("animate", "--input-size", "4", "-o", str(tmp_path / "s.json"), "--json")
    assert json.loads(result.stdout)["frames"] == 0 and json.loads((tmp_path / "s.json").read_text())["steps"]


def test_animate_errors(run_cli, tmp_path):
    cases = [
        (["-o", str(tmp_path / "a.txt")], "-o must end in .gif, .mp4, .png, .svg, .json"),
        (["--stride", "0", "-o", str(tmp_path / "a.gif")], "stride must be an int >= 1"),
        (["--input-size", "2", "--kernel-size", "5", "-o", str(tmp_path / "a.gif")], "kernel height 5 is larger"),
        (["--input-size", "48", "--depth", "1", "-o", str(tmp_path / "a.gif")], "2116 frames is more than 2000; use --every 2"),
    ]
    for args, message in cases:
        result = run_cli("animate", *args)
        assert result.returncode == 2 and message in result.stderr, result.stderr


def test_receptive_field_command(run_cli, tmp_path):
    result = run_cli("receptive-field", "3,3s2,3", "--input-size", "15", "-o", str(tmp_path / "rf.png"), "--json")
    assert result.returncode == 0, result.stderr
    levels = json.loads(result.stdout)
    assert [lv["receptive_field"][0] for lv in levels] == [1, 3, 5, 9]
    assert [lv["jump"][0] for lv in levels] == [1, 1, 2, 2]
    assert (tmp_path / "rf.png").stat().st_size > 1000
    bad = run_cli("receptive-field", "3,x")
    assert bad.returncode == 2 and "cannot read layer 'x'" in bad.stderr
