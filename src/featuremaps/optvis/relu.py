"""Redirected ReLU gradients: a dead channel still learns which way to go.

From a flat grey start most channels of a ReLU layer are zero everywhere, so the gradient
of their mean is zero and plain optimisation never moves. Inside :func:`redirected_relu`
every ReLU computes the same values, but for an image whose ordinary ReLU gradient is
zero everywhere, the gradient also passes where it would raise a negative input (never
where it would push one lower), the fix used with the paper's code. Images whose ReLU
gradient is not all zero get the ordinary gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

__all__ = ["redirected_relu"]


class _RedirectedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        ordinary = grad * (x > 0)
        # grad is d(loss)/d(out) of a loss being minimised: grad > 0 would push the input lower.
        redirected = torch.where((x <= 0) & (grad > 0), torch.zeros_like(grad), grad)
        if x.ndim == 0:
            return ordinary
        alive = ordinary.flatten(1).abs().amax(dim=1) > 0
        return torch.where(alive.view(-1, *([1] * (x.ndim - 1))), ordinary, redirected)


_RELUS: frozenset[Callable[..., Any]] = frozenset({F.relu, torch.relu, torch.relu_, torch.Tensor.relu,
                                                   torch.Tensor.relu_})


class _Mode(TorchFunctionMode):
    def __torch_function__(self, func: Callable[..., Any], types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func in _RELUS and args and isinstance(args[0], torch.Tensor) and args[0].requires_grad:
            return _RedirectedReLU.apply(args[0])  # the mode is off inside its own handler
        return func(*args, **kwargs)


@contextmanager
def redirected_relu() -> Iterator[None]:
    """Within the block, ReLUs on tensors that need a gradient use the redirected gradient."""
    with _Mode():
        yield
