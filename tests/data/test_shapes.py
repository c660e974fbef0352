"""The shapes generator: reproducible, balanced, varied, masks that match the pixels."""

from __future__ import annotations

import numpy as np
import pytest

from featuremaps.data.shapes import BACKGROUNDS, SHAPE_CLASSES, draw_shape, shapes_scene
from featuremaps.errors import SettingsError


def test_samples_are_a_function_of_seed_and_index():
    a, b, c = draw_shape(3, 17), draw_shape(3, 17), draw_shape(4, 17)
    assert np.array_equal(a.image, b.image) and not np.array_equal(a.image, c.image)


def test_classes_cycle_and_everything_varies():
    samples = [draw_shape(0, i) for i in range(200)]
    assert [s.labels[0] for s in samples[:8]] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert {s.background for s in samples} == set(BACKGROUNDS)
    areas = [int((s.mask > 0).sum()) for s in samples]
    assert max(areas) > 3 * min(areas)  # sizes vary
    centres = np.array([np.argwhere(s.mask > 0).mean(axis=0) for s in samples])
    assert centres.std(axis=0).min() > 5  # positions vary
    assert samples[0].image.shape == (64, 64, 3) and samples[0].image.dtype == np.uint8


def test_mask_marks_the_shape_pixels_with_class_plus_one():
    for index in range(40):
        sample = draw_shape(1, index)
        label = sample.labels[0]
        assert set(np.unique(sample.mask)) == {0, label + 1}
        inside = sample.image[sample.mask > 0].astype(float).mean(axis=0)
        outside = sample.image[sample.mask == 0].astype(float).mean(axis=0)
        assert np.abs(inside - outside).max() > 10  # the shape differs from its background


def test_shapes_have_their_geometry():
    """A square fills more of its bounding circle than a star; a circle is round."""
    fill = {}
    for name in SHAPE_CLASSES:
        label = SHAPE_CLASSES.index(name)
        ratios = []
        for index in range(20):
            mask = draw_shape(5, index * 4 + label, 128).mask > 0
            ys, xs = np.nonzero(mask)
            radius = np.hypot(ys - ys.mean(), xs - xs.mean()).max()
            ratios.append(mask.sum() / (np.pi * radius**2))
        fill[name] = float(np.median(ratios))
    assert fill["circle"] > 0.9 and 0.55 < fill["square"] < 0.7 and fill["triangle"] < 0.5 and fill["star"] < 0.5


def test_any_size_and_scenes():
    assert draw_shape(0, 0, 100).image.shape == (100, 100, 3)
    scene = shapes_scene(0, 3, 96)
    assert scene.image.shape == (96, 96, 3) and 1 <= len(scene.labels) <= 4
    assert set(np.unique(scene.mask)) <= {0} | {label + 1 for label in scene.labels}
    with pytest.raises(SettingsError, match="size must be an int >= 16 pixels; got 8"):
        draw_shape(0, 0, 8)
