"""Transformation robustness: a small random pad, jitter, scale and rotation at every step.

A pattern that excites a channel only at one exact pixel offset is an artefact; one that
survives being moved, scaled and turned a little is what the channel detects. The paper's
recipe (pad 12, jitter 8, scale 0.9-1.1, rotate +-10 degrees, jitter 4) is applied here as one
affine resampling per image, so the output keeps its size (models with a fixed input take it)
and the uncovered border is grey.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["Robustness"]


@dataclass(frozen=True)
class Robustness:
    """Random affine transforms of a batch, seeded.

    Attributes:
        pad: grey border in pixels (the image is shrunk by ``2 * pad`` before the rest).
        jitter: largest shift in pixels, each axis.
        scale: ``(low, high)`` zoom factors.
        degrees: largest rotation either way.
        fill: value of the uncovered border.
    """

    pad: int = 12
    jitter: int = 12
    scale: tuple[float, float] = (0.9, 1.1)
    degrees: float = 10.0
    fill: float = 0.5

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """``images`` ``(N, C, H, W)`` -> the same shape, each image moved, zoomed and turned on its own."""
        count, _, height, width = images.shape
        base = (max(height, width) + 2 * self.pad) / max(height, width)
        zoom = self.scale[0] + (self.scale[1] - self.scale[0]) * torch.rand(count, generator=generator)
        angle = (torch.rand(count, generator=generator) * 2 - 1) * math.radians(self.degrees)
        shift = torch.randint(-self.jitter, self.jitter + 1, (count, 2), generator=generator).float()
        factor = base / zoom  # > 1 samples a larger area: the picture appears smaller
        cos, sin = torch.cos(angle) * factor, torch.sin(angle) * factor
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 1] * 2 / width], dim=1),
                             torch.stack([sin, cos, shift[:, 0] * 2 / height], dim=1)], dim=1)
        theta = theta.to(device=images.device, dtype=images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        moved = F.grid_sample(images - self.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return moved + self.fill
