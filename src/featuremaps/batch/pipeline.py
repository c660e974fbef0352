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

import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import featuremaps
from featuremaps.batch.sources import absolute_sources, list_sources
from featuremaps.batch.stats import ChannelStats
from featuremaps.batch.store import Manifest, ShardResult, Store, sources_digest
from featuremaps.batch.topk import TopK
from featuremaps.errors import FeatureMapsError, SettingsError
from featuremaps.extract import capture, catalogue_for, select_layers
from featuremaps.models.catalogue import LayerInfo
from featuremaps.models.preprocess import ModelInfo, model_info, normalise, preprocess, preprocess_uint8
from featuremaps.models.registry import load_model

__all__ = ["ExtractConfig", "ExtractSummary", "decode_item", "run_extract"]

logger = logging.getLogger(__name__)

Pool = Literal["avg", "max", "avgmax", "none"]
POOLS: tuple[str, ...] = ("avg", "max", "avgmax", "none")
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
ENGINES: tuple[str, ...] = ("local", "ray")


@dataclass(frozen=True)
class ExtractConfig:
    """One extraction job. Only model, weights, layers, pooling, precision and top_k change the
    values (they make the fingerprint); the rest only changes how fast it runs."""

    model: str
    layers: tuple[str, ...]
    weights: str | None = None
    pool: str = "avg"
    batch_size: int = 32
    workers: int = 1
    device: str = "cpu"
    precision: str = "fp32"
    top_k: int = 8
    shard_size: int = 256
    compile: bool = False
    engine: str = "local"
    ray_address: str | None = None

    def __post_init__(self) -> None:
        if not self.layers:
            raise SettingsError("--layers is required (see 'featuremaps layers MODEL')")
        if self.pool not in POOLS:
            raise SettingsError(f"pool must be one of {', '.join(POOLS)}; got {self.pool!r}")
        if self.precision not in PRECISIONS:
            raise SettingsError(f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")
        if self.engine not in ENGINES:
            raise SettingsError(f"engine must be one of {', '.join(ENGINES)}; got {self.engine!r}")
        for name, low in (("batch_size", 1), ("workers", 0), ("top_k", 0), ("shard_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SettingsError(f"{name} must be an int >= {low}; got {value!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise SettingsError("device cuda was asked for, but torch sees no CUDA GPU on this machine")
        if not self.device.startswith("cuda") and self.device != "cpu":
            raise SettingsError(f"device must be cpu or cuda; got {self.device!r}")
        if self.precision == "fp16" and self.device == "cpu":
            raise SettingsError("fp16 needs a CUDA device; on the CPU use bf16 or fp32")


@dataclass
class ExtractSummary:
    """What a run did."""

    store: str
    images: int
    readable: int
    errors: int
    shards: int
    shards_skipped: int
    seconds: float
    images_per_second: float
    layers: list[str] = field(default_factory=list)
    shards_redone: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decode_item(path: str, info: ModelInfo) -> dict[str, Any]:
    """Read, hash, decode and preprocess one file; a failure becomes ``{"reason": ...}``, never an exception."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        return {"reason": f"cannot read file ({error.strerror or error})"}
    if not data:
        return {"reason": "file is empty (0 bytes)"}
    try:
        from featuremaps.images import open_pil

        image = open_pil(data)
        width, height = image.size
        # uint8 through the worker queue (4x less data); the main process normalises whole batches
        tensor = preprocess(info, image) if info.transforms is not None else preprocess_uint8(info, image)
    except FeatureMapsError as error:
        return {"reason": getattr(error, "reason", str(error))}
    except Exception as error:  # noqa: BLE001 - one bad file must not stop the job
        return {"reason": f"{type(error).__name__}: {error}"}
    return {"tensor": tensor, "width": width, "height": height, "sha256": hashlib.sha256(data).hexdigest()}


class _Files(Dataset):
    """``(index, path)`` items decoded in the DataLoader's worker processes."""

    def __init__(self, items: Sequence[tuple[int, str]], info: ModelInfo) -> None:
        self.items, self.info = list(items), info

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> dict[str, Any]:
        index, path = self.items[position]
        return {"index": index, "path": path, **decode_item(path, self.info)}


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


def layer_table(model: nn.Module, layers: Sequence[str]) -> list[LayerInfo]:
    """Catalogue entries of the requested layers (spatial ones), at the model's input size."""
    info = model_info(model)
    selected = select_layers(catalogue_for(model, info.input_size), list(layers), model_name=info.name)
    flat = [e for e in selected if not e.is_spatial]
    if flat:
        raise SettingsError(f"layers {', '.join(e.name for e in flat)} have no feature maps (output "
                            f"{list(flat[0].output_shape)}); choose layers with maps of shape (C, H, W)")
    return selected


def make_manifest(config: ExtractConfig, info: ModelInfo, layers: list[LayerInfo], sources: list[str]) -> Manifest:
    preprocessing = {"input_size": list(info.input_size), "resize": info.resize,
                     "mean": list(info.mean) if info.mean else None, "std": list(info.std) if info.std else None,
                     "weights_transforms": info.transforms is not None}
    job = {"model": config.model, "weights": config.weights, "layers": [e.name for e in layers],
           "preprocessing": preprocessing, "pool": config.pool, "precision": config.precision, "top_k": config.top_k,
           "featuremaps": featuremaps.__version__, "batch_size": config.batch_size, "workers": config.workers,
           "device": config.device, "engine": config.engine}
    table = [{"name": e.name, "type": e.type, "channels": int(e.output_shape[0]), "output_shape": list(e.output_shape),
              "jump": list(e.jump) if e.jump else None,
              "receptive_field": list(e.receptive_field) if e.receptive_field else None,
              "start": list(e.start) if e.start else None} for e in layers]
    return Manifest(job, table, len(sources), config.shard_size, sources_digest(sources))


def summarize(maps: dict[str, torch.Tensor], pool: str) -> dict[str, dict[str, Any]]:
    """Reduce each layer's maps ``(N, C, H, W)`` to what the store keeps, per image.

    Returns per layer: ``vector`` ``(N, F)`` (None with pool none), ``maps`` (pool none only),
    ``positions`` (H * W), per-channel ``total``, ``squares``, ``maximum``, ``positive`` ``(N, C)``
    (per image in float32, accumulated across images in float64) and the best unit ``best``,
    ``best_y``, ``best_x`` ``(N, C)``. Each is one pass over the maps; the average-pooled vector
    is the sum divided by H * W. Both engines use it, so a Ray store holds the same numbers.
    """
    out = {}
    for name, tensor in maps.items():
        values = tensor.detach().float().cpu()
        n, c, height, width = values.shape
        # (N, H*W, C): a free view of channels_last maps, so every reduction reads memory in order
        units = values.permute(0, 2, 3, 1).reshape(n, height * width, c)
        positions = height * width
        best, where = units.max(dim=1)  # (N, C): also the per-image maximum
        total = units.sum(dim=1)  # one float32 pass each; sums are kept in float64 from here on
        squares = (units * units).sum(dim=1)
        positive = torch.sign(units).clamp_(min=0).sum(dim=1)  # 7x faster than summing a bool tensor
        if pool == "avg":
            vector = (total / positions).numpy()
        elif pool == "max":
            vector = best.numpy()
        elif pool == "avgmax":
            vector = torch.cat([total / positions, best], dim=1).numpy()
        else:
            vector = None
        out[name] = {
            "vector": vector,
            "maps": values.numpy() if pool == "none" else None,
            "positions": positions,
            "total": total.double().numpy(),
            "squares": squares.double().numpy(),
            "maximum": best.double().numpy(),
            "positive": positive.double().numpy(),
            "best": best.numpy(),
            "best_y": (where // width).numpy(),
            "best_x": (where % width).numpy(),
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
        """Add the images ``good`` (index, path, width, height, sha256) and their :func:`summarize` output."""
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
                                   pooled=self.config.pool != "none")

    def close(self) -> None:
        if self.builders:
            raise FeatureMapsError(f"internal error: shards {sorted(self.builders)} were not completed")


def _autocast(config: ExtractConfig):
    if config.precision == "fp32":
        return torch.autocast(device_type="cpu", enabled=False)
    dtype = torch.bfloat16 if config.precision == "bf16" else torch.float16
    return torch.autocast(device_type="cuda" if config.device.startswith("cuda") else "cpu", dtype=dtype)


def _open_maps(store: Store, layers: list[LayerInfo], images: int, half: bool) -> Callable[[str, int, torch.Tensor], None]:
    import numpy as np
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
        arrays[name][index] = np.asarray(maps).astype(np.float16 if half else np.float32)

    return write


def run_extract(
    source: str | Path | Sequence[str], out: str | Path, config: ExtractConfig, *, resume: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
) -> ExtractSummary:
    """Extract ``config.layers`` of every image of ``source`` into the store ``out``.

    Args:
        source: a folder, a .txt/.csv/.parquet list, or a list of paths.
        resume: continue an existing store (finished shards are skipped; a different config
            is refused with what differs).
        on_progress: called with ``(images done, images to do)`` after each batch.
    """
    if config.engine == "ray":
        from featuremaps.batch.ray_engine import run_extract_ray

        return run_extract_ray(source, out, config, resume=resume, on_progress=on_progress)
    started = time.perf_counter()
    sources = absolute_sources(source) if isinstance(source, (list, tuple)) else list_sources(source)
    device = torch.device(config.device)
    model = load_model(config.model, weights=config.weights).to(device)
    info = model_info(model)
    layers = layer_table(model, config.layers)
    store = Store(out)
    manifest = make_manifest(config, info, layers, sources)
    todo = store.open(manifest, sources, resume=resume)
    skipped = manifest.shards - len(todo)
    zarr_write = _open_maps(store, layers, len(sources), config.precision != "fp32") if config.pool == "none" else None
    indices, expected = shard_plan(todo, config.shard_size, len(sources))
    items = [(i, sources[i]) for i in indices]
    cuda = device.type == "cuda"
    loader = DataLoader(_Files(items, info), batch_size=config.batch_size, num_workers=config.workers,
                        collate_fn=_collate, pin_memory=cuda, prefetch_factor=2 if config.workers else None,
                        persistent_workers=False, worker_init_fn=_lower_priority if config.workers else None)
    model = model.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if config.compile else model
    collector = ShardCollector(store, manifest, expected, config, zarr_write)
    done = 0
    with store.running(manifest):
        for batch in loader:
            summaries = None
            if batch["tensor"] is not None:
                x = batch["tensor"].to(device, non_blocking=cuda)
                if x.dtype == torch.uint8:
                    x = normalise(info, x)
                x = x.contiguous(memory_format=torch.channels_last)
                with _autocast(config):
                    summaries = summarize(capture(forward, x, layers), config.pool)
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


def redone_shards(store: Store) -> list[dict[str, Any]]:
    """The finished shards a resume found damaged and did again, with the reason."""
    return [{"shard": shard, "reason": reason} for shard, reason in store.redone]


def store_errors(store: Store, manifest: Manifest) -> int:
    import pyarrow.parquet as pq

    return sum(pq.read_metadata(store.part_path(s, "errors.parquet")).num_rows for s in range(manifest.shards))
