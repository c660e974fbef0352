"""From a file to model input, split where each part is fastest.

1. :func:`read_item` (a worker process): read the bytes, hash them, check the header (format
   and pixel limit: no decompression bomb reaches a decoder). With ``defer_jpeg`` a plain
   JPEG goes on as its bytes, to be decoded in a batch on the model's device; anything else
   is decoded and prepared right there (libjpeg-turbo or Pillow, then the torch resize of
   the model's :class:`~featuremaps.features.inputs.ModelInput`), as uint8.
2. :func:`assemble` (where the model is): decodes the batch's deferred JPEGs in one call
   (``torchvision.io.decode_jpeg``; nvJPEG on CUDA), frames them with
   ``ModelInput.prepare_tensor`` on that device, falls back to the safe CPU decoder for any
   JPEG the batched decoder refuses (a corrupt one still ends in ``errors.parquet`` with its
   reason), and returns the normalised batch in the order of the good items.

Both engines use these two functions, and the CPU runs the very same code path as a GPU
(``decode_jpeg`` batched on the CPU), so tests on the CPU cover it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from featuremaps.errors import FeatureMapsError, ImageError
from featuremaps.features.inputs import ModelInput
from featuremaps.images import decode_jpegs, read_header, read_image_file

__all__ = ["Assembled", "assemble", "read_item"]


def read_item(index: int, path: str, model_input: ModelInput, *, defer_jpeg: bool) -> dict[str, Any]:
    """Read, hash and check one file; decode it here unless it is a JPEG deferred to the device.

    Returns ``{"index", "path", "sha256", "width", "height"}`` plus ``"tensor"`` (uint8 model
    input) or ``"jpeg"`` (its bytes as a 1-D uint8 tensor); or ``{"index", "path", "reason"}``.
    A failure is an item with its reason, never an exception: one bad file must not stop a job.
    """
    item: dict[str, Any] = {"index": index, "path": path}
    try:
        data = read_image_file(path)
    except ImageError as error:
        return {**item, "reason": error.reason}
    except (OSError, MemoryError) as error:  # noqa: BLE001 - one bad file must not stop the job
        return {**item, "reason": f"cannot read file ({getattr(error, 'strerror', None) or error or type(error).__name__})"}
    if not data:
        return {**item, "reason": "file is empty (0 bytes)"}
    try:
        header = read_header(data)
        rotated = header.orientation in (5, 6, 7, 8)
        item.update(sha256=hashlib.sha256(data).hexdigest(),
                    width=header.height if rotated else header.width, height=header.width if rotated else header.height)
        if defer_jpeg and header.batch_jpeg:
            item["jpeg"] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        else:
            item["tensor"] = model_input.prepare(data)  # (C, H, W) uint8
    except FeatureMapsError as error:
        return {"index": index, "path": path, "reason": getattr(error, "reason", str(error))}
    except Exception as error:  # noqa: BLE001 - one bad file must not stop the job
        return {"index": index, "path": path, "reason": f"{type(error).__name__}: {error}"}
    return item


@dataclass
class Assembled:
    """A batch ready for the model: the good items, their model input, the bad items."""

    good: list[dict[str, Any]]
    batch: torch.Tensor | None
    bad: list[tuple[int, str, str]] = field(default_factory=list)


def assemble(items: Sequence[dict[str, Any]], model_input: ModelInput, device: torch.device) -> Assembled:
    """Model input ``(N, C, H, W)`` float32 on ``device`` for the readable items of one batch, in order.

    Deferred JPEGs are decoded together on ``device``; one the batched decoder refuses goes
    through the safe CPU decoder (which names the problem when it fails too).
    """
    bad = [(item["index"], item["path"], item["reason"]) for item in items if "reason" in item]
    readable = [item for item in items if "reason" not in item]
    mode: Literal["rgb", "gray"] = "rgb" if model_input.channels == 3 else "gray"
    deferred = [item for item in readable if "jpeg" in item]
    decoded = decode_jpegs([item["jpeg"] for item in deferred], mode=mode, device=device) if deferred else []
    prepared: dict[int, torch.Tensor] = {}
    for item, image in zip(deferred, decoded):
        if image is not None:
            prepared[item["index"]] = model_input.prepare_tensor(image)
            continue
        try:  # the batched decoder refused it: the safe loader decodes it or says why
            prepared[item["index"]] = model_input.prepare(item["jpeg"].numpy().tobytes()).to(device)
        except FeatureMapsError as error:
            bad.append((item["index"], item["path"], getattr(error, "reason", str(error))))
    good = []
    tensors = []
    for item in readable:
        tensor = item.get("tensor") if "tensor" in item else prepared.get(item["index"])
        if tensor is None:
            continue
        good.append({key: value for key, value in item.items() if key not in ("tensor", "jpeg")})
        tensors.append(tensor.to(device, non_blocking=True))
    if not tensors:
        return Assembled(good, None, sorted(bad))
    return Assembled(good, model_input.normalise(torch.stack(tensors)), sorted(bad))
