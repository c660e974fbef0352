"""What both extraction engines share: decoding a file, the layer table, the manifest, the per-image
summaries of the maps, and the shard bookkeeping that writes each shard once it is complete."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from featuremaps.batch.config import ExtractConfig
from featuremaps.batch.stats import ChannelStats
from featuremaps.batch.store import Manifest, ShardResult, Store, sources_digest
from featuremaps.batch.topk import TopK
from featuremaps.errors import FeatureMapsError, SettingsError
from featuremaps.features import FeatureExtractor
from featuremaps.features.catalogue import LayerInfo
from featuremaps.features.info import ModelInfo, model_info
from featuremaps.version import __version__

__all__ = [
    "ShardBuilder",
    "ShardCollector",
    "host_summaries",
    "layer_table",
    "make_manifest",
    "open_maps",
    "redone_shards",
    "reduce_maps",
    "shard_plan",
    "store_errors",
]


def layer_table(model: nn.Module, layers: Sequence[str]) -> list[LayerInfo]:
    """Catalogue entries of the requested layers (spatial ones), at the model's input size.

    Raises:
        SettingsError: a layer without maps, or a model whose input has no fixed size (images
            are batched, so they must all become one size).
    """
    frame = model_info(model).input.frame
    if frame == "whole":
        raise SettingsError(f"{model_info(model).name} takes images at their own aspect (frame 'whole'), so they "
                            "cannot be batched; extract from a model with a fixed input size")
    selected = FeatureExtractor(model, list(layers)).layers
    flat = [e for e in selected if not e.is_spatial]
    if flat:
        raise SettingsError(f"layers {', '.join(e.name for e in flat)} have no feature maps (output "
                            f"{list(flat[0].output_shape)}); choose layers with maps of shape (C, H, W)")
    return selected


def make_manifest(config: ExtractConfig, info: ModelInfo, layers: list[LayerInfo], sources: list[str]) -> Manifest:
    preprocessing = info.input.to_dict()
    job = {"model": config.model, "weights": config.weights, "layers": [e.name for e in layers],
           "preprocessing": preprocessing, "pool": config.pool, "precision": config.precision, "top_k": config.top_k,
           "featuremaps": __version__, "batch_size": config.batch_size, "workers": config.workers,
           "device": config.device, "engine": config.engine, "weights_label": info.weights_label}
    table = [{"name": e.name, "type": e.type, "channels": int(e.output_shape[0]), "output_shape": list(e.output_shape),
              "jump": list(e.jump) if e.jump else None,
              "receptive_field": list(e.receptive_field) if e.receptive_field else None,
              "start": list(e.start) if e.start else None} for e in layers]
    return Manifest(job, table, len(sources), config.shard_size, sources_digest(sources))


def reduce_maps(maps: torch.Tensor, pool: str) -> dict[str, torch.Tensor]:
    """What the store keeps of one layer's maps ``(N, C, H, W)``, computed where the maps are.

    Returns ``(N, C)`` float32 tensors on the maps' device: per image and channel the ``total``,
    the sum of ``squares``, the ``best`` value and its flat position ``where``, the count of
    ``positive`` units, and the pooled ``vector`` (``(N, F)``; the full ``maps`` with pool none).
    One read of the maps per figure, in float32; the rest of the pipeline only ever moves these
    small results off the device. Plain torch, so it also runs inside a compiled graph.
    """
    values = maps.float()
    n, c, height, width = values.shape
    # (N, H*W, C): a free view of channels_last maps, so every reduction reads memory in order
    units = values.permute(0, 2, 3, 1).reshape(n, height * width, c)
    best, where = units.max(dim=1)  # (N, C): also the per-image maximum
    total = units.sum(dim=1)
    out = {"total": total, "squares": (units * units).sum(dim=1), "best": best, "where": where,
           "positive": (units > 0).sum(dim=1, dtype=torch.float32)}
    if pool == "avg":
        out["vector"] = total / (height * width)
    elif pool == "max":
        out["vector"] = best
    elif pool == "avgmax":
        out["vector"] = torch.cat([total / (height * width), best], dim=1)
    else:
        out["maps"] = values
    return out


def host_summaries(reduced: dict[str, dict[str, torch.Tensor]], shapes: dict[str, tuple[int, ...]],
                   pool: str) -> dict[str, dict[str, Any]]:
    """:func:`reduce_maps`'s results, on the host, in the form the shard builder takes.

    Per layer: ``vector`` ``(N, F)`` (None with pool none), ``maps`` (pool none only),
    ``positions`` (H * W), per-channel ``total``, ``squares``, ``maximum``, ``positive``
    ``(N, C)`` in float64 (they are accumulated across images in float64) and the best unit
    ``best``, ``best_y``, ``best_x`` ``(N, C)``.
    """
    out = {}
    for name, parts in reduced.items():
        host = {key: value.cpu() for key, value in parts.items()}
        height, width = shapes[name][-2:]
        out[name] = {
            "vector": host["vector"].numpy() if "vector" in host else None,
            "maps": host["maps"].numpy() if pool == "none" else None,
            "positions": height * width,
            "total": host["total"].double().numpy(),
            "squares": host["squares"].double().numpy(),
            "maximum": host["best"].double().numpy(),
            "positive": host["positive"].double().numpy(),
            "best": host["best"].numpy(),
            "best_y": (host["where"] // width).numpy(),
            "best_x": (host["where"] % width).numpy(),
        }
    return out


class ShardBuilder:
    """Collects one shard's rows, statistics and top-k as batches arrive."""

    def __init__(self, shard: int, layers: Sequence[dict[str, Any]], top_k: int) -> None:
        self.shard = shard
        self.rows: list[dict[str, Any]] = []
        self.errors: list[tuple[int, str, str]] = []
        self.stats = {e["name"]: ChannelStats.empty(e["channels"]) for e in layers}
        self.topk = {e["name"]: TopK.empty(e["channels"], top_k) for e in layers} if top_k else {}
        self.seen = 0

    def add(self, good: list[dict[str, Any]], summaries: dict[str, dict[str, Any]],
            zarr_write: Callable[[str, int, Any], None] | None) -> None:
        """Add the images ``good`` (index, path, width, height, sha256) and their :func:`host_summaries`."""
        indices = torch.tensor([item["index"] for item in good], dtype=torch.int64)
        for name, part in summaries.items():
            self.stats[name].add_images(part["positions"], part["total"], part["squares"], part["maximum"],
                                        part["positive"])
            if name in self.topk:
                self.topk[name].update_best(torch.as_tensor(part["best"]), torch.as_tensor(part["best_y"]),
                                            torch.as_tensor(part["best_x"]), indices)
            for row, item in enumerate(good):
                entry = {"index": item["index"], "path": item["path"], "layer": name, "width": item["width"],
                         "height": item["height"], "sha256": item["sha256"]}
                if part["vector"] is not None:
                    entry["vector"] = part["vector"][row]
                elif zarr_write is not None:
                    zarr_write(name, item["index"], part["maps"][row])
                self.rows.append(entry)
        self.seen += len(good)

    def result(self) -> ShardResult:
        self.rows.sort(key=lambda r: (r["index"], r["layer"]))
        return ShardResult(self.shard, self.rows, sorted(self.errors), self.stats, self.topk)


def shard_plan(todo: Sequence[int], shard_size: int, images: int) -> tuple[list[int], dict[int, int]]:
    """Image indices of the shards to do, and each shard's image count."""
    indices = [i for shard in todo for i in range(shard * shard_size, min((shard + 1) * shard_size, images))]
    expected = {shard: min((shard + 1) * shard_size, images) - shard * shard_size for shard in todo}
    return indices, expected


class ShardCollector:
    """Routes summarised batches to their shards and writes each shard once it is complete."""

    def __init__(self, store: Store, manifest: Manifest, expected: dict[int, int], config: ExtractConfig,
                 zarr_write: Callable[[str, int, Any], None] | None) -> None:
        self.store, self.manifest, self.expected, self.config = store, manifest, expected, config
        self.zarr_write = zarr_write
        self.builders: dict[int, ShardBuilder] = {}
        self.written = 0  # shards written by this collector

    def _builder(self, index: int) -> ShardBuilder:
        shard = index // self.config.shard_size
        if shard not in self.builders:
            self.builders[shard] = ShardBuilder(shard, self.manifest.layers, self.config.top_k)
        return self.builders[shard]

    def add(self, good: list[dict[str, Any]], summaries: dict[str, dict[str, Any]] | None,
            bad: list[tuple[int, str, str]]) -> None:
        for index, path, reason in bad:
            builder = self._builder(index)
            builder.errors.append((index, path, reason))
            builder.seen += 1
        if good and summaries is not None:
            for shard in sorted({item["index"] // self.config.shard_size for item in good}):
                rows = [k for k, item in enumerate(good) if item["index"] // self.config.shard_size == shard]
                part = {name: {key: (value[rows] if hasattr(value, "shape") and key != "positions" else value)
                               for key, value in layer.items()} for name, layer in summaries.items()}
                self._builder(good[rows[0]]["index"]).add([good[k] for k in rows], part, self.zarr_write)
        for shard in [s for s, b in self.builders.items() if b.seen == self.expected[s]]:
            self.store.write_shard(self.builders.pop(shard).result(), half=self.config.precision != "fp32",
                                   pool=self.config.pool)
            self.written += 1

    def close(self) -> None:
        if self.builders:
            raise FeatureMapsError(f"internal error: shards {sorted(self.builders)} were not completed")


def open_maps(store: Store, layers: list[LayerInfo], images: int, half: bool) -> Callable[[str, int, Any], None]:
    """The writer of full maps (``--pool none``): one Zarr v3 array per layer, one chunk per image."""
    import numpy as np

    from featuremaps.batch.config import require

    require("zarr", "--pool none (full maps are stored as Zarr arrays)")
    import zarr

    arrays = {}
    for entry in layers:
        shape = (images, *entry.output_shape)
        path = store.maps_path(entry.name)
        if path.exists():
            arrays[entry.name] = zarr.open_array(str(path), mode="r+")
        else:
            arrays[entry.name] = zarr.create_array(store=str(path), shape=shape, chunks=(1, *entry.output_shape),
                                                   dtype="float16" if half else "float32", fill_value=np.nan,
                                                   zarr_format=3)

    def write(name: str, index: int, maps: Any) -> None:
        try:
            arrays[name][index] = np.asarray(maps).astype(np.float16 if half else np.float32)
        except OSError as error:  # zarr names no file: say which array and image (a full disk, say)
            raise OSError(error.errno, f"{error.strerror or error} (writing image {index})",
                          str(store.maps_path(name))) from error

    return write


def redone_shards(store: Store) -> list[dict[str, Any]]:
    """The finished shards a resume found damaged and did again, with the reason."""
    return [{"shard": shard, "reason": reason} for shard, reason in store.redone]


def store_errors(store: Store, manifest: Manifest) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(store.part_path(s, "errors.parquet")).num_rows for s in range(manifest.shards))
