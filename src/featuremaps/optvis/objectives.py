"""What an optimised image should excite: a channel, one unit, a class logit, a direction.

Each objective is a number computed from one image's activations; the optimiser makes it
large (a negated objective: small). ``-channel("layer3", 5)`` is the negative direction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch

from featuremaps.errors import SettingsError

__all__ = ["OUTPUT", "Objective", "channel", "direction", "logit", "unit"]

Kind = Literal["channel", "unit", "logit", "direction"]
OUTPUT = "output"
"""The layer name of logit objectives: the model's own output ``(N, K)``."""


@dataclass(frozen=True)
class Objective:
    """One number to maximise per image.

    Attributes:
        kind: ``channel`` (mean of a map), ``unit`` (one position of a map; default its centre),
            ``logit`` (one output of the model) or ``direction`` (weighted sum of channel means).
        layer: the layer whose output it reads (:data:`OUTPUT` for logits).
        index: the channel or class (``channel``, ``unit``, ``logit``).
        weights: ``((channel, weight), ...)`` of a direction.
        position: ``(y, x)`` of a unit, or None for the map's centre.
        sign: +1 to excite, -1 for the negative direction.
        name: a class name to show with a logit.
    """

    kind: Kind
    layer: str
    index: int | None = None
    weights: tuple[tuple[int, float], ...] = ()
    position: tuple[int, int] | None = None
    sign: float = 1.0
    name: str | None = None

    def __neg__(self) -> Objective:
        return replace(self, sign=-self.sign)

    @property
    def channels(self) -> list[int]:
        """The channels (or classes) it reads."""
        return [c for c, _ in self.weights] if self.kind == "direction" else [int(self.index or 0)]

    @property
    def label(self) -> str:
        """Short text for a picture: ``layer3:5``, ``-layer3:5``, ``layer3:5 @ 7,7``, ``logit 2 house``."""
        minus = "-" if self.sign < 0 else ""
        if self.kind == "logit":
            return f"{minus}logit {self.index}" + (f" {self.name}" if self.name else "")
        if self.kind == "direction":
            terms = " ".join(f"{w:+g}*{c}" for c, w in self.weights)
            return f"{minus}{self.layer}: {terms}"
        where = "" if self.kind == "channel" else (" @ centre" if self.position is None
                                                   else f" @ {self.position[0]},{self.position[1]}")
        return f"{minus}{self.layer}:{self.index}{where}"

    def check(self, shape: tuple[int, ...]) -> None:
        """Raise :class:`SettingsError` unless it fits one image's activation of ``shape``."""
        spatial = len(shape) == 3
        if self.kind in ("channel", "unit", "direction") and not spatial and len(shape) != 1:
            raise SettingsError(f"{self.layer} gives {tuple(shape)} per image; a {self.kind} needs maps (C, H, W)")
        if self.kind == "unit" and not spatial:
            raise SettingsError(f"{self.layer} has no spatial maps (shape {tuple(shape)}); use a channel objective")
        count = shape[0]
        what = "classes" if self.kind == "logit" else "maps"
        for index in self.channels:
            if not 0 <= index < count:
                raise SettingsError(f"{self.label}: index {index} is out of range; {self.layer} has {count} {what} "
                                    f"(0..{count - 1})")
        if self.kind == "unit" and self.position is not None:
            y, x = self.position
            if not (0 <= y < shape[1] and 0 <= x < shape[2]):
                raise SettingsError(f"{self.label}: position is outside the {shape[1]}x{shape[2]} map")

    def value(self, activation: torch.Tensor) -> torch.Tensor:
        """The objective (a scalar) of one image's activation ``(C, H, W)`` or ``(C,)``."""
        if self.kind == "direction":
            reduced = activation.flatten(1).mean(dim=1) if activation.ndim == 3 else activation
            index = torch.tensor([c for c, _ in self.weights], device=activation.device)
            weight = torch.tensor([w for _, w in self.weights], device=activation.device, dtype=reduced.dtype)
            total = (reduced[index] * weight).sum()
        else:
            selected = activation[int(self.index or 0)]
            if self.kind == "unit":
                y, x = self.position if self.position is not None else (selected.shape[0] // 2, selected.shape[1] // 2)
                total = selected[y, x]
            else:
                total = selected.mean()
        return total * self.sign

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "layer": self.layer, "index": self.index, "weights": [list(w) for w in self.weights],
                "position": list(self.position) if self.position is not None else None, "sign": self.sign,
                "name": self.name, "label": self.label}


def _index(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SettingsError(f"{what} must be an int >= 0; got {value!r}")
    return value


def _layer(layer: Any) -> str:
    if not isinstance(layer, str) or not layer:
        raise SettingsError(f"layer must be a layer name; got {layer!r}")
    return layer


def channel(layer: str, index: int) -> Objective:
    """The mean of map ``index`` of ``layer``."""
    return Objective("channel", _layer(layer), _index(index, "channel"))


def unit(layer: str, index: int, y: int | None = None, x: int | None = None) -> Objective:
    """One position ``(y, x)`` of map ``index`` of ``layer`` (default: the centre of the map)."""
    if (y is None) != (x is None):
        raise SettingsError("give both y and x, or neither (the centre)")
    position = None if y is None or x is None else (_index(y, "y"), _index(x, "x"))
    return Objective("unit", _layer(layer), _index(index, "channel"), position=position)


def logit(index: int, name: str | None = None) -> Objective:
    """Output ``index`` of the model (a class logit)."""
    return Objective("logit", OUTPUT, _index(index, "class index"), name=name)


def direction(layer: str, weights: Mapping[int, float]) -> Objective:
    """``sum(weight * mean of map channel)`` over ``weights`` ``{channel: weight}`` of ``layer``."""
    if not isinstance(weights, Mapping) or not weights:
        raise SettingsError("a direction needs at least one {channel: weight}")
    pairs = []
    for key, weight in weights.items():
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not torch.isfinite(torch.tensor(weight)):
            raise SettingsError(f"weight of channel {key!r} must be a finite number; got {weight!r}")
        pairs.append((_index(key, "channel"), float(weight)))
    return Objective("direction", _layer(layer), weights=tuple(pairs))
