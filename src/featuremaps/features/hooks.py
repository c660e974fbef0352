"""The one place where featuremaps puts hooks on a model's modules.

Hooks live on the module objects, so two threads working on one model at once would see
each other's hooks. :func:`module_calls` therefore holds the model's re-entrant lock while
its hooks are on, and its hooks act only in the thread that installed them: a forward pass of
the same model in another thread (the feature core's traced graph, which needs no lock) runs
past them untouched, neither captured nor stopped nor counted. It puts the model in eval mode,
numbers the calls of each module (a module that runs twice in one forward, like a ResNet
block's ReLU, has calls 0 and 1), and, whatever happens, removes the hooks and puts every
module's train/eval mode back. Different models run in parallel.

Everything that needs a layer's output builds on this: the layer catalogue (shapes and
receptive fields) and the feature extractor's fallback for models that FX cannot trace.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

__all__ = ["StopForward", "first_tensor", "model_lock", "module_calls", "run_forward", "tensors_in"]

_LOCKS: weakref.WeakKeyDictionary[nn.Module, threading.RLock] = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()

OnOutput = Callable[[str, int, Any], Any]
"""``(module name, call number, output) -> replacement output or None``."""
OnInput = Callable[[str, int, nn.Module], None]
"""``(module name, call number, module)``, just before the module runs."""


class StopForward(Exception):
    """Raised by a hook to end the forward pass early (the layers after it are not computed)."""


def model_lock(model: nn.Module) -> threading.RLock:
    """The re-entrant lock of ``model`` (created on first use, freed with the model)."""
    with _GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = threading.RLock()
            _LOCKS[model] = lock
        return lock


def tensors_in(value: Any) -> Iterator[torch.Tensor]:
    """Every tensor in a module's output: a tensor, or nested tuples, lists and dicts of them."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from tensors_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from tensors_in(item)


def first_tensor(value: Any) -> torch.Tensor | None:
    """The first tensor of a module's output (None when it holds none)."""
    return next(tensors_in(value), None)


@contextmanager
def module_calls(model: nn.Module, on_output: OnOutput, *, modules: Iterable[str] | None = None,
                 on_input: OnInput | None = None) -> Iterator[None]:
    """Hooks on ``model``'s named modules (all, or those in ``modules``) for one block of work.

    ``on_output(name, call, output)`` runs after each call and may return a replacement
    output (or raise :class:`StopForward`); ``on_input(name, call, module)`` runs just before.
    The model is in eval mode inside the block; its lock is held.
    """
    named = {name: module for name, module in model.named_modules() if name}
    chosen = named if modules is None else {name: named[name] for name in dict.fromkeys(modules)}
    owner = threading.get_ident()
    with model_lock(model):
        modes = {module: module.training for module in model.modules()}
        calls: dict[str, int] = {}
        handles = []

        def hooks_for(name: str) -> tuple[Callable[..., None], Callable[..., Any]]:
            def before(module: nn.Module, _args: Any) -> None:
                if threading.get_ident() != owner:  # another thread's forward pass of this model
                    return
                call = calls.get(name, 0)
                calls[name] = call + 1
                if on_input is not None:
                    on_input(name, call, module)

            def after(_module: nn.Module, _args: Any, output: Any) -> Any:
                if threading.get_ident() != owner:
                    return None
                return on_output(name, calls[name] - 1, output)

            return before, after

        try:
            for name, module in chosen.items():
                before, after = hooks_for(name)
                handles.append(module.register_forward_pre_hook(before))
                handles.append(module.register_forward_hook(after))
            model.eval()
            yield
        finally:
            for handle in handles:
                handle.remove()
            for module, training in modes.items():
                module.train(training)


def run_forward(model: nn.Module, batch: torch.Tensor) -> Any:
    """``model(batch)``, or None when a hook ended it early with :class:`StopForward`."""
    try:
        return model(batch)
    except StopForward:
        return None
