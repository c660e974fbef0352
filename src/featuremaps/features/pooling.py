"""How maps become vectors: one vocabulary for heads, extraction stores and everything else.

``avg`` and ``max`` over the positions (``(N, C)``), ``avgmax`` both (``(N, 2C)``), ``none`` every
position kept (a head flattens them, ``(N, C*H*W)``; a store keeps the maps).
"""

from __future__ import annotations

import torch

from featuremaps.errors import POOLINGS, check_pool  # the vocabulary, checked without torch

__all__ = ["POOLINGS", "check_pool", "pool_maps", "pooled_size"]


def pooled_size(channels: int, pool: str) -> int:
    """Length of one image's pooled vector for maps of ``channels`` channels (0 for ``none``)."""
    return {"avg": channels, "max": channels, "avgmax": 2 * channels}.get(check_pool(pool), 0)


def pool_maps(maps: torch.Tensor, pool: str) -> torch.Tensor:
    """Maps ``(N, C, H, W)`` -> vectors ``(N, F)``: average, max, both (2C) or every position (CHW)."""
    check_pool(pool)
    if maps.ndim != 4:
        return maps.flatten(1)
    if pool == "avg":
        return maps.mean(dim=(2, 3))
    if pool == "max":
        return maps.amax(dim=(2, 3))
    if pool == "avgmax":
        return torch.cat([maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))], dim=1)  # (N, 2C)
    return maps.flatten(1)  # none: (N, C*H*W)
