"""``shapes``: a synthetic dataset of coloured shapes on varied backgrounds, from a seed.

Every sample is a function of ``(seed, index)`` alone, so datasets are reproducible and any
sample can be made on its own. A shape has a random size, position, rotation and colour
(kept visibly different from the background) and is drawn anti-aliased: it is rendered 4x
larger as an alpha mask, shrunk, and composited on one of four backgrounds:

- ``flat``: one colour (often white or black);
- ``gradient``: a linear blend of two colours at a random angle;
- ``noise``: a colour with per-pixel Gaussian noise;
- ``texture``: stripes or a checkerboard of two close colours.

Each sample also has its per-pixel mask: ``class index + 1`` on the shape, 0 elsewhere
(where the shape covers more than half a pixel). :func:`shapes_scene` draws 1 to 4
non-overlapping shapes in one image for segmentation.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from featuremaps.errors import SettingsError
from featuremaps.images import LUMA

__all__ = ["BACKGROUNDS", "SHAPE_CLASSES", "ShapeImage", "background_image", "draw_shape", "sample_rng", "shapes_scene",
           "visible_colour"]

SHAPE_CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star")
BACKGROUNDS: tuple[str, ...] = ("flat", "gradient", "noise", "texture")
_SUPERSAMPLE = 4


@dataclass(frozen=True)
class ShapeImage:
    """One generated image.

    Attributes:
        image: uint8 ``(H, W, 3)``.
        mask: uint8 ``(H, W)``: class index + 1 on shapes, 0 on the background.
        labels: class index of each shape drawn (one for a classification sample).
        background: which background was drawn.
    """

    image: np.ndarray
    mask: np.ndarray
    labels: tuple[int, ...]
    background: str


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of sample ``index`` of a dataset with ``seed``."""
    return np.random.default_rng([int(seed), int(index)])


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    hue, saturation, value = rng.random(), rng.uniform(0.45, 1.0), rng.uniform(0.45, 1.0)
    return np.asarray(colorsys.hsv_to_rgb(hue, saturation, value))


def _luma(colour: np.ndarray) -> float:
    return float(np.dot(colour, LUMA))


def background_image(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """A background of ``kind`` (:data:`BACKGROUNDS`): float ``(size, size, 3)`` in [0, 1]."""
    if kind == "flat":
        pick = rng.random()
        colour = np.ones(3) if pick < 0.2 else np.zeros(3) + 0.05 if pick < 0.3 else rng.random(3)
        return np.broadcast_to(colour, (size, size, 3)).copy()
    y, x = np.mgrid[0:size, 0:size] / max(size - 1, 1)
    if kind == "gradient":
        angle = rng.uniform(0, 2 * math.pi)
        t = (x * math.cos(angle) + y * math.sin(angle))
        t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
        a, b = rng.random(3), rng.random(3)
        return a * (1 - t[..., None]) + b * t[..., None]
    if kind == "noise":
        base = rng.uniform(0.15, 0.85, 3)
        return np.clip(base + rng.normal(0, rng.uniform(0.04, 0.14), (size, size, 3)), 0, 1)
    if kind == "texture":
        a = rng.uniform(0.1, 0.9, 3)
        b = np.clip(a + rng.uniform(-0.25, 0.25, 3), 0, 1)
        if rng.random() < 0.5:
            angle, frequency = rng.uniform(0, math.pi), rng.uniform(3, 9)
            t = 0.5 + 0.5 * np.sin(2 * math.pi * frequency * (x * math.cos(angle) + y * math.sin(angle)))
        else:
            cells = int(rng.integers(4, 10))
            t = ((np.floor(x * cells) + np.floor(y * cells)) % 2).astype(float)
        return a * (1 - t[..., None]) + b * t[..., None]
    raise SettingsError(f"unknown background {kind!r}; choose from {', '.join(BACKGROUNDS)}")


def _polygon(kind: str, cx: float, cy: float, radius: float, angle: float, rng: np.random.Generator):
    if kind == "square":
        corners, radii = 4, [radius] * 4
    elif kind == "triangle":
        corners, radii = 3, [radius] * 3
    elif kind == "star":
        corners, inner = 10, radius * rng.uniform(0.38, 0.5)
        radii = [radius if k % 2 == 0 else inner for k in range(corners)]
    else:
        raise SettingsError(f"unknown shape {kind!r}")
    return [(cx + r * math.cos(angle + 2 * math.pi * k / corners), cy + r * math.sin(angle + 2 * math.pi * k / corners))
            for k, r in enumerate(radii)]


def _alpha(kind: str, size: int, cx: float, cy: float, radius: float, angle: float,
           rng: np.random.Generator) -> np.ndarray:
    """Coverage ``(size, size)`` in [0, 1] of one shape, anti-aliased by supersampling."""
    big = size * _SUPERSAMPLE
    canvas = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(canvas)
    s = _SUPERSAMPLE
    if kind == "circle":
        draw.ellipse(((cx - radius) * s, (cy - radius) * s, (cx + radius) * s, (cy + radius) * s), fill=255)
    else:
        draw.polygon([(px * s, py * s) for px, py in _polygon(kind, cx, cy, radius, angle, rng)], fill=255)
    return np.asarray(canvas.resize((size, size), Image.Resampling.BOX), dtype=np.float64) / 255.0


def visible_colour(rng: np.random.Generator, background: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """A random colour that stands out (in luma or in a channel) from what is under ``alpha``."""
    under = background[alpha > 0.5].mean(axis=0) if (alpha > 0.5).any() else background.mean(axis=(0, 1))
    for _ in range(20):
        colour = _random_colour(rng) if rng.random() > 0.1 else np.full(3, rng.choice([0.05, 0.95]))
        if abs(_luma(colour) - _luma(under)) > 0.18 or np.abs(colour - under).max() > 0.45:
            return colour
    return 1.0 - under  # the opposite of the background is always visible


def _place(rng: np.random.Generator, size: int, small: float, large: float) -> tuple[float, float, float, float]:
    radius = rng.uniform(small, large) * size
    cx, cy = rng.uniform(radius, size - radius), rng.uniform(radius, size - radius)
    return cx, cy, radius, rng.uniform(0, 2 * math.pi)


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 16:
        raise SettingsError(f"size must be an int >= 16 pixels; got {size!r}")


def draw_shape(seed: int, index: int, size: int = 64, *, label: int | None = None) -> ShapeImage:
    """Sample ``index`` of the shapes dataset with ``seed``: one shape, its class, its mask.

    The class cycles with ``index`` (``index % 4``) unless ``label`` is given, so any run of
    consecutive indices is balanced.
    """
    _check_size(size)
    rng = sample_rng(seed, index)
    label = index % len(SHAPE_CLASSES) if label is None else label
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    background = background_image(rng, size, kind)
    cx, cy, radius, angle = _place(rng, size, 0.16, 0.44)
    alpha = _alpha(SHAPE_CLASSES[label], size, cx, cy, radius, angle, rng)
    colour = visible_colour(rng, background, alpha)
    image = background * (1 - alpha[..., None]) + colour * alpha[..., None]
    mask = np.where(alpha > 0.5, label + 1, 0).astype(np.uint8)
    return ShapeImage((image * 255).round().astype(np.uint8), mask, (label,), kind)


def shapes_scene(seed: int, index: int, size: int = 128, *, max_shapes: int = 4) -> ShapeImage:
    """A scene of 1 to ``max_shapes`` shapes of random classes that do not overlap.

    Each shape's circumscribed circle keeps a gap of 4% of the image from the others (a
    placement is retried up to 50 times; a shape that finds no room is left out), so every
    shape is whole and can be recognised.
    """
    _check_size(size)
    rng = sample_rng(seed, index)
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    background = background_image(rng, size, kind)
    image = background.copy()
    mask = np.zeros((size, size), np.uint8)
    labels: list[int] = []
    placed: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        label = int(rng.integers(len(SHAPE_CLASSES)))
        for _attempt in range(50):
            cx, cy, radius, angle = _place(rng, size, 0.09, 0.24)
            if all(math.hypot(cx - x, cy - y) > radius + r + 0.04 * size for x, y, r in placed):
                break
        else:
            continue
        placed.append((cx, cy, radius))
        alpha = _alpha(SHAPE_CLASSES[label], size, cx, cy, radius, angle, rng)
        colour = visible_colour(rng, background, alpha)
        image = image * (1 - alpha[..., None]) + colour * alpha[..., None]
        mask[alpha > 0.5] = label + 1
        labels.append(label)
    return ShapeImage((image * 255).round().astype(np.uint8), mask, tuple(labels), kind)
