"""For every channel, the K images and positions that activate it most, in O(K x channels) memory.

An image's score for a channel is its largest activation anywhere in the map; the position
of that maximum is kept, so the microscope can crop the unit's receptive field. Ties keep
the image with the smaller index (the stream order), so results are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["TopK"]


@dataclass
class TopK:
    """Best ``k`` per channel: values, image indices and (y, x) positions, each ``(C, k)``."""

    values: torch.Tensor
    images: torch.Tensor
    ys: torch.Tensor
    xs: torch.Tensor

    @classmethod
    def empty(cls, channels: int, k: int) -> TopK:
        return cls(torch.full((channels, k), float("-inf")), torch.full((channels, k), -1, dtype=torch.int64),
                   torch.zeros((channels, k), dtype=torch.int64), torch.zeros((channels, k), dtype=torch.int64))

    @property
    def k(self) -> int:
        return int(self.values.shape[1])

    def update(self, maps: torch.Tensor, image_indices: torch.Tensor) -> None:
        """Add maps ``(N, C, H, W)`` of the images ``image_indices`` ``(N,)``."""
        _, _, _, w = maps.shape
        flat = maps.detach().float().flatten(2).cpu()  # (N, C, H*W)
        best, where = flat.max(dim=2)  # (N, C)
        self.update_best(best, where // w, where % w, image_indices)

    def update_best(self, best: torch.Tensor, ys: torch.Tensor, xs: torch.Tensor, image_indices: torch.Tensor) -> None:
        """Add each image's best value and position per channel, all ``(N, C)``."""
        n, c = best.shape
        candidate = TopK(best.T.contiguous().float(), image_indices.view(1, n).expand(c, n).clone(),
                         ys.T.contiguous().long(), xs.T.contiguous().long())
        merged = self.merge(candidate)
        self.values, self.images, self.ys, self.xs = merged.values, merged.images, merged.ys, merged.xs

    def merge(self, other: TopK) -> TopK:
        """The best ``k`` of both (higher value first; a smaller image index wins a tie)."""
        values = torch.cat([self.values, other.values], dim=1)
        images = torch.cat([self.images, other.images], dim=1)
        ys, xs = torch.cat([self.ys, other.ys], dim=1), torch.cat([self.xs, other.xs], dim=1)
        # sort by image index first, then stably by value: ties keep the lower index in front
        by_image = torch.argsort(torch.where(images < 0, torch.iinfo(torch.int64).max, images), dim=1, stable=True)
        values, images = values.gather(1, by_image), images.gather(1, by_image)
        ys, xs = ys.gather(1, by_image), xs.gather(1, by_image)
        order = torch.argsort(values, dim=1, descending=True, stable=True)[:, : self.k]
        return TopK(values.gather(1, order), images.gather(1, order), ys.gather(1, order), xs.gather(1, order))
