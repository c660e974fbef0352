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
from featuremaps.errors import CheckpointError, FeatureMapsError, ImageError, LayerError, ModelError, SettingsError
from featuremaps.extract import extract
from featuremaps.images import load_image, samples
from featuremaps.models import LayerInfo, ModelInfo, available_models, list_layers, load_model, save_checkpoint
from featuremaps.render import render_grid, render_overlay, render_receptive_field, save_maps

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConvGeometry",
    "ConvLayer",
    "Explanation",
    "FeatureMapsError",
    "ImageError",
    "LayerError",
    "LayerInfo",
    "ModelError",
    "ModelInfo",
    "Padding",
    "ReceptiveField",
    "SettingsError",
    "available_models",
    "conv2d",
    "conv_output_size",
    "extract",
    "list_layers",
    "load_image",
    "load_model",
    "receptive_field",
    "render_grid",
    "render_overlay",
    "render_receptive_field",
    "samples",
    "save_checkpoint",
    "save_maps",
]
