"""A classifier on frozen feature maps: backbone up to one layer, pooling, a small head.

``FeatureHead`` is an ``nn.Module`` like any other: ``list_layers``, ``extract``, ``show`` and
the class activation map work on it. Its forward pass takes the layer's maps from the feature
core (the backbone stops right after the chosen layer). Its checkpoint records the backbone
and the head; :func:`head_from_checkpoint` rebuilds it (registered with the model registry).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from featuremaps.errors import CheckpointError, SettingsError
from featuremaps.features import FeatureExtractor
from featuremaps.features.info import attach
from featuremaps.features.pooling import POOLINGS, check_pool, pool_maps
from featuremaps.models.checkpoint import load_weights_into
from featuremaps.models.registry import build_architecture, record_info, record_section

__all__ = ["HEADS", "FeatureHead", "head_from_checkpoint", "make_head"]

HEADS: tuple[str, ...] = ("linear", "mlp")


def make_head(kind: str, features: int, classes: int, hidden: int = 256) -> nn.Sequential:
    """``linear``: one layer; ``mlp``: Linear -> ReLU -> Dropout(0.2) -> Linear."""
    if kind == "linear":
        return nn.Sequential(nn.Linear(features, classes))
    if kind == "mlp":
        return nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, classes))
    raise SettingsError(f"head must be one of {', '.join(HEADS)}; got {kind!r}")


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

    featuremaps_traceable = False  # extract from it with hooks: its forward runs the feature core itself
    feature_mean: torch.Tensor
    feature_std: torch.Tensor

    def __init__(self, backbone: nn.Module, layer: str, pool: str, head: nn.Module, features: int,
                 spec: dict[str, Any] | None = None) -> None:
        super().__init__()
        check_pool(pool)
        self.backbone = backbone
        self.head = head
        self.layer, self.pool = layer, pool
        self.head_spec = dict(spec or {}, layer=layer, pool=pool, features=features)
        self._extractor = FeatureExtractor(backbone, [layer], method="hooks")
        if len(self._extractor.layers) != 1:
            raise SettingsError(f"a head reads one layer; {layer!r} names {len(self._extractor.layers)}")
        self.register_buffer("feature_mean", torch.zeros(features))
        self.register_buffer("feature_std", torch.ones(features))
        for parameter in backbone.parameters():
            parameter.requires_grad_(False)

    def layer_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The backbone layer's output for ``x``; the rest of the backbone is not run.

        In the autograd graph when gradients are on (Grad-CAM reaches through the head).
        """
        return self._extractor(x, grad=torch.is_grad_enabled())[self._extractor.names[0]]

    def featuremaps_record(self) -> dict[str, Any]:
        """The checkpoint's ``head`` section (see :func:`head_from_checkpoint`)."""
        return {"head": dict(self.head_spec)}

    def set_standardisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """The training features' mean and standard deviation. Each deviation is at least a tenth of the median
        one: with few training images many channels are constant on all of them (a dead or saturated ReLU6),
        and dividing by ~0 would turn a test image's tiny difference into a feature of thousands."""
        varying = std[std > 1e-6]
        floor = 0.1 * (float(varying.median()) if len(varying) else 1.0)  # a tenth of a typical varying feature's
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std.clamp(min=floor))

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


def head_from_checkpoint(path: Path, state: dict[str, torch.Tensor], record: dict[str, Any]) -> nn.Module:
    """Rebuild a :class:`FeatureHead` from its checkpoint (the loader for records with a ``head`` section)."""
    spec = record_section(path, record, "head", {"kind": tuple(HEADS), "features": int, "layer": str,
                                                 "pool": (*POOLINGS, "flatten"), "backbone": dict})
    if spec["pool"] == "flatten":  # checkpoints written before the one vocabulary
        spec = {**spec, "pool": "none"}
    info = record_info(path, record.get("model"))
    if not info.class_names:
        raise CheckpointError(f"{path}: invalid featuremaps record: model.class_names is empty")
    hidden = spec.get("hidden", 256)
    if not isinstance(hidden, int) or isinstance(hidden, bool) or not 1 <= hidden <= 65536:
        raise CheckpointError(f"{path}: invalid featuremaps record: head.hidden must be an int in 1..65536")
    backbone_info = record_info(path, spec["backbone"], "head.backbone")
    backbone = build_architecture(path, backbone_info)
    head = make_head(spec["kind"], spec["features"], len(info.class_names), hidden)
    try:
        model = FeatureHead(backbone, spec["layer"], spec["pool"], head, spec["features"], spec)
    except SettingsError as error:
        raise CheckpointError(f"{path}: invalid featuremaps record: {error}") from None
    load_weights_into(model, state, source=str(path), name=f"a head on {spec['backbone'].get('name')}")
    return attach(model, replace(info, source="checkpoint", weights=str(path),
                                 backbone=f"{backbone_info.name}, {backbone_info.weights_label}"))
