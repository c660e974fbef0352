"""Long steps say what they are doing: serve's start-up, a long animation's warning, the scene generator."""

from __future__ import annotations

import socket
import subprocess
import time

import numpy as np
from PIL import Image
from tests.conftest import FEATUREMAPS


def test_serve_says_what_it_loads_and_when_it_is_ready():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([str(FEATUREMAPS), "serve", "--port", str(port)], stderr=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        first = process.stderr.readline()  # before the slow imports
        lines = [first]
        deadline = time.time() + 120
        while "ready on" not in lines[-1] and time.time() < deadline:
            lines.append(process.stderr.readline())
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert first.startswith("serve: loading torch")
    assert lines[-1].startswith(f"serve: ready on http://127.0.0.1:{port}/ (")


def test_a_long_animation_is_announced_with_what_shortens_it(run_cli, tmp_path):
    result = run_cli("animate", "--input-size", "9x12", "-o", str(tmp_path / "a.gif"), "--json")
    assert result.returncode == 0, result.stderr
    warning = "animate: warning: 140 frames at 2 fps play for 1 min 10 s; --every 2 or --fps 3 makes it a minute or less"
    assert warning in result.stderr
    assert "frames" in result.stderr and "140/140" in result.stderr
    short = run_cli("animate", "--input-size", "9x12", "-o", str(tmp_path / "b.gif"), "--every", "2")
    assert short.returncode == 0 and "warning" not in short.stderr


def test_samples_writes_segmentation_scenes_that_segment(run_cli, tmp_path):
    result = run_cli("samples", "--scenes", str(tmp_path / "scenes"))
    assert result.returncode == 0, result.stderr
    scene = np.asarray(Image.open(tmp_path / "scenes" / "scene-1.png"))
    mask = np.asarray(Image.open(tmp_path / "scenes" / "scene-1-mask.png"))
    assert scene.shape == (128, 128, 3) and mask.shape == (128, 128) and 0 < (mask > 0).mean() < 0.8
    assert run_cli("samples", "--scenes", str(tmp_path / "scenes")).returncode == 0  # the same pictures again
    segmented = run_cli("segment", str(tmp_path / "scenes" / "scene-1.png"), "--checkpoint", "builtin:shapes-seg",
                        "-o", str(tmp_path / "out"), "--json")
    assert segmented.returncode == 0, segmented.stderr
    (tmp_path / "scenes" / "scene-2.png").write_bytes(b"a user's file")
    refused = run_cli("samples", "--scenes", str(tmp_path / "scenes"))
    assert refused.returncode == 2 and "scene-2.png exists already" in refused.stderr
    assert (tmp_path / "scenes" / "scene-2.png").read_bytes() == b"a user's file"


def test_a_rate_is_never_divided_by_a_microsecond(monkeypatch):
    """Work that arrives in one update (5 images in one batch) was shown as 5,000,000 img/s."""
    from featuremaps.cli import _progress

    now = [10.0]
    monkeypatch.setattr(_progress.time, "perf_counter", lambda: now[0])
    with _progress.CountBar("extract", "img") as bar:  # entered at 10 s
        now[0] = 12.0
        bar.update(5, 5)  # the one update, at 12 s, when all 5 are done
        assert bar.rate(5) == 5 / 2.0  # since the job began: 2.5 img/s
