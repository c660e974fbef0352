"""The convolution layer, its filter banks and its shape arithmetic.

Names are imported on first use, so the filter banks and the geometry load without torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from featuremaps.conv.filters import BANKS, GROUPS, FilterBank, bank
    from featuremaps.conv.geometry import (
        ConvGeometry,
        Padding,
        ReceptiveField,
        conv_output_size,
        normalize_padding,
        receptive_field,
    )
    from featuremaps.conv.layer import PADDING_MODES, ConvCost, ConvLayer, ConvStep, conv2d, pad_input

_LAZY: dict[str, str] = {
    **dict.fromkeys(("BANKS", "GROUPS", "FilterBank", "bank"), "featuremaps.conv.filters"),
    **dict.fromkeys(("ConvGeometry", "Padding", "ReceptiveField", "conv_output_size", "normalize_padding",
                     "receptive_field"), "featuremaps.conv.geometry"),
    **dict.fromkeys(("PADDING_MODES", "ConvCost", "ConvLayer", "ConvStep", "conv2d", "pad_input"),
                    "featuremaps.conv.layer"),
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'featuremaps.conv' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BANKS",
    "GROUPS",
    "PADDING_MODES",
    "ConvCost",
    "ConvGeometry",
    "ConvLayer",
    "ConvStep",
    "FilterBank",
    "Padding",
    "ReceptiveField",
    "bank",
    "conv2d",
    "conv_output_size",
    "normalize_padding",
    "pad_input",
    "receptive_field",
]
