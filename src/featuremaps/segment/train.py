"""Training and scoring the per-pixel head; scoring clusters with Hungarian matching.

Training data: shapes scenes (1 to 4 shapes per image, mask = class index, 0 = background)
generated from a seed, validation scenes from another seed, or a folder of image + mask
pairs split with the seed. The backbone is frozen; only the 1x1 head learns. Each step
trains on 1,024 pixels per image, drawn with probability proportional to
``1 / sqrt(class frequency)``: the background (most pixels) does not drown the shapes,
and the head's cost drops 16-fold at 128x128.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from featuremaps.errors import DatasetError, SettingsError, check_seed
from featuremaps.features.info import ModelInfo, attach, model_device, model_info, resolve_device
from featuremaps.features.inputs import ModelInput
from featuremaps.models.registry import load_model
from featuremaps.recognize.training import Progress, check_output, fit, write_checkpoint
from featuremaps.segment.data import MaskDataset, mask_folder, scenes_dataset
from featuremaps.segment.head import PixelHead
from featuremaps.segment.hypercolumns import default_segmentation_layers
from featuremaps.segment.metrics import (
    SegmentationScores,
    confusion,
    match_segments,
    score_masks,
    scores_from_confusion,
)

__all__ = ["SegmentTrainConfig", "SegmentTrainResult", "evaluate_clusters", "evaluate_segmenter", "train_segmenter"]


PIXELS_PER_IMAGE = 1024
"""Pixels drawn per image and step (with probability ~ 1 / sqrt(class frequency))."""
STEPS_PER_BATCH = 8
"""Optimiser steps on fresh pixel samples per computed batch of hypercolumns."""


@dataclass(frozen=True)
class SegmentTrainConfig:
    """What to train: a per-pixel head on ``layers`` of ``backbone`` (default: up to 3 early stages)."""

    dataset: str = "shapes"
    backbone: str = "builtin:shapes"
    backbone_weights: str | None = None
    layers: tuple[str, ...] | None = None
    scenes: int = 800
    size: int = 128
    epochs: int = 6
    batch_size: int = 8
    lr: float = 1e-3
    hidden: int = 128
    colour: bool = True
    class_maps: bool | None = None  # None: on when the backbone ends in a linear classifier on its maps
    seed: int = 0
    val_fraction: float = 0.2
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("scenes", "size", "epochs", "batch_size", "hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SettingsError(f"{name} must be an int >= 1; got {value!r}")
        if self.size < 16:
            raise SettingsError(f"size must be at least 16 pixels; got {self.size}")
        check_seed(self.seed)
        resolve_device(self.device)


@dataclass
class SegmentTrainResult:
    """The trained head, its checkpoint record and the end-of-epoch reports."""

    model: PixelHead
    record: dict[str, Any]
    history: list[Progress] = field(default_factory=list)
    checkpoint: Path | None = None


def _normalised(images: torch.Tensor, model_input: ModelInput) -> torch.Tensor:
    """uint8 scenes ``(N, C, H, W)`` -> model input, framed ``whole`` (the head is fully convolutional)."""
    return model_input.normalise(model_input.prepare_tensor(images))


def _split(data: MaskDataset, fraction: float, seed: int) -> tuple[MaskDataset, MaskDataset]:
    order = np.random.default_rng(seed).permutation(len(data))
    count = max(1, int(round(len(data) * fraction)))
    if len(data) - count < 1:
        raise DatasetError(f"{data.description.get('dataset')}: needs at least 2 image + mask pairs to split")
    pick = lambda idx: MaskDataset(data.images[idx], data.masks[idx], data.class_names,  # noqa: E731
                                   {**data.description, "images": len(idx)})
    return pick(torch.from_numpy(np.sort(order[count:]))), pick(torch.from_numpy(np.sort(order[:count])))


def _data(config: SegmentTrainConfig) -> tuple[MaskDataset, MaskDataset]:
    if config.dataset == "shapes":
        val_count = max(8, config.scenes // 5)
        return scenes_dataset(config.scenes, config.seed, config.size), \
            scenes_dataset(val_count, config.seed + 1_000_003, config.size)
    return _split(mask_folder(config.dataset, config.size), config.val_fraction, config.seed)


@torch.inference_mode()
def predict_masks(model: nn.Module, data: MaskDataset, batch_size: int = 8) -> torch.Tensor:
    """Class index per pixel ``(N, H, W)`` for every image of ``data``."""
    model_input = model_info(model).input
    device = model_device(model)
    model.eval()
    out = []
    for index in torch.arange(len(data)).split(batch_size):
        logits = model(_normalised(data.images[index], model_input).to(device))
        out.append(logits.argmax(dim=1).cpu())
    return torch.cat(out)


def evaluate_segmenter(model: nn.Module, data: MaskDataset) -> SegmentationScores:
    """mIoU and pixel accuracy of a trained head over all pixels of ``data``."""
    predicted = predict_masks(model, data)
    return score_masks(predicted.numpy(), data.masks.numpy(), classes=len(data.class_names))


def evaluate_clusters(model: nn.Module, data: MaskDataset, *, k: int, layers: Sequence[str] | None = None,
                      seed: int = 0) -> SegmentationScores:
    """Cluster each image, match its segments to classes (Hungarian), and score all images together."""
    from featuremaps.segment.clusters import cluster_segments

    classes = len(data.class_names)
    total = np.zeros((classes + 1, classes + 1), dtype=np.int64)  # last label: unmatched segments
    for i in range(len(data)):
        image = data.images[i].permute(1, 2, 0).numpy()  # (H, W, 3) uint8
        segments = cluster_segments(model, image, k=k, layers=layers, seed=seed, size=int(data.images.shape[-1]))
        truth = data.masks[i].numpy()
        relabelled, _ = match_segments(segments.mask, truth)
        total += confusion(np.where(relabelled < 0, classes, relabelled), truth, classes + 1)
    return scores_from_confusion(total, unmatched_label=classes)


def train_segmenter(config: SegmentTrainConfig, out_dir: str | Path | None = None, *,
                    on_progress: Callable[[Progress], None] | None = None,
                    overwrite: bool = False) -> SegmentTrainResult:
    """Train a per-pixel head (see the module docstring); with ``out_dir``, write its checkpoint there.

    ``out_dir`` is checked before training starts: a non-empty directory is refused unless
    ``overwrite``; the checkpoint is written atomically.
    """
    check_output(out_dir, overwrite=overwrite)
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    backbone = load_model(config.backbone, weights=config.backbone_weights, seed=config.seed).to(device)
    info = model_info(backbone)
    train, val = _data(config)
    model_input = replace(info.input, size=(config.size, config.size), resize=config.size, frame="whole")
    probe = _normalised(train.images[:1], model_input)
    layers = list(config.layers) if config.layers else default_segmentation_layers(backbone, tuple(probe.shape[1:]))
    classes = len(train.class_names)
    use_class_maps = config.class_maps
    if use_class_maps is None:
        from featuremaps.segment.hypercolumns import dense_classifier

        use_class_maps = dense_classifier(backbone, info.input_size) is not None
    head_probe = PixelHead(backbone, layers, classes, 1, colour=config.colour, class_maps=use_class_maps)
    probe_index = torch.randperm(len(train), generator=torch.Generator().manual_seed(config.seed))[:64]
    sample = head_probe.hypercolumns(_normalised(train.images[probe_index], model_input).to(device))
    features = int(sample.shape[1])
    spec = {"backbone": info.to_dict(), "size": config.size}
    model = PixelHead(backbone, layers, classes, features, hidden=config.hidden, colour=config.colour,
                      class_maps=use_class_maps, spec=spec).to(device)
    # Set before training: validation prepares its input with it (the backbone's normalisation).
    attach(model, ModelInfo(name=f"seg:{info.name}", source="segmentation", input=model_input,
                            class_names=tuple(train.class_names), num_classes=classes))
    flat = sample.transpose(0, 1).flatten(1)  # (F, pixels)
    model.set_standardisation(flat.mean(dim=1), flat.std(dim=1))
    frequency = torch.bincount(train.masks.flatten(), minlength=classes).double()
    share = frequency.clamp(min=1) / frequency.sum()
    pixel_weight = share.pow(-0.5)  # rare classes drawn more often
    # Drawn pixels follow share^0.5, not share: add 0.5 log(share) back at inference (logit adjustment).
    model.prior_adjustment.copy_((0.5 * share.log()).float())
    generator = torch.Generator().manual_seed(config.seed)

    def batches(_epoch: int) -> Sequence[torch.Tensor]:
        return torch.randperm(len(train), generator=generator).split(config.batch_size)

    def step(index: torch.Tensor) -> Iterator[tuple[torch.Tensor, None]]:
        x = _normalised(train.images[index], model_input).to(device)
        features = model.hypercolumns(x)  # (B, F, H, W), computed once for several steps
        pixels = features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])  # (B*H*W, F)
        targets = train.masks[index].reshape(-1).to(device)
        draw_weight = pixel_weight[targets.cpu()]
        for _ in range(STEPS_PER_BATCH):
            chosen = torch.multinomial(draw_weight, PIXELS_PER_IMAGE * len(index), replacement=True,
                                       generator=generator).to(device)
            sampled = pixels[chosen].T[None, :, :, None]  # (1, F, P, 1): the 1x1 head sees P pixels
            logits = model.classify(sampled)[0, :, :, 0].T  # (P, K)
            yield F.cross_entropy(logits, targets[chosen]), None

    def validate() -> dict[str, float]:
        scores = evaluate_segmenter(model, val)
        return {"miou": scores.miou, "pixel_accuracy": scores.pixel_accuracy}

    history = fit(list(model.head.parameters()), epochs=config.epochs, lr=config.lr, weight_decay=1e-4,
                  batches=batches, step=step, validate=validate, train_mode=model.train,
                  steps_per_batch=STEPS_PER_BATCH, warmup=0, on_progress=on_progress)
    model.eval()
    last = history[-1]
    record, checkpoint = write_checkpoint(
        model, out_dir, format="featuremaps.segmenter", task="segmentation", kind="pixel-head",
        data={**train.description, "train_images": len(train), "val_images": len(val),
              "classes": train.class_names},
        training={k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        metrics={"train_loss": round(last.loss, 5), "val_miou": round(last.validation["miou"], 5),
                 "val_pixel_accuracy": round(last.validation["pixel_accuracy"], 5)},
        overwrite=overwrite)
    return SegmentTrainResult(model, record, history, checkpoint)
