"""One extraction job: its settings (what changes the values, what only changes the speed) and its summary."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch

from featuremaps.errors import SettingsError

__all__ = ["ENGINES", "POOLS", "PRECISIONS", "ExtractConfig", "ExtractSummary"]

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
