"""Datasets for recognition, held in memory as uint8 images: shapes, digits, image folders.

``load_dataset(spec, ...)`` takes ``"shapes"``, ``"digits"`` or a directory with one
sub-folder per class (ImageFolder layout), and returns a train and a validation
:class:`ArrayDataset`. Folders are split with a seed, per class (stratified); unreadable
images are skipped and counted, never fatal.
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

from featuremaps.data.shapes import SHAPE_CLASSES, draw_shape
from featuremaps.errors import ImageError, SettingsError
from featuremaps.images import load_image

__all__ = ["IMAGE_SUFFIXES", "ArrayDataset", "DatasetError", "load_dataset", "to_model_input"]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class DatasetError(SettingsError):
    """A dataset that cannot be used: missing, empty, a single class."""


@dataclass
class ArrayDataset:
    """Images ``(N, C, H, W)`` uint8 with labels ``(N,)`` int64 and class names.

    ``skipped`` lists ``(path, reason)`` for files that could not be read.
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    description: dict[str, Any]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def fingerprint(self) -> str:
        """A short hash of the pixels and labels (cache keys, checkpoint records)."""
        digest = hashlib.sha256(self.images.numpy().tobytes())
        digest.update(self.labels.numpy().tobytes())
        return digest.hexdigest()[:16]


def shapes_dataset(samples: int, seed: int, size: int = 64, *, start: int = 0) -> ArrayDataset:
    """``samples`` shapes images (balanced over the classes) from ``seed``."""
    if samples < 1:
        raise DatasetError(f"samples must be >= 1; got {samples}")
    drawn = [draw_shape(seed, start + i, size) for i in range(samples)]
    images = torch.from_numpy(np.stack([d.image for d in drawn])).permute(0, 3, 1, 2).contiguous()  # (N, 3, H, W)
    labels = torch.tensor([d.labels[0] for d in drawn], dtype=torch.int64)
    return ArrayDataset(images, labels, list(SHAPE_CLASSES),
                        {"dataset": "shapes", "seed": seed, "samples": samples, "size": size, "start": start})


def _split_indices(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split: each class contributes ``val_fraction`` of its items (at least one) to validation."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        count = max(1, int(round(len(members) * val_fraction))) if len(members) > 1 else 0
        val.extend(members[:count])
        train.extend(members[count:])
    return np.sort(np.asarray(train, dtype=np.int64)), np.sort(np.asarray(val, dtype=np.int64))


def _subset(data: ArrayDataset, indices: np.ndarray, split: str) -> ArrayDataset:
    index = torch.from_numpy(indices)
    return ArrayDataset(data.images[index], data.labels[index], data.class_names,
                        {**data.description, "split": split, "samples": int(len(indices))}, data.skipped)


def digits_dataset(size: int = 32) -> ArrayDataset:
    """scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes), resized to ``size``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
    images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    return ArrayDataset(images, labels, [str(d) for d in range(10)], {"dataset": "digits", "size": size})


def _fit(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize the shorter side and centre-crop to ``size`` (H, W): ``(C, h, w)`` -> ``(C, H, W)``."""
    _, height, width = image.shape
    scale = max(size[0] / height, size[1] / width)
    new = (max(size[0], round(height * scale)), max(size[1], round(width * scale)))
    resized = F.interpolate(image[None], size=new, mode="bilinear", align_corners=False, antialias=True)[0]
    top, left = (new[0] - size[0]) // 2, (new[1] - size[1]) // 2
    return resized[:, top : top + size[0], left : left + size[1]]


def folder_dataset(root: str | Path, size: tuple[int, int], channels: int = 3) -> ArrayDataset:
    """Every readable image of ``root/<class>/...``, fitted to ``size`` (resize + centre crop).

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
    images, labels, skipped, names = [], [], [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).rglob("*") if p.is_file() and not p.name.startswith("."))
        kept = 0
        for path in files:
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append((str(path), "not an image file name"))
                continue
            try:
                tensor = load_image(path, mode="rgb" if channels == 3 else "gray")
            except ImageError as error:
                skipped.append((str(path), error.reason))
                continue
            images.append((_fit(tensor, size) * 255).round().clamp(0, 255).to(torch.uint8))
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
                        {"dataset": str(root), "size": list(size)}, skipped)


def load_dataset(
    spec: str | Path, *, seed: int = 0, samples: int = 4000, size: tuple[int, int] = (64, 64), channels: int = 3,
    val_fraction: float = 0.2,
) -> tuple[ArrayDataset, ArrayDataset]:
    """Train and validation sets for ``spec``: ``"shapes"``, ``"digits"`` or a folder.

    - shapes: ``samples`` training images from ``seed`` and ``samples * val_fraction``
      validation images from another seed (``seed + 1_000_003``): never the same images.
    - digits and folders: split per class with ``seed``.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be between 0 and 1; got {val_fraction}")
    if str(spec) == "shapes":
        val_count = max(4, int(round(samples * val_fraction)))
        return shapes_dataset(samples, seed, size[0]), shapes_dataset(val_count, seed + 1_000_003, size[0])
    full = digits_dataset(size[0]) if str(spec) == "digits" else folder_dataset(spec, size, channels)
    train_index, val_index = _split_indices(full.labels.numpy(), val_fraction, seed)
    return _subset(full, train_index, "train"), _subset(full, val_index, "validation")


def to_model_input(images: torch.Tensor, input_size: tuple[int, int, int], mean=None, std=None) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` -> float model input ``(N, C', H', W')``: scale, channels, size, normalise."""
    x = images.float() / 255.0
    channels, height, width = input_size
    if x.shape[1] == 1 and channels == 3:
        x = x.expand(-1, 3, -1, -1)
    elif x.shape[1] == 3 and channels == 1:
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(dim=1, keepdim=True)
    if tuple(x.shape[2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    if mean is not None and std is not None:
        x = (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    return x
