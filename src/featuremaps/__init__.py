"""featuremaps: convolutional feature maps, from one filter to every layer of a CNN."""

from featuremaps.conv import (
    ConvCost,
    ConvGeometry,
    ConvLayer,
    ConvStep,
    Padding,
    ReceptiveField,
    conv2d,
    conv_output_size,
    receptive_field,
)
from featuremaps.errors import (
    CheckpointError,
    DatasetError,
    FeatureMapsError,
    ImageError,
    LayerError,
    ModelError,
    SettingsError,
)
from featuremaps.extract import extract
from featuremaps.features import FeatureExtractor, select_layers
from featuremaps.images import load_image, samples
from featuremaps.inputs import ModelInput
from featuremaps.models import (
    LayerInfo,
    ModelInfo,
    available_models,
    list_layers,
    load_model,
    model_info,
    register_checkpoint_loader,
    save_checkpoint,
)
from featuremaps.render import render_grid, render_overlay, render_receptive_field, save_maps
from featuremaps.tracing import Lineage, lineage, render_lineage

__version__ = "0.1.0"

# The package's own heads rebuild themselves from their checkpoints (imported on first use,
# so the model registry never imports the code above it).
register_checkpoint_loader("head", "featuremaps.recognize.head:head_from_checkpoint")
register_checkpoint_loader("segmentation", "featuremaps.segment.head:segmenter_from_checkpoint")

__all__ = [
    "CheckpointError",
    "ConvCost",
    "ConvGeometry",
    "ConvLayer",
    "ConvStep",
    "DatasetError",
    "FeatureExtractor",
    "FeatureMapsError",
    "ImageError",
    "LayerError",
    "LayerInfo",
    "Lineage",
    "ModelError",
    "ModelInfo",
    "ModelInput",
    "Padding",
    "ReceptiveField",
    "SettingsError",
    "available_models",
    "conv2d",
    "conv_output_size",
    "extract",
    "lineage",
    "list_layers",
    "load_image",
    "load_model",
    "model_info",
    "receptive_field",
    "render_grid",
    "render_lineage",
    "render_overlay",
    "render_receptive_field",
    "samples",
    "save_checkpoint",
    "save_maps",
    "select_layers",
]
