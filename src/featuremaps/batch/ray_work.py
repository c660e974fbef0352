"""The work of the Ray engine's actors, in their own processes: reading batches, the forward pass.

Imported only there (by the torch-free actor shells of :mod:`featuremaps.batch.ray_cluster`), so that the driver
starts the actors before it imports torch itself. Reading is featuremaps' own
:func:`~featuremaps.batch.decode.read_item` (hash, header checks, decode or a JPEG's bytes for the device); the
forward actor decodes deferred JPEGs on its device and runs the truncated graph with the reductions inside
(:func:`~featuremaps.batch.forward.device_forward`, the local engine's own). Only per-image summaries go back,
each row saying which node read and which computed it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from featuremaps.batch.config import ExtractConfig
from featuremaps.batch.decode import assemble, read_item
from featuremaps.batch.forward import autocast_for, device_forward
from featuremaps.batch.shards import host_summaries, layer_table
from featuremaps.features.info import model_info
from featuremaps.features.inputs import ModelInput
from featuremaps.models.registry import load_model

__all__ = ["BatchReader", "FeatureWork"]


_ITEM_KEYS = ("index", "path", "reason", "width", "height", "sha256")


def _decode_batch(batch: dict[str, np.ndarray], model_input: dict[str, Any], defer_jpeg: bool) -> dict[str, Any]:
    """Read, hash and check each file (:func:`~featuremaps.batch.decode.read_item`); decoded
    images come back as uint8 arrays, deferred JPEGs as their bytes, unreadable files with the reason."""
    started = time.perf_counter()
    frame = ModelInput.from_dict(model_input)
    items = [read_item(int(index), str(path), frame, defer_jpeg=defer_jpeg)
             for index, path in zip(batch["index"], batch["path"])]
    blank = np.zeros(frame.shape, np.uint8)
    rows = len(items)
    return {
        "read_node": np.asarray([_node_id()] * rows, dtype=object),
        "read_seconds": np.full(rows, (time.perf_counter() - started) / max(rows, 1)),
        **{key: np.asarray([item.get(key, "" if key in ("reason", "sha256") else 0) for item in items],
                           dtype=object if key in ("path", "reason", "sha256") else None) for key in _ITEM_KEYS},
        "deferred": np.asarray(["jpeg" in item for item in items]),
        "image": np.stack([item["tensor"].numpy() if "tensor" in item else blank for item in items]),
        "jpeg": np.asarray([item["jpeg"].numpy().tobytes() if "jpeg" in item else b"" for item in items],
                           dtype=object),
    }


class BatchReader:
    """A reader actor's work (``--decode workers`` or ``device``): reads batches ahead of the forward actors,
    as the local engine's worker processes do, in one thread (it takes no CPU of Ray's)."""

    def __init__(self, model_input: dict[str, Any], defer_jpeg: bool) -> None:
        torch.set_num_threads(1)
        self.model_input, self.defer_jpeg = model_input, defer_jpeg

    def read(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        """:func:`_decode_batch` of one batch."""
        return _decode_batch(batch, self.model_input, self.defer_jpeg)


def _node_id() -> str:
    import ray

    return str(ray.get_runtime_context().get_node_id())


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


class FeatureWork:
    """A forward actor's work: holds the model; reads its own batches (without reader actors), decodes
    deferred JPEGs on its device, runs the truncated graph with the reductions inside, and returns per-image
    summaries (the local engine's very functions)."""

    def __init__(self, model: str, weights: str | None, layers: Sequence[str], config: dict[str, Any],
                 reads: bool) -> None:
        self.node = _node_id()
        self.config = ExtractConfig(**config)
        self.device = torch.device(self.config.device)
        self.model = load_model(model, weights=weights).to(self.device).to(memory_format=torch.channels_last)
        self.layers = layer_table(self.model, layers)
        self.forward = device_forward(self.model, self.layers, self.config)
        self.model_input = model_info(self.model).input
        self.shapes = {entry.name: tuple(entry.output_shape) for entry in self.layers}
        # without reader actors, this actor reads and decodes its own batches
        self.read: dict[str, Any] | None = (
            {"model_input": self.model_input.to_dict(), "defer_jpeg": self.config.decode_on_device} if reads else None)

    def compute(self, batch: dict[str, Any]) -> dict[str, Any]:
        """A batch of ``index``/``path`` (read here) or of read items (from :func:`_decode_batch`) -> one row
        per image: its summaries by ``layer|key``, ``ok``/``reason``, and which node read and computed it."""
        if self.read is not None:
            batch = _decode_batch(batch, **self.read)
        started = time.perf_counter()
        assembled = assemble(_items(batch), self.model_input, self.device)
        bad = {index: reason for index, _, reason in assembled.bad}
        order = [int(index) for index in batch["index"]]
        good_rows = {item["index"]: row for row, item in enumerate(assembled.good)}
        out: dict[str, Any] = {"index": batch["index"], "path": batch["path"],
                               "ok": np.asarray([index in good_rows for index in order]),
                               "reason": np.asarray([bad.get(index, "") for index in order], dtype=object),
                               "width": batch["width"], "height": batch["height"], "sha256": batch["sha256"],
                               "read_node": batch["read_node"], "read_seconds": batch["read_seconds"],
                               "node": np.asarray([self.node] * len(order), dtype=object)}
        if assembled.batch is None:
            out["forward_seconds"] = np.full(len(order), (time.perf_counter() - started) / max(len(order), 1))
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
        out["forward_seconds"] = np.full(len(order), (time.perf_counter() - started) / max(len(order), 1))
        return out
