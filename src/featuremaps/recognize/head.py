"""A classifier on frozen feature maps: backbone up to one layer, pooling, a small head.

``FeatureHead`` is an ``nn.Module`` like any other: ``list_layers``, ``extract``, ``show`` and
the class activation map work on it. Its forward pass stops the backbone right after the
chosen layer (later layers are never computed).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from featuremaps.errors import SettingsError
from featuremaps.models.locks import model_lock

__all__ = ["POOLINGS", "FeatureHead", "make_head", "pool_maps"]

Pooling = Literal["avg", "max", "avgmax", "flatten"]
POOLINGS: tuple[str, ...] = ("avg", "max", "avgmax", "flatten")
HEADS: tuple[str, ...] = ("linear", "mlp")


def pool_maps(maps: torch.Tensor, pool: str) -> torch.Tensor:
    """Maps ``(N, C, H, W)`` -> vectors ``(N, F)``: average, max, both (2C) or flattened (CHW)."""
    if maps.ndim != 4:
        return maps.flatten(1)
    if pool == "avg":
        return maps.mean(dim=(2, 3))
    if pool == "max":
        return maps.amax(dim=(2, 3))
    if pool == "avgmax":
        return torch.cat([maps.mean(dim=(2, 3)), maps.amax(dim=(2, 3))], dim=1)  # (N, 2C)
    if pool == "flatten":
        return maps.flatten(1)  # (N, C*H*W)
    raise SettingsError(f"pool must be one of {', '.join(POOLINGS)}; got {pool!r}")


def make_head(kind: str, features: int, classes: int, hidden: int = 256) -> nn.Sequential:
    """``linear``: one layer; ``mlp``: Linear -> ReLU -> Dropout(0.2) -> Linear."""
    if kind == "linear":
        return nn.Sequential(nn.Linear(features, classes))
    if kind == "mlp":
        return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, classes))
    raise SettingsError(f"head must be one of {', '.join(HEADS)}; got {kind!r}")


class _Stop(Exception):
    """Ends the backbone's forward pass after the chosen layer."""


class FeatureHead(nn.Module):
    """``head(standardise(pool(backbone.layer(x))))``.

    Args:
        backbone: the frozen feature extractor.
        layer: name of the backbone layer whose maps feed the head (``name`` or ``name:k``).
        pool: how maps become a vector (see :func:`pool_maps`).
        head: the trainable classifier.
        features: size of the pooled vector.
        spec: what a checkpoint records to rebuild it (backbone ModelInfo, head kind, hidden size).
    """

    def __init__(self, backbone: nn.Module, layer: str, pool: str, head: nn.Module, features: int,
                 spec: dict | None = None) -> None:
        super().__init__()
        module_name, _, call = layer.partition(":")
        modules = dict(backbone.named_modules())
        if module_name not in modules or not module_name:
            raise SettingsError(f"layer {layer!r} is not a module of the backbone")
        if pool not in POOLINGS:
            raise SettingsError(f"pool must be one of {', '.join(POOLINGS)}; got {pool!r}")
        self.backbone = backbone
        self.head = head
        self.layer, self.pool = layer, pool
        self._module_name, self._call = module_name, int(call or 0)
        self.head_spec = dict(spec or {}, layer=layer, pool=pool, features=features)
        self.register_buffer("feature_mean", torch.zeros(features))
        self.register_buffer("feature_std", torch.ones(features))
        for parameter in backbone.parameters():
            parameter.requires_grad_(False)

    def layer_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone layer's output for ``x``; the rest of the backbone is not run."""
        module = dict(self.backbone.named_modules())[self._module_name]
        calls, stash = [0], {}

        def hook(_module: nn.Module, _args: object, output: torch.Tensor) -> None:
            if calls[0] == self._call:
                stash["maps"] = output
                raise _Stop
            calls[0] += 1

        with model_lock(self.backbone):
            handle = module.register_forward_hook(hook)
            try:
                self.backbone(x)
            except _Stop:
                pass
            finally:
                handle.remove()
        if "maps" not in stash:
            raise SettingsError(f"layer {self.layer} did not run in the backbone's forward pass")
        return stash["maps"]

    def set_standardisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std.clamp(min=1e-6))

    def standardise(self, vectors: torch.Tensor) -> torch.Tensor:
        return (vectors - self.feature_mean) / self.feature_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        vectors = pool_maps(self.layer_maps(x), self.pool)  # (N, F)
        return self.head(self.standardise(vectors))

    def train(self, mode: bool = True) -> FeatureHead:
        """Only the head trains; the backbone always runs in eval mode (frozen statistics)."""
        super().train(mode)
        self.backbone.eval()
        return self
