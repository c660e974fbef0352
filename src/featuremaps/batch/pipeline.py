"""Dataset-scale extraction, local engine: a bounded streaming pipeline.

Worker processes (a torch ``DataLoader``) read each file once, hash it, decode it with the
safe loader and resize it with the model's preprocessing; the main process runs batched
forwards that stop after the deepest requested layer (``inference_mode``, channels_last;
on CUDA pinned memory, non-blocking copies, autocast and optional ``torch.compile``), then
pools, updates the per-channel statistics and top-k, and writes each shard as soon as its
last image is done. Memory is bounded by the prefetch queue (workers x 2 batches), one
shard's vectors and the O(K x channels) top-k, whatever the dataset size.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from featuremaps.batch.config import ExtractConfig, ExtractSummary
from featuremaps.batch.shards import (
    ShardCollector,
    decode_item,
    layer_table,
    make_manifest,
    open_maps,
    redone_shards,
    shard_plan,
    store_errors,
    summarize,
)
from featuremaps.batch.store import Store
from featuremaps.features import FeatureExtractor
from featuremaps.inputs import ModelInput
from featuremaps.models.info import model_info
from featuremaps.models.registry import load_model

__all__ = ["run_local"]

logger = logging.getLogger(__name__)


class _Files(Dataset):
    """``(index, path)`` items decoded in the DataLoader's worker processes."""

    def __init__(self, items: Sequence[tuple[int, str]], model_input: ModelInput) -> None:
        self.items, self.model_input = list(items), model_input

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> dict[str, Any]:
        index, path = self.items[position]
        return {"index": index, "path": path, **decode_item(path, self.model_input)}


def _lower_priority(_worker: int) -> None:
    """Decoding workers yield to the forward pass: on a few cores, a worker that preempts one of
    the model's threads stalls all of them; at low priority it runs in the gaps instead."""
    try:
        os.nice(10)
    except OSError:
        pass
    torch.set_num_threads(1)


def _collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    good = [item for item in batch if "tensor" in item]
    return {
        "tensor": torch.stack([item["tensor"] for item in good]) if good else None,
        "good": [{k: v for k, v in item.items() if k != "tensor"} for item in good],
        "bad": [(item["index"], item["path"], item["reason"]) for item in batch if "tensor" not in item],
    }


def _autocast(config: ExtractConfig):
    if config.precision == "fp32":
        return torch.autocast(device_type="cpu", enabled=False)
    dtype = torch.bfloat16 if config.precision == "bf16" else torch.float16
    return torch.autocast(device_type="cuda" if config.device.startswith("cuda") else "cpu", dtype=dtype)


def run_local(sources: list[str], out: str | os.PathLike[str], config: ExtractConfig, *, resume: bool = False,
              on_progress: Callable[[int, int], None] | None = None) -> ExtractSummary:
    """The local engine (see the module docstring): ``sources`` are absolute image paths."""
    started = time.perf_counter()
    device = torch.device(config.device)
    model = load_model(config.model, weights=config.weights).to(device)
    info = model_info(model)
    layers = layer_table(model, config.layers)
    store = Store(out)
    manifest = make_manifest(config, info, layers, sources)
    todo = store.open(manifest, sources, resume=resume)
    skipped = manifest.shards - len(todo)
    zarr_write = open_maps(store, layers, len(sources), config.precision != "fp32") if config.pool == "none" else None
    indices, expected = shard_plan(todo, config.shard_size, len(sources))
    items = [(i, sources[i]) for i in indices]
    cuda = device.type == "cuda"
    loader = DataLoader(_Files(items, info.input), batch_size=config.batch_size, num_workers=config.workers,
                        collate_fn=_collate, pin_memory=cuda, prefetch_factor=2 if config.workers else None,
                        persistent_workers=False, worker_init_fn=_lower_priority if config.workers else None)
    model = model.to(memory_format=torch.channels_last)
    extractor = FeatureExtractor(model, [e.name for e in layers], compile=config.compile)
    collector = ShardCollector(store, manifest, expected, config, zarr_write)
    done = 0
    with store.running(manifest):
        for batch in loader:
            summaries = None
            if batch["tensor"] is not None:
                x = info.input.normalise(batch["tensor"].to(device, non_blocking=cuda))
                x = x.contiguous(memory_format=torch.channels_last)
                with _autocast(config):
                    summaries = summarize(extractor(x), config.pool)
            collector.add(batch["good"], summaries, batch["bad"])
            done += len(batch["good"]) + len(batch["bad"])
            if on_progress is not None:
                on_progress(done, len(items))
        collector.close()
        seconds = time.perf_counter() - started
        error_total = store_errors(store, manifest)
        summary = ExtractSummary(str(store.root), len(sources), len(sources) - error_total, error_total,
                                 manifest.shards, skipped, round(seconds, 3),
                                 round(len(items) / seconds, 2) if seconds else 0.0, [e.name for e in layers],
                                 redone_shards(store))
        store.finalise(manifest, summary.to_dict())
    return summary
