"""Feature visualisation by optimisation (Olah, Mordvintsev & Schubert, Distill 2017).

>>> from featuremaps import load_model
>>> from featuremaps.optvis import channel, visualize
>>> result = visualize(load_model("builtin:objects"), [channel("stage2", c) for c in range(16)], steps=256)
>>> result.render().save("vis.png")
"""

from featuremaps.optvis.objectives import OUTPUT, Objective, channel, direction, logit, unit
from featuremaps.optvis.optimize import visualize
from featuremaps.optvis.param import COLOUR_CORRELATION_SQRT, ImageParam
from featuremaps.optvis.result import Visualization
from featuremaps.optvis.transforms import Robustness
from featuremaps.render.visualization import render_visualization, render_with_patches

__all__ = ["COLOUR_CORRELATION_SQRT", "OUTPUT", "ImageParam", "Objective", "Robustness", "Visualization", "channel",
           "direction", "logit", "render_visualization", "render_with_patches", "unit", "visualize"]
