"""Built-in CNNs small enough to read in one screen: TinyVGG and LeNet-5.

Both are flat ``nn.Sequential`` models with named layers, so their layer names
(``conv1_1``, ``pool1``, ...) are what the catalogue and extraction use.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from featuremaps.errors import SettingsError

__all__ = ["LeNet5", "TinyVGG"]


class TinyVGG(nn.Sequential):
    """TinyVGG as in CNN Explainer: two blocks of two 3x3 convolutions (no padding) and a 2x2 max-pool.

    Input ``(3, 64, 64)``; maps 10x62x62 -> 10x60x60 -> 10x30x30 -> 10x28x28 -> 10x26x26 ->
    10x13x13; then a linear classifier.

    Args:
        in_channels: input channels.
        num_classes: outputs of the classifier.
        width: filters per convolution (CNN Explainer uses 10).
        input_size: input height and width; the classifier's size follows from it.
        batch_norm: add a BatchNorm2d after each convolution (``bn1_1``, ...): faster,
            steadier training; not in CNN Explainer's original.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, width: int = 10, input_size: int = 64,
                 batch_norm: bool = False) -> None:
        for name, value, limit in (("in_channels", in_channels, 64), ("num_classes", num_classes, 100_000),
                                   ("width", width, 1024), ("input_size", input_size, 4096)):
            _check_int(name, value, limit)
        if not isinstance(batch_norm, bool):
            raise SettingsError(f"batch_norm must be true or false; got {batch_norm!r}")
        side = ((input_size - 4) // 2 - 4) // 2
        if side < 1:
            raise SettingsError(f"TinyVGG needs an input of at least 14 pixels; got {input_size}")
        layers: list[tuple[str, nn.Module]] = []
        for block in (1, 2):
            for conv in (1, 2):
                name = f"{block}_{conv}"
                layers.append((f"conv{name}", nn.Conv2d(in_channels if (block, conv) == (1, 1) else width, width, 3)))
                if batch_norm:
                    layers.append((f"bn{name}", nn.BatchNorm2d(width)))
                layers.append((f"relu{name}", nn.ReLU()))
            layers.append((f"pool{block}", nn.MaxPool2d(2)))
        layers += [("flatten", nn.Flatten()), ("fc", nn.Linear(width * side * side, num_classes))]
        super().__init__(OrderedDict(layers))


class LeNet5(nn.Sequential):
    """LeNet-5 (LeCun et al., 1998): 5x5 convolutions, tanh and 2x2 average pooling (subsampling).

    Input ``(1, 32, 32)``; maps 6x28x28 -> 6x14x14 -> 16x10x10 -> 16x5x5; then 120, 84 and
    ``num_classes`` units.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10) -> None:
        _check_int("in_channels", in_channels, 64)
        _check_int("num_classes", num_classes, 100_000)
        super().__init__(OrderedDict([
            ("conv1", nn.Conv2d(in_channels, 6, 5)),
            ("tanh1", nn.Tanh()),
            ("pool1", nn.AvgPool2d(2)),
            ("conv2", nn.Conv2d(6, 16, 5)),
            ("tanh2", nn.Tanh()),
            ("pool2", nn.AvgPool2d(2)),
            ("flatten", nn.Flatten()),
            ("fc1", nn.Linear(16 * 5 * 5, 120)),
            ("tanh3", nn.Tanh()),
            ("fc2", nn.Linear(120, 84)),
            ("tanh4", nn.Tanh()),
            ("fc3", nn.Linear(84, num_classes)),
        ]))


def _check_int(name: str, value: object, limit: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise SettingsError(f"{name} must be an integer from 1 to {limit}; got {value!r}")
