"""The device side of an extraction: the truncated feature graph with the per-image reductions inside it."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from featuremaps.batch.config import ExtractConfig
from featuremaps.batch.shards import reduce_maps
from featuremaps.features import FeatureExtractor
from featuremaps.features.catalogue import LayerInfo

__all__ = ["Forward", "autocast_for", "device_forward"]

Forward = Callable[[torch.Tensor], dict[str, dict[str, torch.Tensor]]]
"""``x (N, C, H, W) -> {layer: reduce_maps(its maps)}``, all on x's device."""


def autocast_for(config: ExtractConfig, device: torch.device) -> torch.autocast:
    """The autocast of the job's precision on ``device`` (disabled for fp32)."""
    if config.precision == "fp32":
        return torch.autocast(device_type=device.type, enabled=False)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if config.precision == "bf16" else torch.float16)


def device_forward(model: nn.Module, layers: list[LayerInfo], config: ExtractConfig) -> Forward:
    """``x -> {layer: reduce_maps(maps)}`` with the reductions inside the truncated graph (compiled on request)."""
    extractor = FeatureExtractor(model, [entry.name for entry in layers], compile=config.compile)
    pool = config.pool

    def reduce(maps: torch.Tensor) -> dict[str, torch.Tensor]:  # a named function: it becomes a graph node
        return reduce_maps(maps, pool)

    if extractor.method != "graph":
        return lambda x: {name: reduce(maps) for name, maps in extractor(x).items()}
    graph = extractor.module(reduce=reduce)
    size = config.batch_size

    def forward(x: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
        count = x.shape[0]
        if config.compile and count < size:  # one shape for the compiled graph: pad the last or a short batch
            x = torch.cat([x, x[-1:].expand(size - count, *x.shape[1:])]).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            results: dict[str, dict[str, torch.Tensor]] = graph(x)
        if x.shape[0] == count:
            return results
        return {name: {key: value[:count] for key, value in parts.items()} for name, parts in results.items()}

    return forward
