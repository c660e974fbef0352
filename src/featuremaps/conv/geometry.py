"""Shape arithmetic of convolution: padding, output size and receptive fields.

All sizes are per axis ``(height, width)``. The output size along one axis is::

    out = floor((in + pad_before + pad_after - dilation * (kernel - 1) - 1) / stride) + 1

``"same"`` padding follows TensorFlow/Keras: the output has ``ceil(in / stride)`` cells and
the total padding ``max((out - 1) * stride + dilation * (kernel - 1) + 1 - in, 0)`` is split
with the odd pixel after (bottom/right), which for stride 1 is exactly PyTorch's
``padding="same"``. ``"valid"`` means no padding.

A *transposed* convolution (``transposed=True``; PyTorch's ``ConvTranspose2d``) goes the other
way (Dumoulin & Visin, "A guide to convolution arithmetic", relationships 8-14)::

    out = (in - 1) * stride - pad_before - pad_after + dilation * (kernel - 1) + output_padding + 1

It equals a stride-1 convolution over the *zero-inserted* input: ``stride - 1`` zeros between
neighbouring pixels, ``dilation * (kernel - 1) - pad`` zeros at each border (and
``output_padding`` more after), with the filter flipped (:meth:`ConvGeometry.zero_inserted`); a
padding above ``dilation * (kernel - 1)`` crops the zero-inserted input instead, as PyTorch does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Union, overload

from featuremaps.errors import SettingsError

__all__ = [
    "ConvGeometry",
    "IntPair",
    "Padding",
    "PaddingSpec",
    "ReceptiveField",
    "conv_output_size",
    "normalize_padding",
    "output_size_formula",
    "receptive_field",
    "to_pair",
]

IntPair = tuple[int, int]
PaddingSpec = Union[int, Sequence[int], Literal["same", "valid"]]
_AXES = ("height", "width")


MAX_GEOMETRY = 65_536
"""The largest kernel, stride, dilation or padding accepted (beyond it, torch overflows or allocates terabytes)."""


def to_pair(value: int | Sequence[int], name: str, *, minimum: int = 1) -> IntPair:
    """An int or a pair of ints, checked against ``minimum`` and :data:`MAX_GEOMETRY`, as ``(height, width)``."""
    if isinstance(value, bool):
        raise SettingsError(f"{name} must be an int >= {minimum} or a pair of them; got {value!r}")
    pair: tuple[object, ...]
    if isinstance(value, int):
        pair = (value, value)
    elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        pair = tuple(value)
    else:
        raise SettingsError(f"{name} must be an int >= {minimum} or a pair of them; got {value!r}")
    ints = [v for v in pair if isinstance(v, int) and not isinstance(v, bool) and v >= minimum]
    if len(ints) != 2:
        raise SettingsError(f"{name} must be an int >= {minimum} or a pair of them; got {value!r}")
    if max(ints) > MAX_GEOMETRY:
        raise SettingsError(f"{name} must be at most {MAX_GEOMETRY}; got {max(ints)}")
    return (ints[0], ints[1])


@dataclass(frozen=True)
class Padding:
    """Pixels added at each border."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def height(self) -> int:
        """Rows added in total."""
        return self.top + self.bottom

    @property
    def width(self) -> int:
        """Columns added in total."""
        return self.left + self.right

    def before(self, axis: int) -> int:
        return (self.top, self.left)[axis]

    def after(self, axis: int) -> int:
        return (self.bottom, self.right)[axis]

    def for_torch(self) -> tuple[int, int, int, int]:
        """The order ``torch.nn.functional.pad`` expects: (left, right, top, bottom)."""
        return (self.left, self.right, self.top, self.bottom)

    def is_symmetric(self) -> bool:
        return self.top == self.bottom and self.left == self.right

    def __str__(self) -> str:
        if self.top == self.bottom == self.left == self.right:
            return str(self.top)
        if self.is_symmetric():
            return f"({self.top}, {self.left})"
        return f"(top {self.top}, bottom {self.bottom}, left {self.left}, right {self.right})"


def normalize_padding(padding: PaddingSpec) -> Padding | Literal["same"]:
    """Check a padding spec and return a :class:`Padding` (or ``"same"``, which needs the input size).

    Accepted: an int (all sides), ``(py, px)``, ``(top, bottom, left, right)``,
    ``"same"`` or ``"valid"``.
    """
    message = (
        "padding must be an int >= 0, (pad_y, pad_x), (top, bottom, left, right), "
        f"'same' or 'valid'; got {padding!r}"
    )
    if isinstance(padding, str):
        if padding == "same":
            return "same"
        if padding == "valid":
            return Padding(0, 0, 0, 0)
        raise SettingsError(message)
    if isinstance(padding, bool):
        raise SettingsError(message)
    if isinstance(padding, int):
        values: tuple[int, ...] = (padding,) * 4
    elif isinstance(padding, Sequence) and len(padding) in (2, 4):
        given = [v for v in padding if isinstance(v, int) and not isinstance(v, bool)]
        if len(given) != len(padding):
            raise SettingsError(message)
        values = (given[0], given[0], given[1], given[1]) if len(given) == 2 else tuple(given)
    else:
        raise SettingsError(message)
    if any(v < 0 for v in values):
        raise SettingsError(f"padding must not be negative; got {padding!r}")
    if max(values) > MAX_GEOMETRY:
        raise SettingsError(f"padding must be at most {MAX_GEOMETRY}; got {max(values)}")
    return Padding(*values)


def _same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


@dataclass(frozen=True)
class ConvGeometry:
    """The settings of a sliding window (convolution or pooling) that shape its output.

    ``ceil_mode`` follows PyTorch's pooling: the last window may hang over the end as
    long as it starts inside the input or the leading padding.
    """

    kernel_size: IntPair
    stride: IntPair = (1, 1)
    padding: Padding | Literal["same"] = Padding(0, 0, 0, 0)
    dilation: IntPair = (1, 1)
    ceil_mode: bool = False
    transposed: bool = False
    output_padding: IntPair = (0, 0)

    @classmethod
    def create(
        cls,
        kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1,
        padding: PaddingSpec | Padding = 0,
        dilation: int | Sequence[int] = 1,
        ceil_mode: bool = False,
        *,
        transposed: bool = False,
        output_padding: int | Sequence[int] = 0,
    ) -> ConvGeometry:
        """Validate loose user values (ints, pairs, 'same') into a geometry."""
        geometry = cls(
            kernel_size=to_pair(kernel_size, "kernel_size"),
            stride=to_pair(stride, "stride"),
            padding=padding if isinstance(padding, Padding) else normalize_padding(padding),
            dilation=to_pair(dilation, "dilation"),
            ceil_mode=ceil_mode,
            transposed=bool(transposed),
            output_padding=to_pair(output_padding, "output_padding", minimum=0),
        )
        if not transposed:
            if geometry.output_padding != (0, 0):
                raise SettingsError("output_padding applies only to a transposed convolution (transposed=True)")
            return geometry
        if geometry.padding == "same":
            raise SettingsError("a transposed convolution takes padding as numbers ('same' is for a convolution: "
                                "its output size is set by the stride instead)")
        for axis in (0, 1):
            extra = geometry.output_padding[axis]
            if extra and extra >= max(geometry.stride[axis], geometry.dilation[axis]):
                raise SettingsError(
                    f"output_padding must be smaller than the stride or the dilation (as in PyTorch); got "
                    f"{extra} along {_AXES[axis]} with stride {geometry.stride[axis]}, dilation "
                    f"{geometry.dilation[axis]}")
        return geometry

    @property
    def extent(self) -> IntPair:
        """Input pixels one window spans per axis: ``dilation * (kernel - 1) + 1``."""
        (kh, kw), (dh, dw) = self.kernel_size, self.dilation
        return dh * (kh - 1) + 1, dw * (kw - 1) + 1

    def resolve_padding(self, input_size: IntPair) -> Padding:
        """The concrete padding for an input of ``(H, W)`` (resolves ``"same"``)."""
        if self.padding != "same":
            return self.padding
        top, bottom = _same_padding(input_size[0], self.kernel_size[0], self.stride[0], self.dilation[0])
        left, right = _same_padding(input_size[1], self.kernel_size[1], self.stride[1], self.dilation[1])
        return Padding(top, bottom, left, right)

    def zero_inserted(self, input_size: IntPair) -> tuple[IntPair, Padding]:
        """A transposed convolution as a stride-1 convolution: the size of the input with ``stride - 1`` zeros
        between neighbours, and the zero border around it (``dilation * (kernel - 1) - padding``, plus
        ``output_padding`` after). A padding above ``dilation * (kernel - 1)`` makes the border negative:
        that many rows or columns of the zero-inserted input are cropped (PyTorch computes it so)."""
        if not self.transposed:
            raise SettingsError("zero_inserted is for a transposed convolution")
        padding = self.resolve_padding(input_size)
        spread = tuple((input_size[a] - 1) * self.stride[a] + 1 for a in (0, 1))
        reach = tuple(self.dilation[a] * (self.kernel_size[a] - 1) for a in (0, 1))
        border = Padding(reach[0] - padding.top, reach[0] - padding.bottom + self.output_padding[0],
                         reach[1] - padding.left, reach[1] - padding.right + self.output_padding[1])
        return (spread[0], spread[1]), border

    def output_size(self, input_size: IntPair) -> IntPair:
        """Output ``(H', W')`` for an input ``(H, W)``.

        Raises:
            SettingsError: the dilated kernel does not fit in the padded input.
        """
        padding = self.resolve_padding(input_size)
        if self.transposed:
            if min(input_size) < 1:
                raise SettingsError(f"input must be at least 1x1; got {input_size[0]}x{input_size[1]}")
            sizes = [(input_size[a] - 1) * self.stride[a] - padding.before(a) - padding.after(a)
                     + self.extent[a] + self.output_padding[a] for a in (0, 1)]
            for axis in (0, 1):
                if sizes[axis] < 1:
                    raise SettingsError(
                        f"the padding {padding.before(axis)} + {padding.after(axis)} removes every "
                        f"{'row' if axis == 0 else 'column'} of the transposed output ({_AXES[axis]} "
                        f"{sizes[axis]}); use less padding or a larger input")
            return (sizes[0], sizes[1])
        sizes = []
        for axis in (0, 1):
            before, after = padding.before(axis), padding.after(axis)
            padded = input_size[axis] + before + after
            extent = self.extent[axis]
            if input_size[axis] < 1:
                raise SettingsError(f"input {_AXES[axis]} must be >= 1; got {input_size[axis]}")
            span = padded - extent
            stride = self.stride[axis]
            out = (-(-span // stride) if self.ceil_mode else span // stride) + 1
            if self.ceil_mode and out > 1 and (out - 1) * stride >= input_size[axis] + before:
                out -= 1  # PyTorch: the last window must start inside the input or leading padding
            if out < 1:
                dilated = f" (dilated extent {extent})" if extent != self.kernel_size[axis] else ""
                raise SettingsError(
                    f"kernel {_AXES[axis]} {self.kernel_size[axis]}{dilated} is larger than the padded "
                    f"input {_AXES[axis]} {padded} (input {input_size[axis]} + padding {before} + {after})"
                )
            sizes.append(out)
        return (sizes[0], sizes[1])


@overload
def conv_output_size(
    size: int, kernel_size: int | Sequence[int], stride: int | Sequence[int] = ..., padding: PaddingSpec = ...,
    dilation: int | Sequence[int] = ..., *, transposed: bool = ..., output_padding: int | Sequence[int] = ...,
) -> int: ...
@overload
def conv_output_size(
    size: Sequence[int], kernel_size: int | Sequence[int], stride: int | Sequence[int] = ...,
    padding: PaddingSpec = ..., dilation: int | Sequence[int] = ..., *, transposed: bool = ...,
    output_padding: int | Sequence[int] = ...,
) -> IntPair: ...
def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1, *, transposed=False, output_padding=0):
    """Output size of a convolution (or, with ``transposed=True``, a transposed one); an int for an int
    ``size``, ``(H', W')`` for a pair.

    Example:
        >>> conv_output_size(224, 7, stride=2, padding=3)
        112
        >>> conv_output_size((7, 5), 3, stride=2, padding=1)
        (4, 3)
        >>> conv_output_size(4, 3, stride=2, padding=1, output_padding=1, transposed=True)
        8
    """
    scalar = isinstance(size, int) and not isinstance(size, bool)
    input_size = to_pair(size, "size")
    geometry = ConvGeometry.create(kernel_size, stride, padding, dilation, transposed=transposed,
                                   output_padding=output_padding)
    out = geometry.output_size(input_size)
    return out[0] if scalar else out


@dataclass(frozen=True)
class ReceptiveField:
    """Which input pixels one output unit sees, per axis ``(height, width)``.

    Unit ``(i, j)`` of the layer sees input rows ``start[0] + i * jump[0]`` to
    ``start[0] + i * jump[0] + size[0] - 1`` (and likewise columns). ``start`` can be
    negative: the first window begins in the padding.
    """

    size: IntPair
    jump: IntPair
    start: IntPair

    def region(self, y: int, x: int) -> tuple[int, int, int, int]:
        """Input box ``(top, left, bottom, right)`` (inclusive) seen by unit ``(y, x)``."""
        top = self.start[0] + y * self.jump[0]
        left = self.start[1] + x * self.jump[1]
        return top, left, top + self.size[0] - 1, left + self.size[1] - 1


IDENTITY_FIELD = ReceptiveField(size=(1, 1), jump=(1, 1), start=(0, 0))


def compose(field: ReceptiveField, geometry: ConvGeometry, input_size: IntPair) -> ReceptiveField:
    """The receptive field after one more window layer applied to a map of ``input_size``."""
    if geometry.transposed:
        raise SettingsError("the units of a strided transposed convolution see regions of different sizes; "
                            "list_layers gives each unit's exact region (LayerInfo.region)")
    padding = geometry.resolve_padding(input_size)
    size, jump, start = [], [], []
    for axis in (0, 1):
        size.append(field.size[axis] + (geometry.extent[axis] - 1) * field.jump[axis])
        start.append(field.start[axis] - padding.before(axis) * field.jump[axis])
        jump.append(field.jump[axis] * geometry.stride[axis])
    return ReceptiveField(size=(size[0], size[1]), jump=(jump[0], jump[1]), start=(start[0], start[1]))


def receptive_field(
    layers: Sequence[ConvGeometry | object], input_size: int | Sequence[int] | None = None
) -> list[ReceptiveField]:
    """Receptive field after each layer of a stack, on the stack's input.

    Args:
        layers: :class:`ConvGeometry` objects or anything with a ``geometry`` attribute
            (a :class:`~featuremaps.ConvLayer`).
        input_size: ``(H, W)`` of the input; needed only when a layer uses ``"same"``.

    Example:
        >>> rf = receptive_field([ConvGeometry.create(3), ConvGeometry.create(3, stride=2),
        ...                       ConvGeometry.create(3)])
        >>> [(f.size[0], f.jump[0]) for f in rf]
        [(3, 1), (5, 2), (9, 2)]
    """
    size: IntPair | None = to_pair(input_size, "input_size") if input_size is not None else None
    field = IDENTITY_FIELD
    fields = []
    for index, layer in enumerate(layers):
        geometry = layer if isinstance(layer, ConvGeometry) else getattr(layer, "geometry", None)
        if not isinstance(geometry, ConvGeometry):
            raise SettingsError(f"layer {index} has no convolution geometry: {layer!r}")
        if geometry.padding == "same" and size is None:
            raise SettingsError("'same' padding depends on the input size; pass input_size=(H, W)")
        concrete = size if size is not None else (1 << 30, 1 << 30)
        field = compose(field, geometry, concrete)
        fields.append(field)
        if size is not None:
            size = geometry.output_size(size)
    return fields


def output_size_formula(geometry: ConvGeometry, input_size: IntPair) -> tuple[str, str]:
    """The output-size formula with the actual numbers, one line per axis.

    Example:
        >>> output_size_formula(ConvGeometry.create(3, stride=2, padding=1), (7, 5))[0]
        "H' = floor((7 + 1 + 1 - 1*(3 - 1) - 1) / 2) + 1 = 4"
    """
    padding = geometry.resolve_padding(input_size)
    out = geometry.output_size(input_size)
    if geometry.transposed:
        return tuple(  # type: ignore[return-value]  # two lines, as below
            f"{letter}' = ({input_size[a]} - 1)*{geometry.stride[a]} - {padding.before(a)} - {padding.after(a)} + "
            f"{geometry.dilation[a]}*({geometry.kernel_size[a]} - 1) + {geometry.output_padding[a]} + 1 = {out[a]}"
            for a, letter in ((0, "H"), (1, "W")))
    rounding = "ceil" if geometry.ceil_mode else "floor"
    lines = []
    for axis, letter in ((0, "H"), (1, "W")):
        lines.append(
            f"{letter}' = {rounding}(({input_size[axis]} + {padding.before(axis)} + {padding.after(axis)} - "
            f"{geometry.dilation[axis]}*({geometry.kernel_size[axis]} - 1) - 1) / {geometry.stride[axis]}) + 1"
            f" = {out[axis]}"
        )
    return lines[0], lines[1]
