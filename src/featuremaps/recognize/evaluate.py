"""Evaluation: accuracy, loss, per-class precision and recall, and the confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from featuremaps.data.datasets import ArrayDataset
from featuremaps.errors import DatasetError
from featuremaps.features.info import model_device, model_info

__all__ = ["Evaluation", "evaluate"]


@dataclass
class Evaluation:
    """Scores of a classifier on a dataset.

    Attributes:
        confusion: ``(K, K)`` counts, rows = true class, columns = predicted class.
    """

    accuracy: float
    loss: float
    class_names: list[str]
    precision: list[float]
    recall: list[float]
    support: list[int]
    confusion: np.ndarray
    samples: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": round(self.accuracy, 5),
            "loss": round(self.loss, 5),
            "samples": self.samples,
            "per_class": [
                {"class": name, "precision": round(p, 5), "recall": round(r, 5), "support": s}
                for name, p, r, s in zip(self.class_names, self.precision, self.recall, self.support)
            ],
            "confusion_matrix": self.confusion.tolist(),
        }


@torch.inference_mode()
def evaluate(model: nn.Module, dataset: ArrayDataset, *, batch_size: int = 128) -> Evaluation:
    """Score ``model`` on ``dataset`` (uint8 images prepared with the model's input); the dataset's
    classes are matched to the model's by name.

    Raises:
        DatasetError: the dataset has classes the model does not know.
    """
    info = model_info(model)
    names = info.class_names or [str(i) for i in range(info.num_classes or 0)]
    unknown = [name for name in dataset.class_names if name not in names]
    if unknown:
        raise DatasetError(f"the dataset has classes the model does not know: {', '.join(unknown)} "
                           f"(the model knows {', '.join(names)})")
    to_model = torch.tensor([names.index(name) for name in dataset.class_names])
    targets = to_model[dataset.labels]
    device = model_device(model)
    if tuple(dataset.images.shape[1:]) != info.input_size:
        raise DatasetError(f"the dataset's images are {tuple(dataset.images.shape[1:])}, not the model's input "
                           f"{info.input_size}; make it with the model's input (load_dataset(..., model_input))")
    model.eval()
    predictions, loss = [], 0.0
    for index in torch.arange(len(dataset)).split(batch_size):
        x = info.input.normalise(dataset.images[index].to(device))
        logits = model(x)
        loss += float(F.cross_entropy(logits, targets[index].to(device), reduction="sum"))
        predictions.append(logits.argmax(dim=1).cpu())
    predicted = torch.cat(predictions).numpy()
    truth = targets.numpy()
    k = len(names)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    diagonal = np.diag(confusion)
    precision = np.divide(diagonal, predicted_count, out=np.zeros(k), where=predicted_count > 0)
    recall = np.divide(diagonal, support, out=np.zeros(k), where=support > 0)
    return Evaluation(
        accuracy=float(diagonal.sum() / max(len(truth), 1)), loss=loss / max(len(truth), 1), class_names=list(names),
        precision=precision.tolist(), recall=recall.tolist(), support=support.tolist(), confusion=confusion,
        samples=len(truth),
    )
