"""Every picture featuremaps draws, in one place: canvases and fonts (``drawing``), grids of maps, overlays,
the one-page overview and the show page, the convolution diagrams and animations, the receptive-field
diagram, lineage trees, hierarchy charts, feature-visualisation sheets, segmentations, confusion matrices
and the HTML report. They take results (maps, scenes, lineages, hierarchies) and return pictures; nothing
here computes what the pictures show.

The names below load on first use, so ``featuremaps.render.drawing`` alone stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from featuremaps.render.grid import render_grid, save_maps
    from featuremaps.render.overlay import render_overlay, render_receptive_field

__all__ = ["render_grid", "render_overlay", "render_receptive_field", "save_maps"]

_HOMES = {"render_grid": "grid", "save_maps": "grid", "render_overlay": "overlay",
          "render_receptive_field": "overlay"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"featuremaps.render.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'featuremaps.render' has no attribute {name!r}")
