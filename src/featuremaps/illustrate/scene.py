"""The convolution scene: every step of one ``ConvLayer`` on one small input, as data.

A scene is computed once from the real layer and drawn by every renderer (GIF, MP4, PNG,
SVG) and exported as JSON for the web explorer, so all pictures show the same numbers,
and those numbers are the layer's own output.

Steps are ordered filter by filter, and within a filter row by row (``y``), then column
by column (``x``): step ``k`` computes ``maps[d, y, x]`` with
``k = d * H' * W' + y * W' + x``. An animation has one frame per step, so
``frames = D * H' * W'`` (``every=n`` keeps every n-th step and always the last one).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from featuremaps.conv.geometry import Padding, output_size_formula
from featuremaps.conv.layer import ConvLayer, ConvStep, PaddingMode, conv_step, pad_input
from featuremaps.errors import SettingsError, check_seed
from featuremaps.files import write_output
from featuremaps.images import load_image

__all__ = ["MAX_STEPS", "ConvScene", "SceneKind", "image_patch", "random_grid"]

SceneKind = Literal["grid", "image"]
MAX_STEPS = 20_000
"""Largest number of steps (D * H' * W') a scene may have; it is an illustration."""


@dataclass(frozen=True)
class ConvScene:
    """A ``ConvLayer`` applied to one input, with everything a drawing needs.

    Attributes:
        layer: the layer.
        input: ``(C, H, W)`` float32.
        kind: ``"grid"`` (numbers are drawn) or ``"image"`` (pixels are drawn).
        padding: the concrete padding.
        padded: ``(C, H + top + bottom, W + left + right)`` as the filters see it.
        is_padding: bool ``(Hp, Wp)``, True on padding cells (and a transposed layer's inserted zeros).
        source: int ``(Hp, Wp, 2)``: input (row, col) each padded cell copies
            (reflect, replicate, circular), or -1 for a zero padding cell.
        maps: ``(D, H', W')``, the layer's output.
        is_inserted: bool ``(Hp, Wp)``, True on the zeros a transposed layer inserts between the
            input's pixels (its border zeros are padding); all False for a convolution.
    """

    layer: ConvLayer
    input: torch.Tensor
    kind: SceneKind
    padding: Padding
    padded: torch.Tensor
    is_padding: np.ndarray
    source: np.ndarray
    maps: torch.Tensor
    is_inserted: np.ndarray

    @classmethod
    def from_layer(cls, layer: ConvLayer, x: torch.Tensor, *, kind: SceneKind = "grid") -> ConvScene:
        """Compute the scene of ``layer`` on ``x`` ``(C, H, W)``."""
        if kind not in ("grid", "image"):
            raise SettingsError(f"kind must be 'grid' or 'image'; got {kind!r}")
        if not isinstance(x, torch.Tensor) or x.ndim != 3:
            raise SettingsError(f"a scene takes one input of shape (C, H, W); got {getattr(x, 'shape', type(x))}")
        x = x.detach().to(torch.float32).cpu()
        depth, out_h, out_w = layer.output_shape(tuple(x.shape))
        if depth * out_h * out_w > MAX_STEPS:
            raise SettingsError(
                f"the scene would have {depth * out_h * out_w:,} steps (D x H' x W' = {depth} x {out_h} x {out_w}); "
                f"the limit is {MAX_STEPS:,}: use a smaller input, a larger stride or fewer filters"
            )
        size = (int(x.shape[1]), int(x.shape[2]))
        padding = layer.resolved_padding(size)
        padded = layer.pad(x[None])[0]  # (C, Hp, Wp)
        is_inserted = np.zeros(padded.shape[1:], dtype=bool)
        if layer.transposed:
            (sy, sx), (height, width) = layer.stride, layer.geometry.zero_inserted(size)[0]
            frame_h, frame_w = padded.shape[1:]
            source = np.full((frame_h, frame_w, 2), -1, dtype=np.int64)
            rows, cols = np.meshgrid(np.arange(size[0]), np.arange(size[1]), indexing="ij")
            at_y, at_x = padding.top + rows * sy, padding.left + cols * sx  # a negative border crops
            kept = (at_y >= 0) & (at_y < frame_h) & (at_x >= 0) & (at_x < frame_w)
            source[at_y[kept], at_x[kept]] = np.stack([rows[kept], cols[kept]], axis=-1)
            is_inserted[max(padding.top, 0) : padding.top + height, max(padding.left, 0) : padding.left + width] = True
            is_inserted[at_y[kept], at_x[kept]] = False
            is_padding = source[..., 0] < 0
        else:
            source = _padding_sources(size[0], size[1], padding, layer.padding_mode)
            is_padding = np.ones(padded.shape[1:], dtype=bool)
            is_padding[padding.top : padding.top + size[0], padding.left : padding.left + size[1]] = False
        with torch.no_grad():
            maps = layer(x)
        return cls(layer, x, kind, padding, padded, is_padding, source, maps, is_inserted)

    @property
    def output_shape(self) -> tuple[int, int, int]:
        depth, height, width = self.maps.shape
        return int(depth), int(height), int(width)

    @property
    def formula(self) -> tuple[str, str]:
        return output_size_formula(self.layer.geometry, (self.input.shape[1], self.input.shape[2]))

    def __len__(self) -> int:
        depth, height, width = self.output_shape
        return depth * height * width

    def step_index(self, filter: int, y: int, x: int) -> int:
        _, height, width = self.output_shape
        return (filter * height + y) * width + x

    @cached_property
    def _products(self) -> torch.Tensor:
        """Products of every step: ``(D, H', W', C / groups, kh, kw)``."""
        layer = self.layer
        (kh, kw), (sy, sx), (dy, dx) = layer.kernel_size, layer.window_stride, layer.dilation
        depth, out_h, out_w = self.output_shape
        per_group = layer.in_channels // layer.groups
        per_filter_group = depth // layer.groups
        patches = F.unfold(self.padded[None], (kh, kw), dilation=(dy, dx), stride=(sy, sx))  # (1, C*kh*kw, H'W')
        patches = patches[0].T.reshape(out_h, out_w, layer.in_channels, kh, kw)  # (H', W', C, kh, kw)
        groups = torch.arange(depth) // per_filter_group
        channel_index = groups[:, None] * per_group + torch.arange(per_group)[None]  # (D, C/g)
        selected = patches[:, :, channel_index]  # (H', W', D, C/g, kh, kw)
        return selected.permute(2, 0, 1, 3, 4, 5) * layer.weight.to(torch.float32)[:, None, None]

    def step(self, index: int) -> ConvStep:
        """Step ``index`` (see the module docstring for the order): the same :class:`ConvStep` as
        ``layer.explain`` gives for that output value."""
        if not 0 <= index < len(self):
            raise SettingsError(f"step must be in 0..{len(self) - 1}; got {index}")
        _, out_h, out_w = self.output_shape
        filter_, rest = divmod(index, out_h * out_w)
        y, x = divmod(rest, out_w)
        size = (int(self.input.shape[1]), int(self.input.shape[2]))
        return conv_step(self.layer, self.padded, self.padding, size, self.maps, filter=filter_, y=y, x=x,
                         products=self._products[filter_, y, x])

    def frame_steps(self, every: int = 1) -> list[int]:
        """Indices of the steps that become frames: every ``every``-th, and always the last."""
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise SettingsError(f"every must be an int >= 1; got {every!r}")
        indices = list(range(0, len(self), every))
        if indices[-1] != len(self) - 1:
            indices.append(len(self) - 1)
        return indices

    def to_dict(self, *, include_steps: bool = True) -> dict[str, Any]:
        """Everything the web explorer needs to replay the scene, as plain JSON types (``steps`` empty without
        ``include_steps``: the page computes them from ``padded`` and the weights)."""
        layer = self.layer
        steps = [self.step(k) for k in range(len(self))] if include_steps else []
        return {
            "version": 2,
            "coordinates": "padded_rows/padded_cols index the padded input (row 0 = the first padding row)",
            "kind": self.kind,
            "input": {"shape": list(self.input.shape), "values": _round(self.input)},
            "padding": {
                "top": self.padding.top, "bottom": self.padding.bottom,
                "left": self.padding.left, "right": self.padding.right, "mode": layer.padding_mode,
            },
            "padded": {
                "shape": list(self.padded.shape),
                "values": _round(self.padded),
                "is_padding": self.is_padding.tolist(),
                "is_inserted": self.is_inserted.tolist(),
                "source": self.source.tolist(),
            },
            "layer": {
                "in_channels": layer.in_channels,
                "depth": layer.depth,
                "kernel_size": list(layer.kernel_size),
                "stride": list(layer.stride),
                "window_stride": list(layer.window_stride),
                "transposed": layer.transposed,
                "output_padding": list(layer.geometry.output_padding),
                "dilation": list(layer.dilation),
                "groups": layer.groups,
                "relu": layer.relu,
                "filters": list(layer.filter_names),
                "weights": _round(layer.weight),
                "bias": _round(layer.bias) if layer.bias is not None else None,
            },
            "output": {"shape": list(self.output_shape), "values": _round(self.maps)},
            "formula": list(self.formula),
            "order": "filter, then row y, then column x; step k computes maps[d, y, x], k = (d * H' + y) * W' + x",
            "steps": [
                {
                    "filter": s.filter, "y": s.y, "x": s.x, "padded_rows": list(s.padded_rows),
                    "padded_cols": list(s.padded_cols), "channels": list(s.channels), "products": _round(s.products),
                    "channel_sums": [round(v, 6) for v in s.channel_sums], "bias": round(s.bias, 6),
                    "total": round(s.total, 6), "value": round(s.value, 6),
                }
                for s in steps
            ],
        }

    def write_json(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write :meth:`to_dict` as JSON (atomic; a file featuremaps did not write only with ``overwrite``)."""
        text = json.dumps(self.to_dict(), separators=(",", ":"))
        return write_output(path, lambda temp: temp.write_text(text), overwrite=overwrite)


def _round(values: torch.Tensor | np.ndarray, digits: int = 6) -> Any:
    array = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    return np.round(array.astype(np.float64), digits).tolist()


def _padding_sources(height: int, width: int, padding: Padding, mode: PaddingMode) -> np.ndarray:
    """For each padded cell, the input (row, col) it copies; -1 where it is a zero."""
    rows = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width)
    cols = torch.arange(width, dtype=torch.float32)[None, :].expand(height, width)
    grid = torch.stack([rows, cols])[None]  # (1, 2, H, W)
    if mode == "zeros":
        padded = F.pad(grid + 1, padding.for_torch(), mode="constant", value=0.0) - 1
    else:
        padded = pad_input(grid, padding, mode)
    return padded[0].permute(1, 2, 0).round().to(torch.int64).numpy()  # (Hp, Wp, 2)


MAX_SCENE_SIDE = 64
"""A scene draws every cell with its value: larger grids are unreadable (and take hours of frames)."""


def _check_grid(height: int, width: int, channels: int) -> None:
    for name, value in (("height", height), ("width", width), ("channels", channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SettingsError(f"{name} must be an int >= 1; got {value!r}")
    if max(height, width) > MAX_SCENE_SIDE or channels > 16:
        raise SettingsError(f"a step-by-step scene draws every cell: at most {MAX_SCENE_SIDE}x{MAX_SCENE_SIDE} cells "
                            f"and 16 channels; got {channels}x{height}x{width} (featuremaps conv computes the maps "
                            "of a large image)")


def random_grid(height: int, width: int, channels: int = 1, *, seed: int = 0, high: int = 9) -> torch.Tensor:
    """A seeded grid of small integers ``0..high`` as float32 ``(C, H, W)``."""
    _check_grid(height, width, channels)
    generator = torch.Generator().manual_seed(check_seed(seed))
    return torch.randint(0, high + 1, (channels, height, width), generator=generator).to(torch.float32)


def image_patch(source: Any, height: int, width: int, *, channels: int = 3) -> torch.Tensor:
    """A real image shrunk to ``(channels, height, width)``: centre-cropped to that aspect, then area-resized.

    ``channels`` is 1 (gray) or 3 (RGB).
    """
    if channels not in (1, 3):
        raise SettingsError(f"an image scene has 1 (gray) or 3 (RGB) channels; got {channels}")
    _check_grid(height, width, channels)
    image = load_image(source, mode="gray" if channels == 1 else "rgb")
    _, full_h, full_w = image.shape
    aspect = width / height
    crop_h, crop_w = (full_h, min(full_w, round(full_h * aspect))) if full_w / full_h > aspect else (
        min(full_h, round(full_w / aspect)), full_w)
    top, left = (full_h - crop_h) // 2, (full_w - crop_w) // 2
    crop = image[:, top : top + crop_h, left : left + crop_w]
    resized = F.interpolate(crop[None], size=(height, width), mode="area")[0]
    return resized.clamp(0, 1)

