"""featuremaps: convolutional feature maps, from one filter to every layer of a CNN.

The names below are imported on first use (PEP 562), so ``import featuremaps`` and the
command line's ``--help``, ``--version``, ``samples`` and ``banks`` start without torch.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from featuremaps.version import __version__ as __version__

if TYPE_CHECKING:
    from featuremaps.analysis.lineage import Lineage, lineage
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
    from featuremaps.features.inputs import ModelInput
    from featuremaps.images import load_image, samples
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
    from featuremaps.recognize.predict import predict
    from featuremaps.render import render_grid, render_overlay, render_receptive_field, save_maps
    from featuremaps.render.convolve import ConvResult, convolve
    from featuremaps.render.lineage import render_lineage
    from featuremaps.render.show import show

_LAZY: dict[str, str] = {
    "ConvResult": "featuremaps.render.convolve",
    "convolve": "featuremaps.render.convolve",
    "predict": "featuremaps.recognize.predict",
    "show": "featuremaps.render.show",
    "CheckpointError": "featuremaps.errors",
    "ConvCost": "featuremaps.conv",
    "ConvGeometry": "featuremaps.conv",
    "ConvLayer": "featuremaps.conv",
    "ConvStep": "featuremaps.conv",
    "DatasetError": "featuremaps.errors",
    "FeatureExtractor": "featuremaps.features",
    "FeatureMapsError": "featuremaps.errors",
    "ImageError": "featuremaps.errors",
    "LayerError": "featuremaps.errors",
    "LayerInfo": "featuremaps.models",
    "Lineage": "featuremaps.analysis.lineage",
    "ModelError": "featuremaps.errors",
    "ModelInfo": "featuremaps.models",
    "ModelInput": "featuremaps.features.inputs",
    "Padding": "featuremaps.conv",
    "ReceptiveField": "featuremaps.conv",
    "SettingsError": "featuremaps.errors",
    "available_models": "featuremaps.models",
    "conv2d": "featuremaps.conv",
    "conv_output_size": "featuremaps.conv",
    "extract": "featuremaps.extract",
    "lineage": "featuremaps.analysis.lineage",
    "list_layers": "featuremaps.models",
    "load_image": "featuremaps.images",
    "load_model": "featuremaps.models",
    "model_info": "featuremaps.models",
    "receptive_field": "featuremaps.conv",
    "register_checkpoint_loader": "featuremaps.models",
    "render_grid": "featuremaps.render",
    "render_lineage": "featuremaps.render.lineage",
    "render_overlay": "featuremaps.render",
    "render_receptive_field": "featuremaps.render",
    "samples": "featuremaps.images",
    "save_checkpoint": "featuremaps.models",
    "save_maps": "featuremaps.render",
    "select_layers": "featuremaps.features",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'featuremaps' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


class _Package(types.ModuleType):
    """``featuremaps.extract`` is the function even after the module ``featuremaps/extract.py`` is imported
    (the import system sets the package attribute to the submodule; here the function keeps the name)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == f"{__name__}.{name}":
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


__all__ = [
    "CheckpointError",
    "ConvCost",
    "ConvGeometry",
    "ConvLayer",
    "ConvResult",
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
    "convolve",
    "extract",
    "lineage",
    "list_layers",
    "load_image",
    "load_model",
    "model_info",
    "predict",
    "receptive_field",
    "register_checkpoint_loader",
    "render_grid",
    "render_lineage",
    "render_overlay",
    "render_receptive_field",
    "samples",
    "save_checkpoint",
    "save_maps",
    "select_layers",
    "show",
]
