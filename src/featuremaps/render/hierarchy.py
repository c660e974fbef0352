"""The picture of the hierarchy probes: what each layer's pooled maps tell, and how many channels detect a
part or a whole object, low to high (the results come from :mod:`featuremaps.analysis.hierarchy`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from featuremaps.errors import SettingsError

__all__ = ["render_hierarchy"]


def render_hierarchy(results: Sequence[Any], *, title: str | None = None) -> Image.Image:
    """Probe accuracy against depth for each :class:`~featuremaps.analysis.hierarchy.Hierarchy` result (a
    trained model and its control), as a PIL image."""
    import io
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not results:
        raise SettingsError("nothing to draw: give at least one hierarchy result")
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5.4), dpi=110)
    styles = ["-", "--", ":", "-."]
    first = results[0]
    names = [row.layer for row in first.layers]
    ticks = [textwrap.fill(row.layer, 16) + (f"\nRF {row.receptive_field:.0f}" if row.receptive_field else "\nRF all")
             for row in first.layers]
    for number, result in enumerate(results):
        style = styles[number % len(styles)]
        label = textwrap.fill(f"{result.model} ({result.weights})", 44)
        x = list(range(len(result.layers)))
        left.plot(x, [r.object_accuracy for r in result.layers], style, marker="o", color="tab:blue",
                  label=f"objects, {label}")
        if all(r.part_accuracy is not None for r in result.layers):
            left.plot(x, [r.part_accuracy for r in result.layers], style, marker="s", color="tab:orange",
                      label=f"parts, {label}")
        if all(r.part_detectors is not None for r in result.layers):
            right.plot(x, [r.part_detectors for r in result.layers], style, marker="s", color="tab:orange",
                       label=f"part detectors, {label}")
            right.plot(x, [r.object_detectors for r in result.layers], style, marker="o", color="tab:green",
                       label=f"object detectors, {label}")
    left.axhline(first.object_chance, color="tab:blue", lw=0.8, alpha=0.5)
    left.axhline(0.5, color="tab:orange", lw=0.8, alpha=0.5)
    left.set_ylim(0, 1.02)
    left.set_ylabel("held-out accuracy of a linear probe")
    left.set_title("What the pooled maps tell (thin lines: chance)")
    right.set_ylabel(f"channels with ROC AUC >= {first.detector_auc}")
    right.set_title("Channels that detect a part or a whole object")
    for axis in (left, right):
        axis.set_xticks(range(len(names)), ticks, fontsize=8)
        axis.grid(alpha=0.3)
        # below the axes (never over a curve), with handles long enough to show dashes as dashes
        axis.legend(fontsize=7, handlelength=4.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1,
                    frameon=False)
    figure.suptitle(textwrap.fill(title or f"The hierarchy of {first.model} on {first.dataset}, low to high", 110))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")  # nothing drawn outside the figure is cut
    plt.close(figure)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")
