"""featuremaps: convolutional feature maps, from one filter to every layer of a CNN."""

from featuremaps.conv import (
    ConvGeometry,
    ConvLayer,
    Explanation,
    Padding,
    ReceptiveField,
    conv2d,
    conv_output_size,
    receptive_field,
)
from featuremaps.errors import FeatureMapsError, ImageError, SettingsError
from featuremaps.images import load_image, samples
from featuremaps.render import render_grid, save_maps

__version__ = "0.1.0"

__all__ = [
    "ConvGeometry",
    "ConvLayer",
    "Explanation",
    "FeatureMapsError",
    "ImageError",
    "Padding",
    "ReceptiveField",
    "SettingsError",
    "conv2d",
    "conv_output_size",
    "load_image",
    "receptive_field",
    "render_grid",
    "samples",
    "save_maps",
]
