"""The step-by-step model of a convolution: a :class:`ConvScene` holds the padded (or zero-inserted) input,
the filters and every output value's computation; ``featuremaps.render.diagram`` and ``.animate`` draw it."""

from featuremaps.illustrate.scene import ConvScene, image_patch, random_grid

__all__ = ["ConvScene", "image_patch", "random_grid"]
