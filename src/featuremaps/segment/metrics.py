"""Segmentation scores: per-class IoU, mean IoU, pixel accuracy, and Hungarian matching of clusters.

IoU of class c = |pred = c and truth = c| / |pred = c or truth = c|. The mean IoU averages
the classes that occur in the truth or the prediction (a class absent from both is not
counted). Unsupervised segments carry no class: :func:`match_segments` assigns each segment
to at most one class so that the total overlap is largest (the Hungarian method, scipy's
``linear_sum_assignment``); segments left without a class count as wrong everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from featuremaps.errors import SettingsError

__all__ = ["SegmentationScores", "confusion", "match_segments", "score_masks", "scores_from_confusion"]


@dataclass
class SegmentationScores:
    """Scores of predicted masks against the truth."""

    miou: float
    pixel_accuracy: float
    iou: dict[int, float]
    pixels: int
    mapping: dict[int, int] = field(default_factory=dict)

    def iou_by_name(self, class_names: Sequence[str] | None = None) -> dict[str, float]:
        """IoU per class, by class name (the index where no name is known), in index order."""
        return {_name(class_names, k): v for k, v in sorted(self.iou.items())}

    def to_dict(self, class_names: Sequence[str] | None = None) -> dict[str, object]:
        def name(index: int) -> str:
            return _name(class_names, index)

        return {
            "miou": round(self.miou, 5),
            "pixel_accuracy": round(self.pixel_accuracy, 5),
            "iou": {key: round(v, 5) for key, v in self.iou_by_name(class_names).items()},
            "pixels": self.pixels,
            **({"segment_to_class": {str(k): name(v) for k, v in self.mapping.items()}} if self.mapping else {}),
        }


def _name(class_names: Sequence[str] | None, index: int) -> str:
    return class_names[index] if class_names and index < len(class_names) else str(index)


def _check(predicted: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    if predicted.shape != truth.shape:
        raise SettingsError(f"mask shapes differ: predicted {predicted.shape}, truth {truth.shape}")
    if predicted.size == 0:
        raise SettingsError("masks are empty")
    return predicted.astype(np.int64).ravel(), truth.astype(np.int64).ravel()


def confusion(predicted: np.ndarray, truth: np.ndarray, classes: int | None = None) -> np.ndarray:
    """``(K, K)`` pixel counts, rows = truth, columns = prediction."""
    p, t = _check(predicted, truth)
    k = classes or int(max(p.max(), t.max())) + 1
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def scores_from_confusion(matrix: np.ndarray, mapping: dict[int, int] | None = None, *,
                          unmatched_label: int | None = None) -> SegmentationScores:
    """Scores from a ``(K, K)`` pixel confusion matrix (rows truth, columns prediction).

    ``unmatched_label``: a prediction label that stands for "no class" (unmatched clusters):
    its pixels are errors, and it gets no IoU of its own.
    """
    diagonal = np.diag(matrix).astype(np.float64)
    union = matrix.sum(axis=0) + matrix.sum(axis=1) - diagonal
    present = union > 0
    iou = {int(c): float(diagonal[c] / union[c]) for c in np.flatnonzero(present) if c != unmatched_label}
    total = int(matrix.sum())
    return SegmentationScores(
        miou=float(np.mean(list(iou.values()))) if iou else 0.0,
        pixel_accuracy=float(diagonal.sum() / total) if total else 0.0,
        iou=iou, pixels=total, mapping=mapping or {},
    )


def score_masks(predicted: np.ndarray, truth: np.ndarray, classes: int | None = None) -> SegmentationScores:
    """Scores of class-index masks (several images: stack or concatenate them first)."""
    return scores_from_confusion(confusion(predicted, truth, classes))


def match_segments(segments: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, SegmentationScores]:
    """Give each unsupervised segment the class it overlaps best, one-to-one (Hungarian method).

    Returns:
        the segments relabelled with class indices (unmatched segments become -1, counted
        wrong), and the scores.
    """
    s, t = _check(segments, truth)
    if s.min() < 0 or t.min() < 0:
        raise SettingsError("segment and class indices must be >= 0")
    segment_ids, s_index = np.unique(s, return_inverse=True)
    class_count = int(t.max()) + 1
    overlap = np.zeros((len(segment_ids), class_count), dtype=np.int64)
    np.add.at(overlap, (s_index, t), 1)
    rows, cols = linear_sum_assignment(-overlap)
    mapping = {int(segment_ids[r]): int(c) for r, c in zip(rows, cols) if overlap[r, c] > 0}
    lookup = np.full(int(segment_ids.max()) + 1, -1, dtype=np.int64)
    for segment, label in mapping.items():
        lookup[segment] = label
    relabelled = lookup[np.asarray(segments, dtype=np.int64)]
    # Unmatched segments get an extra label K: wrong for every pixel, and no class of their own.
    scored = np.where(relabelled < 0, class_count, relabelled)
    return relabelled, scores_from_confusion(confusion(scored, truth, class_count + 1), mapping,
                                             unmatched_label=class_count)
