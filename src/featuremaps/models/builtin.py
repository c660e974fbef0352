"""Built-in CNNs small enough to read in one screen: TinyVGG, LeNet-5 and TinyResNet.

TinyVGG and LeNet-5 are flat ``nn.Sequential`` models with named layers, so their layer names
(``conv1_1``, ``pool1``, ...) are what the catalogue and extraction use. TinyResNet has a stem
and four stages of residual blocks (``stem``, ``stage1`` ... ``stage4``, ``pool``, ``fc``).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from featuremaps.errors import SettingsError

__all__ = ["BasicBlock", "LeNet5", "TinyResNet", "TinyVGG"]


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


class BasicBlock(nn.Module):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``: two 3x3 convolutions and a skip.

    The shortcut is the identity, or a 1x1 convolution with batch norm where the block changes
    the width or the stride (as in torchvision's ResNet).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(out_channels))
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(branch + self.shortcut(x))


class TinyResNet(nn.Module):
    """A small ResNet for 128x128 images: a stem and four stages whose widths double as the maps halve.

    ``stem`` (3x3 convolution, stride 2) -> ``stage1`` (64x64) -> ``stage2`` (32x32) -> ``stage3``
    (16x16) -> ``stage4`` (8x8) -> ``pool`` (global average) -> ``fc``. With the default blocks
    ``(1, 1, 1, 2)`` the receptive field grows 3, 11, 23, 47, 159 pixels: a unit of the last stage
    sees more than the whole image, so it can see a whole object.

    Args:
        in_channels: input channels.
        num_classes: outputs of the classifier.
        width: channels of ``stage1``; the stages have ``width, 2*width, 4*width, 8*width``.
        blocks: residual blocks per stage.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 9, width: int = 32,
                 blocks: tuple[int, ...] | list[int] = (1, 1, 1, 2)) -> None:
        super().__init__()
        _check_int("in_channels", in_channels, 64)
        _check_int("num_classes", num_classes, 100_000)
        _check_int("width", width, 256)
        if not isinstance(blocks, (tuple, list)) or len(blocks) != 4:
            raise SettingsError(f"blocks needs one count per stage (4 values); got {blocks!r}")
        for value in blocks:
            _check_int("a stage's block count", value, 16)
        widths = tuple(width * factor for factor in (1, 2, 4, 8))
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU())
        stages = []
        previous = widths[0]
        for index, (stage_width, count) in enumerate(zip(widths, blocks)):
            layers = [BasicBlock(previous, stage_width, stride=1 if index == 0 else 2)]
            layers += [BasicBlock(stage_width, stage_width) for _ in range(count - 1)]
            stages.append(nn.Sequential(*layers))
            previous = stage_width
        self.stage1, self.stage2, self.stage3, self.stage4 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(previous, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage4(self.stage3(self.stage2(self.stage1(self.stem(x)))))
        return self.fc(self.flatten(self.pool(x)))


def _check_int(name: str, value: object, limit: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise SettingsError(f"{name} must be an integer from 1 to {limit}; got {value!r}")
