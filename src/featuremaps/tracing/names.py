"""Names shared by the lineage tracer and its picture."""

from __future__ import annotations

__all__ = ["INPUT"]

INPUT = "input"
"""The layer name of the model's input in a lineage (its channels are the image's R, G, B)."""
