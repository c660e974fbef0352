"""Prediction (top-k classes with probabilities) and class activation maps (Grad-CAM)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from featuremaps.errors import LayerError, SettingsError
from featuremaps.features import FeatureExtractor, align_maps, catalogue_for
from featuremaps.features.info import model_device, model_info
from featuremaps.images import ImageSource
from featuremaps.recognize.familiarity import familiarity_for, unfamiliar_note

__all__ = ["CAM_SCALE", "Prediction", "Predictions", "Recognition", "class_activation_map", "default_cam_layer",
           "predict", "recognize"]

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
            return unfamiliar_note(self.unfamiliarity or 0.0, self.threshold or 0.0, what="the label means")
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


@dataclass
class Recognition:
    """What :func:`recognize` found in one image: the prediction, the picture the model saw and (with
    ``cam``) its Grad-CAM.

    Attributes:
        prediction: the top classes (:class:`Prediction`).
        picture: the model's input before normalisation, float ``(C, H, W)`` in [0, 1].
        cam: Grad-CAM ``(H, W)`` in [0, 1] on ``picture``'s pixels, or None.
        cam_layer, cam_class: the layer the map is read at, the class it is for (index).
        class_names: the model's class names (for titles).
        untrained_note: empty, or the note that the weights are untrained.
    """

    prediction: Prediction
    picture: torch.Tensor
    cam: torch.Tensor | None = None
    cam_layer: str | None = None
    cam_class: int | None = None
    class_names: Sequence[str] = ()
    untrained_note: str = ""

    @property
    def cam_label(self) -> str | None:
        if self.cam_class is None:
            return None
        names = self.class_names
        return names[self.cam_class] if self.cam_class < len(names) else str(self.cam_class)

    def title(self) -> str:
        """The overlay's title: the top class, where the layer saw the map's class, and any warning."""
        label, probability = self.prediction.labels[0]
        if self.cam_class is None or self.cam_class == self.prediction.class_index:
            title = f"{label} {probability:.0%}" + (f": where {self.cam_layer} saw it" if self.cam_layer else "")
        else:
            title = f"{self.cam_label}: where {self.cam_layer} saw it (the top class: {label} {probability:.0%})"
        if self.prediction.note:  # the picture says what the terminal says
            title += f". {self.prediction.note}"
        return title + self.untrained_note

    def overlay(self, *, alpha: float = 0.5, title: str | None = None) -> Image.Image:
        """The Grad-CAM over the picture, with its colour bar and :meth:`title`."""
        from featuremaps.render.overlay import render_overlay

        if self.cam is None:
            raise SettingsError("this recognition has no class activation map: call recognize(..., cam=True)")
        return render_overlay(self.picture, self.cam, alpha=alpha, cmap="jet", scale_label=CAM_SCALE,
                              title=self.title() if title is None else title)

    def to_dict(self) -> dict[str, Any]:
        row = self.prediction.to_dict()
        if self.cam_class is not None:
            row["cam_class"] = {"label": self.cam_label, "index": self.cam_class}
            row["cam_layer"] = self.cam_layer
        return row


def _check_classifier(output: Any, name: str) -> torch.Tensor:
    if not isinstance(output, torch.Tensor) or output.ndim != 2:
        shape = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else type(output).__name__
        per_pixel = isinstance(output, torch.Tensor) and output.ndim == 4
        raise SettingsError(f"{name} is not a classifier: it gives {shape} per image, not one score per "
                            "class" + ("; it scores every pixel: use featuremaps segment --checkpoint "
                                       f"{name}" if per_pixel else ""))
    return output


def _positive_int(value: Any, name: str, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (high is not None and value > high):
        bound = ">= 1" if high is None else f"from 1 to {high}"
        raise SettingsError(f"{name} must be an int {bound}; got {value!r}")


def recognize(
    model: nn.Module, images: Sequence[ImageSource], *, top_k: int = 3, cam: bool = True,
    cam_class: int | None = None, cam_layer: str | None = None, batch_size: int = 16,
) -> list[Recognition]:
    """Name what is in each image and (``cam``) where the maps saw it: each image is decoded and prepared
    once (the model's own :class:`~featuremaps.features.inputs.ModelInput`), and one forward pass per batch
    gives both the prediction and the Grad-CAM (its gradient runs back from the same logits).

    ``cam = ReLU(sum_k w_k A_k)``, ``w_k`` the mean gradient of the class score over map ``A_k`` of
    ``cam_layer`` (default: :func:`default_cam_layer`), for ``cam_class`` (default: each image's top class);
    the map is placed on the picture's pixels with each unit at its receptive field's centre.
    """
    _positive_int(top_k, "top_k")
    _positive_int(batch_size, "batch_size", 1024)
    info = model_info(model)
    names = _names(model)
    familiarity = familiarity_for(model)
    model.eval()
    device = model_device(model)
    layer = (cam_layer or default_cam_layer(model)) if cam else None
    extractors: dict[tuple[int, ...], FeatureExtractor] = {}
    results: list[Recognition] = []
    items = list(images)
    if info.input.frame == "whole":  # each image keeps its own size: one at a time
        batch_size = 1
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        prepared = torch.stack([info.input.prepare(image) for image in chunk])  # (B, C, H, W) uint8: one decode
        x = info.input.normalise(prepared).to(device)
        maps = None
        if layer is None:
            with torch.inference_mode():
                logits = _check_classifier(model(x), info.name)
        else:
            shape = tuple(x.shape[1:])
            if shape not in extractors:
                extractors[shape] = FeatureExtractor(model, layer, input_shape=shape)
                if len(extractors[shape].layers) != 1:
                    raise LayerError(f"a class activation map needs one layer; {layer!r} names "
                                     f"{len(extractors[shape].layers)}")
            extractor = extractors[shape]
            captured, output = extractor.with_output(x, grad=True)
            logits = _check_classifier(output, info.name)
            maps = captured[extractor.names[0]]
        probabilities = F.softmax(logits.detach().float(), dim=1).cpu()  # (B, classes)
        values, indices = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
        scores = familiarity.scores(model, prepared) if familiarity is not None else None
        heats: list[torch.Tensor | None] = [None] * len(chunk)
        targets = [int(indices[row, 0]) if cam_class is None else cam_class for row in range(len(chunk))]
        if maps is not None:
            if not all(0 <= t < logits.shape[1] for t in targets):
                raise SettingsError(f"cam_class must be in 0..{logits.shape[1] - 1}; got {cam_class}")
            heats = list(_grad_cam(logits, maps, targets, extractors[tuple(x.shape[1:])].layers[0],
                                   (x.shape[2], x.shape[3])))
        pictures = info.input.picture(prepared)
        for row, image in enumerate(chunk):
            order = indices[row].tolist()
            labels = [(names[i] if i < len(names) else str(i), float(v)) for v, i in zip(values[row], order)]
            prediction = Prediction(str(image), labels, order[0], indices=order)
            if scores is not None and familiarity is not None:
                prediction.unfamiliarity, prediction.threshold = float(scores[row]), familiarity.threshold
                prediction.familiar = prediction.unfamiliarity <= familiarity.threshold
            results.append(Recognition(prediction, pictures[row], heats[row], layer if maps is not None else None,
                                       targets[row] if maps is not None else None, names, info.untrained_note))
    return results


def _grad_cam(logits: torch.Tensor, maps: torch.Tensor, targets: list[int], entry: Any,
              size: tuple[int, int]) -> list[torch.Tensor]:
    """Grad-CAM ``(H, W)`` in [0, 1] per image of the batch (the rows are independent in eval mode)."""
    score = logits[torch.arange(len(targets)), torch.tensor(targets, device=logits.device)].sum()
    (gradient,) = torch.autograd.grad(score, maps)
    weights = gradient.mean(dim=(2, 3))  # (B, C)
    cams = F.relu((weights[:, :, None, None] * maps).sum(dim=1, keepdim=True)).detach().cpu()  # (B, 1, h, w)
    if entry.jump is not None and entry.start is not None and entry.receptive_field is not None:
        # on the input's pixels, each unit at its receptive field's centre (not stretched over the image)
        cams = align_maps(cams, entry, size)
    result = []
    for cam in cams[:, 0]:
        peak = float(cam.max())
        result.append(cam / peak if peak > 0 else cam)
    return result


def predict(model: nn.Module, images: Sequence[ImageSource], *, top_k: int = 3, batch_size: int = 16) -> Predictions:
    """Top-``k`` classes of each image, ``batch_size`` images per forward pass (:func:`recognize` without
    the class activation map)."""
    return Predictions(r.prediction for r in recognize(model, images, top_k=top_k, cam=False, batch_size=batch_size))


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
    """Grad-CAM of one image (:func:`recognize`): where ``layer``'s maps drove the score of ``class_index``
    (default: the predicted class).

    Returns:
        ``(cam, layer name, class index)``: ``cam`` in [0, 1] on the model input's pixels ``(H, W)``,
        each unit of the layer at the centre of its receptive field.
    """
    try:
        found = recognize(model, [image], top_k=1, cam_class=class_index, cam_layer=layer)[0]
    except SettingsError as error:  # name this function's argument
        raise SettingsError(str(error).replace("cam_class", "class_index", 1)) from None
    if found.cam is None or found.cam_layer is None or found.cam_class is None:  # recognize(cam=True) sets them
        raise LayerError(f"no class activation map for {found.prediction.source}")
    return found.cam, found.cam_layer, found.cam_class
