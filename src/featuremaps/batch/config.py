"""One extraction job: its settings (what changes the values, what only changes the speed) and its summary.

Checked without torch: on ``--engine ray`` the driver starts the cluster's actors before it imports torch
(:mod:`featuremaps.batch.ray_cluster`), and whether a CUDA device exists is the cluster's question there."""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass, field
from typing import Any

from featuremaps.errors import POOLINGS, FeatureMapsError, SettingsError, check_device_name, check_pool

__all__ = ["BATCH_EXTRA", "DECODES", "ENGINES", "POOLS", "PRECISIONS", "ExtractConfig", "ExtractSummary", "require"]

BATCH_EXTRA = "pip install 'featuremaps[batch]'"


def require(module: str, for_what: str) -> None:
    """Raise a :class:`FeatureMapsError` that says what to install when ``module`` is missing."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise FeatureMapsError(f"{for_what} needs {module}, which is not installed: {BATCH_EXTRA}")


POOLS = POOLINGS
"""The pooling vocabulary of the whole package (:mod:`featuremaps.features.pooling`)."""
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
ENGINES: tuple[str, ...] = ("local", "ray")
DECODES: tuple[str, ...] = ("auto", "threads", "workers", "device")


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
    decode: str = "auto"

    @property
    def decode_place(self) -> str:
        """Where images are decoded (``auto`` resolved):

        - ``device``: JPEG bytes decoded in batches on the model's device (nvJPEG on a GPU); the
          default with CUDA, where the GPU decodes far faster than the CPU cores;
        - ``threads``: each batch decoded by a pool of threads in this process, between two
          forward passes; the default on the CPU, where the forward already uses every core and
          decoding beside it only makes both wait for each other;
        - ``workers``: decoded in the DataLoader's worker processes while the forward runs
          (useful when there are spare cores).
        """
        if self.decode != "auto":
            return self.decode
        return "device" if self.device.startswith("cuda") else "threads"

    @property
    def decode_on_device(self) -> bool:
        return self.decode_place == "device"

    def __post_init__(self) -> None:
        if not self.layers:
            raise SettingsError("--layers is required (see 'featuremaps layers MODEL')")
        check_pool(self.pool)
        if self.precision not in PRECISIONS:
            raise SettingsError(f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}")
        if self.engine not in ENGINES:
            raise SettingsError(f"engine must be one of {', '.join(ENGINES)}; got {self.engine!r}")
        if self.decode not in DECODES:
            raise SettingsError(f"decode must be one of {', '.join(DECODES)}; got {self.decode!r}")
        for name, low in (("batch_size", 1), ("workers", 0), ("top_k", 0), ("shard_size", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SettingsError(f"{name} must be an int >= {low}; got {value!r}")
        if self.ray_address is not None:
            if self.engine != "ray":
                raise SettingsError("--ray-address is for --engine ray")
            if self.ray_address.startswith("ray://"):
                raise SettingsError(
                    f"--ray-address {self.ray_address}: Ray Client (ray://) is not supported, because the driver "
                    "writes the store and must see the nodes' files; run featuremaps on a node of the cluster "
                    "(ssh, or 'ray job submit -- featuremaps extract ...') with --ray-address auto or HEAD:6379")
            host, _, port = self.ray_address.rpartition(":")
            if self.ray_address != "auto" and not (host and port.isdigit() and 0 < int(port) < 65536):
                raise SettingsError(f"--ray-address {self.ray_address!r}: expected auto (the cluster of this node) "
                                    "or HEAD:PORT, the address of its head (port 6379 unless it was started with "
                                    "another --port)")
        if self.engine == "ray":  # the name only: the cluster's GPUs count (checked when it is joined)
            check_device_name(self.device)
        else:
            from featuremaps.features.info import resolve_device  # torch: not needed to start a Ray run

            resolve_device(self.device)  # the name, and this machine's GPUs
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
    seconds_by_stage: dict[str, float] = field(default_factory=dict)
    shards_redone: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)  # Ray engine: rows and seconds per node

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
