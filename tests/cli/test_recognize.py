"""``train``, ``evaluate``, ``predict`` and ``segment`` through the entry point."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw


def _red_star(path, size=128):
    image = Image.new("RGB", (size, size), (255, 255, 255))
    r, c = size * 0.35, size / 2
    points = [(c + (r if k % 2 == 0 else r * 0.45) * math.cos(-math.pi / 2 + k * math.pi / 5),
               c + (r if k % 2 == 0 else r * 0.45) * math.sin(-math.pi / 2 + k * math.pi / 5)) for k in range(10)]
    ImageDraw.Draw(image).polygon(points, fill=(220, 20, 20))
    image.save(path)
    return path


def test_predict_names_a_star_it_never_saw(run_cli, tmp_path):
    star = _red_star(tmp_path / "star.png")
    result = run_cli("predict", str(star), "--checkpoint", "builtin:shapes", "--top-k", "2", "--cam",
                     str(tmp_path / "cams"), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["classes"] == ["circle", "square", "triangle", "star"]
    entry = data["images"][0]
    assert entry["path"] == str(star) and entry["predictions"][0]["label"] == "star"
    assert entry["predictions"][0]["probability"] > 0.8 and len(entry["predictions"]) == 2
    assert (tmp_path / "cams" / "star_cam.png").is_file()


def test_train_and_evaluate_on_a_users_folder(run_cli, tmp_path):
    rng = np.random.default_rng(0)
    for name, colour in (("dark", 30), ("light", 220)):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(colour + rng.normal(0, 20, (40, 40, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "data" / name / f"{i}.png")
    result = run_cli("train", "--dataset", str(tmp_path / "data"), "--model", "tinyvgg", "--epochs", "4",
                     "--batch-size", "8", "--seed", "1", "-o", str(tmp_path / "ckpt"), "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["model"]["class_names"] == ["dark", "light"] and record["kind"] == "cnn"
    assert "epoch 4/4" in result.stderr  # the progress bar
    result = run_cli("evaluate", str(tmp_path / "ckpt"), "--dataset", str(tmp_path / "data"), "-o",
                     str(tmp_path / "confusion.png"), "--json")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["accuracy"] >= 0.9 and len(scores["per_class"]) == 2
    assert (tmp_path / "confusion.png").is_file()
    # by default the held-out split the checkpoint recorded (seed 1, 20% of each class: 2 + 2 images), and it says so
    assert scores["samples"] == 4 and "the validation split (seed 1, 20% of each class): images the checkpoint did " \
        "not train on" in scores["scored"]
    everything = run_cli("evaluate", str(tmp_path / "ckpt"), "--dataset", str(tmp_path / "data"), "--split", "all")
    assert everything.returncode == 0, everything.stderr
    assert "on 24 images (" in everything.stdout and "the checkpoint's training images too" in everything.stdout


def test_calibrate_a_checkpoint_on_the_users_own_folder(run_cli, tmp_path):
    """Issue 22, item 3: a user's checkpoint gets the unfamiliar rule from the folder it was trained on."""
    rng = np.random.default_rng(3)
    for name, colour in (("dark", 40), ("light", 210)):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(30):
            pixels = np.clip(colour + rng.normal(0, 25, (48, 48, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "data" / name / f"{i}.png")
    trained = run_cli("train", "--dataset", str(tmp_path / "data"), "--model", "tinyvgg", "--epochs", "2",
                      "--batch-size", "16", "--seed", "2", "-o", str(tmp_path / "ckpt"))
    assert trained.returncode == 0, trained.stderr
    # the record names the folder: no --dataset needed; fitted on its training split, thresholded on its validation
    result = run_cli("calibrate", str(tmp_path / "ckpt"))
    assert result.returncode == 0, result.stderr
    assert "fitted on 48 images of" in result.stdout and "threshold set on 12 others" in result.stdout
    assert "false alarms: not measured on other images" in result.stdout
    assert (tmp_path / "ckpt" / "familiarity.safetensors").is_file()
    predicted = run_cli("predict", "sample:cat", str(tmp_path / "data" / "dark" / "0.png"), "--checkpoint",
                        str(tmp_path / "ckpt"), "--json")
    assert predicted.returncode == 0, predicted.stderr
    cat, dark = json.loads(predicted.stdout)["images"]
    assert cat["familiar"] is False and dark["familiar"] is True
    # a folder of other classes, or generated data the checkpoint was not trained on, is refused
    (tmp_path / "other" / "a").mkdir(parents=True)
    (tmp_path / "other" / "b").mkdir()
    for folder in ("a", "b"):
        for i in range(3):
            Image.new("RGB", (16, 16), (i * 40, 0, 0)).save(tmp_path / "other" / folder / f"{i}.png")
    refused = run_cli("calibrate", str(tmp_path / "ckpt"), "--dataset", str(tmp_path / "other"))
    assert refused.returncode == 2 and "knows dark, light;" in refused.stderr and "has a, b" in refused.stderr
    refused = run_cli("calibrate", str(tmp_path / "ckpt"), "--dataset", "shapes")
    assert refused.returncode == 2 and "was trained on" in refused.stderr and "not shapes" in refused.stderr


def test_bad_dataset_folder_exits_2(run_cli, tmp_path):
    (tmp_path / "one" / "cats").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "one" / "cats" / "a.png")
    result = run_cli("train", "--dataset", str(tmp_path / "one"), "-o", str(tmp_path / "ckpt"))
    assert result.returncode == 2
    assert "needs at least 2 classes with images; found 1: 'cats'" in result.stderr


def test_segment_with_clusters_and_truth(run_cli, tmp_path):
    image = np.zeros((60, 80, 3), np.uint8)
    image[15:45, 20:60] = (255, 200, 0)
    Image.fromarray(image).save(tmp_path / "block.png")
    truth = np.zeros((60, 80), np.uint8)
    truth[15:45, 20:60] = 1
    (tmp_path / "truth").mkdir()
    Image.fromarray(truth).save(tmp_path / "truth" / "block.png")
    result = run_cli("segment", str(tmp_path / "block.png"), "--model", "builtin:shapes", "--clusters", "2",
                     "--truth", str(tmp_path / "truth"), "-o", str(tmp_path / "out"), "--json")
    assert result.returncode == 0, result.stderr
    entry = json.loads(result.stdout)[0]
    mask = np.asarray(Image.open(entry["mask"]))
    assert mask.shape == (60, 80) and entry["size"] == [60, 80]
    assert entry["scores"]["miou"] > 0.8 and (tmp_path / "out" / "block_overlay.png").is_file()


def test_segment_needs_a_model_or_a_checkpoint(run_cli, tmp_path):
    result = run_cli("segment", "sample:cat", "-o", str(tmp_path))
    assert result.returncode == 2 and "give either --model M [--clusters K] or --checkpoint CKPT" in result.stderr


def test_train_refuses_a_non_empty_output_before_training(run_cli, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "model.safetensors").write_bytes(b"the user's own weights")
    for task in ("classification", "segmentation"):
        result = run_cli("train", "--dataset", "shapes", "--task", task, "--epochs", "50", "-o", str(mine),
                         timeout=60)
        assert result.returncode == 2, result.stderr
        assert "the directory is not empty; pass --overwrite" in result.stderr and "Traceback" not in result.stderr
        assert "epoch" not in result.stderr  # refused before the first step
    assert (mine / "model.safetensors").read_bytes() == b"the user's own weights"
    result = run_cli("train", "--dataset", "shapes", "--epochs", "50", "-o", str(tmp_path / "w.safetensors"),
                     timeout=60)
    assert result.returncode == 2 and "a training checkpoint is a directory" in result.stderr
    assert not (tmp_path / "w.safetensors").exists()


def test_train_overwrite_replaces_the_checkpoint_atomically(run_cli, tmp_path):
    out = tmp_path / "ckpt"
    args = ("train", "--dataset", "digits", "--model", "lenet5", "--epochs", "1", "-o", str(out))
    assert run_cli(*args).returncode == 0
    first = (out / "model.safetensors").read_bytes()
    assert run_cli(*args).returncode == 2
    again = run_cli(*args, "--seed", "3", "--overwrite")
    assert again.returncode == 0, again.stderr
    assert (out / "model.safetensors").read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary folder left


def test_train_refuses_options_of_the_other_task(run_cli, tmp_path):
    result = run_cli("train", "--dataset", "shapes", "--scenes", "50", "--size", "96", "-o", str(tmp_path / "a"),
                     timeout=60)
    assert result.returncode == 2
    assert "--scenes, --size do not apply to --task classification" in result.stderr
    result = run_cli("train", "--task", "segmentation", "--dataset", "shapes", "--head", "mlp", "-o",
                     str(tmp_path / "b"), timeout=60)
    assert result.returncode == 2 and "--head does not apply to --task segmentation" in result.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_predict_a_folder_of_photos_with_imagenet_and_a_cam_for_a_chosen_class(tmp_path, capsys):
    from featuremaps.cli import main

    assert main(["samples", "--photos", str(tmp_path / "photos")]) == 0
    assert sorted(p.name for p in (tmp_path / "photos").iterdir() if not p.name.startswith(".")) == [
        "astronaut.jpg", "camera.jpg", "cat.jpg", "coffee.jpg", "rocket.jpg"]
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "photos"), "--checkpoint", "builtin:imagenet", "--top-k", "5",
                 "--cam", str(tmp_path / "cams"), "--cam-class", "tabby", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["weights"] == "trained on ImageNet-1k" and len(result["classes"]) == 1000
    by_name = {Path(row["path"]).stem: row for row in result["images"]}
    assert by_name["coffee"]["predictions"][0] == {**by_name["coffee"]["predictions"][0], "label": "espresso",
                                                   "index": 967}
    assert all(len(row["predictions"]) == 5 and row["cam_class"] == {"label": "tabby", "index": 281}
               for row in result["images"])
    assert (tmp_path / "cams" / "cat_cam.png").is_file()
    assert main(["predict", "sample:cat", "--checkpoint", "builtin:imagenet", "--cam", str(tmp_path / "c2"),
                 "--cam-class", "tabbby"]) == 2
    assert "--cam-class 'tabbby' is not one of the model's classes (did you mean tabby" in capsys.readouterr().err
