"""The result of a feature visualisation: images, objectives, values and their history."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from featuremaps.optvis.objectives import Objective
from featuremaps.render.visualization import render_visualization

__all__ = ["Visualization"]


@dataclass
class Visualization:
    """Optimised images and what they reach.

    Attributes:
        images: ``(N, C, H, W)`` float in [0, 1], one per objective, on the CPU.
        objectives: what each image was optimised for.
        values: ``(N,)`` each objective on its final image (no transform applied).
        history: ``(steps, N)`` each objective at every step, on that step's transformed image.
        model, weights: the model's name and its weights label (``untrained (random) weights``...).
        settings: steps, size, lr, param, decorrelate, transforms, seed.
    """

    images: torch.Tensor
    objectives: tuple[Objective, ...]
    values: torch.Tensor
    history: torch.Tensor
    model: str
    weights: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def trained(self) -> bool:
        return not self.weights.startswith("untrained")

    def stuck(self) -> list[bool]:
        """Per objective: True when the optimisation never raised it above its start (e.g. the negative of
        a unit after a ReLU that is already 0: nothing can lower it further)."""
        start, best = self.history[0], self.history.max(dim=0).values
        return [bool(b - a <= 1e-6 + 1e-4 * abs(a)) for a, b in zip(start.tolist(), best.tolist(), strict=True)]

    def stuck_reason(self, index: int) -> str:
        """Why objective ``index`` could not move, in a sentence (empty when it moved)."""
        if not self.stuck()[index]:
            return ""
        objective, start = self.objectives[index], float(self.history[0, index]) + 0.0  # + 0.0: no "-0"
        text = f"{objective.label} did not move ({start:.4g} at every step)"
        if objective.sign < 0 and abs(start) <= 1e-6:
            return (text + ": the map is 0 and cannot go below 0 (after a ReLU), so its negative cannot rise; "
                    "choose the layer before the ReLU, or leave out the negative")
        return text + ": its gradient is zero here; try another layer, channel or seed"

    def steps_to_reach(self, target: float | torch.Tensor) -> torch.Tensor:
        """``(N,)`` first step (1-based) whose objective reached ``target`` (per image or one value); -1 if never."""
        reached = self.history >= torch.as_tensor(target, dtype=self.history.dtype)
        first = reached.float().argmax(dim=0) + 1
        return torch.where(reached.any(dim=0), first, torch.full_like(first, -1))

    def render(self, *, title: str | None = None, columns: int | None = None, tile: int = 128) -> Image.Image:
        """A grid of the images, each with its objective and the value it reached (see :func:`render_visualization`)."""
        return render_visualization(self, title=title, columns=columns, tile=tile)

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.render().save(buffer, format="PNG")
        return buffer.getvalue()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (not the pixels)."""
        return {"model": self.model, "weights": self.weights, "trained": self.trained, "settings": self.settings,
                "images": [{**objective.to_dict(), "value": float(value), "start": float(self.history[0, i]),
                            "best": float(self.history[:, i].max()), "moved": not self.stuck()[i],
                            "note": self.stuck_reason(i)}
                           for i, (objective, value) in enumerate(zip(self.objectives, self.values, strict=True))]}
