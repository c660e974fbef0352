"""The feature core: everything between a model and its feature maps.

- what a model expects: :mod:`~featuremaps.features.inputs` (``ModelInput``: an image becomes
  one model's input) and :mod:`~featuremaps.features.info` (``ModelInfo``, attached to the model);
- which layers: :mod:`~featuremaps.features.catalogue` (every layer's output shape and receptive
  field), :mod:`~featuremaps.features.selection` (cached catalogues, names, globs, types);
- their outputs: :mod:`~featuremaps.features.extractor` (``FeatureExtractor``, on an FX graph from
  :mod:`~featuremaps.features.graph` or on hooks from :mod:`~featuremaps.features.hooks`, the only
  place that puts hooks on a module);
- maps on pixels: :mod:`~featuremaps.features.align`.

Everything in featuremaps that needs a layer's output goes through :class:`FeatureExtractor`;
everything that turns an image into model input goes through the model's ``ModelInput``.
Where models come from (names, weights, checkpoints) is :mod:`featuremaps.models`, above this.
"""

from featuremaps.features.align import align_maps, sample_maps
from featuremaps.features.catalogue import LayerInfo, LayerList, list_layers
from featuremaps.features.extractor import INPUT, METHODS, FeatureExtractor
from featuremaps.features.info import ModelInfo, attach, model_device, model_info
from featuremaps.features.inputs import ModelInput
from featuremaps.features.selection import LayerSelection, catalogue_for, default_layers, find_layer, select_layers

__all__ = ["INPUT", "METHODS", "FeatureExtractor", "LayerInfo", "LayerList", "LayerSelection", "ModelInfo", "ModelInput",
           "align_maps", "attach", "catalogue_for", "default_layers", "find_layer", "list_layers", "model_device",
           "model_info", "sample_maps", "select_layers"]
