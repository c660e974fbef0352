"""The hierarchy probes: receptive fields, probe accuracies and detector counts per layer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from featuremaps import load_model
from featuremaps.analysis.hierarchy import _auc, hierarchy, part_sharers
from featuremaps.errors import SettingsError
from featuremaps.models import untrained_like
from featuremaps.render.hierarchy import render_hierarchy


def test_auc_matches_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(200, 5))
    scores[:, 2] = np.round(scores[:, 2])  # ties
    positive = rng.random(200) < 0.3
    scores[positive, 1] += 1.0
    expected = [roc_auc_score(positive, scores[:, c]) for c in range(5)]
    np.testing.assert_allclose(_auc(scores, positive), expected, atol=1e-12)


def test_part_sharers_follow_the_drawings() -> None:
    sharers = part_sharers()
    assert sorted(sharers) == ["car", "face", "house", "snowman", "tree"]
    assert sharers["house"] == [1, 2, 5, 6]  # square, triangle, tree (triangle), car (square cabin)
    assert 4 not in sharers["house"] and 4 in sharers["tree"]


def test_untrained_model_is_probed_layer_by_layer() -> None:
    result = hierarchy(load_model("tinyresnet"), train_samples=120, test_samples=90)
    assert [row.layer for row in result.layers] == ["stem", "stage1", "stage2", "stage3", "stage4"]
    fields = [row.receptive_field for row in result.layers]
    assert fields == [3, 11, 23, 47, 159]
    for row in result.layers:
        assert 0.0 <= row.object_accuracy <= 1.0 and 0.0 <= row.part_accuracy <= 1.0
        assert row.part_detectors is not None and set(row.best_parts) == {"circle", "square", "triangle", "star",
                                                                          "bar", "dot"}
    assert result.weights == "untrained (random) weights"
    text = result.table()
    assert "untrained (random) weights" in text and "stage4" in text
    data = json.loads(json.dumps(result.to_dict()))
    assert data["object_chance"] == pytest.approx(1 / 9, abs=1e-4)


def test_trained_model_rises_with_depth_above_its_control() -> None:
    model = load_model("builtin:objects")
    trained = hierarchy(model, train_samples=300, test_samples=200)
    control = hierarchy(untrained_like(model), train_samples=300, test_samples=200)
    first, last = trained.layers[0], trained.layers[-1]
    assert last.object_accuracy > first.object_accuracy + 0.4
    assert last.object_accuracy > control.layers[-1].object_accuracy + 0.4
    assert control.layers[-1].object_accuracy < 0.45  # the untrained architecture stays far below
    picture = render_hierarchy([trained, control])
    assert picture.width > 800 and picture.height > 300


@pytest.mark.parametrize(("options", "words"), [
    ({"dataset": "digits"}, "dataset"), ({"train_samples": 10}, "train_samples"), ({"detector_auc": 1.5}, "auc"),
])
def test_bad_settings_are_named(options: dict, words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        hierarchy(load_model("tinyresnet"), **options)


def test_cli_writes_chart_and_json(run_cli, tmp_path) -> None:
    chart = tmp_path / "h.png"
    result = run_cli("hierarchy", "tinyresnet", "--train", "60", "--test", "60", "--layers", "stem,stage4",
                     "-o", str(chart), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["results"]) == 1  # no control for a model that is itself untrained
    assert [row["layer"] for row in data["results"][0]["layers"]] == ["stem", "stage4"]
    with Image.open(chart) as image:
        assert image.width > 800


def test_parts_before_wholes_position_by_position() -> None:
    """builtin:objects' maps against the part and object masks: channels that mark parts appear at a lower
    stage than channels that mark whole objects; the untrained control marks neither."""
    from featuremaps.analysis.hierarchy import localization

    trained = localization(load_model("builtin:objects"), samples=60)
    rows = {row.layer: row for row in trained.layers}
    assert [row.layer for row in trained.layers] == ["stem", "stage1", "stage2", "stage3", "stage4"]
    assert rows["stem"].part_localizers == rows["stem"].object_localizers == 0
    assert rows["stage2"].part_localizers > 0 and rows["stage2"].object_localizers == 0  # parts first
    assert rows["stage4"].object_localizers > rows["stage3"].object_localizers > 0  # then wholes
    control = localization(untrained_like(load_model("builtin:objects")), samples=60)
    assert all(row.part_localizers == row.object_localizers == 0 for row in control.layers)
    assert "part maps" in trained.table() and trained.to_dict()["layers"][4]["object_localizers"] > 0
