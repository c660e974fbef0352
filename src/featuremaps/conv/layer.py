"""The convolution layer: filters slide over an image, each filter gives one feature map.

``ConvLayer`` pads the input explicitly (any padding mode, asymmetric padding, ``"same"``
at any stride) and then calls ``torch.nn.functional.conv2d`` with no padding, so its
output equals ``conv2d`` on the same padded input. ``explain()`` opens up one output value.

With ``transposed=True`` it is a transposed convolution (PyTorch's ``ConvTranspose2d``),
computed the way Dumoulin & Visin draw it: ``stride - 1`` zeros are inserted between the
input's pixels, a zero border of ``dilation * (kernel - 1) - padding`` is added (plus
``output_padding`` after), and the filters slide over that at stride 1. Its filters are the
ones that slide (:meth:`ConvLayer.transposed_weight` gives PyTorch's layout, flipped).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from featuremaps.conv.filters import bank_for_layer
from featuremaps.conv.geometry import ConvGeometry, IntPair, Padding, PaddingSpec, to_pair
from featuremaps.errors import SettingsError

__all__ = ["PADDING_MODES", "ConvCost", "ConvLayer", "ConvStep", "PaddingMode", "conv2d", "conv_step", "pad_input"]

PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]
PADDING_MODES: tuple[str, ...] = ("zeros", "reflect", "replicate", "circular")
_AXES = ("height", "width")


def _check_padding_mode(mode: str) -> None:
    if mode not in PADDING_MODES:
        raise SettingsError(f"padding_mode must be one of {', '.join(PADDING_MODES)}; got {mode!r}")


def pad_input(x: torch.Tensor, padding: Padding, mode: PaddingMode = "zeros") -> torch.Tensor:
    """Pad ``x`` of shape ``(N, C, H, W)`` to ``(N, C, H + top + bottom, W + left + right)``.

    ``reflect`` needs each pad smaller than the input along its axis; ``circular`` needs
    it no larger (the wrapped pixels must exist).
    """
    _check_padding_mode(mode)
    if padding.height == 0 and padding.width == 0:
        return x
    if mode == "zeros":
        return F.pad(x, padding.for_torch(), mode="constant", value=0.0)
    for axis in (0, 1):
        size = x.shape[2 + axis]
        largest = max(padding.before(axis), padding.after(axis))
        if (mode == "reflect" and largest >= size) or (mode == "circular" and largest > size):
            rule = "smaller than" if mode == "reflect" else "at most"
            raise SettingsError(
                f"{mode} padding of {largest} along {_AXES[axis]} must be {rule} the input {_AXES[axis]} {size}"
            )
    return F.pad(x, padding.for_torch(), mode=mode)


def conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    stride: int | Sequence[int] = 1,
    padding: PaddingSpec = 0,
    padding_mode: PaddingMode = "zeros",
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> torch.Tensor:
    """Functional convolution with every padding form and mode.

    Args:
        x: input ``(N, C, H, W)``.
        weight: filters ``(D, C / groups, kh, kw)``.
        bias: ``(D,)`` or None.

    Returns:
        feature maps ``(N, D, H', W')``.
    """
    geometry = ConvGeometry.create(tuple(weight.shape[2:]), stride, padding, dilation)
    concrete = geometry.resolve_padding((x.shape[2], x.shape[3]))
    geometry.output_size((x.shape[2], x.shape[3]))  # validates the kernel fits
    padded = pad_input(x, concrete, padding_mode)
    return F.conv2d(padded, weight, bias, stride=geometry.stride, dilation=geometry.dilation, groups=groups)


@dataclass(frozen=True)
class ConvStep:
    """The computation behind one output value ``maps[filter, y, x]`` (``explain()`` and every scene step).

    Coordinates: ``rows`` and ``cols`` are in the *input* frame: row 0 is the image's first row,
    and a tap at a row below 0 or at H or more (a column below 0 or at W or more) reads
    padding. For a transposed layer the frame is the zero-inserted input: input row ``i`` sits
    at row ``i * stride`` and the rows between are inserted zeros (``in_padding`` marks both). :attr:`padded_rows` / :attr:`padded_cols` are the same taps on the padded input
    (shifted by the top / left padding), where drawings put the window.

    Attributes:
        filter, name, y, x: which output value, and its filter's name.
        channels: input channels the filter reads (one group's channels).
        rows, cols: input row/column under each kernel row/column (input frame, see above).
        padding: the concrete padding of the input (``top``, ``bottom``, ``left``, ``right``).
        patch: padded input values under the window ``(C / groups, kh, kw)``.
        weights: the filter ``(C / groups, kh, kw)``.
        products: ``patch * weights`` ``(C / groups, kh, kw)``, float32.
        in_padding: bool ``(kh, kw)``, True where the window covers padding.
        bias: the filter's bias (0 when the layer has none).
        total: the sum of the products (in float64) plus ``bias``, before ReLU.
        relu: whether the layer applies ReLU.
        value: the value in the map (after ReLU when enabled).
    """

    filter: int
    name: str
    y: int
    x: int
    channels: tuple[int, ...]
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    padding: Padding
    patch: torch.Tensor
    weights: torch.Tensor
    products: torch.Tensor
    in_padding: torch.Tensor
    bias: float
    total: float
    relu: bool
    value: float

    @property
    def output(self) -> float:
        """``total`` after the layer's activation: what the map should hold."""
        return max(self.total, 0.0) if self.relu else self.total

    @property
    def padded_rows(self) -> tuple[int, ...]:
        """``rows`` on the padded input (0 = the first padding row)."""
        return tuple(r + self.padding.top for r in self.rows)

    @property
    def padded_cols(self) -> tuple[int, ...]:
        """``cols`` on the padded input (0 = the first padding column)."""
        return tuple(c + self.padding.left for c in self.cols)

    @property
    def window(self) -> tuple[int, int, int, int]:
        """``(top, left, bottom, right)`` of the window on the padded input, inclusive."""
        rows, cols = self.padded_rows, self.padded_cols
        return rows[0], cols[0], rows[-1], cols[-1]

    @property
    def channel_sums(self) -> tuple[float, ...]:
        """The sum of the products of each input channel (in float64)."""
        return tuple(float(v) for v in self.products.double().sum(dim=(1, 2)))

    def _repr_html_(self) -> str:
        """In Jupyter: the window, the weights and the products of each channel, and the sum."""
        import html

        def table(values: torch.Tensor, pad: torch.Tensor | None = None) -> str:
            rows = []
            for i, row in enumerate(values.tolist()):
                cells = "".join(
                    f'<td style="border:1px solid #ccc;padding:2px 5px;text-align:right;'
                    f'{"background:#eee;color:#888" if pad is not None and bool(pad[i, j]) else ""}">{v:.3g}</td>'
                    for j, v in enumerate(row))
                rows.append(f"<tr>{cells}</tr>")
            return f'<table style="border-collapse:collapse;display:inline-table;margin:2px">{"".join(rows)}</table>'

        blocks = []
        for k, channel in enumerate(self.channels):
            blocks.append(
                f"<div style='margin:4px 0'><b>channel {channel}</b>: window {table(self.patch[k], self.in_padding)}"
                f" &times; weights {table(self.weights[k])} = products {table(self.products[k])} "
                f"sum {self.channel_sums[k]:.6g}</div>")
        relu = f", ReLU &rarr; {self.output:.6g}" if self.relu else ""
        return (f"<div><p><b>map {self.filter} ({html.escape(self.name)}) at (y={self.y}, x={self.x})</b>: input rows "
                f"{self.rows[0]}..{self.rows[-1]}, cols {self.cols[0]}..{self.cols[-1]} (grey: padding)</p>"
                f"{''.join(blocks)}<p>{' + '.join(f'{v:.6g}' for v in self.channel_sums)} + bias {self.bias:.6g} = "
                f"<b>{self.total:.6g}</b>{relu}</p></div>")

    def __str__(self) -> str:
        relu = f"ReLU -> {self.output:.6g}" if self.relu else ""
        return (
            f"map {self.filter} ({self.name}) at (y={self.y}, x={self.x}): window over input rows "
            f"{self.rows[0]}..{self.rows[-1]}, cols {self.cols[0]}..{self.cols[-1]}, channels "
            f"{list(self.channels)}; sum of {self.products.numel()} products "
            f"{float(self.products.double().sum()):.6g} + bias {self.bias:.6g} = {self.total:.6g} {relu}".rstrip()
        )


def conv_step(layer: ConvLayer, padded: torch.Tensor, padding: Padding, size: IntPair, maps: torch.Tensor, *,
              filter: int, y: int, x: int, products: torch.Tensor | None = None) -> ConvStep:
    """The :class:`ConvStep` of ``maps[filter, y, x]`` from the padded input ``(C, Hp, Wp)`` and the layer.

    ``size`` is the input's ``(H, W)``; ``products`` may be given when already computed (a scene computes
    them all at once).
    """
    if layer.transposed:  # the window slides over the zero-inserted input: its frame is the one to check
        size = layer.geometry.zero_inserted(size)[0]
    per_group = layer.in_channels // layer.groups
    group = filter // (layer.depth // layer.groups)
    channels = tuple(range(group * per_group, (group + 1) * per_group))
    (sy, sx), (dy, dx), (kh, kw) = layer.window_stride, layer.dilation, layer.kernel_size
    padded_rows = [y * sy + i * dy for i in range(kh)]
    padded_cols = [x * sx + j * dx for j in range(kw)]
    patch = padded[list(channels)][:, padded_rows][:, :, padded_cols]  # (C/g, kh, kw)
    weights = layer.weight[filter].to(torch.float32)
    products = patch * weights if products is None else products
    rows = tuple(r - padding.top for r in padded_rows)
    cols = tuple(c - padding.left for c in padded_cols)
    height, width = size
    every_y, every_x = layer.stride if layer.transposed else (1, 1)  # real pixels of a zero-inserted input
    row_pad = torch.tensor([not 0 <= r < height or r % every_y != 0 for r in rows])
    col_pad = torch.tensor([not 0 <= c < width or c % every_x != 0 for c in cols])
    bias = float(layer.bias[filter]) if layer.bias is not None else 0.0
    return ConvStep(filter=filter, name=layer.filter_names[filter], y=y, x=x, channels=channels, rows=rows, cols=cols,
                    padding=padding, patch=patch, weights=weights, products=products,
                    in_padding=row_pad[:, None] | col_pad[None, :], bias=bias,
                    total=float(products.double().sum()) + bias, relu=layer.relu, value=float(maps[filter, y, x]))


@dataclass(frozen=True)
class ConvCost:
    """The work of one forward pass: maps' values and multiply-adds."""

    output_values: int
    multiply_adds: int

    @property
    def output_bytes(self) -> int:
        """Size of the float32 maps."""
        return 4 * self.output_values

    def check(self, *, max_output_values: int, max_multiply_adds: int) -> None:
        """Refuse work over a budget (before it is done), saying what to change."""
        if self.output_values > max_output_values:
            raise SettingsError(
                f"these settings make {self.output_values:,} map values ({self.output_bytes / 2**20:,.0f} MiB), over "
                f"the limit of {max_output_values:,}; use fewer filters, a larger stride or a smaller image")
        if self.multiply_adds > max_multiply_adds:
            raise SettingsError(
                f"these settings need {self.multiply_adds:,} multiply-adds, over the limit of {max_multiply_adds:,}; "
                "use fewer or smaller filters, a larger stride or a smaller image")


class ConvLayer(nn.Module):
    """A convolution layer with fixed, named filters.

    Args:
        in_channels: channels of the input images (3 for RGB, 1 for gray).
        filters: bank names (``"sobel"``, ``"sobel_x,laplacian"``, ``"gabor"``,
            ``"random"``; see :mod:`featuremaps.conv.filters`), an array
            ``(D, C / groups, kh, kw)``, or a ``pathlib.Path`` to a ``.npy`` file of one.
            A ``str`` is only ever bank names: it never opens a file.
        depth: number of filters (= number of maps) of a ``random`` or ``gabor`` bank;
            for other filters it is checked against their count.
        kernel_size: ``k`` or ``(kh, kw)`` for sizeable banks; default: the bank's own.
        stride: ``s`` or ``(sy, sx)``, >= 1.
        padding: ``p``, ``(py, px)``, ``(top, bottom, left, right)``, ``"same"`` or ``"valid"``.
        padding_mode: ``zeros``, ``reflect``, ``replicate`` or ``circular``.
        dilation: ``d`` or ``(dy, dx)``, >= 1.
        groups: input channels and filters are split into this many groups.
        bias: None, one number for every filter, or one per filter.
        relu: apply ReLU to the maps.
        seed: seed of the ``random`` bank.
        transposed: a transposed convolution (upsampling; see the module docstring); padding
            then takes numbers of at most ``dilation * (kernel - 1)`` and ``padding_mode`` is zeros.
        output_padding: rows/columns added after a transposed output (smaller than the stride or
            the dilation), to pick one of the input sizes a strided convolution maps to one size.

    Example:
        >>> layer = ConvLayer(3, "sobel", stride=2, padding=1)
        >>> layer(torch.rand(3, 64, 48)).shape
        torch.Size([2, 32, 24])
    """

    weight: torch.Tensor
    bias: torch.Tensor | None

    def __init__(
        self,
        in_channels: int,
        filters: str | os.PathLike[str] | np.ndarray | torch.Tensor = "random",
        *,
        depth: int | None = None,
        kernel_size: int | Sequence[int] | None = None,
        stride: int | Sequence[int] = 1,
        padding: PaddingSpec = 0,
        padding_mode: PaddingMode = "zeros",
        dilation: int | Sequence[int] = 1,
        groups: int = 1,
        bias: float | Sequence[float] | torch.Tensor | None = None,
        relu: bool = False,
        seed: int = 0,
        transposed: bool = False,
        output_padding: int | Sequence[int] = 0,
    ) -> None:
        super().__init__()
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise SettingsError(f"in_channels must be an int >= 1; got {in_channels!r}")
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise SettingsError(f"groups must be an int >= 1; got {groups!r}")
        if in_channels % groups != 0:
            raise SettingsError(f"in_channels {in_channels} is not divisible by groups {groups}")
        if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 1):
            raise SettingsError(f"depth must be an int >= 1; got {depth!r}")
        _check_padding_mode(padding_mode)
        if transposed and padding_mode != "zeros":
            raise SettingsError(f"a transposed convolution pads with zeros (as PyTorch's ConvTranspose2d); "
                                f"got padding_mode={padding_mode!r}")
        size = to_pair(kernel_size, "kernel_size") if kernel_size is not None else None
        filter_bank = bank_for_layer(
            filters, in_channels=in_channels, groups=groups, kernel_size=size, depth=depth, seed=seed
        )
        kh, kw = filter_bank.weights.shape[2:]
        self.geometry = ConvGeometry.create((int(kh), int(kw)), stride, padding, dilation, transposed=transposed,
                                            output_padding=output_padding)
        self.in_channels = in_channels
        self.groups = groups
        self.padding_mode: PaddingMode = padding_mode
        self.relu = bool(relu)
        self.filter_names = filter_bank.names
        self.register_buffer("weight", filter_bank.weights)
        self.register_buffer("bias", _bias_tensor(bias, filter_bank.depth))

    @classmethod
    def from_module(cls, conv: nn.Conv2d | nn.ConvTranspose2d, *, relu: bool = False) -> ConvLayer:
        """A ``ConvLayer`` with the weights and settings of a ``torch.nn.Conv2d`` or ``ConvTranspose2d``."""
        padding: PaddingSpec = conv.padding if isinstance(conv.padding, str) else tuple(conv.padding)  # type: ignore[assignment]  # torch types padding as str | tuple
        bias = conv.bias.detach().clone() if conv.bias is not None else None
        transposed = isinstance(conv, nn.ConvTranspose2d)
        weight = conv.weight.detach().clone()
        if transposed:
            weight = _swap_transposed(weight, conv.groups)
        return cls(
            conv.in_channels,
            weight,
            stride=tuple(conv.stride),
            padding=padding,
            padding_mode=conv.padding_mode,
            dilation=tuple(conv.dilation),
            groups=conv.groups,
            bias=bias,
            relu=relu,
            transposed=transposed,
            output_padding=tuple(conv.output_padding) if transposed else 0,
        )

    @property
    def transposed(self) -> bool:
        """True for a transposed convolution."""
        return self.geometry.transposed

    @property
    def window_stride(self) -> IntPair:
        """How far the window jumps on what it slides over: the stride, or 1 on a transposed layer's
        zero-inserted input."""
        return (1, 1) if self.transposed else self.geometry.stride

    def transposed_weight(self) -> torch.Tensor:
        """A transposed layer's filters in PyTorch's ``ConvTranspose2d`` layout ``(C, D / groups, kh, kw)``."""
        if not self.transposed:
            raise SettingsError("transposed_weight is for a transposed layer (transposed=True)")
        return _swap_transposed(self.weight, self.groups)

    @property
    def depth(self) -> int:
        """Number of filters, which is the number of feature maps."""
        return int(self.weight.shape[0])

    @property
    def kernel_size(self) -> IntPair:
        return self.geometry.kernel_size

    @property
    def stride(self) -> IntPair:
        return self.geometry.stride

    @property
    def dilation(self) -> IntPair:
        return self.geometry.dilation

    @property
    def padding(self) -> Padding | Literal["same"]:
        return self.geometry.padding

    def extra_repr(self) -> str:
        transposed = f", transposed=True, output_padding={self.geometry.output_padding}" if self.transposed else ""
        return (
            f"{self.in_channels}, depth={self.depth}, kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, padding_mode={self.padding_mode!r}, dilation={self.dilation}, "
            f"groups={self.groups}, bias={self.bias is not None}, relu={self.relu}{transposed}"
        )

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Shape of the maps for an input of shape ``(H, W)``, ``(C, H, W)`` or ``(N, C, H, W)``.

        Example:
            >>> ConvLayer(3, "random", depth=8, stride=2).output_shape((3, 64, 64))
            (8, 31, 31)
        """
        shape = tuple(int(s) for s in input_shape)
        if len(shape) not in (2, 3, 4):
            raise SettingsError(f"input shape must be (H, W), (C, H, W) or (N, C, H, W); got {shape}")
        if len(shape) >= 3 and shape[-3] != self.in_channels:
            raise SettingsError(f"layer expects {self.in_channels} input channels; input shape {shape} has {shape[-3]}")
        height, width = self.geometry.output_size((shape[-2], shape[-1]))
        return (*shape[:-3], self.depth, height, width) if len(shape) >= 3 else (self.depth, height, width)

    def cost(self, input_shape: Sequence[int]) -> ConvCost:
        """What ``self(x)`` costs for an input of shape ``(C, H, W)`` or ``(N, C, H, W)``, before running it.

        Example:
            >>> ConvLayer(3, "random", depth=8).cost((3, 64, 64)).multiply_adds
            830304
        """
        shape = self.output_shape(input_shape)
        outputs = math.prod(shape)
        kh, kw = self.kernel_size
        return ConvCost(output_values=outputs, multiply_adds=outputs * (self.in_channels // self.groups) * kh * kw)

    def resolved_padding(self, input_size: IntPair) -> Padding:
        """The border around what the filters slide over, for an input of ``(H, W)``: the concrete padding
        (``"same"`` resolved), or a transposed layer's zero border around its zero-inserted input."""
        if self.transposed:
            return self.geometry.zero_inserted(input_size)[1]
        return self.geometry.resolve_padding(input_size)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """What the filters slide over: the padded input ``(N, C, H + pad, W + pad)``; for a transposed
        layer, the zero-inserted input with its zero border."""
        batch = self._as_batch(x)
        size = (int(batch.shape[2]), int(batch.shape[3]))
        if self.transposed:
            (height, width), border = self.geometry.zero_inserted(size)
            spread = batch.new_zeros(batch.shape[0], batch.shape[1], height, width)
            spread[:, :, :: self.stride[0], :: self.stride[1]] = batch
            return pad_input(spread, border, "zeros")
        return pad_input(batch, self.resolved_padding(size), self.padding_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps ``(D, H', W')`` for ``x`` of ``(C, H, W)``, ``(N, D, H', W')`` for a batch."""
        batch = self._as_batch(x)
        self.geometry.output_size((batch.shape[2], batch.shape[3]))  # validates the kernel fits
        padded = self.pad(batch)
        weight = self.weight.to(device=batch.device, dtype=batch.dtype)
        bias = self.bias.to(device=batch.device, dtype=batch.dtype) if self.bias is not None else None
        maps = F.conv2d(padded, weight, bias, stride=self.window_stride, dilation=self.dilation, groups=self.groups)
        if self.relu:
            maps = F.relu(maps)
        return maps[0] if x.ndim == 3 else maps

    def _as_batch(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor (C, H, W) or (N, C, H, W); got {type(x).__name__}")
        if x.ndim not in (3, 4):
            raise SettingsError(f"input must have shape (C, H, W) or (N, C, H, W); got {tuple(x.shape)}")
        if not torch.is_floating_point(x):
            raise TypeError(f"input must be a floating-point tensor; got {x.dtype} (use load_image)")
        batch = x if x.ndim == 4 else x.unsqueeze(0)  # (N, C, H, W)
        if batch.shape[1] != self.in_channels:
            raise SettingsError(
                f"layer expects {self.in_channels} input channels; got an input of shape {tuple(x.shape)}"
            )
        return batch

    def explain(self, image: torch.Tensor, /, *, filter: int, y: int, x: int) -> ConvStep:
        """The exact computation behind ``self(image)[filter, y, x]`` (see :class:`ConvStep`).

        Args:
            image: one input ``(C, H, W)`` (or a batch of one).
            filter: index of the filter (= feature map).
            y, x: position in the output map.
        """
        batch = self._as_batch(image)
        if batch.shape[0] != 1:
            raise SettingsError(f"explain takes one image; got a batch of {batch.shape[0]}")
        out_h, out_w = self.geometry.output_size((batch.shape[2], batch.shape[3]))
        for label, value, limit in (("filter", filter, self.depth), ("y", y, out_h), ("x", x, out_w)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < limit:
                raise SettingsError(f"{label} must be an int in 0..{limit - 1}; got {value!r}")
        size = (int(batch.shape[2]), int(batch.shape[3]))
        padded = self.pad(batch)[0].to(torch.float32)  # (C, Hp, Wp)
        return conv_step(self, padded, self.resolved_padding(size), size, self.forward(batch)[0],
                         filter=filter, y=y, x=x)


def _swap_transposed(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """Between a transposed convolution's weight ``(C, D / g, kh, kw)`` and the sliding filters
    ``(D, C / g, kh, kw)`` (flipped): the same operation, so it is its own inverse."""
    first, second = weight.shape[0] // groups, weight.shape[1]
    swapped = weight.reshape(groups, first, second, *weight.shape[2:]).transpose(1, 2)
    return swapped.reshape(groups * second, first, *weight.shape[2:]).flip(-2, -1).contiguous()


def _bias_tensor(bias: float | Sequence[float] | torch.Tensor | None, depth: int) -> torch.Tensor | None:
    if bias is None or bias is False:
        return None
    if isinstance(bias, (int, float)) and not isinstance(bias, bool):
        tensor = torch.full((depth,), float(bias))
    else:
        tensor = torch.as_tensor(bias, dtype=torch.float32).flatten()
    if tensor.numel() != depth:
        raise SettingsError(f"bias must be one number or one per filter ({depth}); got {tensor.numel()} values")
    if not torch.isfinite(tensor).all():
        raise SettingsError(f"bias must be finite numbers; got {tensor[~torch.isfinite(tensor)][0].item()}")
    return tensor.clone()
