"""Maps placed on input pixels: each unit at the centre of its receptive field.

Maps are smaller than the image (stride) and, without padding, shifted (TinyVGG's 3x3
convolutions lose a pixel at each border), so a plain resize misplaces them. Unit ``i`` of a
layer sits at ``start + i * jump + (size - 1) / 2`` input pixels (from the layer catalogue); the
maps are sampled bilinearly between unit centres, and positions beyond the first or last unit
take the border unit's value. Hypercolumns, Grad-CAM and the microscope's heat maps use this.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from featuremaps.errors import LayerError
from featuremaps.features.catalogue import LayerInfo

__all__ = ["align_maps", "sample_maps"]


def sample_maps(maps: torch.Tensor, start: Sequence[float], jump: Sequence[float], field: Sequence[float],
                ys: torch.Tensor, xs: torch.Tensor) -> torch.Tensor:
    """Maps ``(N, C, h, w)`` read at input positions ``ys`` (rows) x ``xs`` (columns), in input pixels
    (fractions allowed): ``(N, C, len(ys), len(xs))``."""
    h, w = maps.shape[-2:]
    coords = []
    for axis, (count, positions) in enumerate(((h, ys), (w, xs))):
        centre0 = start[axis] + (field[axis] - 1) / 2
        unit = (positions.to(torch.float32) - centre0) / jump[axis]  # unit index per position
        coords.append(2 * unit / max(count - 1, 1) - 1 if count > 1 else torch.zeros(len(positions)))
    grid_y, grid_x = torch.meshgrid(coords[0], coords[1], indexing="ij")
    grid = torch.stack([grid_x, grid_y], dim=-1)[None].expand(maps.shape[0], -1, -1, -1)  # (N, H, W, 2)
    return F.grid_sample(maps.float(), grid.to(maps.device), mode="bilinear", padding_mode="border",
                         align_corners=True)


def align_maps(maps: torch.Tensor, layer: LayerInfo, size: tuple[int, int]) -> torch.Tensor:
    """Sample maps ``(N, C, h, w)`` at every pixel of an ``(H, W)`` input: ``(N, C, H, W)``."""
    if layer.jump is None or layer.start is None or layer.receptive_field is None:
        raise LayerError(f"layer {layer.name} has no local receptive field; it cannot be placed on pixels")
    height, width = size
    return sample_maps(maps, layer.start, layer.jump, layer.receptive_field,
                       torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32))
