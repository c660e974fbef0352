"""Weights files: read and write them without ever running code from them.

Formats:

- ``.safetensors``: tensors only, by design. featuremaps stores its architecture record as
  JSON in the file's metadata (key ``featuremaps``).
- ``.pt`` / ``.pth``: read with ``torch.load(weights_only=True)``, which accepts tensors
  and plain containers and refuses any other pickled object (so a malicious file's
  payload never runs). A featuremaps ``.pt`` is ``{"featuremaps": {...}, "state_dict": {...}}``.
- A checkpoint directory: ``model.safetensors`` + ``featuremaps.json`` (written by training).
"""

from __future__ import annotations

import itertools
import json
import os
import pickle
import re
import shutil
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from featuremaps.errors import CheckpointError, ModelError, SettingsError
from featuremaps.features.info import model_info
from featuremaps.files import (
    IMAGE_SUFFIXES,
    FileRefused,
    JsonRefused,
    default_mode,
    parse_json,
    read_regular_file,
    save_safetensors,
)

__all__ = ["CHECKPOINT_SUFFIXES", "check_writable", "load_weights_into", "model_record", "read_checkpoint",
           "save_checkpoint"]

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth")
METADATA_KEY = "featuremaps"
DIRECTORY_WEIGHTS = "model.safetensors"
DIRECTORY_METADATA = "featuremaps.json"
_MAX_RECORD_BYTES = 16 * 1024 * 1024  # a record is a few kilobytes (ImageNet's 1,000 class names: 30 KB)


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    """Read a weights file or checkpoint directory: ``(state_dict, featuremaps record or None)``.

    Raises:
        CheckpointError: missing file, unknown format, corrupt data, or pickled objects.
    """
    path = Path(path)
    if path.is_dir():
        return _read_directory(path)
    if not path.exists():
        raise CheckpointError(f"{path}: weights file not found")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return _read_safetensors(path)
    if suffix in (".pt", ".pth"):
        return _read_torch(path)
    raise CheckpointError(f"{path}: unknown weights format {suffix!r}; use {', '.join(CHECKPOINT_SUFFIXES)}")


def _read_directory(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    weights, metadata = path / DIRECTORY_WEIGHTS, path / DIRECTORY_METADATA
    if not weights.is_file() or not metadata.is_file():
        images = list(itertools.islice((p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES), 1001))
        if images:
            count = "1 image" if len(images) == 1 else f"{len(images)} images" if len(images) <= 1000 else \
                "over 1,000 images"
            raise CheckpointError(
                f"{path}: a folder of {count}, not a model: give a model name (featuremaps models lists "
                f"them) or a checkpoint directory ({DIRECTORY_WEIGHTS} and {DIRECTORY_METADATA}, as featuremaps "
                "train writes)")
        raise CheckpointError(
            f"{path}: not a featuremaps checkpoint directory (needs {DIRECTORY_WEIGHTS} and {DIRECTORY_METADATA})"
        )
    state, _ = _read_safetensors(weights)
    try:
        record = parse_json(read_regular_file(metadata, max_bytes=_MAX_RECORD_BYTES))
    except JsonRefused as error:
        raise CheckpointError(f"{metadata}: not a featuremaps record: {error}") from None
    except FileRefused as error:
        raise CheckpointError(f"{metadata}: {error.reason}") from None
    return state, record


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    try:
        state = load_file(str(path), device="cpu")
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable safetensors file ({error})") from None
    record = None
    if METADATA_KEY in metadata:
        try:
            record = parse_json(metadata[METADATA_KEY])
        except JsonRefused as error:
            raise CheckpointError(f"{path}: its featuremaps metadata is not a featuremaps record: {error}") from None
    return state, record


def _read_torch(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None]:
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing them: the error says it
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch words it "Unsupported global: GLOBAL x.y" or "unsupported GLOBAL x.y whose module x is blocked"
        found = re.search(r"unsupported (?:global: )?GLOBAL ([\w.]+)", str(error), flags=re.IGNORECASE)
        if found is None:
            unsafe = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n|$)", str(error))
            with open(path, "rb") as handle:
                head = handle.read(2)
            if unsafe is not None and len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # a pickle
                raise CheckpointError(
                    f"{path}: refused: the safe loader (weights_only=True) cannot read this pickle "
                    f"({unsafe.group(1).strip()}): it is not a torch.save of tensors, and featuremaps never "
                    "unpickles other Python objects; save a state_dict or use .safetensors") from None
            raise CheckpointError(f"{path}: not a readable PyTorch weights file (corrupt pickle data)") from None
        raise CheckpointError(
            f"{path}: refused: the file holds pickled Python objects ({found.group(1)}), not only tensors, and "
            "loading it could run code. featuremaps loads weights with weights_only=True; save a state_dict "
            "or use .safetensors"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable PyTorch weights file ({error})") from None
    if isinstance(data, Mapping) and "state_dict" in data:
        record = data.get(METADATA_KEY)
        data = data["state_dict"]
    else:
        record = None
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise CheckpointError(f"{path}: expected a state_dict (a mapping of names to tensors)")
    return dict(data), record if isinstance(record, dict) else None


def check_writable(path: str | Path, *, overwrite: bool = False, directory: bool | None = None) -> Path:
    """Refuse, before any work, a checkpoint path that would replace something.

    Args:
        path: where :func:`save_checkpoint` will write.
        overwrite: allow replacing an existing file or a non-empty directory.
        directory: True when only a checkpoint directory is allowed (training writes one).

    Raises:
        SettingsError: the path is taken (and ``overwrite`` is off), or has the wrong form.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if directory and suffix:
        raise SettingsError(f"{path}: a training checkpoint is a directory; got a path ending in {path.suffix!r} "
                              "(drop the suffix)")
    if directory is None and suffix and suffix not in CHECKPOINT_SUFFIXES:
        raise SettingsError(f"{path}: unknown checkpoint format {path.suffix!r}; use {', '.join(CHECKPOINT_SUFFIXES)}"
                              " or a directory (no suffix)")
    if suffix in CHECKPOINT_SUFFIXES and not directory:
        if path.is_dir():
            raise SettingsError(f"{path}: is a directory; a weights file needs a file name")
        if path.exists() and not overwrite:
            raise SettingsError(f"{path}: exists; pass overwrite=True (--overwrite) to replace it, or choose "
                                  "another path")
    elif path.exists():
        if not path.is_dir():
            raise SettingsError(f"{path}: is a file, not a checkpoint directory; choose another path")
        if any(path.iterdir()) and not overwrite:
            raise SettingsError(f"{path}: the directory is not empty; pass --overwrite to replace its checkpoint, "
                                  "or choose another directory (nothing was written)")
    return path


def save_checkpoint(model: nn.Module, path: str | Path, record: Mapping[str, Any] | None = None, *,
                    overwrite: bool = False, half: bool = False) -> Path:
    """Write ``model``'s weights and its featuremaps record as ``.safetensors``, ``.pt`` or a directory.

    A path without one of the suffixes is a checkpoint directory. The record defaults to
    the architecture of a model built by ``load_model``, so ``load_model(path)`` rebuilds it;
    a plain ``nn.Module`` is saved as weights only. The write is atomic: everything goes to a
    temporary name beside ``path`` and is renamed into place, so a crash never leaves half a
    checkpoint, and an existing file or non-empty directory is replaced only with ``overwrite``.
    With ``half``, floating-point tensors are stored as float16 (half the file; loading casts
    them back to the model's dtype).
    """
    path = check_writable(path, overwrite=overwrite)
    if record is None and model_info(model).source != "module":
        record = model_record(model)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    if half:
        state = {name: tensor.half() if tensor.is_floating_point() else tensor for name, tensor in state.items()}
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in CHECKPOINT_SUFFIXES:
        temp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent)) / path.name
        try:
            if suffix == ".safetensors":
                metadata = {METADATA_KEY: json.dumps(record)} if record is not None else None
                save_safetensors(_untie(state), temp, metadata=metadata, shown=path)
            else:
                torch.save({METADATA_KEY: dict(record) if record else None, "state_dict": state}, temp)
            _fsync(temp)
            os.chmod(temp, default_mode())
            os.replace(temp, path)
        finally:
            shutil.rmtree(temp.parent, ignore_errors=True)
        return path
    temp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    old = None
    try:
        save_safetensors(_untie(state), temp_dir / DIRECTORY_WEIGHTS, shown=path / DIRECTORY_WEIGHTS)
        try:
            (temp_dir / DIRECTORY_METADATA).write_text(json.dumps(dict(record or {}), indent=2))
        except OSError as error:
            raise OSError(error.errno, f"{error.strerror or error} (writing)", str(path / DIRECTORY_METADATA)) \
                from error
        for written in (temp_dir / DIRECTORY_WEIGHTS, temp_dir / DIRECTORY_METADATA):
            _fsync(written)
            os.chmod(written, default_mode())  # safetensors writes 0600; a checkpoint is shared like any file
        os.chmod(temp_dir, default_mode(directory=True))
        if path.exists():  # checked above: empty, or overwrite was asked for
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(temp_dir, path)
    except BaseException:
        if old is not None and not path.exists():
            os.replace(old, path)  # put the previous checkpoint back
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def model_record(model: nn.Module) -> dict[str, Any]:
    """What a checkpoint records so ``load_model`` can rebuild ``model`` from the file alone.

    The ``model`` section is its :class:`ModelInfo`; a model that needs more (a head on a
    backbone) adds its own sections with a ``featuremaps_record()`` method.
    """
    info = model_info(model)
    if info.source == "module":
        raise ModelError(f"{type(model).__name__} was not built by load_model; featuremaps cannot record it")
    record: dict[str, Any] = {"model": info.to_dict()}
    extra = getattr(model, "featuremaps_record", None)
    if callable(extra):
        record.update(extra())
    return record


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _untie(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory; give each its own copy."""
    seen: set[int] = set()
    result = {}
    for name, tensor in state.items():
        pointer = tensor.untyped_storage().data_ptr() if tensor.numel() else -1
        result[name] = tensor.clone() if pointer in seen else tensor
        seen.add(pointer)
    return result


def load_weights_into(model: nn.Module, state: Mapping[str, torch.Tensor], *, source: str, name: str) -> None:
    """Load ``state`` strictly, stripping a ``module.`` prefix (DataParallel); say what does not fit."""
    if state and all(key.startswith("module.") for key in state):
        state = {key.removeprefix("module."): value for key, value in state.items()}
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    mismatched = [
        f"{key} {tuple(state[key].shape)} vs {tuple(expected[key].shape)}"
        for key in expected if key in state and tuple(state[key].shape) != tuple(expected[key].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
            if items:
                shown = ", ".join(items[:4]) + (f", ... ({len(items)} in all)" if len(items) > 4 else "")
                parts.append(f"{label}: {shown}")
        raise CheckpointError(f"{source}: the weights do not fit {name}; " + "; ".join(parts))
    if any(tensor.is_meta for tensor in expected.values()):
        return  # a skeleton (featuremaps.models.skeleton): the weights fit, and it holds no values to copy into
    model.load_state_dict(state, strict=True)
