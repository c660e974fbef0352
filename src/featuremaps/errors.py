"""The error hierarchy: every error a user can cause is a :class:`FeatureMapsError`.

Each error also inherits from the builtin it resembles, so callers can catch either
``featuremaps.ImageError`` or ``ValueError``.
"""

from __future__ import annotations

__all__ = ["SEED_MAX", "CheckpointError", "DatasetError", "FeatureMapsError", "ImageError", "LayerError", "ModelError",
           "SettingsError", "check_seed"]

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


def check_seed(seed: object, name: str = "seed") -> int:
    """``seed`` when it is an int from 0 to :data:`SEED_MAX`; else a :class:`SettingsError` naming it."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        shown = str(seed) if len(str(seed)) <= 40 else f"{str(seed)[:20]}... ({len(str(seed))} digits)"
        raise SettingsError(f"{name} must be an integer from 0 to {SEED_MAX:,}; got {shown}")
    return seed

