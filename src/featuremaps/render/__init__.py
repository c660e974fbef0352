"""Pictures of feature maps: grids, and the HTML report."""

from featuremaps.render.grid import render_grid, save_maps

__all__ = ["render_grid", "save_maps"]
