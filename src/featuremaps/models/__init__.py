"""Models: built-in CNNs, torchvision, timm and checkpoints; what each expects; the layer catalogue."""

from featuremaps.models.catalogue import LayerInfo, list_layers
from featuremaps.models.checkpoint import model_record, read_checkpoint, save_checkpoint
from featuremaps.models.info import ModelInfo, model_device, model_info
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
