"""The error hierarchy: every error a user can cause is a :class:`FeatureMapsError`.

Each error also inherits from the builtin it resembles, so callers can catch either
``featuremaps.ImageError`` or ``ValueError``. Beside them, the checks of settings that every layer of the
package shares (a seed, a pooling, a device name) and that must run without torch (the command line and the
Ray engine's driver check their settings before torch is imported).
"""

from __future__ import annotations

import re

__all__ = ["POOLINGS", "SEED_MAX", "CheckpointError", "DatasetError", "FeatureMapsError", "ImageError", "LayerError",
           "ModelError", "SettingsError", "check_device_name", "check_pool", "check_seed"]

SEED_MAX = 2**32 - 1
"""The largest seed: every generator featuremaps seeds (NumPy's and torch's) takes 0 to 2**32 - 1."""


class FeatureMapsError(Exception):
    """Base class of every error featuremaps raises on purpose."""


class SettingsError(FeatureMapsError, ValueError):
    """A parameter has a value that is not allowed (a stride of 0, an unknown bank)."""


class ImageError(FeatureMapsError, ValueError):
    """An image could not be read. ``source`` names the input, ``reason`` says why."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class ModelError(SettingsError):
    """A model name or weights name that does not exist, or weights that cannot be fetched."""


class LayerError(SettingsError):
    """A layer selection that matches no layer of the model; the message lists valid names."""


class CheckpointError(FeatureMapsError, ValueError):
    """A weights file that cannot be read safely or does not fit the architecture."""


class DatasetError(SettingsError):
    """A dataset that cannot be used: missing, empty, a single class, mismatched masks."""


POOLINGS: tuple[str, ...] = ("avg", "max", "avgmax", "none")
"""How maps become vectors, one vocabulary for the whole package (:mod:`featuremaps.features.pooling` pools)."""


def check_pool(pool: str) -> str:
    """``pool`` if it is one of :data:`POOLINGS`; a clear error otherwise."""
    if pool not in POOLINGS:
        hint = " (flatten is called none: every position kept)" if pool == "flatten" else ""
        raise SettingsError(f"pool must be one of {', '.join(POOLINGS)}; got {pool!r}{hint}")
    return pool


def check_device_name(device: str) -> str:
    """``device`` if it is written ``cpu``, ``cuda`` or ``cuda:N`` (whether this machine has it is
    :func:`featuremaps.features.info.resolve_device`'s question)."""
    if device != "cpu" and not re.fullmatch(r"cuda(:\d{1,2})?", device):
        raise SettingsError(f"device must be cpu, cuda or cuda:N; got {device[:40]!r}")
    return device


def check_seed(seed: object, name: str = "seed") -> int:
    """``seed`` when it is an int from 0 to :data:`SEED_MAX`; else a :class:`SettingsError` naming it."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        shown = str(seed) if len(str(seed)) <= 40 else f"{str(seed)[:20]}... ({len(str(seed))} digits)"
        raise SettingsError(f"{name} must be an integer from 0 to {SEED_MAX:,}; got {shown}")
    return seed

