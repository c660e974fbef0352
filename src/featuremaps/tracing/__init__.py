"""Feature lineage: a unit's value split exactly into the maps of the layers below it (see :mod:`.trace`)."""

from featuremaps.tracing.picture import receptive_crop, render_lineage
from featuremaps.tracing.trace import Lineage, LineageEdge, LineageNode, default_stations, lineage

__all__ = ["Lineage", "LineageEdge", "LineageNode", "default_stations", "lineage", "receptive_crop", "render_lineage"]
