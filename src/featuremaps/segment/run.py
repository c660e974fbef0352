"""Segment images with any of the three methods and write masks, overlays and JSON.

- a trained per-pixel head (``--checkpoint``, ``builtin:shapes-seg``);
- a torchvision segmentation model's own output (``fcn_resnet50``, ``deeplabv3_*``);
- clusters of any model's hypercolumns (``--model M --clusters K``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from featuremaps.errors import SettingsError
from featuremaps.features.info import model_info
from featuremaps.files import check_outputs, safe_name, save_picture
from featuremaps.images import ImageSource, load_image, open_pil
from featuremaps.recognize.familiarity import familiarity_for, unfamiliar_note
from featuremaps.render.segmentation import render_segmentation, save_index_mask
from featuremaps.segment.clusters import Segmentation, cluster_segments, merge_small_regions, prepared_batch
from featuremaps.segment.head import PixelHead
from featuremaps.segment.metrics import match_segments, score_masks

__all__ = ["MIN_REGION", "is_segmentation_model", "segment_image", "write_segmentation"]

MIN_REGION = 0.001
"""Regions of a trained model's mask below this share of the image are merged into a neighbour."""


def is_segmentation_model(model: nn.Module) -> bool:
    """True for a trained head or a torchvision segmentation model (output ``{"out": ...}``)."""
    if isinstance(model, PixelHead):
        return True
    from torchvision.models.segmentation import FCN, LRASPP, DeepLabV3

    return isinstance(model, (FCN, DeepLabV3, LRASPP))


def _resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    image = Image.fromarray(mask.astype(np.uint8)).resize((width, height), Image.Resampling.NEAREST)
    return np.asarray(image).astype(np.int64)


@torch.inference_mode()
def _model_segments(model: nn.Module, image: torch.Tensor) -> tuple[np.ndarray, list[str]]:
    info = model_info(model)
    longer = max(info.input_size[1:]) if isinstance(model, PixelHead) else info.input.resize_to
    x, _ = prepared_batch(model, image, longer)
    model.eval()
    output = model(x)
    logits = output["out"] if isinstance(output, dict) else output  # (1, K, H', W')
    names = list(info.class_names or [f"class {i}" for i in range(logits.shape[1])])
    return logits.argmax(dim=1)[0].cpu().numpy(), names


def segment_image(
    model: nn.Module, image: ImageSource, *, clusters: int | None = None, layers: Sequence[str] | None = None,
    seed: int = 0,
) -> Segmentation:
    """Segment one image; the mask has the input's size.

    A trained head or a segmentation model uses its own classes unless ``clusters`` is
    given; any other model is clustered (4 segments by default).
    """
    if clusters is not None and (isinstance(clusters, bool) or not isinstance(clusters, int) or not 2 <= clusters <= 64):
        raise SettingsError(f"clusters must be an int from 2 to 64; got {clusters!r}")
    if isinstance(model, PixelHead) and (clusters is not None or layers):
        backbone = model_info(model.backbone).name
        raise SettingsError(f"{model_info(model).name} is a trained segmentation head: it gives its own segments "
                            f"(leave out clusters and layers); to cluster maps, cluster its backbone (--model "
                            f"{backbone} --clusters K)")
    if clusters is None and layers and is_segmentation_model(model):
        raise SettingsError(f"layers choose the maps that are clustered; {model_info(model).name} segments with its "
                            "own head (give clusters too to cluster its maps instead)")
    if clusters is None and is_segmentation_model(model):
        info = model_info(model)
        original = load_image(image, mode="rgb" if info.input_size[0] == 3 else "gray")
        mask, names = _model_segments(model, original)
        mask = merge_small_regions(mask, max(1, int(MIN_REGION * mask.size)))  # specks join their neighbour
        full = _resize_mask(mask, original.shape[1], original.shape[2])
        method = "head" if isinstance(model, PixelHead) else "model"
        layers_used = list(model.layers) if isinstance(model, PixelHead) else ["out"]
        familiar, note = _familiarity(model, image)
        return Segmentation(full, names, original, layers_used, method, info.name, info.weights_label, familiar, note)
    return cluster_segments(model, image, k=4 if clusters is None else clusters, layers=layers, seed=seed)


def _familiarity(model: nn.Module, image: ImageSource) -> tuple[bool | None, str]:
    """Is ``image`` like the scenes a trained head learnt from (its ``familiarity.safetensors``)?"""
    familiarity = familiarity_for(model)
    if familiarity is None:
        return None, ""
    score = float(familiarity.scores(model, model_info(model).input.prepare(image)[None])[0])
    if score <= familiarity.threshold:
        return True, ""
    return False, unfamiliar_note(score, familiarity.threshold)


def read_truth(path: str | Path) -> np.ndarray:
    """A ground-truth mask PNG (index per pixel)."""
    return np.asarray(open_pil(str(path))).astype(np.int64)


def write_segmentation(
    segmentation: Segmentation, out_dir: str | Path, stem: str, *, source: str,
    truth: np.ndarray | None = None, truth_names: Sequence[str] | None = None, overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``<stem>_mask.png`` and ``<stem>_overlay.png``; return the JSON entry for the image.

    Both are written atomically; a file featuremaps did not write is replaced only with ``overwrite``.
    """
    out = Path(out_dir)
    stem = safe_name(stem, fallback="image")
    check_outputs([out / f"{stem}_mask.png", out / f"{stem}_overlay.png"], overwrite=overwrite)
    mask = segmentation.mask
    background = 0 if segmentation.method == "head" and segmentation.names[:1] == ["background"] else None
    mask_path = save_index_mask(mask, out / f"{stem}_mask.png", offset=0 if background is not None else 1,
                                overwrite=overwrite)
    how = (f"{len(segmentation.names)} clusters of the maps of {', '.join(segmentation.layers)}"
           if segmentation.method == "clusters" else f"its {segmentation.method}")
    title = f"{source}: {segmentation.model} ({segmentation.weights}), {how}"
    overlay = render_segmentation(segmentation.image, mask, segmentation.names, background=background,
                                  title=title + (f". {segmentation.note}" if segmentation.note else ""))
    overlay_path = save_picture(overlay, out / f"{stem}_overlay.png", overwrite=overwrite)
    counts = np.bincount(mask.ravel(), minlength=len(segmentation.names))
    entry: dict[str, Any] = {
        "path": source, "mask": str(mask_path), "overlay": str(overlay_path), "method": segmentation.method,
        "model": segmentation.model, "weights": segmentation.weights,
        "layers": segmentation.layers, "size": [int(mask.shape[0]), int(mask.shape[1])],
        "familiar": segmentation.familiar, "note": segmentation.note,
        "classes": {str(i): name for i, name in enumerate(segmentation.names)},
        "segments": [{"index": i, "name": segmentation.names[i] if i < len(segmentation.names) else str(i),
                      "pixels": int(c)} for i, c in enumerate(counts) if c],
    }
    if truth is not None:
        if truth.shape != mask.shape:
            raise SettingsError(f"the truth mask is {truth.shape[1]}x{truth.shape[0]}, the image "
                             f"{mask.shape[1]}x{mask.shape[0]}")
        if segmentation.method == "clusters":
            _, scores = match_segments(mask, truth)
        else:
            scores = score_masks(mask, truth, classes=max(len(segmentation.names), int(truth.max()) + 1))
        entry["scores"] = scores.to_dict(list(truth_names) if truth_names else None)
    return entry
