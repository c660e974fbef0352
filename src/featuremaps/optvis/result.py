"""The result of a feature visualisation: images, objectives, values and their history."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from featuremaps.optvis.objectives import Objective
from featuremaps.optvis.picture import render_visualization

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
                            "best": float(self.history[:, i].max())}
                           for i, (objective, value) in enumerate(zip(self.objectives, self.values, strict=True))]}
