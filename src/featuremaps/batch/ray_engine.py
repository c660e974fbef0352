"""The same extraction on Ray Data, for a cluster (``pip install 'featuremaps[ray]'``).

Plan: ``from_items`` (index, path) -> ``map_batches(decode)`` as CPU tasks that read the file
bytes and decode them with featuremaps' safe loader (not ``read_images``, which fails on mixed
sizes and on decompression bombs) -> ``map_batches(FeatureActor)`` on an actor pool (one GPU
per actor when the cluster has GPUs) that runs the truncated forward and :func:`summarize` ->
the driver streams the results and writes the same store, shard by shard, with the same
resume rules. Point it at a cluster with ``--ray-address ray://HEAD:10001`` (or ``auto``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

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
from featuremaps.errors import SettingsError
from featuremaps.features import FeatureExtractor
from featuremaps.inputs import ModelInput
from featuremaps.models.info import model_info
from featuremaps.models.registry import load_model

__all__ = ["run_ray"]


def _decode_batch(batch: dict[str, np.ndarray], model_input: dict[str, Any]) -> dict[str, Any]:
    """Ray task: decode a batch of files to uint8 model input; unreadable ones come back with
    ``ok = False`` and the reason."""
    frame = ModelInput.from_dict(model_input)
    shape = frame.shape
    images, ok, reasons, widths, heights, hashes = [], [], [], [], [], []
    for path in batch["path"]:
        item = decode_item(str(path), frame)
        good = "tensor" in item
        images.append(item["tensor"].numpy() if good else np.zeros(shape, np.uint8))
        ok.append(good)
        reasons.append("" if good else item["reason"])
        widths.append(item.get("width", 0))
        heights.append(item.get("height", 0))
        hashes.append(item.get("sha256", ""))
    return {"index": batch["index"], "path": batch["path"], "image": np.stack(images), "ok": np.asarray(ok),
            "reason": np.asarray(reasons, dtype=object), "width": np.asarray(widths), "height": np.asarray(heights),
            "sha256": np.asarray(hashes, dtype=object)}


class FeatureActor:
    """Ray actor: holds the model and turns decoded batches into per-image summaries."""

    def __init__(self, model: str, weights: str | None, layers: Sequence[str], pool: str, precision: str,
                 device: str) -> None:

        self.torch = torch
        self.device = torch.device(device)
        self.model = load_model(model, weights=weights).to(self.device).to(memory_format=torch.channels_last)
        self.extractor = FeatureExtractor(self.model, [e.name for e in layer_table(self.model, layers)])
        self.model_input = model_info(self.model).input
        self.pool, self.precision = pool, precision

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        torch = self.torch
        good = np.asarray(batch["ok"], dtype=bool)
        out = {key: batch[key] for key in ("index", "path", "ok", "reason", "width", "height", "sha256")}
        if good.any():
            x = torch.from_numpy(np.ascontiguousarray(batch["image"][good])).to(self.device)
            x = self.model_input.normalise(x).contiguous(memory_format=torch.channels_last)
            dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
            with torch.autocast(device_type=self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                summaries = summarize(self.extractor(x), self.pool)
        else:
            summaries = {}
        count = len(good)
        for name, part in summaries.items():
            for key, value in part.items():
                if value is None or key == "positions":
                    continue
                full = np.zeros((count, *np.asarray(value).shape[1:]), dtype=np.asarray(value).dtype)
                full[good] = value
                out[f"{name}|{key}"] = full
            out[f"{name}|positions"] = np.full(count, part["positions"])
        return out


def _split(batch: dict[str, Any], layers: Sequence[str]) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]],
                                                                    list[tuple[int, str, str]]]:
    """A result batch from the actors back into (good items, summaries of the good ones, bad items)."""
    ok = np.asarray(batch["ok"], dtype=bool)
    good = [{"index": int(batch["index"][i]), "path": str(batch["path"][i]), "width": int(batch["width"][i]),
             "height": int(batch["height"][i]), "sha256": str(batch["sha256"][i])} for i in np.flatnonzero(ok)]
    bad = [(int(batch["index"][i]), str(batch["path"][i]), str(batch["reason"][i])) for i in np.flatnonzero(~ok)]
    summaries: dict[str, dict[str, Any]] = {}
    if good:
        for name in layers:
            part: dict[str, Any] = {"vector": None, "maps": None}
            for key in ("vector", "maps", "total", "squares", "maximum", "positive", "best", "best_y", "best_x"):
                column = f"{name}|{key}"
                if column in batch:
                    part[key] = np.asarray(batch[column])[ok]
            part["positions"] = int(np.asarray(batch[f"{name}|positions"])[ok][0])
            summaries[name] = part
    return good, summaries, bad


def run_ray(sources: list[str], out: str | os.PathLike[str], config: ExtractConfig, *, resume: bool = False,
            on_progress: Callable[[int, int], None] | None = None) -> ExtractSummary:
    """:func:`featuremaps.batch.run_extract` on Ray Data (see the module docstring); ``sources`` are absolute."""
    try:
        import ray
    except ImportError:
        raise SettingsError("the ray engine needs the ray extra: pip install 'featuremaps[ray]'") from None
    started = time.perf_counter()
    model = load_model(config.model, weights=config.weights)
    info = model_info(model)
    layers = layer_table(model, config.layers)
    del model
    store = Store(out)
    manifest = make_manifest(config, info, layers, sources)
    todo = store.open(manifest, sources, resume=resume)
    indices, expected = shard_plan(todo, config.shard_size, len(sources))
    zarr_write = open_maps(store, layers, len(sources), config.precision != "fp32") if config.pool == "none" else None
    collector = ShardCollector(store, manifest, expected, config, zarr_write)
    logging.getLogger("ray").setLevel(logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ray.data.DataContext.get_current().enable_progress_bars = False
    started_ray = not ray.is_initialized()
    if started_ray:
        resources: dict[str, Any] = {} if config.ray_address else {"num_cpus": max(2, config.workers + 1)}
        ray.init(address=config.ray_address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                 **resources)
    try:
        cuda = config.device.startswith("cuda")
        gpus = int(ray.cluster_resources().get("GPU", 0)) if cuda else 0
        actors = max(1, gpus) if cuda else 1
        dataset: Any = ray.data.from_items([{"index": i, "path": sources[i]} for i in indices])
        dataset = dataset.map_batches(_decode_batch, batch_size=config.batch_size, batch_format="numpy",
                                      fn_kwargs={"model_input": info.input.to_dict()})
        dataset = dataset.map_batches(
            FeatureActor, batch_size=config.batch_size, batch_format="numpy", concurrency=actors,
            num_gpus=1 if cuda else 0,
            fn_constructor_kwargs={"model": config.model, "weights": config.weights,
                                   "layers": [e.name for e in layers], "pool": config.pool,
                                   "precision": config.precision, "device": "cuda" if cuda else "cpu"},
        )
        done = 0
        names = [e.name for e in layers]
        with store.running(manifest):
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                good, summaries, bad = _split(batch, names)
                collector.add(good, summaries if good else None, bad)
                done += len(good) + len(bad)
                if on_progress is not None:
                    on_progress(done, len(indices))
            collector.close()
    finally:
        if started_ray:
            ray.shutdown()
    seconds = time.perf_counter() - started
    errors = store_errors(store, manifest)
    summary = ExtractSummary(str(store.root), len(sources), len(sources) - errors, errors, manifest.shards,
                             manifest.shards - len(todo), round(seconds, 3),
                             round(len(indices) / seconds, 2) if seconds else 0.0, names, redone_shards(store))
    store.finalise(manifest, summary.to_dict())
    return summary
