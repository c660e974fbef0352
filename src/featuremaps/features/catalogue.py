"""The layer catalogue: every module of a model, in forward order, with its output shape,
its settings, its cumulative stride (jump) and its receptive field on the input.

How the receptive field is computed: one forward pass on a zero image of the model's input
size runs under a ``TorchFunctionMode`` that follows every tensor through every torch call
(functional ops such as ``x + identity`` and ``torch.cat`` included). Each tensor carries
the field of its units: size, jump and start of the input region unit (0, 0) sees.

- convolution and pooling (any padding, stride, dilation, ``ceil_mode``): composed exactly;
  ``F.pad`` shifts the start;
- operations whose units do not all see regions of one size one step apart (adaptive pooling
  with a non-integer ratio, which uses PyTorch's bins ``floor(i*in/out)`` to ``ceil((i+1)*in/out)``,
  transposed convolution with a stride, where an output unit takes 1 or more input units
  depending on its position, and resizes that enlarge or use fractional steps: ``F.interpolate``
  in every mode, whose taps are read off the resize itself) make the layer ``uneven``:
  ``receptive_field`` then gives the largest region;
- every unit's exact input pixels (``LayerInfo.pixels``, its gradient support's bounding box) are
  carried alongside as a table per axis: they leave out padding, and the input pixels that no unit
  of an earlier layer reads (a strided layer that drops the last rows);
- operations that combine tensors of the same spatial size (residual additions,
  concatenation, multiplication, normalisation, activations) take the union of their
  inputs' fields: where branches make paths differ, the largest region wins (the catalogue
  marks such layers ``merged``);
- anything that mixes all positions (flatten, linear, global pooling, attention over all
  tokens) makes the field global: such units see the whole input;
- a map multiplied or shifted by a summary of the whole image (squeeze-excitation gates)
  keeps its local field, and the layer is marked ``global_context``.

A module that runs several times in one forward (torchvision's ResNet blocks reuse one
ReLU) has one entry per call: ``layer1.0.relu`` for the first, ``layer1.0.relu:1`` for the next.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from featuremaps.errors import SettingsError
from featuremaps.features.hooks import first_tensor, module_calls, tensors_in
from featuremaps.features.info import model_device, model_info

__all__ = ["LayerInfo", "LayerList", "list_layers"]


@dataclass(frozen=True)
class _Field:
    """Receptive field of the units of a tensor, per axis (height, width), in input pixels.

    ``size``, ``jump`` and ``start`` are the textbook field (unit ``i`` sees ``start + i * jump`` to
    ``start + i * jump + size - 1``, padding included) while every unit's field has that form; once an
    operation breaks it (``uneven``) they summarise ``spans`` (largest region, mean step, first start).
    ``spans`` is always exact: the first and last input pixel each unit reads (``_EMPTY``: none).
    """

    size: tuple[float, float]
    jump: tuple[float, float]
    start: tuple[float, float]
    spans: tuple[_Spans, _Spans]
    merged: bool = False
    axes: tuple[int, int] = (2, 3)  # which tensor dimensions are height and width (NCHW: 2, 3)
    context: bool = False  # also gated by a global summary (squeeze-excitation)
    uneven: bool = False

    def moved(self, axes: tuple[int, int]) -> _Field:
        return replace(self, axes=axes)


_Span = tuple[float, float]
_Spans = tuple[_Span, ...]
_EMPTY: _Span = (math.inf, -math.inf)  # a unit that reads no input pixel (only padding)
_Sources = Callable[[int, int, int], Iterable[int]]  # (axis, output unit, input units) -> the input units it reads


def _identity(sides: tuple[int, int]) -> _Field:
    spans = tuple(tuple((float(i), float(i)) for i in range(side)) for side in sides)
    return _Field((1.0, 1.0), (1.0, 1.0), (0.0, 0.0), (spans[0], spans[1]))


def _joined(spans: _Spans, units: Iterable[int]) -> _Span:
    chosen = [spans[u] for u in units if 0 <= u < len(spans)]
    return (min((s[0] for s in chosen), default=math.inf), max((s[1] for s in chosen), default=-math.inf))


def _mapped(field_: _Field, counts_out: tuple[int, int], sources: _Sources) -> tuple[_Spans, _Spans]:
    """Exact spans after an operation: output unit ``o`` along ``axis`` joins the input units ``sources``."""
    tables = []
    for axis in (0, 1):
        spans = field_.spans[axis]
        tables.append(tuple(_joined(spans, sources(axis, unit, len(spans))) for unit in range(counts_out[axis])))
    return tables[0], tables[1]


def _tabled(field_: _Field, tables: tuple[_Spans, _Spans]) -> _Field:
    """An uneven field: size, jump and start summarise the exact spans (largest, mean, first)."""
    size, jump, start = [], [], []
    for spans in tables:
        seen = [s for s in spans if s[0] <= s[1]]
        size.append(max((s[1] - s[0] + 1 for s in seen), default=0.0))
        start.append(seen[0][0] if seen else 0.0)
        jump.append((seen[-1][0] - seen[0][0]) / (len(seen) - 1) if len(seen) > 1 else 1.0)
    return replace(field_, size=(size[0], size[1]), jump=(jump[0], jump[1]), start=(start[0], start[1]),
                   spans=tables, uneven=True)


_GLOBAL = "global"


def _pair(value: Any, default: int) -> tuple[int, int]:
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        return (default, default)
    if isinstance(value, int):
        return (value, value)
    values = list(value)
    return (int(values[0]), int(values[-1])) if len(values) in (1, 2) else (int(values[0]), int(values[1]))


def _window(field_: _Field, kernel, stride, before, dilation) -> _Field:
    """The textbook field after a sliding window (the spans are set by the caller)."""
    size, jump, start = [], [], []
    for axis in (0, 1):
        extent = dilation[axis] * (kernel[axis] - 1) + 1
        size.append(field_.size[axis] + (extent - 1) * field_.jump[axis])
        start.append(field_.start[axis] - before[axis] * field_.jump[axis])
        jump.append(field_.jump[axis] * stride[axis])
    return replace(field_, size=(size[0], size[1]), jump=(jump[0], jump[1]), start=(start[0], start[1]))


def _union(fields: list[_Field]) -> _Field:
    """Fields of tensors of one spatial size combined (residual sums, concatenation): each unit joins them."""
    if len(fields) == 1:
        return fields[0]
    tables = tuple(tuple(_joined(column, range(len(column))) for column in zip(*(f.spans[axis] for f in fields)))
                   for axis in (0, 1))
    spans = (tables[0], tables[1])
    context = any(f.context for f in fields)
    if any(f.uneven for f in fields):
        merged = any(f.merged for f in fields) or len({f.spans for f in fields}) > 1
        return replace(_tabled(fields[0], spans), merged=merged, context=context)
    size, start, jump = [], [], []
    for axis in (0, 1):
        first = min(f.start[axis] for f in fields)
        last = max(f.start[axis] + f.size[axis] - 1 for f in fields)
        start.append(first)
        size.append(last - first + 1)
        jump.append(max(f.jump[axis] for f in fields))
    differ = len({(f.size, f.start, f.jump) for f in fields}) > 1
    return _Field((size[0], size[1]), (jump[0], jump[1]), (start[0], start[1]), spans,
                  any(f.merged for f in fields) or differ, fields[0].axes, context)


def _resize_sources(args: tuple, kwargs: dict, source: torch.Tensor, out_size: tuple[int, int]) -> _Sources:
    """The input units each output unit of ``F.interpolate`` reads, per axis: the non-zero weights of the
    resize itself, found by resizing one-hot probes with the same settings (every mode, ``align_corners``,
    ``scale_factor`` or ``size``, ``antialias``), so they are PyTorch's own, rounding included."""
    size = _argument(args, kwargs, 1, "size", None)
    scale = _argument(args, kwargs, 2, "scale_factor", None)
    settings = {"mode": _argument(args, kwargs, 3, "mode", "nearest"),
                "align_corners": _argument(args, kwargs, 4, "align_corners", None),
                "recompute_scale_factor": _argument(args, kwargs, 5, "recompute_scale_factor", None),
                "antialias": _argument(args, kwargs, 6, "antialias", False)}
    dtype = source.dtype if source.dtype in (torch.float32, torch.float64) else torch.float32
    read: list[list[list[int]]] = []
    for axis in (0, 1):
        count = int(source.shape[2 + axis])
        # channel c: ones on line c across the other axis (2 wide: antialias misreads a 1-wide axis), kept as is
        probe = torch.eye(count, dtype=dtype)[:, :, None].expand(count, count, 2)[None]
        probe = probe if axis == 0 else probe.transpose(2, 3)
        if size is not None:
            target = (out_size[0], 2) if axis == 0 else (2, out_size[1])
            out = F.interpolate(probe.contiguous(), size=target, **settings)
        else:
            factors = list(scale) if isinstance(scale, (list, tuple)) else [scale, scale]
            factor = float(factors[axis] if len(factors) > axis else factors[0])
            out = F.interpolate(probe.contiguous(), scale_factor=(factor, 1.0) if axis == 0 else (1.0, factor),
                                **settings)
        weights = out[0, :, :, 0] if axis == 0 else out[0, :, 0, :]  # (input units, output units)
        if weights.shape[1] != out_size[axis]:
            raise ValueError("the probe's resize does not match the traced one")
        read.append([torch.nonzero(weights[:, unit]).flatten().tolist() for unit in range(out_size[axis])])
    return lambda axis, unit, count: read[axis][unit]


def _as_window(sources: _Sources, counts: tuple[int, int], out_size: tuple[int, int]):
    """``(kernel, stride, before)`` per axis when output unit ``o`` reads input units ``o * stride - before``
    to ``o * stride - before + kernel - 1`` on both axes (a resize by an integer factor down); else None."""
    found = []
    for axis in (0, 1):
        units = [list(sources(axis, o, counts[axis])) for o in range(out_size[axis])]
        if not units or any(not u or u != list(range(u[0], u[-1] + 1)) for u in units):
            return None
        kernel, first = len(units[0]), units[0][0]
        stride = units[1][0] - first if len(units) > 1 else 1
        if stride < 1 or any(len(u) != kernel or u[0] != first + o * stride for o, u in enumerate(units)):
            return None
        found.append((kernel, stride, -first))
    return tuple(zip(*found))


def _permutation(args: tuple, kwargs: dict) -> list[int]:
    if "dims" in kwargs:
        return list(kwargs["dims"])
    rest = args[1:]
    return list(rest[0]) if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else [int(d) for d in rest]


def _argument(args: tuple, kwargs: dict, index: int, name: str, default: Any) -> Any:
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


_POOLS = (F.max_pool2d, F.max_pool2d_with_indices, torch.max_pool2d, F.avg_pool2d, F.lp_pool2d)
_ADAPTIVE_POOLS = (F.adaptive_avg_pool2d, F.adaptive_max_pool2d, F.adaptive_max_pool2d_with_indices)


class _FieldTracer(TorchFunctionMode):
    """Follows the receptive field of every tensor through every torch function call."""

    def __init__(self, image: torch.Tensor) -> None:
        super().__init__()
        self._sides = (int(image.shape[-2]), int(image.shape[-1]))
        self._fields: dict[int, tuple[torch.Tensor, _Field | str | None]] = {id(image): (image, _identity(self._sides))}

    def field_of(self, tensor: torch.Tensor) -> _Field | str | None:
        entry = self._fields.get(id(tensor))
        return entry[1] if entry is not None and entry[0] is tensor else None

    def _known(self, tensor: torch.Tensor) -> bool:
        entry = self._fields.get(id(tensor))
        return entry is not None and entry[0] is tensor

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = [t for t in tensors_in((args, kwargs)) if self._known(t)]
        if inputs:
            result = self._propagate(func, args, kwargs, inputs, out)
            for tensor in tensors_in(out):
                self._fields[id(tensor)] = (tensor, result)
        return out

    def _propagate(self, func, args, kwargs, inputs: list[torch.Tensor], out: Any) -> _Field | str | None:
        fields = [self.field_of(t) for t in inputs]
        if any(f is None for f in fields):
            return None
        outputs = list(tensors_in(out))
        if not outputs:
            return None
        result = outputs[0]
        local = [(t, f) for t, f in zip(inputs, fields) if isinstance(f, _Field)]
        if len(local) < len(fields):  # some inputs are global summaries
            if not local:
                return _GLOBAL
            gated = self._generic(result, [t for t, _ in local], [f for _, f in local])
            # a map gated by a global summary (squeeze-excitation) keeps its local field, marked
            return replace(gated, context=True) if isinstance(gated, _Field) else _GLOBAL
        source = inputs[0]
        field_ = fields[0]
        if not isinstance(field_, _Field):
            return None
        try:
            if func in (torch.permute, torch.Tensor.permute):
                dims = [d % source.ndim for d in _permutation(args, kwargs)]
                return field_.moved((dims.index(field_.axes[0]), dims.index(field_.axes[1])))
            if field_.axes != (2, 3) or result.ndim != 4 or source.ndim != 4:
                return self._generic(result, inputs, fields)
            return self._spatial(func, args, kwargs, source, field_, result, inputs, fields)
        except (TypeError, ValueError, IndexError):
            return None

    def _generic(self, result: torch.Tensor, inputs: list[torch.Tensor], fields: list) -> _Field | str | None:
        """Ops that keep the spatial grid combine their inputs' fields; ops that drop it are global."""
        same = [
            f for t, f in zip(inputs, fields)
            if isinstance(f, _Field) and t.ndim == result.ndim
            and all(result.shape[a] == t.shape[a] for a in f.axes)
        ]
        if same:
            return _union(same)
        # A channel picked or added (x[:, 0], unsqueeze(1), a reduction over channels) keeps the grid: the
        # spatial axes stay the last two, of the same sizes (torchvision's transform_input does this).
        trailing = [
            f.moved((result.ndim - 2, result.ndim - 1)) for t, f in zip(inputs, fields)
            if isinstance(f, _Field) and result.ndim >= 2 and f.axes == (t.ndim - 2, t.ndim - 1)
            and tuple(result.shape[-2:]) == tuple(t.shape[-2:])
        ]
        if trailing:
            return _union(trailing)
        return _GLOBAL if result.ndim < max(t.ndim for t in inputs) else None

    def _spatial(self, func, args, kwargs, source, field_, result, inputs, fields) -> _Field | str | None:
        """A spatial operation: the exact spans from the input units each output unit reads, and the
        textbook field while it still describes every unit."""
        in_size = (int(source.shape[-2]), int(source.shape[-1]))
        out_size = (int(result.shape[-2]), int(result.shape[-1]))
        step = self._step(func, args, kwargs, source, in_size, out_size)
        if step is None:
            return self._generic(result, inputs, fields)  # elementwise, normalisation, residual add, concat
        if step == _GLOBAL:
            return _GLOBAL
        sources, textbook = step
        spans = _mapped(field_, out_size, sources)
        if textbook is not None and not field_.uneven:
            return replace(textbook(field_), spans=spans)
        return _tabled(field_, spans)

    def _step(self, func, args, kwargs, source, in_size, out_size):
        """``(sources, textbook)`` of a spatial operation: which input units each output unit reads, and the
        field's textbook update (None when its units do not all see regions of one size one step apart);
        ``_GLOBAL``, or None for an operation that is not spatial."""
        name = getattr(func, "__name__", "")

        def window(kernel, stride, before, dilation):
            def sources(a: int, o: int, n: int) -> range:
                first = o * stride[a] - before[a]
                return range(first, first + dilation[a] * (kernel[a] - 1) + 1, dilation[a])
            return sources, lambda f: _window(f, kernel, stride, before, dilation)

        if func in (torch.conv2d, F.conv2d):
            weight = _argument(args, kwargs, 1, "weight", None)
            kernel = tuple(weight.shape[-2:])
            stride = _pair(_argument(args, kwargs, 3, "stride", 1), 1)
            dilation = _pair(_argument(args, kwargs, 5, "dilation", 1), 1)
            padding = _argument(args, kwargs, 4, "padding", 0)
            if padding == "same":
                before = tuple(dilation[a] * (kernel[a] - 1) // 2 for a in (0, 1))
            else:
                before = (0, 0) if padding == "valid" else _pair(padding, 0)
            return window(kernel, stride, before, dilation)
        if func in _ADAPTIVE_POOLS:
            if out_size == (1, 1) and in_size != (1, 1):
                return _GLOBAL
            if all(i % o == 0 for i, o in zip(in_size, out_size)):
                ratio = tuple(i // o for i, o in zip(in_size, out_size))
                return window(ratio, ratio, (0, 0), (1, 1))
            # PyTorch's bins: unit o pools input units floor(o*in/out) .. ceil((o+1)*in/out) - 1
            return (lambda a, o, n: range(o * n // out_size[a], -(-(o + 1) * n // out_size[a]))), None
        if func in _POOLS:
            kernel = _pair(_argument(args, kwargs, 1, "kernel_size", 1), 1)
            stride = _pair(_argument(args, kwargs, 2, "stride", None) or kernel, 1)
            padding = _pair(_argument(args, kwargs, 3, "padding", 0), 0)
            is_avg = func is F.avg_pool2d
            dilation = (1, 1) if is_avg else _pair(_argument(args, kwargs, 4, "dilation", 1), 1)
            return window(kernel, stride, padding, dilation)
        if func is F.pad or name == "pad":
            pad = list(_argument(args, kwargs, 1, "pad", ()))
            left, top = (pad[0] if len(pad) > 0 else 0), (pad[2] if len(pad) > 2 else 0)
            mode = _argument(args, kwargs, 2, "mode", "constant")
            before = (top, left)

            def padded(a: int, o: int, n: int) -> range:
                j = o - before[a]
                if 0 <= j < n or mode == "constant":
                    return range(j, j + 1)
                if mode == "reflect":
                    j = -j if j < 0 else 2 * (n - 1) - j
                elif mode == "replicate":
                    j = min(max(j, 0), n - 1)
                else:  # circular
                    j %= n
                return range(j, j + 1)

            shifted = None if mode != "constant" else (lambda f: replace(
                f, start=(f.start[0] - top * f.jump[0], f.start[1] - left * f.jump[1])))
            return padded, shifted
        if func is F.conv_transpose2d or name == "conv_transpose2d":
            weight = _argument(args, kwargs, 1, "weight", None)
            kernel = tuple(weight.shape[-2:])
            stride = _pair(_argument(args, kwargs, 3, "stride", 1), 1)
            padding = _pair(_argument(args, kwargs, 4, "padding", 0), 0)
            dilation = _pair(_argument(args, kwargs, 7, "dilation", 1), 1)

            # output unit o = i * stride - padding + k * dilation: it takes the input units i that divide exactly
            def scattered(a: int, o: int, n: int) -> list[int]:
                offsets = (o + padding[a] - k * dilation[a] for k in range(kernel[a]))
                return [q // stride[a] for q in offsets if q >= 0 and q % stride[a] == 0]

            if stride != (1, 1):
                return scattered, None
            # a convolution with the kernel flipped: one size for every unit (padding above
            # dilation * (kernel - 1) crops: the first window starts inside the input)
            reach = tuple(dilation[a] * (kernel[a] - 1) for a in (0, 1))
            return scattered, lambda f: _window(f, kernel, (1, 1), tuple(reach[a] - padding[a] for a in (0, 1)),
                                                dilation)
        if func is F.interpolate or name == "interpolate":
            sources = _resize_sources(args, kwargs, source, out_size)
            uniform = _as_window(sources, in_size, out_size)
            if uniform is None:
                return sources, None
            kernel, stride, before = uniform
            return sources, lambda f: _window(f, kernel, stride, before, (1, 1))
        return None


@dataclass(frozen=True)
class LayerInfo:
    """One module call in the forward pass.

    Attributes:
        name: module name (``layer1.0.conv1``), with ``:k`` for its k-th repeated call.
        module: the module's name without the call suffix.
        call: 0 for the first call of the module, k for the k-th repeat.
        type: class name (``Conv2d``).
        depth: nesting level (0 for a child of the model).
        output_shape: output shape without the batch dimension (first tensor of a tuple).
        kernel_size, stride, padding, dilation, groups: the module's own settings, for
            convolutions and pooling (None otherwise).
        jump: cumulative stride on the input ``(y, x)``; None when global or unknown.
        receptive_field: size ``(h, w)`` of the input region one unit sees (the whole
            input when global); None when unknown.
        start: input coordinates of unit (0, 0)'s region (negative: it starts in padding).
        global_field: True when each unit depends on the whole input.
        merged: True when branches with different fields meet upstream (largest kept).
        global_context: True when the maps are also scaled by a summary of the whole
            image (squeeze-excitation); the receptive field given is the local one.
        parameters: number of parameters in the module (and its children).
        spans: ``(rows, columns)``: the exact first and last input pixel every unit reads (``(inf, -inf)``
            for a unit that reads only padding); None when global or unknown.
        uneven: True when units see regions of different sizes or steps (adaptive pooling with a
            non-integer ratio, a strided transposed convolution, an upsampling resize, or anything after
            them); then ``receptive_field`` is the largest region, ``jump`` the mean step and
            :meth:`region` reads ``spans``.
    """

    name: str
    module: str
    call: int
    type: str
    depth: int
    output_shape: tuple[int, ...]
    kernel_size: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    padding: Any = None
    dilation: tuple[int, int] | None = None
    groups: int | None = None
    jump: tuple[float, float] | None = None
    receptive_field: tuple[float, float] | None = None
    start: tuple[float, float] | None = None
    global_field: bool = False
    merged: bool = False
    global_context: bool = False
    parameters: int = 0
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    spans: tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]] | None = field(
        default=None, compare=False, repr=False)
    uneven: bool = False

    @property
    def is_spatial(self) -> bool:
        """True when the output is a stack of maps ``(C, H, W)``."""
        return len(self.output_shape) == 3

    def region(self, y: int, x: int) -> tuple[float, float, float, float]:
        """Input box ``(top, left, bottom, right)`` (inclusive) of unit ``(y, x)``'s receptive field: the
        textbook field, padding included (negative or past the input's end at the borders); for an uneven
        layer, the exact :meth:`pixels`.

        Raises:
            ValueError: the layer has no local field, or (uneven layers) the unit is outside the map
                or sees only padding.
        """
        if self.jump is None or self.receptive_field is None or self.start is None:
            raise ValueError(f"layer {self.name} has no local receptive field")
        if self.uneven:
            return self.pixels(y, x)
        top = self.start[0] + y * self.jump[0]
        left = self.start[1] + x * self.jump[1]
        return top, left, top + self.receptive_field[0] - 1, left + self.receptive_field[1] - 1

    def pixels(self, y: int, x: int) -> tuple[float, float, float, float]:
        """The input pixels unit ``(y, x)`` reads, as a box ``(top, left, bottom, right)`` (inclusive): the
        receptive field without padding and without the input pixels that no unit of an earlier layer reads
        (a strided layer that drops the last rows and columns), equal to the unit's gradient support.

        Raises:
            ValueError: no local field, the unit is outside the map, or it reads only padding.
        """
        if self.spans is None:
            raise ValueError(f"layer {self.name} has no local receptive field")
        rows, columns = self.spans
        if not (0 <= y < len(rows) and 0 <= x < len(columns)):
            raise ValueError(f"unit ({y}, {x}) is outside {self.name}'s {len(rows)}x{len(columns)} maps")
        (top, bottom), (left, right) = rows[y], columns[x]
        if top > bottom or left > right:
            raise ValueError(f"unit ({y}, {x}) of {self.name} sees only padding, no input pixel")
        return top, left, bottom, right

    def to_dict(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, tuple):
                return [plain(v) for v in value]
            if isinstance(value, float) and value.is_integer():
                return int(value)
            return value

        return {
            "name": self.name, "type": self.type, "depth": self.depth, "output_shape": list(self.output_shape),
            "stride": plain(self.jump), "receptive_field": plain(self.receptive_field), "start": plain(self.start),
            "global": self.global_field, "merged": self.merged, "global_context": self.global_context,
            "uneven": self.uneven,
            "kernel_size": plain(self.kernel_size),
            "layer_stride": plain(self.stride), "padding": plain(self.padding), "dilation": plain(self.dilation),
            "groups": self.groups, "parameters": self.parameters,
        }


def _settings(module: nn.Module) -> dict[str, Any]:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        return {"kernel_size": tuple(module.kernel_size), "stride": tuple(module.stride),
                "padding": module.padding if isinstance(module.padding, str) else tuple(module.padding),
                "dilation": tuple(module.dilation), "groups": module.groups}
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        kernel = _pair(module.kernel_size, 1)
        return {"kernel_size": kernel, "stride": _pair(module.stride, 1) if module.stride else kernel,
                "padding": _pair(module.padding, 0),
                "dilation": _pair(getattr(module, "dilation", 1), 1)}
    return {}


class LayerList(list[LayerInfo]):
    """A list of :class:`LayerInfo`; ``stopped_at`` is ``(layer, error)`` when the forward pass failed there,
    and ``module_names`` names every module of the model (run or not)."""

    stopped_at: tuple[str, str] | None = None
    module_names: frozenset[str] = frozenset()


MAX_CATALOGUE_SIDE = 4096
"""The largest input side :func:`list_layers` traces (ResNet-18's conv1 output at 4096 px is already 1 GB)."""


def list_layers(model: nn.Module, input_size: tuple[int, ...] | None = None, *, strict: bool = True) -> LayerList:
    """Every module call of ``model`` in forward order, with shapes, strides and receptive fields.

    Args:
        model: any ``nn.Module`` taking one image batch.
        input_size: ``(C, H, W)``; default: the model's own (``model_info(model).input_size``) or 3x224x224.
        strict: raise when the forward pass fails at this size; with False, return the
            layers that ran, with ``stopped_at`` set (a classifier of fixed size fails on
            another input size, but every layer before it still works).

    Example:
        >>> [(l.name, l.output_shape, l.jump, l.receptive_field) for l in list_layers(load_model("resnet18"))
        ...  if l.name == "layer1"]
        [('layer1', (64, 56, 56), (4.0, 4.0), (43.0, 43.0))]
    """
    size = tuple(input_size) if input_size is not None else model_info(model).input_size
    if len(size) != 3 or not all(isinstance(v, int) and v >= 1 for v in size):
        raise SettingsError(f"input_size must be (C, H, W) of positive ints; got {input_size!r}")
    if size[0] > 64 or max(size[1:]) > MAX_CATALOGUE_SIDE:
        raise SettingsError(f"input_size {'x'.join(map(str, size))} is too large to trace: at most 64 channels and "
                            f"{MAX_CATALOGUE_SIDE} pixels a side (the forward pass of a larger image needs gigabytes)")
    image = torch.zeros(1, *size, device=model_device(model))
    calls_seen: list[tuple[str, str, int, nn.Module]] = []
    outputs: dict[str, tuple[tuple[int, ...], Any]] = {}
    tracer = _FieldTracer(image)

    def before(name: str, call: int, module: nn.Module) -> None:
        calls_seen.append((name if call == 0 else f"{name}:{call}", name, call, module))

    def after(name: str, call: int, output: Any) -> None:
        tensor = first_tensor(output)
        if tensor is not None:
            outputs[name if call == 0 else f"{name}:{call}"] = (tuple(tensor.shape[1:]), tracer.field_of(tensor))

    failure: tuple[str, str] | None = None
    with module_calls(model, after, on_input=before), torch.inference_mode(), tracer:
        try:
            model(image)
        except Exception as error:  # noqa: BLE001 - reported with the layer where it happened
            unfinished = [key for key, *_ in calls_seen if key not in outputs]
            where = unfinished[-1] if unfinished else "(after the last layer)"
            failure = (where, f"{type(error).__name__}: {' '.join(str(error).split())}")
    if failure is not None and strict:
        raise SettingsError(
            f"{model_info(model).name} cannot run on an input of {'x'.join(map(str, size))}: layer {failure[0]} "
            f"failed ({failure[1]}); the layers before it work at this size (strict=False lists them)"
        )
    layers = LayerList()
    layers.stopped_at = failure
    layers.module_names = frozenset(name for name, _ in model.named_modules() if name)
    for key, name, call, module in calls_seen:
        if key not in outputs:
            continue  # the forward pass failed inside it
        shape, traced = outputs[key]
        settings = _settings(module)
        common = {
            "name": key, "module": name, "call": call, "type": type(module).__name__, "depth": name.count("."),
            "output_shape": shape, "parameters": sum(p.numel() for p in module.parameters()), **settings,
        }
        if traced == _GLOBAL:
            layers.append(LayerInfo(**common, receptive_field=(float(size[1]), float(size[2])), global_field=True))
        elif isinstance(traced, _Field):
            layers.append(LayerInfo(**common, jump=traced.jump, receptive_field=traced.size, start=traced.start,
                                    merged=traced.merged, global_context=traced.context,
                                    extra={"channels_last": traced.axes == (1, 2)},
                                    spans=traced.spans, uneven=traced.uneven))
        else:
            layers.append(LayerInfo(**common))
    return layers
