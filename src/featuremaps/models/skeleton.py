"""Models without weights: every parameter and buffer on PyTorch's ``meta`` device.

A skeleton has the architecture and no memory: enough for what needs only shapes (the layer
catalogue, parameter counts), at any model size, in milliseconds. A request for a model's
layers must not cost the gigabytes of its weights.

``torch.device("meta")`` as a context cannot build every model (RegNet computes its widths
with tensors while it is built), so parameters and buffers are moved to ``meta`` as they are
registered instead; ``torch.empty`` touches no memory, so the short-lived CPU tensors cost
nothing. The switch is per thread: a model built at the same time in another thread (a server
answering two requests) gets real weights.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

__all__ = ["empty_weights", "is_skeleton", "load_skeleton", "parameter_count"]

_STATE = threading.local()
_INSTALL = threading.Lock()
_installed = False


def _building_empty() -> bool:
    return getattr(_STATE, "depth", 0) > 0


def _install() -> None:
    """Wrap ``nn.Module.register_parameter``/``register_buffer`` once: on meta while a thread builds empty."""
    global _installed
    with _INSTALL:
        if _installed:
            return
        register_parameter, register_buffer = nn.Module.register_parameter, nn.Module.register_buffer

        def parameter(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
            if param is not None and _building_empty() and param.device.type != "meta":
                param = nn.Parameter(param.detach().to("meta"), requires_grad=param.requires_grad)
            register_parameter(self, name, param)

        def buffer(self: nn.Module, name: str, tensor: torch.Tensor | None, persistent: bool = True) -> None:
            if tensor is not None and _building_empty() and tensor.device.type != "meta":
                tensor = tensor.to("meta")
            register_buffer(self, name, tensor, persistent)

        nn.Module.register_parameter = parameter  # type: ignore[method-assign]
        nn.Module.register_buffer = buffer  # type: ignore[method-assign]
        _installed = True


@contextmanager
def empty_weights() -> Iterator[None]:
    """Models built in this thread inside the block have their parameters and buffers on ``meta``."""
    _install()
    _STATE.depth = getattr(_STATE, "depth", 0) + 1
    try:
        yield
    finally:
        _STATE.depth -= 1


def load_skeleton(name_or_path: str | os.PathLike[str], **options: Any) -> nn.Module:
    """:func:`~featuremaps.models.load_model` without weights (a checkpoint's architecture, not its values)."""
    from featuremaps.models.registry import load_model

    with empty_weights():
        return load_model(name_or_path, **options)


def is_skeleton(model: nn.Module) -> bool:
    """True when ``model`` holds a tensor on the ``meta`` device (it cannot compute values)."""
    return any(t.device.type == "meta" for t in [*model.parameters(), *model.buffers()])


def parameter_count(model: nn.Module) -> int:
    """Number of parameter values (a skeleton's count is the real model's)."""
    return sum(p.numel() for p in model.parameters())
