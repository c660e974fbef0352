"""Training a classifier: a built-in CNN end to end, or a head on frozen feature maps.

Both are deterministic under ``seed`` on the CPU (seeded initialisation, seeded shuffling,
seeded data). The shapes dataset draws fresh images every epoch (``start = epoch *
samples``), so the CNN never sees the same image twice; validation images come from
another seed. A head on frozen maps computes the features of every image once, then
trains on the cached vectors, which takes seconds.

A checkpoint is a directory: ``model.safetensors`` and ``featuremaps.json`` (architecture,
class names, input size and preprocessing, data, training settings, metrics).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from featuremaps.data.datasets import ArrayDataset, load_dataset, shapes_dataset, to_model_input
from featuremaps.errors import LayerError, SettingsError
from featuremaps.extract import capture, catalogue_for, select_layers
from featuremaps.models.checkpoint import check_writable, save_checkpoint
from featuremaps.models.preprocess import ModelInfo, model_info
from featuremaps.models.registry import architecture_record, load_model
from featuremaps.recognize.head import HEADS, POOLINGS, FeatureHead, make_head, pool_maps

__all__ = ["EpochStats", "TrainConfig", "TrainResult", "train_classifier"]

logger = logging.getLogger(__name__)
FORMAT_VERSION = 1


@dataclass(frozen=True)
class TrainConfig:
    """What to train and how.

    ``backbone`` set means: a ``head`` (``linear`` or ``mlp``) on the frozen maps of
    ``layer`` of ``backbone``, pooled with ``pool``; otherwise ``model`` is trained end to end.
    """

    dataset: str = "shapes"
    model: str = "tinyvgg"
    options: dict[str, Any] | None = None
    backbone: str | None = None
    backbone_weights: str | None = None
    layer: str | None = None
    head: str = "linear"
    pool: str = "avg"
    hidden: int = 256
    epochs: int = 5
    batch_size: int = 64
    lr: float | None = None
    weight_decay: float = 1e-4
    seed: int = 0
    samples: int = 4000
    val_fraction: float = 0.2
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "samples", "hidden"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SettingsError(f"{name} must be an int >= 1; got {value!r}")
        if self.lr is not None and not 0 < self.lr < 10:
            raise SettingsError(f"lr must be a positive learning rate; got {self.lr}")
        if self.backbone is not None:
            if not self.layer:
                raise SettingsError("a head on frozen maps needs --layer (see 'featuremaps layers BACKBONE')")
            if self.head not in HEADS:
                raise SettingsError(f"head must be one of {', '.join(HEADS)}; got {self.head!r}")
            if self.pool not in POOLINGS:
                raise SettingsError(f"pool must be one of {', '.join(POOLINGS)}; got {self.pool!r}")
        if self.device not in ("cpu", "cuda") and not self.device.startswith("cuda:"):
            raise SettingsError(f"device must be cpu or cuda; got {self.device!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise SettingsError("device cuda was asked for, but torch sees no CUDA GPU on this machine")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (3e-3 if self.backbone is None else 1e-3)


@dataclass
class EpochStats:
    """Progress of one epoch (``batch == batches`` at its end, with validation figures)."""

    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float
    accuracy: float
    images_per_second: float
    val_loss: float | None = None
    val_accuracy: float | None = None


@dataclass
class TrainResult:
    """The trained model, its checkpoint record and the epoch history."""

    model: nn.Module
    record: dict[str, Any]
    history: list[EpochStats] = field(default_factory=list)
    checkpoint: Path | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)


Progress = Callable[[EpochStats], None]


def _cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _batches(count: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    return list(torch.randperm(count, generator=generator).split(batch_size))


@torch.inference_mode()
def _evaluate_inputs(forward: Callable[[torch.Tensor], torch.Tensor], inputs: Callable[[torch.Tensor], torch.Tensor],
                     labels: torch.Tensor, batch_size: int, device: torch.device) -> tuple[float, float]:
    total_loss, correct = 0.0, 0
    for index in torch.arange(len(labels)).split(batch_size):
        logits = forward(inputs(index).to(device))
        target = labels[index].to(device)
        total_loss += float(F.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(dim=1) == target).sum())
    return total_loss / len(labels), correct / len(labels)


def _fit(
    parameters: list[nn.Parameter], step_fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    train_labels_for: Callable[[int], torch.Tensor], validate: Callable[[], tuple[float, float]],
    config: TrainConfig, set_mode: Callable[[bool], None], on_progress: Progress | None, history: list[EpochStats],
) -> None:
    """The shared loop: AdamW, warm-up then cosine decay, one validation per epoch."""
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(config.seed)
    steps_per_epoch = math.ceil(len(train_labels_for(0)) / config.batch_size)
    total, warmup = steps_per_epoch * config.epochs, min(100, steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _cosine(s, total, warmup))
    for epoch in range(config.epochs):
        labels = train_labels_for(epoch)
        set_mode(True)
        seen, loss_sum, correct, start = 0, 0.0, 0, time.perf_counter()
        batches = _batches(len(labels), config.batch_size, generator)
        for number, index in enumerate(batches, 1):
            logits, target = step_fn(index)
            loss = F.cross_entropy(logits, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            seen += len(index)
            loss_sum += float(loss.detach()) * len(index)
            correct += int((logits.detach().argmax(dim=1) == target).sum())
            stats = EpochStats(epoch + 1, config.epochs, number, len(batches), loss_sum / seen, correct / seen,
                               seen / max(time.perf_counter() - start, 1e-9))
            if number == len(batches):
                set_mode(False)
                stats.val_loss, stats.val_accuracy = validate()
                history.append(stats)
            if on_progress is not None:
                on_progress(stats)


def _train_cnn(config: TrainConfig, on_progress: Progress | None) -> TrainResult:
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    probe = load_model(config.model, options=config.options, seed=config.seed)
    channels, height, width = model_info(probe).input_size
    train, val = load_dataset(config.dataset, seed=config.seed, samples=config.samples, size=(height, width),
                              channels=channels, val_fraction=config.val_fraction)
    model = load_model(config.model, num_classes=len(train.class_names), options=config.options,
                       seed=config.seed).to(device)
    info = model_info(model)
    as_input = lambda images: to_model_input(images, info.input_size, info.mean, info.std)  # noqa: E731
    current = {"data": train}

    def labels_for(epoch: int) -> torch.Tensor:
        if config.dataset == "shapes" and epoch > 0:  # fresh images every epoch
            current["data"] = shapes_dataset(config.samples, config.seed, height, start=epoch * config.samples)
        return current["data"].labels

    def step(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        data = current["data"]
        return model(as_input(data.images[index]).to(device)), data.labels[index].to(device)

    def validate() -> tuple[float, float]:
        return _evaluate_inputs(model, lambda i: as_input(val.images[i]), val.labels, 256, device)

    history: list[EpochStats] = []
    _fit(list(model.parameters()), step, labels_for, validate, config, model.train, on_progress, history)
    model.eval()
    info.class_names, info.num_classes = list(train.class_names), len(train.class_names)
    return TrainResult(model, _record(model, config, train, val, history), history, skipped=train.skipped)


def _features(backbone: nn.Module, data: ArrayDataset, layer: str, pool: str, device: torch.device,
              batch_size: int = 64) -> torch.Tensor:
    """Pooled maps of ``layer`` for every image: ``(N, F)``, computed once."""
    info = model_info(backbone)
    catalogue = catalogue_for(backbone, info.input_size)
    selected = select_layers(catalogue, layer, model_name=info.name)
    if len(selected) != 1:
        raise LayerError(f"--layer must name one layer; {layer!r} matches {len(selected)}: "
                         f"{', '.join(e.name for e in selected[:6])}")
    vectors = []
    for index in torch.arange(len(data)).split(batch_size):
        x = to_model_input(data.images[index], info.input_size, info.mean, info.std).to(device)
        maps = capture(backbone, x, selected)[selected[0].name]
        vectors.append(pool_maps(maps, pool).cpu())
    return torch.cat(vectors)


def _train_head(config: TrainConfig, on_progress: Progress | None) -> TrainResult:
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    backbone = load_model(config.backbone, weights=config.backbone_weights, seed=config.seed).to(device)  # type: ignore[arg-type]
    info = model_info(backbone)
    channels, height, width = info.input_size
    size = (64, 64) if config.dataset == "shapes" else (height, width)  # shapes are drawn at 64 and resized
    train, val = load_dataset(config.dataset, seed=config.seed, samples=config.samples, size=size,
                              channels=channels, val_fraction=config.val_fraction)
    started = time.perf_counter()
    train_x = _features(backbone, train, config.layer, config.pool, device)  # type: ignore[arg-type]
    val_x = _features(backbone, val, config.layer, config.pool, device)  # type: ignore[arg-type]
    logger.info("features %s computed once in %.1f s", tuple(train_x.shape), time.perf_counter() - started)
    head = make_head(config.head, train_x.shape[1], len(train.class_names), config.hidden)
    spec = {"backbone": info.to_dict(), "kind": config.head, "hidden": config.hidden}
    model = FeatureHead(backbone, config.layer, config.pool, head, train_x.shape[1], spec).to(device)  # type: ignore[arg-type]
    model.set_standardisation(train_x.mean(dim=0).to(device), train_x.std(dim=0).to(device))
    train_x, val_x = train_x.to(device), val_x.to(device)

    def step(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return model.head(model.standardise(train_x[index])), train.labels[index].to(device)

    def validate() -> tuple[float, float]:
        return _evaluate_inputs(lambda v: model.head(model.standardise(v)), lambda i: val_x[i], val.labels, 1024,
                                device)

    history: list[EpochStats] = []
    _fit(list(model.head.parameters()), step, lambda _: train.labels, validate, config, model.train, on_progress,
         history)
    model.eval()
    model.featuremaps_info = ModelInfo(  # type: ignore[assignment]
        name=f"head:{info.name}:{config.layer}", source="head", weights=None, input_size=info.input_size,
        resize=info.resize, mean=info.mean, std=info.std, class_names=list(train.class_names),
        num_classes=len(train.class_names), transforms=info.transforms,
    )
    return TrainResult(model, _record(model, config, train, val, history), history, skipped=train.skipped)


def _record(model: nn.Module, config: TrainConfig, train: ArrayDataset, val: ArrayDataset,
            history: list[EpochStats]) -> dict[str, Any]:
    last = history[-1]
    record = architecture_record(model)
    record.update({
        "format": "featuremaps.classifier",
        "version": FORMAT_VERSION,
        "task": "classification",
        "kind": "head" if config.backbone else "cnn",
        "data": {**train.description, "train_samples": len(train), "val_samples": len(val),
                 "classes": train.class_names, "skipped": len(train.skipped)},
        "training": {k: v for k, v in asdict(config).items() if k not in ("dataset",)},
        "metrics": {"train_loss": round(last.loss, 5), "train_accuracy": round(last.accuracy, 5),
                    "val_loss": round(last.val_loss or 0.0, 5), "val_accuracy": round(last.val_accuracy or 0.0, 5),
                    "images_per_second": round(last.images_per_second, 1)},
    })
    return record


def train_classifier(config: TrainConfig, out_dir: str | Path | None = None, *,
                     on_progress: Progress | None = None, overwrite: bool = False) -> TrainResult:
    """Train as ``config`` says; with ``out_dir``, write the checkpoint directory there.

    ``out_dir`` is checked before training starts: a non-empty directory is refused unless
    ``overwrite``; the checkpoint is written atomically (temporary directory, then rename).

    Example:
        >>> result = train_classifier(TrainConfig(dataset="shapes", samples=400, epochs=2), "ckpt/")
        >>> result.record["metrics"]["val_accuracy"] > 0.25
        True
    """
    if out_dir is not None:
        check_writable(out_dir, overwrite=overwrite, directory=True)
    result = _train_head(config, on_progress) if config.backbone else _train_cnn(config, on_progress)
    if out_dir is not None:
        result.checkpoint = save_checkpoint(result.model.cpu(), out_dir, result.record, overwrite=overwrite)
    return result
