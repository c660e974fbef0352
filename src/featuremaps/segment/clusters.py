"""Unsupervised segmentation: cluster per-pixel hypercolumns into K segments, then clean them.

1. The image is prepared by the model's input description, framed ``whole`` with its longer
   side ``size`` pixels (aspect kept), and fed to the model; the maps of ``layers`` become
   hypercolumns (aligned by receptive field).
2. Each feature is standardised over the pixels and each layer's block is scaled by
   ``1 / sqrt(its channels)``, so every layer (and the colour) weighs the same.
3. scikit-learn's k-means (``n_init=4``, seeded) groups the pixels into K segments.
4. Connected regions smaller than ``min_area`` of the image are merged into the segment
   they touch most (scipy's ``ndimage.label``), so segments are regions, not speckles.
5. The mask is resized back to the input's size (nearest neighbour).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from sklearn.cluster import KMeans
from torch import nn

from featuremaps.errors import SettingsError
from featuremaps.features import catalogue_for, select_layers
from featuremaps.features.info import model_device, model_info
from featuremaps.features.inputs import ModelInput
from featuremaps.images import ImageSource, load_image
from featuremaps.segment.hypercolumns import default_segmentation_layers, hypercolumns

__all__ = ["Segmentation", "cluster_segments", "merge_small_regions", "prepared_batch", "processing_input"]


@dataclass
class Segmentation:
    """A segmentation of one image.

    Attributes:
        mask: int ``(H, W)`` at the input's size: a segment or class index per pixel.
        names: a name per index (``segment 0`` ... for clusters, class names for a trained head).
        image: the input ``(C, H, W)`` in [0, 1].
        layers: the layers whose maps were used.
        method: ``clusters``, ``head`` or ``model``.
        model, weights: the model's name and what its weights are (``trained on ImageNet-1k``,
            ``untrained (random) weights``): pictures and JSON say both.
        familiar, note: for a trained head with familiarity statistics, whether the image is like its
            training scenes (None: not known) and, if not, the warning pictures and JSON carry.
    """

    mask: np.ndarray
    names: list[str]
    image: torch.Tensor
    layers: list[str]
    method: str
    model: str = ""
    weights: str = ""
    familiar: bool | None = None
    note: str = ""


def processing_input(model: nn.Module, longer: int) -> ModelInput:
    """The model's input description, framed ``whole`` with the longer side ``longer`` (aspect kept)."""
    return replace(model_info(model).input, frame="whole", resize=longer)


def prepared_batch(model: nn.Module, image: ImageSource, longer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(model input (1, C, H', W'), colour (1, C, H', W') in [0, 1])``, from one decode of ``image``.

    The longer side is ``longer`` pixels; the shorter one is at least 16 (small enough
    images are enlarged so every layer still has maps).
    """
    model_input = processing_input(model, longer)
    prepared = model_input.prepare(image)  # (C, H', W') uint8
    if min(prepared.shape[1:]) < 16:
        grow = math.ceil(longer * 16 / min(prepared.shape[1:]))
        model_input = processing_input(model, grow)
        prepared = model_input.prepare(image)
    device = model_device(model)
    return (model_input.normalise(prepared)[None].to(device),
            model_input.picture(prepared)[None].to(device))


def merge_small_regions(mask: np.ndarray, min_pixels: int, *, max_rounds: int = 20) -> np.ndarray:
    """Merge every connected region smaller than ``min_pixels`` into the label it borders most."""
    mask = mask.copy()
    for _ in range(max_rounds):
        changed = False
        for label in np.unique(mask):
            regions, count = ndimage.label(mask == label)
            if count == 0:
                continue
            sizes = np.bincount(regions.ravel())[1:]
            for region in np.flatnonzero(sizes < min_pixels) + 1:
                inside = regions == region
                border = ndimage.binary_dilation(inside) & ~inside
                neighbours = mask[border]
                if neighbours.size:
                    mask[inside] = np.bincount(neighbours).argmax()
                    changed = True
        if not changed:
            break
    return mask


def _standardise(features: np.ndarray, groups: Sequence[int]) -> np.ndarray:
    """Pixels ``(P, F)``: z-score each feature, then scale each block so blocks weigh the same."""
    features = (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-6)
    start = 0
    for width in groups:
        features[:, start : start + width] /= np.sqrt(width)
        start += width
    return features


def cluster_segments(
    model: nn.Module, image: ImageSource, *, k: int = 4, layers: Sequence[str] | None = None,
    colour: bool = True, position: bool = False, size: int | None = None, min_area: float = 0.005, seed: int = 0,
) -> Segmentation:
    """Segment ``image`` into ``k`` regions by clustering ``layers``' hypercolumns (see the module doc).

    Args:
        k: number of segments (2 to 32).
        layers: layer names; default: up to three stages of stride <= 8.
        colour, position: also cluster on the pixel's colour / position.
        size: longer side for processing (default: twice the model's input size, at most 384).
        min_area: regions below this share of the image are merged into a neighbour.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= 32:
        raise SettingsError(f"clusters must be an int from 2 to 32; got {k!r}")
    if not 0 <= min_area < 0.5:
        raise SettingsError(f"min_area must be a share in [0, 0.5); got {min_area}")
    info = model_info(model)
    original = load_image(image, mode="rgb" if info.input_size[0] == 3 else "gray")
    longer = size or min(2 * max(info.input_size[1:]), 384)
    x, rgb = prepared_batch(model, original, longer)
    work = (int(x.shape[2]), int(x.shape[3]))
    names = list(layers) if layers else default_segmentation_layers(model, tuple(x.shape[1:]))
    features = hypercolumns(model, x, names, colour=rgb if colour else None, position=position)[0]  # (F, H, W)
    entries = select_layers(catalogue_for(model, tuple(x.shape[1:])), names, model_name=info.name)
    groups = [int(e.output_shape[0]) for e in entries] + ([rgb.shape[1]] if colour else []) + ([2] if position else [])
    pixels = features.flatten(1).T.cpu().numpy()  # (H*W, F)
    pixels = _standardise(pixels.astype(np.float64), groups)
    rng = np.random.default_rng(seed)
    sample = pixels[rng.choice(len(pixels), size=min(len(pixels), 20000), replace=False)]
    kmeans = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(sample)
    labels = kmeans.predict(pixels).reshape(work)
    labels = merge_small_regions(labels, max(1, int(min_area * labels.size)))
    labels = _renumber(labels)
    full = np.asarray(Image.fromarray(labels.astype(np.uint8)).resize((original.shape[2], original.shape[1]),
                                                                      Image.Resampling.NEAREST))
    return Segmentation(full.astype(np.int64), [f"segment {i}" for i in range(int(full.max()) + 1)], original,
                        names, "clusters", info.name, info.weights_label)


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Segments numbered 0, 1, ... by first appearance (top-left first): stable colours."""
    _, first = np.unique(labels.ravel(), return_index=True)
    order = np.unique(labels.ravel())[np.argsort(first)]
    lookup = np.zeros(int(labels.max()) + 1, dtype=np.int64)
    lookup[order] = np.arange(len(order))
    return lookup[labels]
