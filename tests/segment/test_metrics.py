"""mIoU, pixel accuracy and Hungarian matching against hand-made masks."""

from __future__ import annotations

import numpy as np
import pytest

from featuremaps.errors import SettingsError
from featuremaps.segment.metrics import match_segments, score_masks

TRUTH = np.array([[0, 0, 1, 1],
                  [0, 0, 1, 1],
                  [2, 2, 2, 2]])


def test_iou_by_hand():
    predicted = np.array([[0, 0, 1, 1],
                          [0, 1, 1, 1],
                          [2, 2, 2, 0]])
    scores = score_masks(predicted, TRUTH)
    # class 0: 3 shared / 5 in either; class 1: 4 / 5; class 2: 3 / 4
    assert scores.iou == {0: pytest.approx(0.6), 1: pytest.approx(0.8), 2: pytest.approx(0.75)}
    assert scores.miou == pytest.approx((0.6 + 0.8 + 0.75) / 3)
    assert scores.pixel_accuracy == pytest.approx(10 / 12)


def test_a_perfect_mask_and_an_absent_class():
    scores = score_masks(TRUTH, TRUTH, classes=5)
    assert scores.miou == 1.0 and scores.pixel_accuracy == 1.0 and set(scores.iou) == {0, 1, 2}


def test_hungarian_matching_finds_the_best_one_to_one_assignment():
    segments = np.array([[5, 5, 7, 7],
                         [5, 5, 7, 7],
                         [9, 9, 9, 3]])
    relabelled, scores = match_segments(segments, TRUTH)
    assert scores.mapping == {5: 0, 7: 1, 9: 2}  # 3 overlaps only class 2 pixels, already taken by 9
    assert relabelled.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, -1]]
    assert scores.iou == {0: 1.0, 1: 1.0, 2: pytest.approx(0.75)}  # the unmatched pixel counts as wrong
    assert scores.pixel_accuracy == pytest.approx(11 / 12)


def test_matching_is_not_greedy():
    # Greedy would give segment 1 to class 0 (overlap 3) and leave class 1 with nothing better.
    truth = np.array([0, 0, 0, 1, 1, 1, 1])
    segments = np.array([1, 1, 1, 1, 0, 0, 0])
    _, scores = match_segments(segments, truth)
    assert scores.mapping == {1: 0, 0: 1} and scores.pixel_accuracy == pytest.approx(6 / 7)


def test_shape_mismatch_is_refused():
    with pytest.raises(SettingsError, match=r"mask shapes differ: predicted \(2, 2\), truth \(3, 4\)"):
        score_masks(np.zeros((2, 2)), TRUTH)
