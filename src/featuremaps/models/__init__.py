"""Models: built-in CNNs, torchvision, timm and checkpoints; the layer catalogue."""

from featuremaps.models.catalogue import LayerInfo, list_layers
from featuremaps.models.checkpoint import read_checkpoint, save_checkpoint
from featuremaps.models.preprocess import ModelInfo, model_info, preprocess
from featuremaps.models.registry import available_models, load_model

__all__ = [
    "LayerInfo",
    "ModelInfo",
    "available_models",
    "list_layers",
    "load_model",
    "model_info",
    "preprocess",
    "read_checkpoint",
    "save_checkpoint",
]
