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
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from featuremaps.data.datasets import ArrayDataset, load_dataset, objects_dataset, shapes_dataset
from featuremaps.errors import LayerError, SettingsError, check_seed
from featuremaps.features import FeatureExtractor
from featuremaps.features.info import ModelInfo, attach, model_info, resolve_device
from featuremaps.features.pooling import check_pool, pool_maps
from featuremaps.models.registry import load_model
from featuremaps.recognize.familiarity import fit_familiarity
from featuremaps.recognize.head import HEADS, FeatureHead, make_head
from featuremaps.recognize.training import Progress, check_output, fit, write_checkpoint

__all__ = ["TrainConfig", "TrainResult", "train_classifier"]

logger = logging.getLogger(__name__)


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
    half_weights: bool = False

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
            check_pool(self.pool)
        resolve_device(self.device)
        check_seed(self.seed)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (3e-3 if self.backbone is None else 1e-3)


@dataclass
class TrainResult:
    """The trained model, its checkpoint record and the epoch history (end-of-epoch reports)."""

    model: nn.Module
    record: dict[str, Any]
    history: list[Progress] = field(default_factory=list)
    checkpoint: Path | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    validation: ArrayDataset | None = field(default=None, repr=False)


ProgressCallback = Callable[[Progress], None]


def chance_hint(result: TrainResult, config: TrainConfig) -> str | None:
    """What to change when validation accuracy ended near chance (at most 1.5 x 1/classes), else None."""
    classes = len(model_info(result.model).class_names or ()) or 1
    accuracy = float(result.record.get("metrics", {}).get("val_accuracy", 1.0))
    chance = 1.0 / classes
    if classes < 2 or accuracy > 1.5 * chance:
        return None
    loss = result.history[-1].loss if result.history else float("nan")
    flat = f"; the loss stayed near ln {classes} = {math.log(classes):.2f}" if abs(loss - math.log(classes)) < 0.05 else ""
    tries = [f"a smaller --lr (now {config.learning_rate:g}; try {config.learning_rate / 3:.1g})",
             f"more --epochs (now {config.epochs})", f"more --samples (now {config.samples:,})"]
    if config.backbone is None:
        tries.append("or a head on a trained backbone (--backbone builtin:shapes --layer pool2)")
    return (f"validation accuracy {accuracy:.1%} is at chance ({chance:.1%} for {classes} classes){flat}: the model "
            f"learned nothing. Try {', '.join(tries)}")


def _describe(train: ArrayDataset, val: ArrayDataset) -> dict[str, Any]:
    return {**train.description, "train_samples": len(train), "val_samples": len(val),
            "classes": train.class_names, "skipped": len(train.skipped)}


def _batches(count: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    return list(torch.randperm(count, generator=generator).split(batch_size))


@torch.inference_mode()
def _evaluate_inputs(forward: Callable[[torch.Tensor], torch.Tensor], inputs: Callable[[torch.Tensor], torch.Tensor],
                     labels: torch.Tensor, batch_size: int, device: torch.device) -> dict[str, float]:
    total_loss, correct = 0.0, 0
    for index in torch.arange(len(labels)).split(batch_size):
        logits = forward(inputs(index).to(device))
        target = labels[index].to(device)
        total_loss += float(F.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(dim=1) == target).sum())
    return {"loss": total_loss / len(labels), "accuracy": correct / len(labels)}


def _classification_step(forward: Callable[[torch.Tensor], torch.Tensor], inputs: Callable[[torch.Tensor], torch.Tensor],
                         labels: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], Iterator[Any]]:
    """One optimiser step per batch: cross-entropy on the batch, and how many it got right."""

    def step(index: torch.Tensor) -> Iterator[tuple[torch.Tensor, int]]:
        logits, target = forward(inputs(index)), labels(index)
        yield F.cross_entropy(logits, target), int((logits.detach().argmax(dim=1) == target).sum())

    return step


def _train_cnn(config: TrainConfig, on_progress: ProgressCallback | None) -> TrainResult:
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    probe = load_model(config.model, options=config.options, seed=config.seed)
    model_input = model_info(probe).input
    train, val = load_dataset(config.dataset, model_input, seed=config.seed, samples=config.samples,
                              val_fraction=config.val_fraction, draw_size=max(model_input.size))
    model = load_model(config.model, num_classes=len(train.class_names), options=config.options,
                       seed=config.seed).to(device)
    info = model_info(model)
    current = {"data": train}
    generator = torch.Generator().manual_seed(config.seed)

    def batches(epoch: int) -> list[torch.Tensor]:
        if config.dataset in ("shapes", "objects") and epoch > 0:  # fresh images every epoch
            make = shapes_dataset if config.dataset == "shapes" else objects_dataset
            current["data"] = make(config.samples, config.seed, max(model_input.size), start=epoch * config.samples,
                                   model_input=model_input)
        return _batches(len(current["data"]), config.batch_size, generator)

    def inputs(index: torch.Tensor) -> torch.Tensor:
        return model_input.normalise(current["data"].images[index].to(device))

    step = _classification_step(model, inputs, lambda i: current["data"].labels[i].to(device))
    validate = lambda: _evaluate_inputs(model, lambda i: model_input.normalise(val.images[i]),  # noqa: E731
                                        val.labels, 256, device)
    history = fit(list(model.parameters()), epochs=config.epochs, lr=config.learning_rate,
                  weight_decay=config.weight_decay, batches=batches, step=step, validate=validate,
                  train_mode=model.train, on_progress=on_progress)
    model.eval()
    attach(model, replace(info, class_names=tuple(train.class_names), num_classes=len(train.class_names)))
    return TrainResult(model, {}, history, skipped=train.skipped, data=_describe(train, val), validation=val)


def _features(backbone: nn.Module, data: ArrayDataset, layer: str, pool: str, device: torch.device,
              batch_size: int = 64, on_batch: Callable[[int], None] | None = None) -> torch.Tensor:
    """Pooled maps of ``layer`` for every image: ``(N, F)``, computed once; ``on_batch(images)`` after each batch."""
    info = model_info(backbone)
    extractor = FeatureExtractor(backbone, layer)
    if len(extractor.layers) != 1:
        raise LayerError(f"--layer must name one layer; {layer!r} matches {len(extractor.layers)}: "
                         f"{', '.join(extractor.names[:6])}")
    vectors = []
    for index in torch.arange(len(data)).split(batch_size):
        x = info.input.normalise(data.images[index]).to(device)
        vectors.append(pool_maps(extractor(x)[extractor.names[0]], pool).cpu())
        if on_batch is not None:
            on_batch(len(index))
    return torch.cat(vectors)


def _train_head(config: TrainConfig, on_progress: ProgressCallback | None,
                on_features: Callable[[int, int], None] | None = None) -> TrainResult:
    if config.backbone is None or config.layer is None:
        raise SettingsError("a head on frozen maps needs --backbone and --layer")
    layer = config.layer
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    backbone = load_model(config.backbone, weights=config.backbone_weights, seed=config.seed).to(device)
    info = model_info(backbone)
    # generated images are drawn at the backbone's own input size (drawn at 64 px and blown up to 224, they were
    # unlike every image the head was later scored on)
    train, val = load_dataset(config.dataset, info.input, seed=config.seed, samples=config.samples,
                              val_fraction=config.val_fraction, draw_size=max(info.input.size))
    started = time.perf_counter()
    done, total = 0, len(train) + len(val)

    def counted(images: int) -> None:
        nonlocal done
        done += images
        if on_features is not None:
            on_features(done, total)

    train_x = _features(backbone, train, layer, config.pool, device, on_batch=counted)
    val_x = _features(backbone, val, layer, config.pool, device, on_batch=counted)
    logger.info("features %s computed once in %.1f s", tuple(train_x.shape), time.perf_counter() - started)
    head = make_head(config.head, train_x.shape[1], len(train.class_names), config.hidden)
    spec = {"backbone": info.to_dict(), "kind": config.head, "hidden": config.hidden}
    model = FeatureHead(backbone, layer, config.pool, head, train_x.shape[1], spec).to(device)
    model.set_standardisation(train_x.mean(dim=0).to(device), train_x.std(dim=0).to(device))
    train_x, val_x = train_x.to(device), val_x.to(device)
    generator = torch.Generator().manual_seed(config.seed)
    classify = lambda v: model.head(model.standardise(v))  # noqa: E731
    step = _classification_step(classify, lambda i: train_x[i], lambda i: train.labels[i].to(device))
    history = fit(list(model.head.parameters()), epochs=config.epochs, lr=config.learning_rate,
                  weight_decay=config.weight_decay,
                  batches=lambda _: _batches(len(train), config.batch_size, generator), step=step,
                  validate=lambda: _evaluate_inputs(classify, lambda i: val_x[i], val.labels, 1024, device),
                  train_mode=model.train, on_progress=on_progress)
    model.eval()
    attach(model, ModelInfo(name=f"head:{info.name}:{config.layer}", source="head", input=info.input,
                            class_names=tuple(train.class_names), num_classes=len(train.class_names)))
    return TrainResult(model, {}, history, skipped=train.skipped, data=_describe(train, val), validation=val)


def train_classifier(config: TrainConfig, out_dir: str | Path | None = None, *,
                     on_progress: ProgressCallback | None = None, overwrite: bool = False,
                     on_features: Callable[[int, int], None] | None = None) -> TrainResult:
    """Train as ``config`` says; with ``out_dir``, write the checkpoint directory there.

    A head on a backbone first computes the backbone's pooled maps of every image once
    (``on_features(done, total)`` reports it), then trains on those vectors.

    ``out_dir`` is checked before training starts: a non-empty directory is refused unless
    ``overwrite``; the checkpoint is written atomically (temporary directory, then rename).

    Example:
        >>> result = train_classifier(TrainConfig(dataset="shapes", samples=400, epochs=2), "ckpt/")
        >>> result.record["metrics"]["val_accuracy"] > 0.25
        True
    """
    check_output(out_dir, overwrite=overwrite)
    result = _train_head(config, on_progress, on_features) if config.backbone else _train_cnn(config, on_progress)
    last = result.history[-1]
    result.record, result.checkpoint = write_checkpoint(
        result.model, out_dir, format="featuremaps.classifier", task="classification",
        kind="head" if config.backbone else "cnn", data=result.data,
        training={k: v for k, v in asdict(config).items() if k != "dataset"},
        metrics={"train_loss": round(last.loss, 5), "train_accuracy": round(last.accuracy or 0.0, 5),
                 "val_loss": round(last.validation["loss"], 5), "val_accuracy": round(last.validation["accuracy"], 5),
                 "images_per_second": round(last.images_per_second, 1)},
        overwrite=overwrite, half=config.half_weights)
    validation = result.validation
    if result.checkpoint is not None and not config.backbone and validation is not None and len(validation) >= 100:
        half = len(validation) // 2  # what a familiar image looks like: fitted on one half, thresholded on the other
        indices = torch.arange(len(validation))
        fit_familiarity(result.model, validation.subset(indices[:half], "familiarity fit"),
                        validation.subset(indices[half:], "familiarity threshold")).save(result.checkpoint)
    return result
