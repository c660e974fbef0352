"""The hierarchy, measured: what each layer's maps can tell, from low to high.

For each chosen layer of a model, on generated images it never trained on:

- its **receptive field** (pixels one unit sees);
- **linear probes** on its pooled maps (mean and max of every channel over the positions):
  held-out accuracy for the object class, and balanced accuracy for the presence of each part
  kind (mean over the kinds; chance is 1 / classes and 0.5);
- **detectors**: channels whose strongest response (max over positions) alone separates the
  images with a part from those without (ROC AUC >= ``detector_auc``), and channels that
  separate a composite object from the images that share one of its parts but are another
  class (a roof-triangle detector fires on houses, trees and triangles, so it is no house
  detector; a house detector must tell the house from all three).

Run it on a trained model and on its architecture with untrained weights (the control,
:func:`~featuremaps.models.untrained_like`): pooled random features already carry colour and
texture, so the control is the bar the trained layers must clear.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn

from featuremaps.data.datasets import ArrayDataset, objects_dataset, shapes_dataset
from featuremaps.data.objects import OBJECT_CLASSES, PART_KINDS
from featuremaps.errors import SettingsError
from featuremaps.features import FeatureExtractor, LayerSelection, catalogue_for, default_layers, select_layers
from featuremaps.features.info import model_device, model_info

__all__ = ["Hierarchy", "LayerLocalization", "LayerProbe", "Localization", "channel_roles", "hierarchy", "localization",
           "part_sharers"]

DATASETS = ("objects", "shapes")


@dataclass(frozen=True)
class LayerProbe:
    """What one layer's pooled maps tell (see the module docstring)."""

    layer: str
    depth: int
    channels: int
    receptive_field: float | None
    object_accuracy: float
    part_accuracy: float | None
    part_detectors: int | None
    object_detectors: int | None
    best_parts: dict[str, tuple[int, float]] = field(default_factory=dict)
    best_objects: dict[str, tuple[int, float]] = field(default_factory=dict)
    channel_parts: list[tuple[str, float]] = field(default_factory=list)
    channel_objects: list[tuple[str, float]] = field(default_factory=list)

    def role(self, channel: int, threshold: float = 0.8) -> str:
        """What ``channel`` detects best: ``"house (AUC 0.97)"``, ``"triangle (AUC 0.91)"`` or ``""``."""
        if not 0 <= channel < len(self.channel_parts):
            return ""
        part, part_auc = self.channel_parts[channel]
        whole, whole_auc = self.channel_objects[channel] if self.channel_objects else ("", 0.0)
        if whole_auc >= threshold and whole_auc >= part_auc:
            return f"{whole} (AUC {whole_auc:.2f})"
        return f"{part} (AUC {part_auc:.2f})" if part_auc >= threshold else ""

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "depth": self.depth, "channels": self.channels,
                "receptive_field": self.receptive_field, "object_accuracy": round(self.object_accuracy, 4),
                "part_accuracy": None if self.part_accuracy is None else round(self.part_accuracy, 4),
                "part_detectors": self.part_detectors, "object_detectors": self.object_detectors,
                "best_parts": {k: {"channel": c, "auc": round(a, 4)} for k, (c, a) in self.best_parts.items()},
                "best_objects": {k: {"channel": c, "auc": round(a, 4)} for k, (c, a) in self.best_objects.items()},
                "channel_roles": [{"part": p, "part_auc": round(pa, 4), "object": o, "object_auc": round(oa, 4)}
                             for (p, pa), (o, oa) in zip(self.channel_parts, self.channel_objects)]}


@dataclass
class Hierarchy:
    """Per-layer probes of one model, low to high."""

    model: str
    weights: str
    dataset: str
    train_samples: int
    test_samples: int
    seed: int
    detector_auc: float
    object_chance: float
    layers: list[LayerProbe]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "weights": self.weights, "dataset": self.dataset,
                "train_samples": self.train_samples, "test_samples": self.test_samples, "seed": self.seed,
                "detector_auc": self.detector_auc, "object_chance": round(self.object_chance, 4),
                "part_chance": 0.5, "layers": [layer.to_dict() for layer in self.layers]}

    def table(self) -> str:
        """The figures as a plain-text table."""
        lines = [f"{self.model} ({self.weights}) on {self.dataset}: {self.train_samples} train / "
                 f"{self.test_samples} held-out images; chance {self.object_chance:.1%} (objects), 50% (parts)",
                 f"{'layer':<16}{'RF px':>7}{'maps':>6}{'objects':>9}{'parts':>8}{'part det.':>11}{'object det.':>13}"]
        for row in self.layers:
            rf = f"{row.receptive_field:.0f}" if row.receptive_field else "all"
            parts = "-" if row.part_accuracy is None else f"{row.part_accuracy:.1%}"
            lines.append(f"{row.layer:<16}{rf:>7}{row.channels:>6}{row.object_accuracy:>9.1%}{parts:>8}"
                         f"{_count(row.part_detectors):>11}{_count(row.object_detectors):>13}")
        return "\n".join(lines)


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def part_sharers() -> dict[str, list[int]]:
    """For each composite object, the classes that share one of its parts but are not it (by drawing a
    few hundred samples of each class and reading their part lists)."""
    from featuremaps.data.objects import draw_object

    parts_of: dict[int, set[int]] = {}
    for index in range(len(OBJECT_CLASSES) * 20):
        drawn = draw_object(0, index, 64)
        parts_of.setdefault(drawn.label, set()).update(np.flatnonzero(drawn.part_presence).tolist())
    composite = {label for label, parts in parts_of.items() if OBJECT_CLASSES[label] not in PART_KINDS}
    return {OBJECT_CLASSES[label]: sorted(other for other, parts in parts_of.items()
                                          if other != label and parts & parts_of[label])
            for label in sorted(composite)}


StepProgress = Callable[[str, int, int], None]
"""``on_progress(step, done, total)``: the step under way (``"maps of the probes' images"``), and how far."""


def _tell(on_progress: StepProgress | None, step: str, done: int, total: int) -> None:
    if on_progress is not None:
        on_progress(step, done, total)


def _pooled(extractor: FeatureExtractor, data: ArrayDataset, batch_size: int,
            on_progress: StepProgress | None = None, step: str = "maps") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per layer: ``(mean, max)`` over positions, each ``(N, C)``."""
    info = extractor.info
    device = model_device(extractor.model)
    means: dict[str, list[np.ndarray]] = {name: [] for name in extractor.names}
    peaks: dict[str, list[np.ndarray]] = {name: [] for name in extractor.names}
    for index in torch.arange(len(data)).split(batch_size):
        maps = extractor(info.input.normalise(data.images[index].to(device)))
        for name, tensor in maps.items():
            flat = tensor.float().flatten(2) if tensor.ndim >= 3 else tensor.float()[:, :, None]
            means[name].append(flat.mean(2).cpu().numpy())
            peaks[name].append(flat.amax(2).cpu().numpy())
        _tell(on_progress, step, int(index[-1]) + 1, len(data))
    return {name: (np.concatenate(means[name]), np.concatenate(peaks[name])) for name in extractor.names}


def _probe(train: np.ndarray, train_y: np.ndarray, test: np.ndarray, test_y: np.ndarray, *,
           balanced: bool = False) -> float:
    scaler = StandardScaler().fit(train)
    classifier = LogisticRegression(max_iter=3000, C=0.5, class_weight="balanced" if balanced else None)
    classifier.fit(scaler.transform(train), train_y)
    predicted = classifier.predict(scaler.transform(test))
    if not balanced:
        return float((predicted == test_y).mean())
    recalls = [float((predicted[test_y == value] == value).mean()) for value in np.unique(test_y)]
    return float(np.mean(recalls))


def _auc(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """ROC AUC of every column of ``scores`` ``(N, C)`` for the boolean ``positive`` ``(N,)`` (rank formula)."""
    return _auc_ranked(rankdata(scores, axis=0), positive)


def _auc_ranked(ranks: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """:func:`_auc` from the columns' ranks (computed once for many ``positive`` masks)."""
    count_pos, count_neg = int(positive.sum()), int((~positive).sum())
    if count_pos == 0 or count_neg == 0:
        return np.full(ranks.shape[1], np.nan)
    return (ranks[positive].sum(0, dtype=np.float64) - count_pos * (count_pos + 1) / 2) / (count_pos * count_neg)


@dataclass
class _Detectors:
    part_detectors: int
    object_detectors: int
    best_parts: dict[str, tuple[int, float]]
    best_objects: dict[str, tuple[int, float]]
    channel_parts: list[tuple[str, float]]
    channel_objects: list[tuple[str, float]]


def _detectors(peaks: np.ndarray, parts: np.ndarray, labels: np.ndarray, sharers: dict[str, list[int]],
               threshold: float) -> _Detectors:
    """Per channel of ``peaks`` ``(N, C)`` (max over positions): AUC for each part kind (``parts`` ``(N, K)``
    bool) and for each composite object against the classes sharing its parts."""
    part_aucs = np.stack([_auc(peaks, parts[:, k]) for k in range(parts.shape[1])])
    object_aucs = np.full((len(sharers), peaks.shape[1]), np.nan)
    for row, (name, others) in enumerate(sharers.items()):
        target = OBJECT_CLASSES.index(name)
        subset = np.isin(labels, np.array([target, *others]))
        object_aucs[row] = _auc(peaks[subset], labels[subset] == target)

    def best(aucs: np.ndarray, names: Sequence[str]) -> dict[str, tuple[int, float]]:
        return {name: (int(np.nanargmax(row)), float(np.nanmax(row)))
                for name, row in zip(names, aucs) if np.isfinite(row).any()}

    return _Detectors(
        part_detectors=int((np.nan_to_num(part_aucs) >= threshold).any(0).sum()),
        object_detectors=int((np.nan_to_num(object_aucs) >= threshold).any(0).sum()),
        best_parts=best(part_aucs, PART_KINDS), best_objects=best(object_aucs, list(sharers)),
        channel_parts=_best_per_channel(part_aucs, list(PART_KINDS)),
        channel_objects=_best_per_channel(object_aucs, list(sharers)))


def channel_roles(model: nn.Module, layers: LayerSelection, *, samples: int = 600, seed: int = 20261130,
                  threshold: float = 0.8, on_progress: StepProgress | None = None) -> dict[tuple[str, int], str]:
    """What each channel of ``layers`` detects best on generated objects images: ``(layer, channel) ->
    "triangle (AUC 0.93)"`` for channels whose best ROC AUC reaches ``threshold`` (parts against
    images without that part; composite objects against the classes that share their parts)."""
    info = model_info(model)
    _tell(on_progress, f"drawing {samples} objects images", 0, 1)
    data = objects_dataset(samples, seed, max(info.input.size), model_input=info.input)
    _tell(on_progress, f"drawing {samples} objects images", 1, 1)
    extractor = FeatureExtractor(model, layers)
    pooled = _pooled(extractor, data, 64, on_progress, "their maps")
    found_roles: dict[tuple[str, int], str] = {}
    sharers = part_sharers()
    for number, name in enumerate(extractor.names):
        _tell(on_progress, "what each channel detects, per layer", number, len(extractor.names))
        found = _detectors(pooled[name][1], data.extras["parts"].numpy() > 0, data.labels.numpy(), sharers, threshold)
        probe = LayerProbe(name, 0, pooled[name][1].shape[1], None, 0.0, None, None, None,
                           channel_parts=found.channel_parts, channel_objects=found.channel_objects)
        for channel in range(probe.channels):
            role = probe.role(channel, threshold)
            if role:
                found_roles[(name, channel)] = role
    return found_roles


def _best_per_channel(aucs: np.ndarray, names: list[str]) -> list[tuple[str, float]]:
    """For each channel (column of ``aucs`` ``(K, C)``), the name with the highest AUC and that AUC."""
    filled = np.nan_to_num(aucs, nan=0.0)
    best = filled.argmax(0)
    return [(names[int(k)], float(filled[k, c])) for c, k in enumerate(best)]


def hierarchy(
    model: nn.Module,
    *,
    dataset: str = "objects",
    layers: LayerSelection | None = None,
    train_samples: int = 1800,
    test_samples: int = 900,
    seed: int = 20261128,
    detector_auc: float = 0.9,
    batch_size: int = 64,
    on_progress: StepProgress | None = None,
) -> Hierarchy:
    """Probe ``layers`` (default: the model's stages) of ``model`` on generated images.

    Args:
        dataset: ``"objects"`` (classes and parts) or ``"shapes"`` (classes only).
        train_samples, test_samples: probe training and held-out images, from two seeds
            (``seed`` and ``seed + 1``), drawn at the model's input size.
        detector_auc: a channel counts as a detector from this ROC AUC on.
        on_progress: called as each step advances (drawing, maps, probes).

    Raises:
        SettingsError: an unknown dataset, or numbers out of range.
    """
    if dataset not in DATASETS:
        raise SettingsError(f"dataset must be one of {', '.join(DATASETS)}; got {dataset!r}")
    for label, number, low in (("train_samples", train_samples, 50), ("test_samples", test_samples, 50)):
        if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= 100_000:
            raise SettingsError(f"{label} must be an integer from {low} to 100000; got {number!r}")
    if not 0.5 < detector_auc < 1.0:
        raise SettingsError(f"detector_auc must be between 0.5 and 1; got {detector_auc}")
    info = model_info(model)
    catalogue = catalogue_for(model, info.input_size)
    chosen = default_layers(catalogue) if layers is None else select_layers(catalogue, layers, model_name=info.name)
    # Low to high: the catalogue lists a block before its sub-layers, but its output comes after them.
    chosen = sorted(chosen, key=lambda e: (e.global_field, e.receptive_field[0] if e.receptive_field else 0))
    make = objects_dataset if dataset == "objects" else shapes_dataset
    size = max(info.input.size)
    _tell(on_progress, f"drawing {train_samples + test_samples} {dataset} images", 0, 2)
    train = make(train_samples, seed, size, model_input=info.input)
    _tell(on_progress, f"drawing {train_samples + test_samples} {dataset} images", 1, 2)
    test = make(test_samples, seed + 1, size, model_input=info.input)
    _tell(on_progress, f"drawing {train_samples + test_samples} {dataset} images", 2, 2)
    extractor = FeatureExtractor(model, [entry.name for entry in chosen])
    pooled_train = _pooled(extractor, train, batch_size, on_progress, f"{info.name}: maps of the probes' training images")
    pooled_test = _pooled(extractor, test, batch_size, on_progress, f"{info.name}: maps of the held-out images")
    has_parts = "parts" in test.extras
    sharers = part_sharers() if has_parts else {}
    probes = []
    for depth, entry in enumerate(chosen):
        _tell(on_progress, f"{info.name}: probing layers", depth, len(chosen))
        mean_train, max_train = pooled_train[entry.name]
        mean_test, max_test = pooled_test[entry.name]
        features_train, features_test = np.hstack([mean_train, max_train]), np.hstack([mean_test, max_test])
        object_accuracy = _probe(features_train, train.labels.numpy(), features_test, test.labels.numpy())
        part_accuracy = part_detectors = object_detectors = None
        best_parts: dict[str, tuple[int, float]] = {}
        best_objects: dict[str, tuple[int, float]] = {}
        channel_parts: list[tuple[str, float]] = []
        channel_objects: list[tuple[str, float]] = []
        if has_parts:
            parts_train, parts_test = train.extras["parts"].numpy() > 0, test.extras["parts"].numpy() > 0
            part_accuracy = float(np.mean([
                _probe(features_train, parts_train[:, k], features_test, parts_test[:, k], balanced=True)
                for k in range(len(PART_KINDS))]))
            found = _detectors(max_test, parts_test, test.labels.numpy(), sharers, detector_auc)
            part_detectors, object_detectors = found.part_detectors, found.object_detectors
            best_parts, best_objects = found.best_parts, found.best_objects
            channel_parts, channel_objects = found.channel_parts, found.channel_objects
        field_size = None if entry.global_field or entry.receptive_field is None else float(entry.receptive_field[0])
        probes.append(LayerProbe(entry.name, depth, int(mean_train.shape[1]), field_size, object_accuracy,
                                 part_accuracy, part_detectors, object_detectors, best_parts, best_objects,
                                 channel_parts, channel_objects))
    _tell(on_progress, f"{info.name}: probing layers", len(chosen), len(chosen))
    return Hierarchy(model=info.name, weights=info.weights_label, dataset=dataset, train_samples=train_samples,
                     test_samples=test_samples, seed=seed, detector_auc=detector_auc,
                     object_chance=1.0 / len(train.class_names), layers=probes)


@dataclass(frozen=True)
class LayerLocalization:
    """Where one layer's channels fire, position by position, against the part and object masks."""

    layer: str
    receptive_field: float | None
    channels: int
    part_localizers: int
    object_localizers: int
    best_parts: dict[str, tuple[int, float]]
    best_objects: dict[str, tuple[int, float]]

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "receptive_field": self.receptive_field, "channels": self.channels,
                "part_localizers": self.part_localizers, "object_localizers": self.object_localizers,
                "best_parts": {k: {"channel": c, "auc": round(a, 4)} for k, (c, a) in self.best_parts.items()},
                "best_objects": {k: {"channel": c, "auc": round(a, 4)} for k, (c, a) in self.best_objects.items()}}


@dataclass
class Localization:
    """Per layer, low to high: how many channels mark a part's pixels, and how many a whole object's."""

    model: str
    weights: str
    samples: int
    seed: int
    threshold: float
    layers: list[LayerLocalization]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "weights": self.weights, "samples": self.samples, "seed": self.seed,
                "threshold": self.threshold, "layers": [layer.to_dict() for layer in self.layers]}

    def table(self) -> str:
        lines = [f"{self.model} ({self.weights}): channels whose map marks a part's / a whole object's pixels "
                 f"(position-by-position ROC AUC >= {self.threshold}) on {self.samples} objects images",
                 f"{'layer':<16}{'RF px':>7}{'maps':>6}{'part maps':>11}{'object maps':>13}  best part, best object"]
        for row in self.layers:
            rf = f"{row.receptive_field:.0f}" if row.receptive_field else "all"
            part = max(row.best_parts.items(), key=lambda kv: kv[1][1], default=("-", (0, 0.0)))
            whole = max(row.best_objects.items(), key=lambda kv: kv[1][1], default=("-", (0, 0.0)))
            lines.append(f"{row.layer:<16}{rf:>7}{row.channels:>6}{row.part_localizers:>11}{row.object_localizers:>13}"
                         f"  {part[0]} {part[1][1]:.2f} (#{part[1][0]}), {whole[0]} {whole[1][1]:.2f} (#{whole[1][0]})")
        return "\n".join(lines)


def localization(model: nn.Module, *, layers: LayerSelection | None = None, samples: int = 240,
                 seed: int = 20261206, threshold: float = 0.9, grid: int = 16, batch_size: int = 32,
                 on_progress: StepProgress | None = None) -> Localization:
    """Each channel's map against the part masks and object masks of generated objects images, position by
    position: a channel *marks* a part kind (or a composite object) when its value at a position separates
    the positions on that part (object) from all others with ROC AUC >= ``threshold``.

    Maps are read on a ``grid`` x ``grid`` lattice of input pixels, each unit placed at its receptive
    field's centre (:func:`~featuremaps.features.sample_maps`), where the masks are read too; the masks
    go through the model's own resize and crop. Layers without a local field are left out.
    """
    from featuremaps.data.objects import draw_object
    from featuremaps.features import sample_maps

    if isinstance(samples, bool) or not isinstance(samples, int) or not 20 <= samples <= 5000:
        raise SettingsError(f"samples must be an integer from 20 to 5000; got {samples!r}")
    if not 4 <= grid <= 64:
        raise SettingsError(f"grid must be from 4 to 64; got {grid}")
    info = model_info(model)
    catalogue = catalogue_for(model, info.input_size)
    chosen = default_layers(catalogue) if layers is None else select_layers(catalogue, layers, model_name=info.name)
    chosen = [e for e in chosen if e.jump is not None and e.start is not None and not e.global_field]
    chosen = sorted(chosen, key=lambda e: e.receptive_field[0] if e.receptive_field else 0)
    size = max(info.input.size)
    height, width = info.input.size
    ys = (torch.arange(grid, dtype=torch.float32) + 0.5) * height / grid - 0.5
    xs = (torch.arange(grid, dtype=torch.float32) + 0.5) * width / grid - 0.5
    rows, cols = ys.round().long().clamp(0, height - 1), xs.round().long().clamp(0, width - 1)
    extractor = FeatureExtractor(model, [e.name for e in chosen])
    device = model_device(model)
    by_label = replace(info.input, channels=3, interpolation="nearest", mean=None, std=None)
    values: dict[str, list[np.ndarray]] = {e.name: [] for e in chosen}
    part_at, object_at = [], []
    for start in range(0, samples, batch_size):
        drawn = [draw_object(seed, i, size) for i in range(start, min(samples, start + batch_size))]
        images = torch.stack([info.input.prepare(d.image) for d in drawn])
        labels = torch.from_numpy(np.stack([np.stack([d.part_mask, d.object_mask, d.object_mask]) for d in drawn]))
        masks = by_label.prepare_tensor(labels)  # (B, 3, H, W): the model's resize and crop, nearest
        part_at.append(masks[:, 0][:, rows][:, :, cols].numpy().reshape(len(drawn), -1))
        object_at.append(masks[:, 1][:, rows][:, :, cols].numpy().reshape(len(drawn), -1))
        with torch.inference_mode():
            maps = extractor(info.input.normalise(images.to(device)))
        for entry in chosen:
            if entry.start is None or entry.jump is None or entry.receptive_field is None:
                continue  # not chosen: layers without a local field were left out above
            sampled = sample_maps(maps[entry.name].float(), entry.start, entry.jump, entry.receptive_field, ys, xs)
            values[entry.name].append(sampled.flatten(2).permute(0, 2, 1).reshape(-1, sampled.shape[1]).cpu().numpy())
        _tell(on_progress, f"{info.name}: maps at part and object pixels", min(samples, start + batch_size), samples)
    parts = np.concatenate(part_at).reshape(-1)
    objects = np.concatenate(object_at).reshape(-1)
    sharers = part_sharers()
    found = []
    for number, entry in enumerate(chosen):
        _tell(on_progress, f"{info.name}: ranking positions per layer", number, len(chosen))
        ranks = rankdata(np.concatenate(values[entry.name]), axis=0).astype(np.float32)  # (positions, C), once
        part_aucs = np.stack([_auc_ranked(ranks, parts == k + 1) for k in range(len(PART_KINDS))])
        object_aucs = np.stack([_auc_ranked(ranks, objects == OBJECT_CLASSES.index(name) + 1) for name in sharers])
        best_part = np.nan_to_num(part_aucs).max(0)
        best_object = np.nan_to_num(object_aucs).max(0)
        field_size = float(entry.receptive_field[0]) if entry.receptive_field else None
        found.append(LayerLocalization(
            entry.name, field_size, int(ranks.shape[1]),
            part_localizers=int(((best_part >= threshold) & (best_part >= best_object)).sum()),
            object_localizers=int(((best_object >= threshold) & (best_object > best_part)).sum()),
            best_parts={name: (int(np.nanargmax(row)), float(np.nanmax(row)))
                        for name, row in zip(PART_KINDS, part_aucs) if np.isfinite(row).any()},
            best_objects={name: (int(np.nanargmax(row)), float(np.nanmax(row)))
                          for name, row in zip(sharers, object_aucs) if np.isfinite(row).any()}))
    return Localization(info.name, info.weights_label, samples, seed, threshold, found)
