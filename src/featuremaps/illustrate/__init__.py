"""Illustrations of convolution: the step-by-step scene and the receptive-field diagram."""

from featuremaps.illustrate.scene import ConvScene, SceneStep, image_patch, random_grid

__all__ = ["ConvScene", "SceneStep", "image_patch", "random_grid"]
