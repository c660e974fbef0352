"""Illustrations of convolution: the step-by-step scene and the receptive-field diagram."""

from featuremaps.illustrate.scene import ConvScene, image_patch, random_grid

__all__ = ["ConvScene", "image_patch", "random_grid"]
