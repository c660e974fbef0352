"""Datasets for recognition, held in memory as uint8 model input: shapes, digits, image folders.

``load_dataset(spec, model_input, ...)`` takes ``"shapes"``, ``"digits"`` or a directory with
one sub-folder per class (ImageFolder layout), and returns a train and a validation
:class:`ArrayDataset`. Every image is already prepared by the model's
:class:`~featuremaps.features.inputs.ModelInput` (the same call ``predict`` makes on a file), so
training sees exactly the tensors prediction will; ``model_input.normalise`` finishes them.
Folders are split with a seed, per class (stratified); unreadable images are skipped and
counted, never fatal.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from featuremaps.data.objects import OBJECT_CLASSES, PART_KINDS, draw_object
from featuremaps.data.shapes import SHAPE_CLASSES, draw_shape
from featuremaps.errors import DatasetError, ImageError
from featuremaps.features.info import label_problem
from featuremaps.features.inputs import ModelInput
from featuremaps.files import IMAGE_SUFFIXES

__all__ = ["IMAGE_SUFFIXES", "ArrayDataset", "DatasetError", "load_dataset", "objects_dataset", "photo_crops",
           "shapes_dataset"]

logger = logging.getLogger(__name__)



@dataclass
class ArrayDataset:
    """Images ``(N, C, H, W)`` uint8 with labels ``(N,)`` int64 and class names.

    ``skipped`` lists ``(path, reason)`` for files that could not be read; ``extras`` holds
    more per-image data of a generated set (the objects' ``parts``, multi-hot ``(N, 6)``).
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    description: dict[str, Any]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: np.ndarray | torch.Tensor, split: str) -> ArrayDataset:
        """The images at ``indices``, described as ``split``."""
        index = torch.as_tensor(indices, dtype=torch.int64)
        return ArrayDataset(self.images[index], self.labels[index], self.class_names,
                            {**self.description, "split": split, "samples": int(len(index))}, self.skipped,
                            {key: value[index] if isinstance(value, torch.Tensor) else value
                             for key, value in self.extras.items()})

    def fingerprint(self) -> str:
        """A short hash of the pixels and labels (cache keys, checkpoint records)."""
        digest = hashlib.sha256(self.images.numpy().tobytes())
        digest.update(self.labels.numpy().tobytes())
        return digest.hexdigest()[:16]


def shapes_dataset(samples: int, seed: int, size: int = 64, *, start: int = 0,
                   model_input: ModelInput | None = None) -> ArrayDataset:
    """``samples`` shapes images (balanced over the classes) from ``seed``, drawn at ``size`` pixels
    and, with ``model_input``, prepared for the model."""
    if samples < 1:
        raise DatasetError(f"samples must be >= 1; got {samples}")
    drawn = [draw_shape(seed, start + i, size) for i in range(samples)]
    if model_input is not None:
        images = torch.stack([model_input.prepare(d.image) for d in drawn])  # (N, C, H, W) uint8
    else:
        images = torch.from_numpy(np.stack([d.image for d in drawn])).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([d.labels[0] for d in drawn], dtype=torch.int64)
    return ArrayDataset(images, labels, list(SHAPE_CLASSES),
                        {"dataset": "shapes", "seed": seed, "samples": samples, "size": size, "start": start})


def objects_dataset(samples: int, seed: int, size: int = 128, *, start: int = 0,
                    model_input: ModelInput | None = None) -> ArrayDataset:
    """``samples`` composite-object images (balanced over the 9 classes) from ``seed``; with
    ``model_input``, prepared for the model. ``parts`` (multi-hot, :data:`PART_KINDS`) rides along."""
    if samples < 1:
        raise DatasetError(f"samples must be >= 1; got {samples}")
    drawn = [draw_object(seed, start + i, size) for i in range(samples)]
    if model_input is not None:
        images = torch.stack([model_input.prepare(d.image) for d in drawn])  # (N, C, H, W) uint8
    else:
        images = torch.from_numpy(np.stack([d.image for d in drawn])).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([d.label for d in drawn], dtype=torch.int64)
    parts = torch.from_numpy(np.stack([d.part_presence for d in drawn]))
    return ArrayDataset(images, labels, list(OBJECT_CLASSES),
                        {"dataset": "objects", "seed": seed, "samples": samples, "size": size, "start": start},
                        extras={"parts": parts, "part_names": list(PART_KINDS)})


def photo_crops(samples: int, seed: int, model_input: ModelInput) -> ArrayDataset:
    """``samples`` random square crops (a quarter to all of the shorter side) of the bundled photos,
    prepared for the model: images far from the generated shapes and objects (labels are -1)."""
    from featuremaps.images import load_image
    from featuremaps.images import samples as photo_samples

    if samples < 1:
        raise DatasetError(f"samples must be >= 1; got {samples}")
    rng = np.random.default_rng(seed)
    photos = [load_image(f"sample:{sample.name}", mode="rgb", max_side=512) for sample in photo_samples()]
    crops = []
    for _ in range(samples):
        photo = photos[int(rng.integers(len(photos)))]
        _, height, width = photo.shape
        side = int(rng.uniform(0.25, 1.0) * min(height, width))
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
        crop = (photo[:, top:top + side, left:left + side].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        crops.append(model_input.prepare(crop))
    return ArrayDataset(torch.stack(crops), torch.full((samples,), -1, dtype=torch.int64), [],
                        {"dataset": "photo crops", "seed": seed, "samples": samples})


def _split_indices(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split: each class contributes ``val_fraction`` of its items (at least one) to validation."""
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        count = max(1, int(round(len(members) * val_fraction))) if len(members) > 1 else 0
        val.extend(members[:count])
        train.extend(members[count:])
    return np.sort(np.asarray(train, dtype=np.int64)), np.sort(np.asarray(val, dtype=np.int64))


def digits_dataset(size: int = 32, model_input: ModelInput | None = None) -> ArrayDataset:
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), enlarged to ``size`` and,
    with ``model_input``, prepared for the model."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    if model_input is not None:
        images = torch.stack([model_input.prepare(image[0].numpy()) for image in images])
    labels = torch.from_numpy(digits.target.astype(np.int64))
    return ArrayDataset(images, labels, [str(d) for d in range(10)], {"dataset": "digits", "size": size})


def folder_dataset(root: str | Path, model_input: ModelInput) -> ArrayDataset:
    """Every readable image of ``root/<class>/...``, prepared for the model (``model_input.prepare``).

    Raises:
        DatasetError: missing folder, no class folders, fewer than 2 classes with images.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"{root}: dataset folder not found")
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder; a dataset is a folder with one sub-folder per class")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"{root}: no class folders; put each class's images in its own sub-folder "
                           f"({root}/cat/1.jpg, {root}/dog/2.jpg, ...)")
    for name in classes:
        problem = label_problem(name)
        if problem is not None:
            raise DatasetError(f"{root}: class folder {name!r} {problem}; rename the folder")
    images, labels, skipped, names = [], [], [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if p.is_file() and not p.name.startswith("."))
        kept = 0
        for path in files:
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append((str(path), "not an image file name"))
                continue
            try:
                images.append(model_input.prepare(path))
            except ImageError as error:
                skipped.append((str(path), error.reason))
                continue
            labels.append(label)
            kept += 1
        if kept:
            names.append(name)
    empty = [name for name in classes if name not in names]
    if len(names) < 2:
        found = f"{len(names)}: {', '.join(repr(n) for n in names)}" if names else "none with readable images"
        raise DatasetError(
            f"{root}: recognition needs at least 2 classes with images; found {found}"
            + (f" (empty or unreadable: {', '.join(empty)})" if empty else "")
        )
    if empty:
        raise DatasetError(f"{root}: class folders without readable images: {', '.join(empty)}")
    if skipped:
        logger.warning("%s: skipped %d unreadable files", root, len(skipped))
    return ArrayDataset(torch.stack(images), torch.tensor(labels, dtype=torch.int64), classes,
                        {"dataset": str(root), "size": list(model_input.size)}, skipped)


def load_dataset(
    spec: str | Path, model_input: ModelInput, *, seed: int = 0, samples: int = 4000, val_fraction: float = 0.2,
    draw_size: int = 64,
) -> tuple[ArrayDataset, ArrayDataset]:
    """Train and validation sets for ``spec`` (``"shapes"``, ``"objects"``, ``"digits"`` or a folder),
    prepared for the model.

    - shapes and objects: ``samples`` training images drawn at ``draw_size`` from ``seed`` and
      ``samples * val_fraction`` validation images from another seed (``seed + 1_000_003``):
      never the same images;
    - digits and folders: split per class with ``seed``.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be between 0 and 1; got {val_fraction}")
    if str(spec) in ("shapes", "objects"):
        make = shapes_dataset if str(spec) == "shapes" else objects_dataset
        val_count = max(len(OBJECT_CLASSES), int(round(samples * val_fraction)))
        return (make(samples, seed, draw_size, model_input=model_input),
                make(val_count, seed + 1_000_003, draw_size, model_input=model_input))
    if str(spec) == "digits":
        full = digits_dataset(max(model_input.size), model_input)
    else:
        full = folder_dataset(spec, model_input)
    counts = np.bincount(full.labels.numpy(), minlength=len(full.class_names))
    lonely = [name for name, count in zip(full.class_names, counts, strict=True) if count < 2]
    if lonely:
        raise DatasetError(f"{spec}: every class needs at least 2 readable images (one to train on, one to "
                           f"validate); {', '.join(repr(n) for n in lonely[:5])} "
                           f"{'has' if len(lonely) == 1 else 'have'} only 1")
    train_index, val_index = _split_indices(full.labels.numpy(), val_fraction, seed)
    return full.subset(train_index, "train"), full.subset(val_index, "validation")
