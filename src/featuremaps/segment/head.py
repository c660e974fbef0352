"""A trained per-pixel head on frozen hypercolumns: 1x1 convolutions, one class score per pixel.

The hypercolumns come from an image pyramid: the backbone also sees the image at 1/2, 1/4
and 1/8 of its size, and those maps (aligned, then resized back) are stacked with the
full-size ones. A unit of a coarse level covers 2, 4 or 8 times more of the image, so each
pixel also carries context: the inside of a large flat shape is told from flat background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from featuremaps.errors import CheckpointError, SettingsError
from featuremaps.features import FeatureExtractor
from featuremaps.features.info import attach, model_info
from featuremaps.models.checkpoint import load_weights_into
from featuremaps.models.registry import build_architecture, record_info, record_section
from featuremaps.segment.hypercolumns import align_maps, class_maps, dense_classifier

__all__ = ["DEFAULT_SCALES", "PixelHead", "segmenter_from_checkpoint"]

DEFAULT_SCALES: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)
_MIN_SIDE = 16


class PixelHead(nn.Module):
    """``head(standardise(hypercolumns(x)))``: class logits ``(N, K, H, W)`` for input ``(N, C, H, W)``.

    The head is ``Conv1x1(F, hidden) -> ReLU -> Conv1x1(hidden, hidden) -> ReLU -> Conv1x1(hidden, K)``:
    each pixel is classified from its own hypercolumn (the maps' receptive fields bring the context).
    The model input itself is appended to the hypercolumn when ``colour`` is set.
    """

    featuremaps_traceable = False  # extract from it with hooks: its forward runs the feature core itself
    feature_mean: torch.Tensor
    feature_std: torch.Tensor
    prior_adjustment: torch.Tensor

    def __init__(self, backbone: nn.Module, layers: Sequence[str], classes: int, features: int, *,
                 hidden: int = 64, colour: bool = True, scales: Sequence[float] = DEFAULT_SCALES,
                 class_maps: bool = False, spec: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.layers, self.colour, self.scales = list(layers), colour, tuple(float(s) for s in scales)
        self.dense = dense_classifier(backbone, model_info(backbone).input_size) if class_maps else None
        if class_maps and self.dense is None:
            raise SettingsError(f"{model_info(backbone).name} does not end in a linear classifier on flattened "
                                "maps; class_maps needs one (TinyVGG, LeNet-5)")
        self.head = nn.Sequential(
            nn.Conv2d(features, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
            nn.Conv2d(hidden, classes, 1),
        )
        self.register_buffer("feature_mean", torch.zeros(features))
        self.register_buffer("feature_std", torch.ones(features))
        self.register_buffer("prior_adjustment", torch.zeros(classes))
        self.segmentation_spec = dict(spec or {}, layers=self.layers, colour=colour, hidden=hidden, features=features,
                                      scales=list(self.scales), class_maps=class_maps)
        for parameter in backbone.parameters():
            parameter.requires_grad_(False)

    def hypercolumns(self, x: torch.Tensor) -> torch.Tensor:
        """Aligned maps of the layers at every scale (and the input): ``(N, F, H, W)``.

        A level never goes below 16 pixels a side, so every input gives the same features.
        With ``class_maps``, the classifier's window probabilities (full scale) come last.
        """
        size = (int(x.shape[2]), int(x.shape[3]))
        parts = []
        for scale in self.scales:
            scaled = (max(_MIN_SIDE, round(size[0] * scale)), max(_MIN_SIDE, round(size[1] * scale)))
            level = x if scaled == size else F.interpolate(x, size=scaled, mode="bilinear", align_corners=False,
                                                           antialias=True)
            maps = self._aligned(level, with_classes=scale == 1.0 and self.dense is not None)
            parts.append(maps if scaled == size else F.interpolate(maps, size=size, mode="bilinear",
                                                                   align_corners=False))
        if self.colour:
            parts.append(x.float())
        return torch.cat(parts, dim=1)

    def _aligned(self, x: torch.Tensor, *, with_classes: bool = False) -> torch.Tensor:
        """The layers' maps for ``x``, aligned to its pixels; the backbone stops after the last layer."""
        names = self.layers + ([self.dense[0].name] if with_classes and self.dense is not None else [])
        extractor = FeatureExtractor(self.backbone, names, input_shape=tuple(x.shape[1:]), method="hooks")
        captured = extractor(x)
        entries = extractor.layers
        size = (int(x.shape[2]), int(x.shape[3]))
        by_name = {e.name: e for e in entries}
        parts = [align_maps(captured[name], by_name[name], size) for name in self.layers]
        if with_classes and self.dense is not None:
            spatial, linear = self.dense
            maps = captured[spatial.name]
            short = [max(0, k - n) for k, n in zip(spatial.output_shape[1:], maps.shape[2:])]
            if any(short):  # a small image: repeat the border so one window fits
                maps = F.pad(maps, (0, short[1], 0, short[0]), mode="replicate")
            channels, height, width = spatial.output_shape
            parts.append(class_maps(maps, by_name[spatial.name], linear, (channels, height, width), size))
        return torch.cat(parts, dim=1)

    def set_standardisation(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-feature centring; a channel (nearly) constant in the sample keeps a floor of 0.01,
        so a dead-in-the-sample unit that fires later cannot blow up the head's input."""
        self.feature_mean.copy_(mean)
        self.feature_std.copy_(std.clamp(min=1e-2))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, K, H, W)``; in eval mode the training sampler's prior is corrected (logit adjustment)."""
        standard = (features - self.feature_mean.view(1, -1, 1, 1)) / self.feature_std.view(1, -1, 1, 1)
        logits = self.head(standard.clamp(-20.0, 20.0))
        return logits if self.training else logits + self.prior_adjustment.view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.hypercolumns(x))

    def train(self, mode: bool = True) -> PixelHead:
        super().train(mode)
        self.backbone.eval()
        return self

    def featuremaps_record(self) -> dict[str, Any]:
        """The checkpoint's ``segmentation`` section (see :func:`segmenter_from_checkpoint`)."""
        return {"segmentation": dict(self.segmentation_spec)}


def segmenter_from_checkpoint(path: Path, state: dict[str, torch.Tensor], record: dict[str, Any]) -> nn.Module:
    """Rebuild a :class:`PixelHead` (the loader for records with a ``segmentation`` section).

    Its input is framed ``whole`` (aspect kept, nothing cut), so a mask covers the image.
    """
    spec = record_section(path, record, "segmentation", {"layers": list, "features": int, "hidden": int,
                                                         "colour": bool, "scales": list, "class_maps": bool,
                                                         "backbone": dict})
    if not all(isinstance(v, (int, float)) and 0 < v <= 1 for v in spec["scales"]):
        raise CheckpointError(f"{path}: invalid featuremaps record: segmentation.scales must be numbers in (0, 1]")
    if not all(isinstance(v, str) for v in spec["layers"]):
        raise CheckpointError(f"{path}: invalid featuremaps record: segmentation.layers must be layer names")
    info = record_info(path, record.get("model"))
    if not info.class_names:
        raise CheckpointError(f"{path}: invalid featuremaps record: model.class_names is empty")
    backbone = build_architecture(path, record_info(path, spec["backbone"], "segmentation.backbone"))
    try:
        model = PixelHead(backbone, spec["layers"], len(info.class_names), spec["features"], hidden=spec["hidden"],
                          colour=spec["colour"], scales=spec["scales"], class_maps=spec["class_maps"], spec=spec)
    except SettingsError as error:
        raise CheckpointError(f"{path}: invalid featuremaps record: {error}") from None
    load_weights_into(model, state, source=str(path), name=f"a segmentation head on {spec['backbone'].get('name')}")
    whole = replace(info.input, frame="whole")
    return attach(model, replace(info, input=whole, source="checkpoint", weights=str(path)))
