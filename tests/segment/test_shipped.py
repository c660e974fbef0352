"""The bundled builtin:shapes-seg head: its bar on a fresh seed, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from featuremaps.data.shapes import shapes_scene
from featuremaps.models import load_model, model_info
from featuremaps.segment.data import scenes_dataset
from featuremaps.segment.train import evaluate_clusters, evaluate_segmenter


@pytest.fixture(scope="module")
def head():
    return load_model("builtin:shapes-seg")


def test_the_trained_head_reaches_its_bar_on_a_fresh_seed(head):
    scores = evaluate_segmenter(head, scenes_dataset(60, seed=777_777, size=128))
    assert scores.miou >= 0.85, scores.to_dict()
    assert scores.pixel_accuracy >= 0.97
    assert model_info(head).class_names == ("background", "circle", "square", "triangle", "star")


def test_clusters_are_scored_after_hungarian_matching():
    data = scenes_dataset(6, seed=99, size=96)
    scores = evaluate_clusters(load_model("builtin:shapes"), data, k=3)
    assert 0.2 < scores.miou <= 1.0 and 0.5 < scores.pixel_accuracy <= 1.0


def test_segment_a_scene_with_the_shipped_head_from_the_cli(run_cli, tmp_path, head):
    scene = shapes_scene(424242, 5, 128)
    Image.fromarray(scene.image).resize((200, 200), Image.Resampling.BILINEAR).save(tmp_path / "scene.png")
    result = run_cli("segment", str(tmp_path / "scene.png"), "--checkpoint", "builtin:shapes-seg", "-o",
                     str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr
    entry = json.loads(result.stdout)[0]
    assert entry["classes"]["0"] == "background" and entry["method"] == "head"
    mask = np.asarray(Image.open(entry["mask"]))
    assert mask.shape == (200, 200)  # the input's size, not the 128 it was computed at
    truth = np.asarray(Image.fromarray(scene.mask).resize((200, 200), Image.Resampling.NEAREST))
    assert (mask == truth).mean() > 0.9
    names = {s["name"] for s in entry["segments"]}
    assert {model_info(head).class_names[label + 1] for label in scene.labels} <= names
