"""``featuremaps lineage`` through the entry point."""

from __future__ import annotations

import json

from PIL import Image


def test_lineage_writes_the_tree_and_json(run_cli, tmp_path):
    picture = tmp_path / "tree" / "lineage.png"
    result = run_cli("lineage", "sample:cat", "--model", "builtin:shapes", "--unit", "relu2_2:3", "--levels", "2",
                     "--top", "3", "-o", str(picture), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["exact"] is True and data["method"].startswith("exact")
    assert data["weights"] == "trained weights (bundled with featuremaps)"
    levels = {node["level"] for node in data["nodes"]}
    assert levels == {0, 1, 2}
    assert len([e for e in data["edges"] if e["parent"] == 0]) == 3
    with Image.open(picture) as image:
        assert image.width > 400 and image.height > 400


def test_lineage_text_names_the_inputs_and_untrained_weights(run_cli, tmp_path):
    result = run_cli("lineage", "sample:cat", "--model", "resnet18", "--unit", "layer1:3", "--levels", "1",
                     "-o", str(tmp_path / "l.png"))
    assert result.returncode == 0, result.stderr
    assert "untrained (random) weights" in result.stdout
    assert "through the skip" in result.stdout and "layer1.1.relu:" in result.stdout


def test_lineage_bad_layer_lists_valid_ones(run_cli, tmp_path):
    result = run_cli("lineage", "sample:cat", "--model", "builtin:shapes", "--unit", "conv9:1",
                     "-o", str(tmp_path / "l.png"))
    assert result.returncode == 2
    assert "not found" in result.stderr and "relu2_2" in result.stderr
    assert not (tmp_path / "l.png").exists()
