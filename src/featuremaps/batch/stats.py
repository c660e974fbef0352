"""Per-channel statistics of a layer over a whole dataset, in O(channels) memory.

Every unit of every image counts: for channel c, the mean, standard deviation and maximum
of its activations, and the fraction of them above zero. Partial sums merge exactly, so
each shard keeps its own and the store adds them at the end (in float64).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["ChannelStats"]


@dataclass
class ChannelStats:
    """Running sums for ``channels`` channels."""

    count: np.ndarray
    total: np.ndarray
    squares: np.ndarray
    maximum: np.ndarray
    positive: np.ndarray

    @property
    def channels(self) -> int:
        return int(self.count.shape[0])

    @classmethod
    def empty(cls, channels: int) -> ChannelStats:
        return cls(np.zeros(channels), np.zeros(channels), np.zeros(channels), np.full(channels, -np.inf),
                   np.zeros(channels))

    def update(self, maps: torch.Tensor) -> None:
        """Add maps ``(N, C, H, W)`` (or vectors ``(N, C)``)."""
        values = maps.detach().double().flatten(2) if maps.ndim == 4 else maps.detach().double()[:, :, None]
        self.count += values.shape[0] * values.shape[2]
        self.total += values.sum(dim=(0, 2)).cpu().numpy()
        self.squares += values.square().sum(dim=(0, 2)).cpu().numpy()
        self.maximum = np.maximum(self.maximum, values.amax(dim=(0, 2)).cpu().numpy())
        self.positive += (values > 0).sum(dim=(0, 2)).cpu().numpy()

    def add_images(self, positions: int, total: np.ndarray, squares: np.ndarray, maximum: np.ndarray,
                   positive: np.ndarray) -> None:
        """Add per-image sums ``(N, C)`` over ``positions`` units each (see ``host_summaries``)."""
        self.count += positions * total.shape[0]
        self.total += total.sum(axis=0)
        self.squares += squares.sum(axis=0)
        self.maximum = np.maximum(self.maximum, maximum.max(axis=0))
        self.positive += positive.sum(axis=0)

    def merge(self, other: ChannelStats) -> ChannelStats:
        return ChannelStats(self.count + other.count, self.total + other.total, self.squares + other.squares,
                            np.maximum(self.maximum, other.maximum), self.positive + other.positive)

    def summary(self) -> dict[str, np.ndarray]:
        """``mean``, ``std`` (population), ``max`` and ``fraction_positive`` per channel."""
        count = np.maximum(self.count, 1)
        mean = self.total / count
        variance = np.maximum(self.squares / count - mean**2, 0.0)
        return {"mean": mean, "std": np.sqrt(variance), "max": self.maximum, "fraction_positive": self.positive / count}

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        return {f"{prefix}.{name}": getattr(self, name) for name in ("count", "total", "squares", "maximum", "positive")}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> ChannelStats:
        return cls(*(np.asarray(arrays[f"{prefix}.{name}"]) for name in ("count", "total", "squares", "maximum",
                                                                          "positive")))
