"""The same extraction on Ray Data, for a cluster (``pip install 'featuremaps[ray]'``).

Plan: ``from_items`` (index, path) -> ``map_batches(read)`` as CPU tasks that read, hash and
check each file and decode it (or keep a JPEG's bytes for the device) with featuremaps' own
:func:`~featuremaps.batch.decode.read_item` (not ``read_images``, which fails on mixed sizes
and on decompression bombs) -> ``map_batches(FeatureActor)`` on an actor pool (one GPU per
actor when the cluster has GPUs) that decodes the deferred JPEGs on its device and runs the
truncated graph with the reductions inside (:func:`~featuremaps.batch.forward.device_forward`,
the local engine's own) -> the driver streams the results and writes the same store, shard by
shard, with the same resume rules. Point it at a cluster with ``--ray-address ray://HEAD:10001``
(or ``auto``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from featuremaps.batch.config import ExtractConfig, ExtractSummary
from featuremaps.batch.decode import assemble, read_item
from featuremaps.batch.forward import autocast_for, device_forward
from featuremaps.batch.shards import (
    ShardCollector,
    host_summaries,
    layer_table,
    make_manifest,
    open_maps,
    redone_shards,
    shard_plan,
    store_errors,
)
from featuremaps.batch.store import Store
from featuremaps.errors import SettingsError
from featuremaps.features.info import model_info
from featuremaps.features.inputs import ModelInput
from featuremaps.models.registry import load_model

__all__ = ["run_ray"]


_ITEM_KEYS = ("index", "path", "reason", "width", "height", "sha256")


def _decode_batch(batch: dict[str, np.ndarray], model_input: dict[str, Any], defer_jpeg: bool) -> dict[str, Any]:
    """Ray task: read, hash and check each file (:func:`~featuremaps.batch.decode.read_item`); decoded
    images come back as uint8 arrays, deferred JPEGs as their bytes, unreadable files with the reason."""
    frame = ModelInput.from_dict(model_input)
    items = [read_item(int(index), str(path), frame, defer_jpeg=defer_jpeg)
             for index, path in zip(batch["index"], batch["path"])]
    blank = np.zeros(frame.shape, np.uint8)
    return {
        **{key: np.asarray([item.get(key, "" if key in ("reason", "sha256") else 0) for item in items],
                           dtype=object if key in ("path", "reason", "sha256") else None) for key in _ITEM_KEYS},
        "deferred": np.asarray(["jpeg" in item for item in items]),
        "image": np.stack([item["tensor"].numpy() if "tensor" in item else blank for item in items]),
        "jpeg": np.asarray([item["jpeg"].numpy().tobytes() if "jpeg" in item else b"" for item in items],
                           dtype=object),
    }


def _items(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """A decoded Ray batch back into the items :func:`~featuremaps.batch.decode.assemble` takes."""
    items = []
    for row in range(len(batch["index"])):
        item: dict[str, Any] = {"index": int(batch["index"][row]), "path": str(batch["path"][row])}
        if batch["reason"][row]:
            item["reason"] = str(batch["reason"][row])
        else:
            item.update(width=int(batch["width"][row]), height=int(batch["height"][row]),
                        sha256=str(batch["sha256"][row]))
            if bool(batch["deferred"][row]):
                item["jpeg"] = torch.frombuffer(bytearray(batch["jpeg"][row]), dtype=torch.uint8)
            else:
                item["tensor"] = torch.from_numpy(np.ascontiguousarray(batch["image"][row]))
        items.append(item)
    return items


class FeatureActor:
    """Ray actor: holds the model; decodes deferred JPEGs on its device, runs the truncated graph with
    the reductions inside, and returns per-image summaries (the local engine's very functions)."""

    def __init__(self, model: str, weights: str | None, layers: Sequence[str], config: dict[str, Any]) -> None:
        self.config = ExtractConfig(**config)
        self.device = torch.device(self.config.device)
        self.model = load_model(model, weights=weights).to(self.device).to(memory_format=torch.channels_last)
        self.layers = layer_table(self.model, layers)
        self.forward = device_forward(self.model, self.layers, self.config)
        self.model_input = model_info(self.model).input
        self.shapes = {entry.name: tuple(entry.output_shape) for entry in self.layers}

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        assembled = assemble(_items(batch), self.model_input, self.device)
        bad = {index: reason for index, _, reason in assembled.bad}
        order = [int(index) for index in batch["index"]]
        good_rows = {item["index"]: row for row, item in enumerate(assembled.good)}
        out: dict[str, Any] = {"index": batch["index"], "path": batch["path"],
                               "ok": np.asarray([index in good_rows for index in order]),
                               "reason": np.asarray([bad.get(index, "") for index in order], dtype=object),
                               "width": batch["width"], "height": batch["height"], "sha256": batch["sha256"]}
        if assembled.batch is None:
            return out
        x = assembled.batch.contiguous(memory_format=torch.channels_last)
        with autocast_for(self.config, self.device):
            reduced = self.forward(x)
        summaries = host_summaries(reduced, self.shapes, self.config.pool)
        rows = np.asarray([good_rows.get(index, -1) for index in order])
        present = rows >= 0
        for name, part in summaries.items():
            for key, value in part.items():
                if value is None or key == "positions":
                    continue
                value = np.asarray(value)
                full = np.zeros((len(order), *value.shape[1:]), dtype=value.dtype)
                full[present] = value[rows[present]]
                out[f"{name}|{key}"] = full
            out[f"{name}|positions"] = np.full(len(order), part["positions"])
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
                                      fn_kwargs={"model_input": info.input.to_dict(),
                                                 "defer_jpeg": config.decode_on_device})
        dataset = dataset.map_batches(
            FeatureActor, batch_size=config.batch_size, batch_format="numpy", concurrency=actors,
            num_gpus=1 if cuda else 0,
            fn_constructor_kwargs={"model": config.model, "weights": config.weights,
                                   "layers": [e.name for e in layers],
                                   "config": {**asdict(config), "device": "cuda" if cuda else "cpu",
                                              "engine": "local", "compile": config.compile}},
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
                             round(len(indices) / seconds, 2) if seconds else 0.0, layers=names,
                             shards_redone=redone_shards(store))
    store.finalise(manifest, summary.to_dict())
    return summary
