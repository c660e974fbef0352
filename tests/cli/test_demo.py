"""The demo report: every picture it links exists and the page says what it shows."""

from __future__ import annotations

import re

from PIL import Image


def test_demo_command_writes_a_self_contained_report(run_cli, tmp_path):
    """One run of ``featuremaps demo`` (a minute and a half): the page path on stdout, a line per section and
    per picture on stderr, and a report whose every picture exists and whose text says what it shows."""
    result = run_cli("demo", "-o", str(tmp_path / "d"), timeout=600)
    assert result.returncode == 0, result.stderr
    page = tmp_path / "d" / "index.html"
    assert result.stdout.strip() == str(page.resolve())
    assert "demo: 1/7 convolution..." in result.stderr and "demo: 7/7 segmentation..." in result.stderr
    assert "demo:   made conv-diagram (" in result.stderr and "demo: wrote " in result.stderr
    html = page.read_text()
    sources = re.findall(r"src='([^']+)'", html)
    assert len(sources) >= 8
    for source in sources:
        assert not source.startswith("http")
        path = page.parent / source
        assert path.is_file()
        with Image.open(path) as picture:
            picture.verify()
    assert {"conv-animation.gif", "conv-diagram.png", "receptive-field.png", "imagenet-overview.png",
            "imagenet-cam.png"} <= set(sources)
    assert "espresso" in html and "trained on ImageNet-1k" in html  # real photos, named by a model trained on photos
    with Image.open(page.parent / "conv-animation.gif") as gif:
        assert gif.n_frames == 36
    for phrase in ["stride 1, padding 0", "3x75x113", "3x300x451", "Depth 8", "sum of 27 products",
                   "3 x 4 x 3 = 36 frames"]:
        assert phrase in html
