"""Segmentation data: image + mask pairs, from the shapes scenes or a folder.

Folder layout::

    DIR/images/<name>.png|jpg|...      the images
    DIR/masks/<name>.png               one class index per pixel (8-bit gray "L" or palette "P"
                                       PNG: the palette index is the class), same size
    DIR/classes.txt                    optional: one class name per line, index 0 first

Index 0 is the background. Images without a mask, masks without an image, size mismatches
and unreadable files are errors that name the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from featuremaps.data.datasets import IMAGE_SUFFIXES
from featuremaps.data.shapes import SHAPE_CLASSES, shapes_scene
from featuremaps.errors import DatasetError, ImageError
from featuremaps.features.inputs import ModelInput
from featuremaps.images import image_size, open_pil

__all__ = ["MaskDataset", "mask_folder", "scenes_dataset"]


@dataclass
class MaskDataset:
    """Images ``(N, 3, H, W)`` uint8, masks ``(N, H, W)`` int64, class names (index 0: background)."""

    images: torch.Tensor
    masks: torch.Tensor
    class_names: list[str]
    description: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    def halves(self, seed: int) -> tuple[MaskDataset, MaskDataset]:
        """Two disjoint random halves (the first gets the smaller one when the count is odd)."""
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        parts = order[: len(self) // 2], order[len(self) // 2:]
        return (MaskDataset(self.images[parts[0]], self.masks[parts[0]], self.class_names, dict(self.description)),
                MaskDataset(self.images[parts[1]], self.masks[parts[1]], self.class_names, dict(self.description)))


def scenes_dataset(count: int, seed: int, size: int = 128) -> MaskDataset:
    """``count`` scenes of 1 to 4 shapes from ``seed``; masks hold class index + 1, 0 = background."""
    if count < 1:
        raise DatasetError(f"scenes must be >= 1; got {count}")
    scenes = [shapes_scene(seed, i, size) for i in range(count)]
    images = torch.from_numpy(np.stack([s.image for s in scenes])).permute(0, 3, 1, 2).contiguous()
    masks = torch.from_numpy(np.stack([s.mask for s in scenes]).astype(np.int64))
    return MaskDataset(images, masks, ["background", *SHAPE_CLASSES],
                       {"dataset": "shapes-scenes", "seed": seed, "scenes": count, "size": size})


def _read_mask(path: Path) -> np.ndarray:
    try:
        mask = open_pil(str(path))
    except ImageError as error:
        raise DatasetError(f"{path}: unreadable mask ({error.reason})") from None
    if mask.mode not in ("L", "P", "1", "I;16", "I"):
        raise DatasetError(f"{path}: a mask must be a one-channel index PNG (mode L or P); got mode {mask.mode}")
    return np.asarray(mask).astype(np.int64)


def mask_folder(root: str | Path, size: int | None = None) -> MaskDataset:
    """Read ``root/images`` and ``root/masks`` (see the module docstring); resize to ``size`` if given."""
    root = Path(root)
    images_dir, masks_dir = root / "images", root / "masks"
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise DatasetError(f"{root}: needs an images/ and a masks/ folder; {folder.name}/ is missing")
    images = {p.stem: p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
    masks = {p.stem: p for p in masks_dir.iterdir() if p.suffix.lower() == ".png"}
    if not images:
        raise DatasetError(f"{images_dir}: no images")
    missing = sorted(set(images) - set(masks))
    extra = sorted(set(masks) - set(images))
    if missing:
        raise DatasetError(f"{masks_dir}: no mask for {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
    if extra:
        raise DatasetError(f"{images_dir}: no image for masks {', '.join(extra[:5])}")
    pictures, labels = [], []
    for stem in sorted(images):
        try:
            width, height = image_size(images[stem])
            frame = ModelInput(3, (size, size) if size is not None else (height, width), frame="stretch")
            image = frame.prepare(images[stem])  # (3, H, W) uint8, stretched to size x size
        except ImageError as error:
            raise DatasetError(f"{images[stem]}: unreadable image ({error.reason})") from None
        mask = _read_mask(masks[stem])
        if mask.shape != (height, width):
            raise DatasetError(f"{masks[stem]}: mask is {mask.shape[1]}x{mask.shape[0]}, its image is "
                               f"{width}x{height}")
        if size is not None:
            mask = np.asarray(Image.fromarray(mask.astype(np.uint8)).resize((size, size), Image.Resampling.NEAREST))
        pictures.append(image)
        labels.append(torch.from_numpy(mask.astype(np.int64)))
    classes_file = root / "classes.txt"
    top = int(max(int(m.max()) for m in labels))
    if classes_file.is_file():
        names = [line.strip() for line in classes_file.read_text().splitlines() if line.strip()]
        if top >= len(names):
            raise DatasetError(f"{classes_file}: names {len(names)} classes, but masks use index {top}")
    else:
        names = ["background", *(f"class {i}" for i in range(1, top + 1))]
    if len({tuple(p.shape) for p in pictures}) > 1:
        raise DatasetError(f"{root}: images differ in size; pass a size to resize them all")
    return MaskDataset(torch.stack(pictures), torch.stack(labels), names, {"dataset": str(root), "images": len(labels)})
