"""The one training loop under classification and segmentation.

:func:`fit` owns what both tasks share: AdamW, a linear warm-up then cosine decay, the
batch order (seeded), the per-batch :class:`Progress` reports (the last of each epoch carries
the validation figures), and the history. A task gives it three functions:

- ``batches(epoch)``: index batches of the epoch's training data (``torch.Tensor`` each);
- ``step(index)``: yields ``(loss, correct)`` once per optimiser step on that batch (a
  segmentation head computes its features once and takes several steps on them;
  ``correct`` is None where accuracy does not apply);
- ``validate()``: ``{"name": value}`` figures on the validation data.

:func:`write_checkpoint` is the shared tail: the record's common fields, then an atomic write.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from featuremaps.errors import SettingsError
from featuremaps.models.checkpoint import check_writable, model_record, save_checkpoint

__all__ = ["Progress", "check_output", "fit", "warmup_then_cosine", "write_checkpoint"]

FORMAT_VERSION = 1


@dataclass
class Progress:
    """Where training is: one report per batch; ``validation`` is filled at the end of each epoch."""

    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float
    images_per_second: float
    accuracy: float | None = None
    validation: dict[str, float] = field(default_factory=dict)

    @property
    def epoch_done(self) -> bool:
        return self.batch == self.batches

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "epochs": self.epochs, "loss": round(self.loss, 5),
                "accuracy": round(self.accuracy, 5) if self.accuracy is not None else None,
                "images_per_second": round(self.images_per_second, 1),
                **{f"val_{key}": round(value, 5) for key, value in self.validation.items()}}


Step = Callable[[torch.Tensor], Iterable[tuple[torch.Tensor, "int | None"]]]


def warmup_then_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def fit(
    parameters: Sequence[nn.Parameter], *, epochs: int, lr: float, weight_decay: float,
    batches: Callable[[int], Sequence[torch.Tensor]], step: Step, validate: Callable[[], dict[str, float]],
    train_mode: Callable[[bool], Any], steps_per_batch: int = 1, warmup: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
) -> list[Progress]:
    """Train ``parameters`` (see the module docstring); returns the end-of-epoch reports.

    Args:
        warmup: warm-up steps; default ``min(100, steps of one epoch)``; 0 for plain cosine.
    """
    if epochs < 1 or steps_per_batch < 1:
        raise SettingsError(f"epochs and steps per batch must be >= 1; got {epochs}, {steps_per_batch}")
    optimizer = torch.optim.AdamW(list(parameters), lr=lr, weight_decay=weight_decay)
    first = batches(0)
    per_epoch = len(first) * steps_per_batch
    total = per_epoch * epochs
    warm = min(100, per_epoch) if warmup is None else warmup
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_then_cosine(s, total, warm))
    history: list[Progress] = []
    for epoch in range(epochs):
        epoch_batches = first if epoch == 0 else batches(epoch)
        train_mode(True)
        seen, loss_sum, correct_sum, counted, start = 0, 0.0, 0, 0, time.perf_counter()
        for number, index in enumerate(epoch_batches, 1):
            loss = torch.zeros(())
            correct: int | None = None
            for loss, correct in step(index):  # noqa: B007 - the last step's figures are reported
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
            seen += len(index)
            loss_sum += float(loss.detach()) * len(index)
            if correct is not None:
                correct_sum += correct
                counted += len(index)
            report = Progress(epoch + 1, epochs, number, len(epoch_batches), loss_sum / seen,
                              seen / max(time.perf_counter() - start, 1e-9),
                              correct_sum / counted if counted else None)
            if report.epoch_done:
                train_mode(False)
                report.validation = validate()
                history.append(report)
            if on_progress is not None:
                on_progress(report)
    return history


def write_checkpoint(model: nn.Module, out_dir: str | Path | None, *, format: str, task: str, kind: str,
                     data: dict[str, Any], training: dict[str, Any], metrics: dict[str, Any],
                     overwrite: bool = False, half: bool = False) -> tuple[dict[str, Any], Path | None]:
    """The checkpoint record (architecture + the common fields) and, with ``out_dir``, its atomic write."""
    record = model_record(model)
    record.update({"format": format, "version": FORMAT_VERSION, "task": task, "kind": kind,
                   "data": data, "training": training, "metrics": metrics})
    if out_dir is None:
        return record, None
    return record, save_checkpoint(model.cpu(), out_dir, record, overwrite=overwrite, half=half)


def check_output(out_dir: str | Path | None, *, overwrite: bool) -> None:
    """Refuse, before any training, an output directory that would replace something."""
    if out_dir is not None:
        check_writable(out_dir, overwrite=overwrite, directory=True)
