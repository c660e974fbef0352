"""``objects``: composite objects made of parts, from a seed, with a mask of every part.

Nine classes: the single shapes ``circle``, ``square``, ``triangle``, ``star``, and five objects
built from them: a ``house`` (a square body under a triangle roof), a ``tree`` (a triangle crown
on a bar trunk), a ``car`` (a bar body on two circle wheels, with a square cabin), a
``snowman`` (two stacked circles) and a ``face`` (a circle with two dot eyes and a bar mouth).
So a triangle is a part of a house, of a tree, or an object of its own, and only the parts
around it tell which: a network has to combine parts into wholes.

Every sample is a function of ``(seed, index)``: random size (the object spans 35-80% of the
image), position, rotation (up to 30 degrees either way, so a house stays a house), a colour
per part (visible against what is under it), an occluder over part of the object in a third of
the images, and one of the four backgrounds of the shapes dataset (flat, gradient, noise,
texture). Drawn anti-aliased (supersampled), 128x128 by default. Each sample has an object
mask (class + 1) and a part mask (part kind + 1, :data:`PART_KINDS`), and lists the part kinds
that stay visible.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from featuremaps.data.shapes import BACKGROUNDS, background_image, sample_rng, visible_colour
from featuremaps.errors import SettingsError

__all__ = ["EXAMPLE_SEED", "OBJECT_CLASSES", "PART_KINDS", "ObjectImage", "draw_object", "example_object"]

OBJECT_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star", "house", "tree", "car", "snowman",
                                   "face")
PART_KINDS: tuple[str, ...] = ("circle", "square", "triangle", "star", "bar", "dot")
_SUPERSAMPLE = 3
_VISIBLE = 12  # pixels a part needs to stay visible after occlusion to count as present


def _rect(x0: float, y0: float, x1: float, y1: float) -> list[tuple[float, float]]:
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _star(cx: float, cy: float, radius: float, inner: float) -> list[tuple[float, float]]:
    return [(cx + (radius if k % 2 == 0 else inner) * math.cos(-math.pi / 2 + k * math.pi / 5),
             cy + (radius if k % 2 == 0 else inner) * math.sin(-math.pi / 2 + k * math.pi / 5)) for k in range(10)]


def _layout(name: str, rng: np.random.Generator) -> list[tuple[str, list[tuple[float, float]] | tuple[float, ...]]]:
    """The parts of an object: ``(part kind, polygon points or (cx, cy, r))``, back to front."""
    jitter = lambda a, b: float(rng.uniform(a, b))  # noqa: E731 - proportions vary a little
    if name == "circle":
        return [("circle", (0.0, 0.0, 0.95))]
    if name == "square":
        return [("square", _rect(-0.8, -0.8, 0.8, 0.8))]
    if name == "triangle":
        return [("triangle", [(0.0, -0.95), (0.95, 0.75), (-0.95, 0.75)])]
    if name == "star":
        return [("star", _star(0.0, 0.05, 0.95, 0.95 * jitter(0.38, 0.5)))]
    if name == "house":
        eave = jitter(-0.2, 0.0)
        return [("square", _rect(-0.7, eave, 0.7, 0.95)), ("triangle", [(0.0, -0.95), (0.95, eave), (-0.95, eave)])]
    if name == "tree":
        base = jitter(0.25, 0.45)
        half = jitter(0.1, 0.18)
        return [("bar", _rect(-half, base - 0.1, half, 0.98)), ("triangle", [(0.0, -0.98), (0.8, base), (-0.8, base)])]
    if name == "car":
        wheel = jitter(0.22, 0.3)
        return [("square", _rect(-0.45, -0.55, 0.35, -0.1)), ("bar", _rect(-0.98, -0.15, 0.98, 0.45)),
                ("circle", (-0.55, 0.5, wheel)), ("circle", (0.55, 0.5, wheel))]
    if name == "snowman":
        bottom = jitter(0.5, 0.58)
        head = jitter(0.34, 0.4)
        neck = 0.98 - 2 * bottom - head + 0.1  # the head sits on the body, overlapping it a little
        return [("circle", (0.0, 0.98 - bottom, bottom)), ("circle", (0.0, neck, head))]
    if name == "face":
        return [("circle", (0.0, 0.0, 0.95)), ("dot", (-0.35, -0.25, 0.13)), ("dot", (0.35, -0.25, 0.13)),
                ("bar", _rect(-0.42, 0.35, 0.42, 0.5))]
    raise SettingsError(f"unknown object {name!r}; choose from {', '.join(OBJECT_CLASSES)}")


@dataclass(frozen=True)
class ObjectImage:
    """One generated image.

    Attributes:
        image: uint8 ``(H, W, 3)``.
        object_mask: uint8 ``(H, W)``: class index + 1 on the object's visible pixels, 0 elsewhere.
        part_mask: uint8 ``(H, W)``: part kind index + 1 (:data:`PART_KINDS`) on each visible part.
        label: the object's class index (:data:`OBJECT_CLASSES`).
        parts: indices of the part kinds that stay visible (sorted, each once).
        occluded: whether an occluder covers part of the object.
        background: which background was drawn.
    """

    image: np.ndarray
    object_mask: np.ndarray
    part_mask: np.ndarray
    label: int
    parts: tuple[int, ...]
    occluded: bool
    background: str

    @property
    def part_presence(self) -> np.ndarray:
        """Multi-hot ``(len(PART_KINDS),)`` of the visible part kinds."""
        presence = np.zeros(len(PART_KINDS), np.float32)
        presence[list(self.parts)] = 1.0
        return presence


def _ellipse(draw: ImageDraw.ImageDraw, scale: int, *, box: tuple[float, float, float, float]) -> None:
    draw.ellipse(tuple(v * scale for v in box), fill=255)


def _polygon(draw: ImageDraw.ImageDraw, scale: int, *, points: list[tuple[float, float]]) -> None:
    draw.polygon([(x * scale, y * scale) for x, y in points], fill=255)


def _coverage(size: int, draw: Callable[[ImageDraw.ImageDraw, int], object]) -> np.ndarray:
    """Anti-aliased coverage ``(size, size)`` in [0, 1] of what ``draw(ImageDraw, scale)`` draws."""
    big = size * _SUPERSAMPLE
    canvas = Image.new("L", (big, big), 0)
    draw(ImageDraw.Draw(canvas), _SUPERSAMPLE)
    return np.asarray(canvas.resize((size, size), Image.Resampling.BOX), dtype=np.float64) / 255.0


def draw_object(seed: int, index: int, size: int = 128, *, label: int | None = None) -> ObjectImage:
    """Sample ``index`` of the objects dataset with ``seed`` (the class cycles with ``index``
    unless ``label`` is given, so any run of consecutive indices is balanced)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 32:
        raise SettingsError(f"size must be an int >= 32 pixels; got {size!r}")
    rng = sample_rng(seed, index)
    label = index % len(OBJECT_CLASSES) if label is None else label
    if not 0 <= label < len(OBJECT_CLASSES):
        raise SettingsError(f"label must be in 0..{len(OBJECT_CLASSES) - 1}; got {label}")
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    background = background_image(rng, size, kind)
    half = float(rng.uniform(0.175, 0.4)) * size  # the object spans 35-80% of the image
    reach = half * math.sqrt(2)  # its corners, whatever the rotation
    margin = min(reach, size / 2)
    cx, cy = rng.uniform(margin, size - margin), rng.uniform(margin, size - margin)
    angle = math.radians(float(rng.uniform(-30, 30)))
    cos, sin = math.cos(angle), math.sin(angle)

    def place(x: float, y: float) -> tuple[float, float]:
        return cx + half * (x * cos - y * sin), cy + half * (x * sin + y * cos)

    image = background.copy()
    object_mask = np.zeros((size, size), np.uint8)
    part_mask = np.zeros((size, size), np.uint8)
    for part, geometry in _layout(OBJECT_CLASSES[label], rng):
        if part in ("circle", "dot"):
            px, py, radius = (float(v) for v in geometry[:3])  # type: ignore[arg-type]  # (cx, cy, r)
            x, y = place(px, py)
            box = (x - radius * half, y - radius * half, x + radius * half, y + radius * half)
            shape = functools.partial(_ellipse, box=box)
        else:
            points = [place(float(px), float(py)) for px, py in geometry]  # type: ignore[misc]  # polygon points
            shape = functools.partial(_polygon, points=points)
        alpha = _coverage(size, shape)
        colour = visible_colour(rng, image, alpha)
        image = image * (1 - alpha[..., None]) + colour * alpha[..., None]
        covered = alpha > 0.5
        object_mask[covered] = label + 1
        part_mask[covered] = PART_KINDS.index(part) + 1
    occluded = bool(rng.random() < 1 / 3)
    if occluded:  # a jagged, noisy patch over one side of the object (it looks like no part): up to a fifth of it
        side = rng.uniform(0, 2 * math.pi)
        ox, oy = cx + 0.85 * half * math.cos(side), cy + 0.85 * half * math.sin(side)
        corners = int(rng.integers(9, 15))
        radii = half * rng.uniform(0.25, 0.6, corners)
        outline = [(ox + r * math.cos(2 * math.pi * k / corners), oy + r * math.sin(2 * math.pi * k / corners))
                   for k, r in enumerate(radii)]
        blob = _coverage(size, lambda draw, s: draw.polygon([(x * s, y * s) for x, y in outline], fill=255))
        patch = np.clip(rng.uniform(0.15, 0.85, 3) + rng.normal(0, 0.18, (size, size, 3)), 0, 1)
        image = image * (1 - blob[..., None]) + patch * blob[..., None]
        hidden = blob > 0.5
        object_mask[hidden] = 0
        part_mask[hidden] = 0
    counts = np.bincount(part_mask.ravel(), minlength=len(PART_KINDS) + 1)[1:]
    parts = tuple(int(k) for k in np.flatnonzero(counts >= _VISIBLE))
    return ObjectImage((image * 255).round().astype(np.uint8), object_mask, part_mask, label, parts, occluded, kind)


EXAMPLE_SEED = 777
"""The seed of :func:`example_object`: no bundled model trained, was validated or calibrated on it."""


def example_object(name: str, seed: int = EXAMPLE_SEED, size: int = 128) -> np.ndarray:
    """The first unoccluded generated image of class ``name`` from ``seed``, ``(size, size, 3)`` uint8."""
    if name not in OBJECT_CLASSES:
        raise SettingsError(f"no object class {name!r}; the classes are {', '.join(OBJECT_CLASSES)}")
    index = 0
    while True:
        drawn = draw_object(seed, index, size, label=OBJECT_CLASSES.index(name))
        if not drawn.occluded:
            return np.asarray(drawn.image)
        index += 1
