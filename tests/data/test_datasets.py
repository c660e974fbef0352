"""Datasets: shapes, digits and image folders, splits, and the errors of bad folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from featuremaps.data.datasets import DatasetError, folder_dataset, load_dataset, to_model_input


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
    train, val = load_dataset("shapes", samples=200, seed=0)
    assert train.images.shape == (200, 3, 64, 64) and len(val) == 40
    assert train.class_names == ["circle", "square", "triangle", "star"]
    assert torch.bincount(train.labels).tolist() == [50, 50, 50, 50]
    assert not any(torch.equal(v, t) for v in val.images[:10] for t in train.images)


def test_digits_split_is_stratified_and_seeded():
    train, val = load_dataset("digits", seed=1, size=(32, 32), channels=1)
    assert train.images.shape[1:] == (1, 32, 32) and len(train) + len(val) == 1797
    assert torch.bincount(val.labels).min() >= 30
    again, _ = load_dataset("digits", seed=1, size=(32, 32), channels=1)
    assert torch.equal(train.labels, again.labels)


def test_image_folder_with_unreadable_files_skipped_and_counted(tmp_path):
    root = _folder(tmp_path / "data", ["cats", "dogs"])
    (root / "cats" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    (root / "dogs" / "notes.txt").write_text("hello")
    data = folder_dataset(root, (16, 16))
    assert data.class_names == ["cats", "dogs"] and len(data) == 12
    assert data.images.shape == (12, 3, 16, 16)
    assert {p.rsplit("/", 1)[-1] for p, _ in data.skipped} == {"broken.jpg", "notes.txt"}
    train, val = load_dataset(root, size=(16, 16), val_fraction=0.5, seed=3)
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
        folder_dataset(root, (16, 16))


def test_to_model_input_adapts_channels_size_and_normalises():
    gray = torch.full((2, 1, 8, 8), 255, dtype=torch.uint8)
    x = to_model_input(gray, (3, 16, 16), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert x.shape == (2, 3, 16, 16) and torch.allclose(x, torch.full_like(x, 2.0))
