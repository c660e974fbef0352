"""What featuremaps knows about a model: where it comes from and what input it expects.

Every model that :func:`~featuremaps.load_model` returns carries one immutable
:class:`ModelInfo`, attached once with :func:`attach` (the only writer) and read with
:func:`model_info` (which also sees through a ``torch.compile`` wrapper). A change is a new
object (``dataclasses.replace``), never an edit of the one a model already carries.
"""

from __future__ import annotations

import itertools
import re
import threading
import unicodedata
import warnings
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import nn

from featuremaps.errors import SettingsError, check_device_name
from featuremaps.features.inputs import ModelInput

__all__ = ["ModelInfo", "UnknownInputWarning", "attach", "base_module", "label_problem", "model_device", "model_info",
           "resolve_device", "structure_key"]

_NAME = re.compile(r"[A-Za-z0-9_.:+\-]{1,200}")
_ATTRIBUTE = "featuremaps_info"
M = TypeVar("M", bound=nn.Module)



def label_problem(label: str) -> str | None:
    """None for a class name fit to print, else what is wrong: a control character (a newline, an escape
    sequence) or an invisible format character (a right-to-left mark or override) would change what a
    terminal or a page shows around it."""
    for char in label:
        category = unicodedata.category(char)
        if category in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            kind = "a control character" if category == "Cc" else "an invisible format or direction character" \
                if category == "Cf" else "a line separator" if category in ("Zl", "Zp") else "an unassigned character"
            return f"holds {kind} (U+{ord(char):04X}); class names are printed, so they must be plain text"
    return None


@dataclass(frozen=True)
class ModelInfo:
    """Where a model comes from and what input it expects.

    Attributes:
        name: architecture name as ``load_model`` takes it (``"resnet18"``, ``"timm:..."``).
        source: ``builtin``, ``torchvision``, ``timm``, ``checkpoint``, ``head``, ``segmentation``
            or ``module`` (a plain ``nn.Module`` featuremaps did not build).
        weights: the weights it carries (None = untrained: random initialisation).
        input: how an image becomes its input (:class:`~featuremaps.features.inputs.ModelInput`).
        class_names: output class names, when known.
        num_classes: outputs of the classifier, when known.
        options: constructor options of a built-in architecture (``{"width": 32}``).
        trained_on: the data the weights were trained on, in words (``"ImageNet-1k"``), when known.
        backbone: for a head trained on another model's maps, that model and its weights in words
            (``"resnet18, untrained (random) weights"``): a head is trained, its features may not be.
    """

    name: str
    source: str
    weights: str | None = None
    input: ModelInput = field(default_factory=ModelInput)
    class_names: tuple[str, ...] | None = None
    num_classes: int | None = None
    options: Mapping[str, Any] | None = None
    trained_on: str | None = None
    backbone: str | None = None

    @property
    def input_size(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of the model's input."""
        return self.input.shape

    @property
    def trained(self) -> bool:
        """False for untrained (randomly initialised) weights."""
        return self.weights is not None

    @property
    def weights_label(self) -> str:
        """The weights, or ``untrained (random) weights``: what pictures and pages must say."""
        if self.weights is None:
            return "untrained (random) weights"
        if self.trained_on:
            return f"trained on {self.trained_on}"
        if self.source == "builtin" and self.weights == "DEFAULT":
            return "trained weights (bundled with featuremaps)"
        if self.backbone:
            return f"weights {self.weights}: a head on the maps of {self.backbone}"
        return f"weights {self.weights}"

    @property
    def untrained_note(self) -> str:
        """For picture titles: ``" (untrained: random weights)"``, or nothing for trained weights."""
        if not self.trained:
            return " (untrained: random weights)"
        if self.backbone and "untrained" in self.backbone:
            return f" (a head on the maps of {self.backbone})"
        return ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as checkpoints record it (the input's fields flat, as ``input_size`` etc.)."""
        return {"name": self.name, "source": self.source, "weights": self.weights, **self.input.to_dict(),
                "class_names": list(self.class_names) if self.class_names is not None else None,
                "num_classes": self.num_classes, "options": dict(self.options) if self.options else None,
                "trained_on": self.trained_on}

    @classmethod
    def from_dict(cls, data: Any) -> ModelInfo:
        """Parse a record (a checkpoint's ``model`` section), checking every field's type and range.

        Raises:
            SettingsError: naming the field that is missing, of the wrong type or out of range.
        """
        if not isinstance(data, dict):
            raise SettingsError(f"model record must be a JSON object; got {type(data).__name__}")
        name = data.get("name")
        if not isinstance(name, str) or not _NAME.fullmatch(name) or ".." in name:
            raise SettingsError("model.name must be a model name (letters, digits, _ . : + -), never a path; "
                                f"got {str(name)[:100]!r}")
        source = data.get("source")
        if not isinstance(source, str) or len(source) > 40:
            raise SettingsError(f"model.source must be a short string; got {str(source)[:60]!r}")
        try:
            model_input = ModelInput.from_dict(data)
        except SettingsError as error:
            raise SettingsError(f"model.{error}") from None
        names = data.get("class_names")
        if names is not None and (not isinstance(names, list) or len(names) > 100_000
                                  or not all(isinstance(n, str) and 0 < len(n) <= 200 for n in names)):
            raise SettingsError("model.class_names must be a list of strings (1 to 200 characters each)")
        for index, label in enumerate(names or []):
            problem = label_problem(label)
            if problem is not None:
                raise SettingsError(f"model.class_names[{index}] {problem}")
        num_classes = data.get("num_classes")
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                        or not 1 <= num_classes <= 1_000_000):
            raise SettingsError(f"model.num_classes must be a positive int; got {str(num_classes)[:60]}")
        if names is not None and num_classes is not None and len(names) != num_classes:
            raise SettingsError(f"model.class_names names {len(names):,} classes; model.num_classes is {num_classes}")
        weights = data.get("weights")
        if weights is not None and not isinstance(weights, str):
            raise SettingsError("model.weights must be a string or null")
        options = data.get("options")
        if options is not None:
            if not isinstance(options, dict) or not all(
                    isinstance(k, str) and _NAME.fullmatch(k) and isinstance(v, (bool, int, float, str))
                    for k, v in options.items()):
                raise SettingsError("model.options must map option names to numbers, booleans or strings")
            options = dict(options)
        trained_on = data.get("trained_on")
        if trained_on is not None and (not isinstance(trained_on, str) or not 0 < len(trained_on) <= 200
                                       or label_problem(trained_on) is not None):
            raise SettingsError("model.trained_on must be a short one-line string or null")
        return cls(name=name, source=source, weights=weights, input=model_input,
                   class_names=tuple(names) if names is not None else None, num_classes=num_classes,
                   options=options or None, trained_on=trained_on)


def base_module(model: nn.Module) -> nn.Module:
    """The module a ``torch.compile`` wrapper runs (the model itself otherwise)."""
    return getattr(model, "_orig_mod", model) if type(model).__name__ == "OptimizedModule" else model


def structure_key(model: nn.Module) -> int:
    """A fingerprint of the model's layers: every module's name, identity, type and settings (its
    ``extra_repr``: stride, padding...). Caches of layer catalogues and traces are keyed by it, so a
    model whose layer was replaced or changed in place is never answered from a stale entry."""
    return hash(tuple((name, id(module), type(module).__qualname__, module.extra_repr())
                      for name, module in base_module(model).named_modules()))


def attach(model: M, info: ModelInfo) -> M:
    """Give ``model`` its :class:`ModelInfo` (replacing any earlier one); returns the model."""
    if not isinstance(info, ModelInfo):
        raise TypeError(f"info must be a ModelInfo; got {type(info).__name__}")
    object.__setattr__(base_module(model), _ATTRIBUTE, info)
    return model


class UnknownInputWarning(UserWarning):
    """A plain ``nn.Module``: featuremaps does not know the input size and normalisation it was trained with."""


_WARNED: weakref.WeakSet[nn.Module] = weakref.WeakSet()
_WARNED_LOCK = threading.Lock()


def model_info(model: nn.Module) -> ModelInfo:
    """The model's :class:`ModelInfo`, or a default for a plain ``nn.Module`` (3x224x224, no normalisation:
    pixels in [0, 1]); for the latter an :class:`UnknownInputWarning` says so, once per model."""
    module = base_module(model)
    info = getattr(module, _ATTRIBUTE, None)
    if isinstance(info, ModelInfo):
        return info
    name = type(module).__name__
    with _WARNED_LOCK:
        first = module not in _WARNED
        _WARNED.add(module)
    if first:
        warnings.warn(f"{name} is a plain nn.Module: featuremaps does not know the input size and normalisation it "
                      "was trained with, so images go in at 3x224x224 as pixels in [0, 1] (no mean/std); load it "
                      "with featuremaps.load_model, or attach(model, ModelInfo(...)) with its own",
                      UnknownInputWarning, stacklevel=2)
    return ModelInfo(name=name, source="module")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N`` as a device this machine has (None: the CPU).

    Raises:
        SettingsError: another name, or a CUDA device where torch sees no GPU (or not that many).
    """
    text = check_device_name(str(device) if device is not None else "cpu")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SettingsError(f"device {text} was asked for, but torch sees no CUDA GPU on this machine; use "
                                "--device cpu")
        index = int(text.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise SettingsError(f"device {text}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return torch.device(text)


def model_device(model: nn.Module) -> torch.device:
    """Where ``model``'s parameters (or, without any, its buffers) live; the CPU for neither."""
    module = base_module(model)
    tensor = next(itertools.chain(module.parameters(), module.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")
