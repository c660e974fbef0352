"""Hypercolumn alignment, clusters, the trained head, outputs and mask folders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from featuremaps.data.datasets import DatasetError
from featuremaps.features import align_maps
from featuremaps.models import list_layers, load_model
from featuremaps.segment.clusters import cluster_segments, merge_small_regions
from featuremaps.segment.data import mask_folder, scenes_dataset
from featuremaps.segment.run import segment_image, write_segmentation


def test_align_maps_puts_units_at_their_receptive_field_centres():
    layer = {l.name: l for l in list_layers(load_model("tinyvgg"))}["conv1_2"]  # 60x60, RF 5, start 0
    maps = torch.arange(60.0).repeat(60, 1)[None, None]  # value = unit column
    aligned = align_maps(maps, layer, (64, 64))[0, 0]
    # unit j is centred on pixel j + 2; pixels 0..2 take the border unit
    assert aligned[10, 2] == 0 and aligned[10, 12] == 10 and aligned[10, 61] == 59 and aligned[10, 63] == 59
    assert aligned[10, 13] == 11


def test_merge_small_regions():
    mask = np.zeros((10, 10), np.int64)
    mask[:, 5:] = 1
    mask[2, 2] = 1  # a speck of 1 inside 0
    cleaned = merge_small_regions(mask, 3)
    assert cleaned[2, 2] == 0 and (cleaned[:, 5:] == 1).all()


def test_clusters_separate_two_flat_regions_and_keep_the_input_size():
    image = np.zeros((50, 70, 3), np.uint8)
    image[:, 35:] = (250, 250, 250)
    seg = cluster_segments(load_model("tinyvgg"), image, k=2, min_area=0.01)
    assert seg.mask.shape == (50, 70) and seg.method == "clusters"
    assert len(np.unique(seg.mask[:, :30])) == 1 and len(np.unique(seg.mask[:, 40:])) == 1
    assert seg.mask[0, 0] != seg.mask[0, 69]


def test_write_segmentation_files_and_scores(tmp_path):
    image = np.zeros((40, 40, 3), np.uint8)
    image[10:30, 10:30] = 255
    truth = np.zeros((40, 40), np.int64)
    truth[10:30, 10:30] = 1
    seg = segment_image(load_model("tinyvgg"), image, clusters=2)
    entry = write_segmentation(seg, tmp_path, "square", source="square.png", truth=truth)
    saved = np.asarray(Image.open(entry["mask"]))
    assert saved.shape == (40, 40) and np.array_equal(saved, seg.mask)
    assert entry["scores"]["miou"] > 0.8 and set(entry["scores"]["segment_to_class"].values()) == {"0", "1"}
    assert sum(s["pixels"] for s in entry["segments"]) == 1600
    with Image.open(entry["overlay"]) as overlay:
        assert overlay.width >= 300


def _write_pairs(root, count=3, size=(24, 32)):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(count):
        Image.fromarray(np.full((*size, 3), 40 * i, np.uint8)).save(root / "images" / f"{i}.png")
        mask = np.zeros(size, np.uint8)
        mask[4:10, 4:12] = 1 + i % 2
        Image.fromarray(mask).save(root / "masks" / f"{i}.png")


def test_mask_folder_reads_pairs_and_class_names(tmp_path):
    _write_pairs(tmp_path / "d")
    (tmp_path / "d" / "classes.txt").write_text("background\nbox\nbar\n")
    data = mask_folder(tmp_path / "d")
    assert data.images.shape == (3, 3, 24, 32) and data.masks.shape == (3, 24, 32)
    assert data.class_names == ["background", "box", "bar"] and int(data.masks.max()) == 2


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda root: (root / "masks" / "1.png").unlink(), r"masks: no mask for 1"),
        (lambda root: (root / "images" / "2.png").unlink(), r"images: no image for masks 2"),
        (lambda root: Image.fromarray(np.zeros((5, 5), np.uint8)).save(root / "masks" / "0.png"),
         r"0.png: mask is 5x5, its image is 32x24"),
        (lambda root: Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(root / "masks" / "0.png"),
         r"a mask must be a one-channel index PNG \(mode L or P\); got mode RGB"),
        (lambda root: (root / "classes.txt").write_text("background\n"), r"names 1 classes, but masks use index 2"),
        (lambda root: __import__("shutil").rmtree(root / "masks"), r"needs an images/ and a masks/ folder; masks/"),
    ],
)
def test_bad_mask_folders_give_clear_errors(tmp_path, damage, message):
    _write_pairs(tmp_path / "d")
    damage(tmp_path / "d")
    with pytest.raises(DatasetError, match=message):
        mask_folder(tmp_path / "d")


def test_scenes_dataset():
    data = scenes_dataset(6, seed=2, size=64)
    assert data.images.shape == (6, 3, 64, 64) and data.class_names[0] == "background"
    assert int(data.masks.max()) <= 4 and (data.masks > 0).any()
