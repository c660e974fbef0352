"""Segmentation datasets: splitting a masks dataset."""

from __future__ import annotations

import torch

from featuremaps.segment.data import scenes_dataset


def test_halves_are_disjoint_and_cover_the_dataset():
    data = scenes_dataset(7, seed=3, size=32)
    first, second = data.halves(seed=1)
    assert (len(first), len(second)) == (3, 4) and first.class_names == data.class_names
    rows = {bytes(image.numpy().tobytes()) for image in data.images}
    taken = [bytes(image.numpy().tobytes()) for image in (*first.images, *second.images)]
    assert sorted(taken) == sorted(rows) and len(set(taken)) == 7
    again, _ = data.halves(seed=1)
    assert torch.equal(again.images, first.images) and torch.equal(again.masks, first.masks)
