"""The store: what a dataset extraction writes, shard by shard, so that a killed run resumes exactly.

Layout::

    STORE/manifest.json                  config, its fingerprint, layers, shard size, status
    STORE/sources.parquet                index, path: the image list (the index is the image's id)
    STORE/features/<layer>/shard-00000.parquet
                                         one row per readable image and layer: index, path, layer,
                                         vector (fixed-size list of float32 or float16; absent with
                                         pool none), width, height, sha256 (one folder per layer, as
                                         each layer's vectors have their own length)
    STORE/parts/shard-00000.stats.npz    the shard's per-channel sums (merged at the end)
    STORE/parts/shard-00000.topk.parquet the shard's best K images per channel
    STORE/parts/shard-00000.errors.parquet  index, path, reason for each unreadable image
    STORE/parts/shard-00000.done         written last: the shard is complete
    STORE/maps/<layer>.zarr              with pool none: Zarr v3 array (N, C, H, W), one chunk per image
    STORE/stats.parquet                  layer, channel, mean, std, max, fraction_positive, count
    STORE/topk.parquet                   layer, channel, rank, value, index, path, y, x
    STORE/errors.parquet                 index, path, reason

Shard ``i`` holds images ``i * shard_size ... (i + 1) * shard_size - 1``. Each of its files
is written to a temporary name, flushed with fsync and renamed into place; the ``.done``
marker comes last and holds the SHA-256 of each of the shard's files. ``resume`` checks
every finished shard against its marker, recomputes a shard whose files are missing or
changed, skips the others and recomputes the rest; everything is deterministic, so the
values are the same. Source paths are stored absolute, so a store is read (and resumed)
from any directory. The manifest's ``status`` is ``running``, ``complete``,
``interrupted`` (Ctrl-C: resume it) or ``failed`` (with the reason).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from featuremaps.batch.stats import ChannelStats
from featuremaps.batch.topk import TopK
from featuremaps.errors import SettingsError
from featuremaps.features.pooling import pooled_size
from featuremaps.files import atomic_write, parse_json, read_regular_file, safe_name

__all__ = ["STORE_VERSION", "Manifest", "ShardResult", "Store"]

STORE_VERSION = 2
_FINGERPRINT_KEYS = ("model", "weights", "layers", "preprocessing", "pool", "precision", "top_k", "featuremaps")


def _write_table(table: pa.Table, path: Path) -> Path:
    return atomic_write(path, lambda temp: pq.write_table(table, temp))


@dataclass
class Manifest:
    """What the store holds and how it was made."""

    config: dict[str, Any]
    layers: list[dict[str, Any]]
    images: int
    shard_size: int
    sources_sha256: str
    status: str = "running"
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        canonical = json.dumps({k: self.config.get(k) for k in _FINGERPRINT_KEYS}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def weights_label(self) -> str:
        """What the values were computed with: ``untrained (random) weights`` when no weights were given."""
        label = self.config.get("weights_label")
        if isinstance(label, str):
            return label
        weights = self.config.get("weights")  # a store made before the label was recorded
        return f"weights {weights}" if weights else "weights not recorded"

    @property
    def shards(self) -> int:
        return -(-self.images // self.shard_size)

    def to_dict(self) -> dict[str, Any]:
        return {"store_version": STORE_VERSION, "fingerprint": self.fingerprint, "config": self.config,
                "weights_label": self.weights_label,
                "layers": self.layers, "images": self.images, "shard_size": self.shard_size, "shards": self.shards,
                "sources_sha256": self.sources_sha256, "status": self.status, "summary": self.summary}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """The manifest in ``data``, its fields checked (a store may come from anywhere: nothing unchecked
        reaches a path or a page).

        Raises:
            ValueError, TypeError, KeyError: a field is missing or of the wrong kind.
        """
        if not isinstance(data, dict) or not isinstance(data["config"], dict):
            raise TypeError("the manifest and its config must be JSON objects")
        layers = data["layers"]
        if not isinstance(layers, list):
            raise TypeError("layers must be a list")
        for number, layer in enumerate(layers):
            _check_layer(layer, number)
        if len({layer["name"] for layer in layers}) != len(layers):
            raise ValueError("two layers have the same name")
        images, shard_size = data["images"], data["shard_size"]
        for key, value in (("images", images), ("shard_size", shard_size)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_COUNT:
                raise ValueError(f"{key} must be an integer from 0 to {_MAX_COUNT:,}")
        status, summary = data.get("status", "running"), data.get("summary", {})
        if not isinstance(status, str) or not isinstance(summary, dict):
            raise TypeError("status must be a string and summary an object")
        return cls(data["config"], layers, images, shard_size, str(data["sources_sha256"]), status, summary)

    def differences(self, other: Manifest) -> list[str]:
        """What makes ``other`` a different job (empty when a resume may go on)."""
        found = [f"{key}: {self.config.get(key)!r} in the store, {other.config.get(key)!r} now"
                 for key in _FINGERPRINT_KEYS if self.config.get(key) != other.config.get(key)]
        if self.images != other.images:
            found.append(f"sources: {self.images} images in the store, {other.images} now")
        if self.shard_size != other.shard_size:
            found.append(f"shard size: {self.shard_size} in the store, {other.shard_size} now")
        return found


_MAX_COUNT = 2**40
_MAX_MANIFEST_BYTES = 64 * 1024 * 1024
_NUMBER_PAIRS = ("jump", "receptive_field", "start")


def _check_layer(layer: Any, number: int) -> None:
    """One entry of the manifest's layer table: name and type short strings, counts and sizes integers."""
    if not isinstance(layer, dict):
        raise TypeError(f"layer {number} must be an object")
    for key in ("name", "type"):
        value = layer.get(key)
        if not isinstance(value, str) or not 0 < len(value) <= 300 or any(ord(ch) < 32 for ch in value):
            raise ValueError(f"layer {number}: {key} must be a one-line string of 1 to 300 characters")
    channels, shape = layer.get("channels"), layer.get("output_shape")
    if isinstance(channels, bool) or not isinstance(channels, int) or not 0 < channels <= 1_000_000:
        raise ValueError(f"layer {number}: channels must be an integer from 1 to 1,000,000")
    if not isinstance(shape, list) or not 1 <= len(shape) <= 4 or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _MAX_COUNT for v in shape):
        raise ValueError(f"layer {number}: output_shape must be a list of up to 4 non-negative integers")
    for key in _NUMBER_PAIRS:
        value = layer.get(key)
        if value is not None and (not isinstance(value, list) or len(value) != 2 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) <= _MAX_COUNT for v in value)):
            raise ValueError(f"layer {number}: {key} must be null or a pair of numbers")


def sources_digest(paths: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.encode())
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass
class ShardResult:
    """Everything one shard produced, ready to be written."""

    shard: int
    rows: list[dict[str, Any]]
    errors: list[tuple[int, str, str]]
    stats: dict[str, ChannelStats]
    topk: dict[str, TopK]


class Store:
    """A store folder: create or resume it, write shards, finalise, read results."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    # --- paths -----------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def features_path(self, shard: int, layer: str) -> Path:
        return self.root / "features" / _folder(layer) / f"shard-{shard:05d}.parquet"

    def done_path(self, shard: int) -> Path:
        return self.part_path(shard, "done")

    def part_path(self, shard: int, kind: str) -> Path:
        return self.root / "parts" / f"shard-{shard:05d}.{kind}"

    def maps_path(self, layer: str) -> Path:
        return self.root / "maps" / f"{_folder(layer)}.zarr"

    # --- lifecycle -------------------------------------------------------------------
    def open(self, manifest: Manifest, sources: list[str], *, resume: bool) -> list[int]:
        """Create the store, or check a resume; return the shards still to do.

        On resume every finished shard is verified against the checksums in its marker; a
        shard that fails is listed in :attr:`redone` and done again.
        """
        self.redone: list[tuple[int, str]] = []
        if self.manifest_path.exists():
            if not resume:
                raise SettingsError(f"{self.root}: a store is already there; pass --resume to continue it, or "
                                    "choose another --out (nothing was changed)")
            existing = self.manifest()
            differences = existing.differences(manifest)
            stored = [os.path.abspath(path) for path in self.sources()]  # older stores kept relative paths
            if not differences and stored != [os.path.abspath(path) for path in sources]:
                first = next(i for i, (a, b) in enumerate(zip(stored, sources)) if a != os.path.abspath(b))
                differences.append(f"sources: other image paths (image {first} is {stored[first]} in the store, "
                                   f"{sources[first]} now)")
            if differences:
                raise SettingsError(f"{self.root}: cannot resume with another config; "
                                    + "; ".join(differences))
            for stale in self.root.rglob(".*.tmp*"):  # half-written files of the run that was killed
                stale.unlink(missing_ok=True)
        elif self.root.exists() and any(self.root.iterdir()):
            raise SettingsError(f"{self.root}: the folder is not empty and holds no store; choose another --out")
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            table = pa.table({"index": pa.array(range(len(sources)), pa.int64()), "path": pa.array(sources)})
            _write_table(table, self.root / "sources.parquet")
        manifest.status = "running"
        self.write_manifest(manifest)
        todo = []
        for shard in range(manifest.shards):
            if not self.done_path(shard).exists():
                todo.append(shard)
                continue
            problem = self.verify_shard(shard, [layer["name"] for layer in manifest.layers])
            if problem is not None:
                self.done_path(shard).unlink()  # not done after all: its files are rewritten
                self.redone.append((shard, problem))
                todo.append(shard)
        return todo

    @contextmanager
    def running(self, manifest: Manifest) -> Iterator[None]:
        """Record in the manifest how a run ended early: ``interrupted`` (Ctrl-C) or ``failed``."""
        try:
            yield
        except KeyboardInterrupt:
            manifest.status = "interrupted"
            manifest.summary = {"resume": "run the same command with --resume"}
            self.write_manifest(manifest)
            raise
        except Exception as error:
            manifest.status = "failed"
            manifest.summary = {"error": f"{type(error).__name__}: {error}"[:2000],
                                "resume": "fix the cause, then run the same command with --resume"}
            self.write_manifest(manifest)
            raise

    def shard_files(self, shard: int, layers: Iterable[str]) -> list[Path]:
        """Every file a finished shard consists of (its marker excepted)."""
        parts = [self.part_path(shard, kind) for kind in ("stats.npz", "topk.parquet", "errors.parquet")]
        return parts + [self.features_path(shard, layer) for layer in layers]

    def verify_shard(self, shard: int, layers: Iterable[str]) -> str | None:
        """None when the shard's files match the checksums in its marker, else what is wrong."""
        try:
            marker = json.loads(self.done_path(shard).read_text())
            expected = marker["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            return "its .done marker holds no checksums (written by an older featuremaps, or damaged)"
        for path in self.shard_files(shard, layers):
            key = path.relative_to(self.root).as_posix()
            if not path.is_file():
                return f"{key} is missing"
            if expected.get(key) != _sha256(path):
                return f"{key} does not match its checksum"
        return None

    def manifest(self) -> Manifest:
        if not self.manifest_path.exists():
            raise SettingsError(f"{self.root}: not a featuremaps store (no manifest.json)")
        try:
            data = parse_json(read_regular_file(self.manifest_path, max_bytes=_MAX_MANIFEST_BYTES))
            return Manifest.from_dict(data)
        except (ValueError, KeyError, TypeError, OSError) as error:
            raise SettingsError(f"{self.manifest_path}: damaged manifest ({type(error).__name__}: "
                                f"{' '.join(str(error).split())[:160]}); extract again into a new --out") from None

    def write_manifest(self, manifest: Manifest) -> None:
        text = json.dumps(manifest.to_dict(), indent=2)
        atomic_write(self.manifest_path, lambda temp: temp.write_text(text))

    def sources(self) -> list[str]:
        path = self.root / "sources.parquet"
        try:
            return pq.read_table(path).column("path").to_pylist()
        except (OSError, ValueError, KeyError) as error:  # missing, or not Parquet (ArrowInvalid), or no column
            raise SettingsError(f"{path}: the store's image list is missing or damaged ({type(error).__name__}); "
                                "extract again into a new --out") from None

    # --- shards ----------------------------------------------------------------------
    def write_shard(self, result: ShardResult, *, half: bool, pool: str) -> None:
        """Write a shard's parts and features, then its ``.done`` marker (a shard whose every image was
        unreadable still has each layer's vector size: its empty tables join the others')."""
        arrays: dict[str, np.ndarray] = {}
        for layer, stats in result.stats.items():
            arrays.update(stats.to_arrays(layer))
        atomic_write(self.part_path(result.shard, "stats.npz"), lambda temp: _save_npz(temp, arrays))
        tables = [_topk_table(layer, top) for layer, top in result.topk.items()]
        topk = pa.concat_tables(tables) if tables else _TOPK_SCHEMA.empty_table()
        _write_table(topk, self.part_path(result.shard, "topk.parquet"))
        errors = pa.table({"index": pa.array([e[0] for e in result.errors], pa.int64()),
                           "path": pa.array([e[1] for e in result.errors], pa.string()),
                           "reason": pa.array([e[2] for e in result.errors], pa.string())})
        _write_table(errors, self.part_path(result.shard, "errors.parquet"))
        for layer, stats in result.stats.items():
            rows = [row for row in result.rows if row["layer"] == layer]
            size = pooled_size(stats.channels, pool)
            _write_table(_features_table(rows, half=half, size=size), self.features_path(result.shard, layer))
        checksums = {path.relative_to(self.root).as_posix(): _sha256(path)
                     for path in self.shard_files(result.shard, result.stats)}
        marker = json.dumps({"rows": len(result.rows), "sha256": checksums}, indent=1)
        atomic_write(self.done_path(result.shard), lambda temp: temp.write_text(marker))

    def finalise(self, manifest: Manifest, summary: dict[str, Any]) -> None:
        """Merge the shards' statistics, top-k and errors; mark the store complete."""
        sources = self.sources()
        stats_rows: dict[str, list] = {k: [] for k in ("layer", "channel", "mean", "std", "max", "fraction_positive",
                                                       "count")}
        merged_top: dict[str, TopK] = {}
        errors = []
        for layer in manifest.layers:
            name = layer["name"]
            total = ChannelStats.empty(layer["channels"])
            for shard in range(manifest.shards):
                with np.load(self.part_path(shard, "stats.npz"), allow_pickle=False) as data:
                    if f"{name}.count" in data.files:
                        total = total.merge(ChannelStats.from_arrays(dict(data), name))
            for key, values in total.summary().items():
                stats_rows[key].extend(float(v) for v in values)
            stats_rows["layer"].extend([name] * layer["channels"])
            stats_rows["channel"].extend(range(layer["channels"]))
            stats_rows["count"].extend(int(v) for v in total.count)
        _write_table(pa.table(stats_rows), self.root / "stats.parquet")
        k = int(manifest.config.get("top_k") or 0)
        for shard in range(manifest.shards):
            errors.append(pq.read_table(self.part_path(shard, "errors.parquet")))
            if k:
                table = pq.read_table(self.part_path(shard, "topk.parquet"))
                for layer in manifest.layers:
                    part = _topk_from_table(table, layer["name"], layer["channels"], k)
                    name = layer["name"]
                    merged_top[name] = merged_top[name].merge(part) if name in merged_top else part
        paths = pa.array(sources, pa.string())
        finals = []
        for name, top in merged_top.items():
            table = _topk_table(name, top)
            finals.append(table.add_column(5, "path", paths.take(table.column("index"))))
        topk = pa.concat_tables(finals) if finals else _FINAL_TOPK_SCHEMA.empty_table()
        _write_table(topk.cast(_FINAL_TOPK_SCHEMA), self.root / "topk.parquet")
        all_errors = pa.concat_tables(errors) if errors else pa.table({"index": [], "path": [], "reason": []})
        _write_table(all_errors.sort_by("index"), self.root / "errors.parquet")
        manifest.status, manifest.summary = "complete", summary
        self.write_manifest(manifest)

    # --- reading ---------------------------------------------------------------------
    def features(self, layer: str) -> pa.Table:
        """The feature rows of ``layer`` from every finished shard, in image order."""
        folder = self.root / "features" / _folder(layer)
        files = sorted(folder.glob("shard-*.parquet"))
        if not files:
            names = sorted(p.name for p in (self.root / "features").glob("*")) if (self.root / "features").exists() \
                else []
            raise SettingsError(f"{self.root}: no features for layer {layer!r}; layers: {', '.join(names) or 'none'}")
        return pa.concat_tables(pq.read_table(f) for f in files).sort_by("index")

    def image_hashes(self) -> dict[int, str]:
        """The SHA-256 of every image the extraction read, by its index (from the first layer's features)."""
        folders = sorted(p for p in (self.root / "features").glob("*") if p.is_dir()) \
            if (self.root / "features").is_dir() else []
        hashes: dict[int, str] = {}
        for path in sorted(folders[0].glob("shard-*.parquet")) if folders else []:
            try:
                table = pq.read_table(path, columns=["index", "sha256"])
            except (OSError, ValueError, KeyError) as error:
                raise SettingsError(f"{path}: damaged feature file ({type(error).__name__}); extract again into a "
                                    "new --out") from None
            hashes.update(zip(table.column("index").to_pylist(), table.column("sha256").to_pylist()))
        return hashes

    def table(self, name: str) -> pa.Table:
        path = self.root / f"{name}.parquet"
        if not path.exists():
            raise SettingsError(f"{self.root}: no {name}.parquet; the extraction has not finished (run it again "
                                "with --resume)")
        return pq.read_table(path)


_TOPK_SCHEMA = pa.schema([("layer", pa.string()), ("channel", pa.int32()), ("rank", pa.int32()),
                          ("value", pa.float32()), ("index", pa.int64()), ("y", pa.int32()), ("x", pa.int32())])
_FINAL_TOPK_SCHEMA = pa.schema([("layer", pa.string()), ("channel", pa.int32()), ("rank", pa.int32()),
                                ("value", pa.float32()), ("index", pa.int64()), ("path", pa.string()),
                                ("y", pa.int32()), ("x", pa.int32())])


def _topk_table(layer: str, top: TopK) -> pa.Table:
    """The filled entries of a layer's top-K as rows (layer, channel, rank, value, index, y, x)."""
    channels, k = top.values.shape
    filled = (top.images >= 0).numpy().ravel()  # (C * k,), channel-major like the loops it replaces
    channel = np.repeat(np.arange(channels, dtype=np.int32), k)[filled]
    rank = np.tile(np.arange(k, dtype=np.int32), channels)[filled]
    return pa.table({
        "layer": pa.array(np.full(len(channel), layer, dtype=object), pa.string()),
        "channel": channel, "rank": rank,
        "value": top.values.numpy().astype(np.float32).ravel()[filled],
        "index": top.images.numpy().ravel()[filled].astype(np.int64),
        "y": top.ys.numpy().ravel()[filled].astype(np.int32), "x": top.xs.numpy().ravel()[filled].astype(np.int32),
    }, schema=_TOPK_SCHEMA)


def _topk_from_table(table: pa.Table, layer: str, channels: int, k: int) -> TopK:
    """A layer's top-K back from a shard's rows."""
    rows = table.filter(pc.equal(table.column("layer"), layer))
    part = TopK.empty(channels, k)
    channel = torch.from_numpy(rows.column("channel").to_numpy().astype(np.int64))
    rank = torch.from_numpy(rows.column("rank").to_numpy().astype(np.int64))
    part.values[channel, rank] = torch.from_numpy(rows.column("value").to_numpy().astype(np.float32))
    part.images[channel, rank] = torch.from_numpy(rows.column("index").to_numpy().astype(np.int64))
    part.ys[channel, rank] = torch.from_numpy(rows.column("y").to_numpy().astype(np.int64))
    part.xs[channel, rank] = torch.from_numpy(rows.column("x").to_numpy().astype(np.int64))
    return part


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _folder(layer: str) -> str:
    """A layer name as a folder name that stays in its folder (``layer1.0.relu:1`` -> ``layer1.0.relu_1``)."""
    return safe_name(layer)


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle


def _features_table(rows: list[dict[str, Any]], *, half: bool, size: int) -> pa.Table:
    """A shard's rows of one layer; ``size``: the pooled vector's length (0: full maps, kept in Zarr)."""
    columns: dict[str, Any] = {
        "index": pa.array([r["index"] for r in rows], pa.int64()),
        "path": pa.array([r["path"] for r in rows], pa.string()),
        "layer": pa.array([r["layer"] for r in rows], pa.string()),
    }
    if size:
        dtype = np.float16 if half else np.float32
        flat = np.concatenate([np.asarray(r["vector"], dtype=dtype) for r in rows]) if rows else np.zeros(0, dtype)
        values = pa.array(flat, pa.float16() if half else pa.float32())
        columns["vector"] = pa.FixedSizeListArray.from_arrays(values, size)
    columns.update({
        "width": pa.array([r["width"] for r in rows], pa.int32()),
        "height": pa.array([r["height"] for r in rows], pa.int32()),
        "sha256": pa.array([r["sha256"] for r in rows], pa.string()),
    })
    return pa.table(columns)
