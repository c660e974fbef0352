"""One re-entrant lock per model instance, for everything that puts hooks on a model.

Hooks live on the module objects, so two threads extracting from the same model at once
would see each other's hooks (one thread's hook capturing, or stopping, the other's forward).
``capture``, ``list_layers``, the heads and Grad-CAM hold the model's lock while their hooks
are on. Different models still run in parallel.
"""

from __future__ import annotations

import threading
import weakref

from torch import nn

__all__ = ["model_lock"]

_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


def model_lock(model: nn.Module) -> threading.RLock:
    """The lock of ``model`` (created on first use, freed with the model)."""
    with _GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = threading.RLock()
            _LOCKS[model] = lock
        return lock
