"""The convolution layer, its filter banks and its shape arithmetic."""

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
