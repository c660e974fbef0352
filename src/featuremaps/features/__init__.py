"""The feature core: which layers (catalogue and selection) and their outputs (the extractor).

Everything in featuremaps that needs a layer's output goes through :class:`FeatureExtractor`;
everything that turns an image into model input goes through the model's
:class:`~featuremaps.inputs.ModelInput`.
"""

from featuremaps.features.align import align_maps, sample_maps
from featuremaps.features.extractor import METHODS, FeatureExtractor
from featuremaps.features.selection import LayerSelection, catalogue_for, default_layers, find_layer, select_layers

__all__ = ["METHODS", "FeatureExtractor", "LayerSelection", "align_maps", "catalogue_for", "default_layers",
           "find_layer", "sample_maps", "select_layers"]
