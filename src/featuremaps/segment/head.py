"""A trained per-pixel head on frozen hypercolumns: 1x1 convolutions, one class score per pixel.

The hypercolumns come from an image pyramid: the backbone also sees the image at 1/2, 1/4
and 1/8 of its size, and those maps (aligned, then resized back) are stacked with the
full-size ones. A unit of a coarse level covers 2, 4 or 8 times more of the image, so each
pixel also carries context: the inside of a large flat shape is told from flat background.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from featuremaps.extract import catalogue_for, select_layers
from featuremaps.models.preprocess import model_info
from featuremaps.errors import SettingsError
from featuremaps.models.locks import model_lock
from featuremaps.segment.hypercolumns import align_maps, class_maps, dense_classifier

__all__ = ["DEFAULT_SCALES", "PixelHead"]

DEFAULT_SCALES: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)
_MIN_SIDE = 16


class _Stop(Exception):
    """Ends the backbone's forward pass after the deepest layer used."""


class PixelHead(nn.Module):
    """``head(standardise(hypercolumns(x)))``: class logits ``(N, K, H, W)`` for input ``(N, C, H, W)``.

    The head is ``Conv1x1(F, hidden) -> ReLU -> Conv1x1(hidden, hidden) -> ReLU -> Conv1x1(hidden, K)``:
    each pixel is classified from its own hypercolumn (the maps' receptive fields bring the context).
    The model input itself is appended to the hypercolumn when ``colour`` is set.
    """

    def __init__(self, backbone: nn.Module, layers: Sequence[str], classes: int, features: int, *,
                 hidden: int = 64, colour: bool = True, scales: Sequence[float] = DEFAULT_SCALES,
                 class_maps: bool = False, spec: dict | None = None) -> None:
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
        catalogue = catalogue_for(self.backbone, tuple(x.shape[1:]))
        names = self.layers + ([self.dense[0].name] if with_classes and self.dense is not None else [])
        entries = select_layers(catalogue, names, model_name=model_info(self.backbone).name)
        wanted = {(e.module, e.call): e for e in entries}
        modules = dict(self.backbone.named_modules())
        captured: dict[str, torch.Tensor] = {}
        calls: dict[str, int] = {}
        handles = []

        def hook_for(name: str):
            def hook(_module: nn.Module, _args: object, output: torch.Tensor) -> None:
                call = calls.get(name, 0)
                calls[name] = call + 1
                entry = wanted.get((name, call))
                if entry is not None:
                    captured[entry.name] = output.clone()
                    if len(captured) == len(wanted):
                        raise _Stop

            return hook

        with model_lock(self.backbone):
            try:
                for name in {e.module for e in entries}:
                    handles.append(modules[name].register_forward_hook(hook_for(name)))
                with torch.no_grad():
                    try:
                        self.backbone(x)
                    except _Stop:
                        pass
            finally:
                for handle in handles:
                    handle.remove()
        size = (int(x.shape[2]), int(x.shape[3]))
        by_name = {e.name: e for e in entries}
        parts = [align_maps(captured[name], by_name[name], size) for name in self.layers]
        if with_classes and self.dense is not None:
            spatial, linear = self.dense
            maps = captured[spatial.name]
            short = [max(0, k - n) for k, n in zip(spatial.output_shape[1:], maps.shape[2:])]
            if any(short):  # a small image: repeat the border so one window fits
                maps = F.pad(maps, (0, short[1], 0, short[0]), mode="replicate")
            parts.append(class_maps(maps, by_name[spatial.name], linear, spatial.output_shape, size))  # type: ignore[arg-type]
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
