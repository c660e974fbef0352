"""Pictures of feature maps: grids, and the HTML report."""

from featuremaps.render.grid import render_grid, save_maps
from featuremaps.render.overlay import render_overlay, render_receptive_field

__all__ = ["render_grid", "render_overlay", "render_receptive_field", "save_maps"]
