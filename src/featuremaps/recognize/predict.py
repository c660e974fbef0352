"""Prediction (top-k classes with probabilities) and class activation maps (Grad-CAM)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from featuremaps.errors import LayerError, SettingsError
from featuremaps.features import FeatureExtractor, align_maps, catalogue_for
from featuremaps.features.info import model_device, model_info
from featuremaps.images import ImageSource
from featuremaps.recognize.familiarity import familiarity_for, unfamiliar_note

__all__ = ["CAM_SCALE", "Prediction", "Predictions", "class_activation_map", "default_cam_layer", "predict"]

CAM_SCALE = "Grad-CAM: how much each place raised the class score"
"""The colour bar's label of a class activation map (its values are in [0, 1])."""


@dataclass
class Prediction:
    """The best ``k`` classes for one image, most probable first.

    ``familiar`` is False when the image's maps are unlike those of the training data (its
    ``unfamiliarity`` is above the threshold that 5% of held-out images exceed;
    :mod:`featuremaps.recognize.familiarity`), None when the model has no familiarity statistics.
    """

    source: str
    labels: list[tuple[str, float]]
    class_index: int
    familiar: bool | None = None
    unfamiliarity: float | None = None
    threshold: float | None = None
    indices: list[int] | None = None

    def to_dict(self) -> dict[str, Any]:
        indices = self.indices or [self.class_index] + [-1] * (len(self.labels) - 1)
        return {"path": self.source, "predictions": [{"label": label, "index": index, "probability": round(p, 6)}
                                                     for (label, p), index in zip(self.labels, indices)],
                "familiar": self.familiar,
                "unfamiliarity": None if self.unfamiliarity is None else round(self.unfamiliarity, 3),
                "threshold": None if self.threshold is None else round(self.threshold, 3)}

    @property
    def note(self) -> str:
        """Empty, or why the prediction is marked unfamiliar."""
        if self.familiar is False:
            return unfamiliar_note(self.unfamiliarity or 0.0, self.threshold or 0.0).replace("labels mean", "label means")
        return ""


class Predictions(list[Prediction]):
    """The predictions of :func:`predict`, one per image; in Jupyter a table with a bar per class."""

    def _repr_html_(self) -> str:
        import html

        rows = []
        for prediction in self:
            bars = "".join(
                f"<div>{html.escape(label)} <span style='display:inline-block;width:{round(160 * p)}px;height:10px;"
                f"background:#1f5fbf'></span> {p:.1%}</div>" for label, p in prediction.labels)
            note = f"<div style='color:#b00020'>{html.escape(prediction.note)}</div>" if prediction.note else ""
            rows.append(f"<tr><td style='padding:4px 10px;vertical-align:top'>{html.escape(prediction.source)}</td>"
                        f"<td style='padding:4px 10px'>{bars}{note}</td></tr>")
        return f"<table>{''.join(rows)}</table>"


def _names(model: nn.Module) -> list[str]:
    info = model_info(model)
    if info.class_names:
        return list(info.class_names)
    return [str(i) for i in range(info.num_classes or 1000)]


@torch.inference_mode()
def predict(model: nn.Module, images: Sequence[ImageSource], *, top_k: int = 3, batch_size: int = 16) -> Predictions:
    """Top-``k`` classes of each image, ``batch_size`` images per forward pass. Images are prepared with
    the model's own input description (:class:`~featuremaps.features.inputs.ModelInput`)."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise SettingsError(f"top_k must be an int >= 1; got {top_k!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= 1024:
        raise SettingsError(f"batch_size must be an int from 1 to 1024; got {batch_size!r}")
    info = model_info(model)
    names = _names(model)
    familiarity = familiarity_for(model)
    model.eval()
    device = model_device(model)
    results = Predictions()
    items = list(images)
    if info.input.frame == "whole":  # each image keeps its own size: one at a time
        batch_size = 1
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        prepared = torch.stack([info.input.prepare(image) for image in chunk])  # (B, C, H, W) uint8
        output = model(info.input.normalise(prepared).to(device))
        if not isinstance(output, torch.Tensor) or output.ndim != 2:
            shape = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else type(output).__name__
            per_pixel = isinstance(output, torch.Tensor) and output.ndim == 4
            raise SettingsError(f"{info.name} is not a classifier: it gives {shape} per image, not one score per "
                                "class" + ("; it scores every pixel: use featuremaps segment --checkpoint "
                                           f"{info.name}" if per_pixel else ""))
        probabilities = F.softmax(output.float(), dim=1).cpu()  # (B, classes)
        values, indices = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
        scores = familiarity.scores(model, prepared) if familiarity is not None else None
        for row, image in enumerate(chunk):
            order = indices[row].tolist()
            labels = [(names[i] if i < len(names) else str(i), float(v)) for v, i in zip(values[row], order)]
            prediction = Prediction(str(image), labels, order[0], indices=order)
            if scores is not None and familiarity is not None:
                prediction.unfamiliarity, prediction.threshold = float(scores[row]), familiarity.threshold
                prediction.familiar = prediction.unfamiliarity <= familiarity.threshold
            results.append(prediction)
    return results


def default_cam_layer(model: nn.Module) -> str:
    """The last layer whose output is still maps with a local receptive field (the last conv stage)."""
    info = model_info(model)
    catalogue = catalogue_for(model, info.input_size)
    local = [e for e in catalogue if e.is_spatial and not e.global_field and e.jump is not None]
    if not local:
        raise LayerError(f"{info.name} has no layer with feature maps for a class activation map")
    return local[-1].name


def class_activation_map(
    model: nn.Module, image: ImageSource, *, class_index: int | None = None, layer: str | None = None
) -> tuple[torch.Tensor, str, int]:
    """Grad-CAM: where ``layer``'s maps drove the score of ``class_index`` (default: the predicted class).

    ``cam = ReLU(sum_k w_k A_k)``, ``w_k`` the mean gradient of the class score over map ``A_k``.

    Returns:
        ``(cam, layer name, class index)``: ``cam`` in [0, 1] on the model input's pixels ``(H, W)``,
        each unit of the layer at the centre of its receptive field (for a layer without a local
        field, the layer's own ``(h, w)``).
    """
    info = model_info(model)
    x = info.input.tensor(image)[None].to(model_device(model))
    extractor = FeatureExtractor(model, layer or default_cam_layer(model), input_shape=tuple(x.shape[1:]))
    if len(extractor.layers) != 1:
        raise LayerError(f"a class activation map needs one layer; {layer!r} names {len(extractor.layers)}")
    name = extractor.names[0]
    captured, logits = extractor.with_output(x, grad=True)
    maps = captured[name]
    index = int(logits[0].argmax()) if class_index is None else class_index
    if not 0 <= index < logits.shape[1]:
        raise SettingsError(f"class_index must be in 0..{logits.shape[1] - 1}; got {index}")
    (gradient,) = torch.autograd.grad(logits[0, index], maps)
    weights = gradient[0].mean(dim=(1, 2))  # (C,)
    cam = F.relu((weights[:, None, None] * maps[0]).sum(dim=0)).detach().cpu()  # (h, w)
    entry = extractor.layers[0]
    if entry.jump is not None and entry.start is not None and entry.receptive_field is not None:
        # on the input's pixels, each unit at its receptive field's centre (not stretched over the image)
        cam = align_maps(cam[None, None], entry, (x.shape[2], x.shape[3]))[0, 0]
    peak = float(cam.max())
    return (cam / peak if peak > 0 else cam), name, index
