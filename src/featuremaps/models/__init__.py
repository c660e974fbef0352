"""Where models come from: built-in CNNs, builtin:imagenet, torchvision, timm and checkpoints (names,
weights, safe loading). What a model expects and its layers are the feature core's
(:mod:`featuremaps.features`); ``LayerInfo``, ``ModelInfo``, ``list_layers``, ``model_device`` and
``model_info`` are re-exported here for convenience."""

from featuremaps.features.catalogue import LayerInfo, list_layers
from featuremaps.features.info import ModelInfo, model_device, model_info
from featuremaps.models.checkpoint import model_record, read_checkpoint, save_checkpoint
from featuremaps.models.registry import available_models, load_model, register_checkpoint_loader, untrained_like

__all__ = [
    "LayerInfo",
    "ModelInfo",
    "available_models",
    "list_layers",
    "load_model",
    "model_device",
    "model_info",
    "model_record",
    "read_checkpoint",
    "register_checkpoint_loader",
    "save_checkpoint",
    "untrained_like",
]
