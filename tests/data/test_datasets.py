"""Datasets: shapes, digits and image folders, splits, and the errors of bad folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from featuremaps.data.datasets import DatasetError, folder_dataset, load_dataset
from featuremaps.features.inputs import ModelInput

SHAPES = ModelInput(3, (64, 64), 64)
GRAY32 = ModelInput(1, (32, 32), 32)
RGB16 = ModelInput(3, (16, 16), 16)


def _folder(root, classes, per_class=6, size=(20, 30)):
    rng = np.random.default_rng(0)
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((*size, 3), (k * 80, 255 - k * 80, 100), np.uint8)
            pixels = np.clip(pixels + rng.integers(-20, 20, pixels.shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_shapes_train_and_validation_never_share_images():
    train, val = load_dataset("shapes", SHAPES, samples=200, seed=0)
    assert train.images.shape == (200, 3, 64, 64) and len(val) == 40
    assert train.class_names == ["circle", "square", "triangle", "star"]
    assert torch.bincount(train.labels).tolist() == [50, 50, 50, 50]
    assert not any(torch.equal(v, t) for v in val.images[:10] for t in train.images)


def test_digits_split_is_stratified_and_seeded():
    train, val = load_dataset("digits", GRAY32, seed=1)
    assert train.images.shape[1:] == (1, 32, 32) and len(train) + len(val) == 1797
    assert torch.bincount(val.labels).min() >= 30
    again, _ = load_dataset("digits", GRAY32, seed=1)
    assert torch.equal(train.labels, again.labels)


def test_image_folder_with_unreadable_files_skipped_and_counted(tmp_path):
    root = _folder(tmp_path / "data", ["cats", "dogs"])
    (root / "cats" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    (root / "dogs" / "notes.txt").write_text("hello")
    data = folder_dataset(root, RGB16)
    assert data.class_names == ["cats", "dogs"] and len(data) == 12
    assert data.images.shape == (12, 3, 16, 16)
    assert {p.rsplit("/", 1)[-1] for p, _ in data.skipped} == {"broken.jpg", "notes.txt"}
    train, val = load_dataset(root, RGB16, val_fraction=0.5, seed=3)
    assert len(train) == len(val) == 6 and torch.bincount(val.labels).tolist() == [3, 3]


@pytest.mark.parametrize(
    "layout, message",
    [
        (lambda root: None, "dataset folder not found"),
        (lambda root: root.mkdir(), "no class folders; put each class's images in its own sub-folder"),
        (lambda root: _folder(root, ["only"]), r"needs at least 2 classes with images; found 1: 'only'"),
        (lambda root: (_folder(root, ["a", "b"]), (root / "c").mkdir()), "class folders without readable images: c"),
    ],
)
def test_bad_folders_give_clear_errors(tmp_path, layout, message):
    root = tmp_path / "data"
    layout(root)
    with pytest.raises(DatasetError, match=message):
        folder_dataset(root, RGB16)


def test_folder_images_are_exactly_what_predict_feeds_the_model(tmp_path):
    """One image file through the training dataset path and through prediction's path: the same tensor."""
    root = _folder(tmp_path / "data", ["cats", "dogs"], per_class=2, size=(300, 451))
    model_input = ModelInput(3, (224, 224), 256, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    data = folder_dataset(root, model_input)
    trained_on = model_input.normalise(data.images[0])
    predicted_on = model_input.tensor(root / "cats" / "0.png")
    assert torch.equal(trained_on, predicted_on)
