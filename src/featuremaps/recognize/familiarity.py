"""Is an image like the ones a classifier was trained on? Familiarity from the statistics of maps.

The rule. For each of the model's stages (:func:`~featuremaps.features.default_layers`), an
image is summarised by the mean and the standard deviation of every map over its positions;
two more stages come from a *reference* network trained on photos (``builtin:imagenet``, its
``blocks.5`` and ``blocks.6``, each map's mean, the image seen at 112 px). A small model's own
maps cannot always tell a photo from its training data: ``builtin:shapes`` summarises the cat
photo like one of its textured backgrounds (its own stages score it 8.8, under the threshold
17.9), while the reference network's maps put every crop of the bundled photos far away.
On held-out images of the training classes, featuremaps fits one Gaussian per stage to those
summaries (mean vector, full covariance with a little shrinkage) and records how far images
like the training data usually are (Mahalanobis distance, standardised per stage). An image's
*unfamiliarity* is the sum of its standardised distances over the stages; the threshold is
the value that ``false_alarms`` (5%) of a second set of held-out images exceed. Above it, a
prediction is marked *unfamiliar*: the image is unlike the training data, so its label means
little (a photo of a cat shown to a model of drawn shapes).

Why not the top softmax probability: measured on ``builtin:shapes``, at 5% false alarms it
flags only 42% of crops of the bundled photos (the cat is a "star" at 100%); the model's own
maps flag 78% of them, but not the cat; with the reference stages, all of them. :func:`measure` gives the figures for any model.

The statistics are stored beside the weights, in ``familiarity.safetensors`` of the checkpoint
directory (``featuremaps calibrate`` writes it; ``featuremaps train`` too).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from featuremaps.errors import CheckpointError, SettingsError
from featuremaps.features import FeatureExtractor, catalogue_for, default_layers
from featuremaps.features.info import model_device, model_info
from featuremaps.files import atomic_write, parse_json, save_safetensors

__all__ = ["FALSE_ALARMS", "FAMILIARITY_FILE", "Familiarity", "FamiliarityCheck", "familiarity_for", "fit_familiarity",
           "measure", "unfamiliar_note"]

FALSE_ALARMS = 0.05
FAMILIARITY_FILE = "familiarity.safetensors"
_SHRINK = 1e-3
REFERENCE_MODEL = "builtin:imagenet"
REFERENCE_LAYERS = ("blocks.5", "blocks.6")
REFERENCE_SIDE = 112
_REFERENCE_PREFIX = "reference:"
_REFERENCE_SHRINK = 0.1
_REFERENCES: dict[str, nn.Module] = {}
_CACHE: dict[tuple[str, float], Familiarity] = {}


class ImageSet(Protocol):
    """Images prepared for the model: uint8 ``(N, C, H, W)`` (an ArrayDataset, a MaskDataset)."""

    images: torch.Tensor

    def __len__(self) -> int: ...
_CACHE_LOCK = threading.Lock()


def _reference(device: torch.device) -> nn.Module:
    """The reference network (``builtin:imagenet``) on ``device``, loaded once per device."""
    from featuremaps.models.registry import load_model

    with _CACHE_LOCK:
        key = str(device)
        if key not in _REFERENCES:
            _REFERENCES[key] = load_model(REFERENCE_MODEL).eval().to(device)
        return _REFERENCES[key]


def _summaries(model: nn.Module, layers: list[str], images: torch.Tensor, batch_size: int = 128) -> dict[str, np.ndarray]:
    """Per stage ``(N, D)``: the model's layers give each map's mean and standard deviation over its
    positions (D = 2C); ``reference:`` stages each map's mean in the reference network (D = C)."""
    own = [name for name in layers if not name.startswith(_REFERENCE_PREFIX)]
    referenced = [name.removeprefix(_REFERENCE_PREFIX) for name in layers if name.startswith(_REFERENCE_PREFIX)]
    info = model_info(model)
    device = model_device(model)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in layers}
    if own:
        extractor = FeatureExtractor(model, own)
        for index in torch.arange(len(images)).split(batch_size):
            maps = extractor(info.input.normalise(images[index].to(device)))
            for name, tensor in maps.items():
                flat = tensor.float().flatten(2)
                parts[name].append(torch.cat([flat.mean(2), flat.std(2, unbiased=False)], dim=1).cpu().numpy())
    if referenced:
        reference = _reference(device)
        seen = replace(model_info(reference).input, size=(REFERENCE_SIDE, REFERENCE_SIDE), resize=REFERENCE_SIDE)
        extractor = FeatureExtractor(reference, referenced)
        for index in torch.arange(len(images)).split(batch_size):
            batch = images[index].to(device)
            maps = extractor(seen.normalise(seen.prepare_tensor(batch.expand(-1, 3, -1, -1))))
            for name, tensor in maps.items():
                parts[_REFERENCE_PREFIX + name].append(tensor.float().flatten(2).mean(2).cpu().numpy())
    return {name: np.concatenate(parts[name]).astype(np.float64) for name in layers}


@dataclass(frozen=True)
class Familiarity:
    """Per-layer Gaussians of the maps' statistics, and the threshold (see the module docstring)."""

    layers: tuple[str, ...]
    means: dict[str, np.ndarray]
    precisions: dict[str, np.ndarray]
    centres: dict[str, float]
    scales: dict[str, float]
    threshold: float
    false_alarms: float
    samples: int

    def scores(self, model: nn.Module, images: torch.Tensor) -> np.ndarray:
        """Unfamiliarity ``(N,)`` of uint8 images prepared for the model (higher: less like the training data)."""
        summaries = _summaries(model, list(self.layers), images)
        total = np.zeros(len(images))
        for name in self.layers:
            centred = summaries[name] - self.means[name]
            distance = np.einsum("nd,de,ne->n", centred, self.precisions[name], centred)
            total += (distance - self.centres[name]) / self.scales[name]
        return total

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write ``familiarity.safetensors`` into a checkpoint directory (atomically)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise CheckpointError(f"{folder}: familiarity is stored in checkpoint directories; this is not one")
        tensors = {}
        for index, name in enumerate(self.layers):
            tensors[f"{index}.mean"] = torch.from_numpy(self.means[name].astype(np.float32))
            tensors[f"{index}.precision"] = torch.from_numpy(self.precisions[name].astype(np.float32))
        metadata = {"featuremaps.familiarity": json.dumps({
            "layers": list(self.layers), "centres": [self.centres[n] for n in self.layers],
            "scales": [self.scales[n] for n in self.layers], "threshold": self.threshold,
            "false_alarms": self.false_alarms, "samples": self.samples})}
        atomic_write(folder / FAMILIARITY_FILE, lambda temp: save_safetensors(tensors, temp, metadata=metadata, shown=folder / FAMILIARITY_FILE))
        with _CACHE_LOCK:
            _CACHE.clear()
        return folder / FAMILIARITY_FILE

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Familiarity:
        """Read ``familiarity.safetensors`` (a safetensors file: no code runs)."""
        try:
            with safe_open(os.fspath(path), framework="pt") as handle:
                meta = parse_json((handle.metadata() or {})["featuremaps.familiarity"])
                layers = tuple(str(name) for name in meta["layers"])
                means = {n: handle.get_tensor(f"{i}.mean").double().numpy() for i, n in enumerate(layers)}
                precisions = {n: handle.get_tensor(f"{i}.precision").double().numpy() for i, n in enumerate(layers)}
            return cls(layers, means, precisions, dict(zip(layers, map(float, meta["centres"]))),
                       dict(zip(layers, map(float, meta["scales"]))), float(meta["threshold"]),
                       float(meta["false_alarms"]), int(meta["samples"]))
        except (OSError, KeyError, ValueError, TypeError, RuntimeError, SafetensorError) as error:
            raise CheckpointError(f"{path}: not a readable familiarity file ({type(error).__name__}: {error})") from None


def fit_familiarity(model: nn.Module, fit: ImageSet, threshold_set: ImageSet, *,
                    false_alarms: float = FALSE_ALARMS, reference: bool = True, own: bool = True) -> Familiarity:
    """Fit the Gaussians on ``fit`` and set the threshold on ``threshold_set`` (held-out images of the
    model's classes, prepared for it; two different sets, so the threshold is not measured on the
    images the Gaussians were fitted to). ``reference=False`` leaves out the reference network's
    stages (the model's own maps only); ``own=False`` the model's own (for a segmentation head,
    whose layers are its backbone's)."""
    if not 0.0 < false_alarms < 0.5:
        raise SettingsError(f"false_alarms must be between 0 and 0.5; got {false_alarms}")
    if len(fit) < 20 or len(threshold_set) < 10:
        raise SettingsError(f"familiarity needs at least 20 images to fit on and 10 others to set the threshold; got "
                            f"{len(fit)} + {len(threshold_set)}")
    if not (own or reference):
        raise SettingsError("familiarity needs the model's own stages, the reference's or both")
    info = model_info(model)
    layers = [e.name for e in default_layers(catalogue_for(model, info.input_size))] if own else []
    if own and not layers:
        raise SettingsError(f"{info.name} has no layers with maps to describe images by")
    if reference:
        layers += [_REFERENCE_PREFIX + name for name in REFERENCE_LAYERS]
    fitted = _summaries(model, layers, fit.images)
    means, precisions, centres, scales = {}, {}, {}, {}
    for name in layers:
        values = fitted[name]
        mean = values.mean(0)
        shrink = _REFERENCE_SHRINK if name.startswith(_REFERENCE_PREFIX) else _SHRINK
        covariance = np.cov((values - mean).T).reshape(values.shape[1], values.shape[1])
        covariance += np.eye(len(covariance)) * (shrink * np.trace(covariance) / len(covariance) + 1e-9)
        precision = np.linalg.inv(covariance)
        centred = values - mean
        distance = np.einsum("nd,de,ne->n", centred, precision, centred)
        means[name], precisions[name] = mean, precision
        centres[name], scales[name] = float(distance.mean()), float(distance.std() + 1e-9)
    partial = Familiarity(tuple(layers), means, precisions, centres, scales, 0.0, false_alarms, len(fit))
    threshold = float(np.quantile(partial.scores(model, threshold_set.images), 1.0 - false_alarms))
    return Familiarity(tuple(layers), means, precisions, centres, scales, threshold, false_alarms,
                       len(fit) + len(threshold_set))


def familiarity_for(model: nn.Module) -> Familiarity | None:
    """The familiarity statistics stored with the model's checkpoint, or None (cached per file)."""
    from featuremaps.models.registry import checkpoint_folder

    folder = checkpoint_folder(model)
    if folder is None or not (folder / FAMILIARITY_FILE).is_file():
        return None
    path = folder / FAMILIARITY_FILE
    key = (str(path), path.stat().st_mtime)
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = Familiarity.load(path)
        return _CACHE[key]


def unfamiliar_note(score: float, threshold: float, *, what: str = "the labels mean") -> str:
    """What predict (``what="the label means"``) and segment say of an image whose unfamiliarity ``score`` is
    above ``threshold``."""
    return (f"unfamiliar image: its maps are unlike the training data's (score {score:.1f} > {threshold:.1f}, a "
            f"threshold 5% of held-out images exceed); {what} little")


@dataclass(frozen=True)
class FamiliarityCheck:
    """The rule measured: false alarms on familiar held-out images, flags on far-away ones."""

    threshold: float
    false_alarm_rate: float
    familiar_images: int
    far_flagged: int
    far_images: int

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": round(self.threshold, 4), "false_alarm_rate": round(self.false_alarm_rate, 4),
                "familiar_images": self.familiar_images, "far_flagged": self.far_flagged,
                "far_images": self.far_images}


def measure(model: nn.Module, familiarity: Familiarity, familiar: ImageSet,
            far: ImageSet) -> FamiliarityCheck:
    """How the rule does on ``familiar`` held-out images (neither fitted nor thresholded on) and ``far`` ones."""
    false_alarms = float((familiarity.scores(model, familiar.images) > familiarity.threshold).mean())
    flagged = int((familiarity.scores(model, far.images) > familiarity.threshold).sum())
    return FamiliarityCheck(familiarity.threshold, false_alarms, len(familiar), flagged, len(far))
