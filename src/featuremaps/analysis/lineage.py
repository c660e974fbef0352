"""Feature lineage: which maps of the layers below a unit (or a whole map) is built from, and how much each gave.

The network is cut into *stations*: by default the maps that feed a convolution (each
activation or pooling output with a convolution after it, and the input image). One
forward pass makes every station's output a leaf of autograd
(:meth:`FeatureExtractor.cut <featuremaps.features.FeatureExtractor.cut>`), so the gradient
of a value reaches only the nearest stations upstream. For a value ``v`` of a later layer:

    v = sum over upstream station maps k of  sum over positions p of  dv/da[k, p] * a[k, p]  +  bias

is **exact** when every operation between them is piecewise linear (convolutions with any
groups, dilation and padding, linear layers, batch norm in eval mode, ReLU, ReLU6 and any clamp
to constant bounds, max and average pooling, residual additions, concatenation, reshapes): there
the gradient is the local linear map and a unit of a convolution is ``sum over input channels of
window . kernel slice + bias``. ``bias`` is computed on its own, from the gradients of the
constants in between (a convolution's bias, batch norm's shift ``beta - mean * gamma / sqrt(var
+ eps)``, and a clamp's bounds: a ReLU6 unit above 6 gives the constant 6, so a clamp is
computed as ``lo + relu(x - lo) - relu(y - hi)`` with its bounds as constants whose gradients
count), so the check ``v == sum of contributions + bias`` is a real test, to 1e-4. With any other
operation (SiLU, GELU, sigmoid gates, layer norm, the product of two maps, a constant added that
no bias accounts for, batch norm on batch statistics) the same numbers are gradient x input, an
approximation, and the lineage says so, naming the operation.

Following the strongest maps back: a child ``(station, channel)`` stands for the part of its
map that fed its parents, ``sum_p g[p] * a[p]`` with the gradient weights ``g`` its parents
gave it (summed over the parents that picked it); that functional is decomposed the same
way one level lower, so a child's own children add up to its contribution (minus its bias).
Where a step crosses a residual addition, the part that came through the skip and the
part through the branch are reported (``sum dv/dz * skip`` and ``sum dv/dz * branch`` at the sum ``z``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from featuremaps.errors import LayerError, SettingsError
from featuremaps.features import FeatureExtractor, catalogue_for, select_layers
from featuremaps.features.catalogue import LayerInfo
from featuremaps.features.extractor import INPUT
from featuremaps.features.hooks import model_lock, tensors_in
from featuremaps.features.info import model_device, model_info
from featuremaps.images import ImageSource

__all__ = ["Lineage", "LineageEdge", "LineageNode", "default_stations", "lineage"]

_STATION_TYPES = frozenset({
    "ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Hardswish", "Hardsigmoid",
    "Tanh", "Sigmoid", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "LPPool2d",
})
_MIXING_TYPES = frozenset({"Conv1d", "Conv2d", "Conv3d", "ConvTranspose2d", "Linear", "LazyConv2d", "LazyLinear"})
_MIXING_OPS = frozenset({"conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
                         "linear"})
# Operations under which the gradient is the exact local linear map (and biases are the only constants).
_PIECEWISE_LINEAR = _MIXING_OPS | frozenset({
    "batch_norm", "relu", "relu_", "leaky_relu", "leaky_relu_", "prelu", "max_pool1d", "max_pool2d", "max_pool3d",
    "max_pool2d_with_indices", "_max_pool2d", "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d",
    "adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_max_pool2d_with_indices", "add", "add_", "__add__",
    "__radd__", "__iadd__", "sub", "sub_", "__sub__", "__isub__", "cat", "concat", "concatenate", "stack",
    "flatten", "view", "reshape", "permute", "transpose", "contiguous", "__getitem__", "clone", "dropout",
    "dropout2d", "feature_dropout", "alpha_dropout", "pad", "interpolate", "upsample", "upsample_nearest2d",
    "upsample_bilinear2d", "mean", "sum", "squeeze", "unsqueeze", "chunk", "split", "split_with_sizes", "narrow",
    "unbind", "expand", "expand_as", "neg", "__neg__", "channel_shuffle", "pixel_shuffle", "pixel_unshuffle",
    "movedim", "flip", "roll", "to", "float", "type_as", "max", "maximum", "amax", "__getattribute__", "detach",
    "requires_grad_", "__get__", "size", "dim",
})
_SCALING = frozenset({"mul", "mul_", "__mul__", "__rmul__", "__imul__", "div", "div_", "__truediv__", "__itruediv__"})
_IN_PLACE_SUMS = frozenset({"add_", "__iadd__"})
_SUMS = frozenset({"add", "__add__", "__radd__"}) | _IN_PLACE_SUMS
_DIFFERENCES = frozenset({"sub", "sub_", "__sub__", "__rsub__", "__isub__", "rsub"})
_CLAMPS = frozenset({"hardtanh", "hardtanh_", "relu6", "clamp", "clamp_", "clip", "clip_", "clamp_min", "clamp_min_",
                     "clamp_max", "clamp_max_"})


def _clamp_bounds(name: str, args: Any, kwargs: dict[str, Any]) -> tuple[float | None, float | None, bool] | None:
    """``(lo, hi, in place)`` of a clamp with constant bounds (None for a missing bound), or None when its
    bounds are tensors (then it is not a constant clamp)."""
    def arg(index: int, key: str, default: Any) -> Any:
        return args[index] if len(args) > index else kwargs.get(key, default)

    if name.startswith("hardtanh"):
        lo, hi, inplace = arg(1, "min_val", -1.0), arg(2, "max_val", 1.0), bool(arg(3, "inplace", False))
    elif name == "relu6":
        lo, hi, inplace = 0.0, 6.0, bool(arg(1, "inplace", False))
    elif name.startswith("clamp_min"):
        lo, hi, inplace = arg(1, "min", None), None, False
    elif name.startswith("clamp_max"):
        lo, hi, inplace = None, arg(1, "max", None), False
    else:
        lo, hi, inplace = arg(1, "min", None), arg(2, "max", None), False
    inplace = inplace or name.endswith("_")
    if not all(bound is None or (isinstance(bound, (int, float)) and not isinstance(bound, bool)) for bound in (lo, hi)):
        return None
    return (None if lo is None else float(lo), None if hi is None else float(hi), inplace)


@dataclass(frozen=True)
class LineageNode:
    """One map in the lineage: ``channel`` of ``layer`` (``"input"`` for the image).

    Attributes:
        value: the part of this map that fed its parents (the root: the unit's value, or the
            map's mean for a whole map).
        position: the unit ``(y, x)`` that contributed most (the root: the unit asked for).
        region: that unit's receptive field on the model input ``(top, left, bottom, right)``.
        bias: for an expanded node, the biases' part of its value (convolution biases and batch norm shifts).
        exact: for an expanded node, whether its children and bias add up to its value exactly.
        residual: value - (children's sum over every channel + bias).
        skip, branch: where the step crossed one residual addition, the parts through each path.
    """

    id: int
    level: int
    layer: str
    channel: int
    value: float
    position: tuple[int, int] | None = None
    region: tuple[float, float, float, float] | None = None
    bias: float | None = None
    exact: bool | None = None
    residual: float | None = None
    skip: float | None = None
    branch: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "level": self.level, "layer": self.layer, "channel": self.channel,
                "value": _round(self.value), "position": list(self.position) if self.position else None,
                "region": [round(v, 1) for v in self.region] if self.region else None,
                "bias": _round(self.bias), "exact": self.exact, "residual": _round(self.residual),
                "skip": _round(self.skip), "branch": _round(self.branch)}


@dataclass(frozen=True)
class LineageEdge:
    """``child`` contributed ``contribution`` to ``parent``; ``share`` = contribution / sum of |contributions| of
    every map of the step (signed); ``via_skip``: the part that came through the residual skip."""

    parent: int
    child: int
    contribution: float
    share: float
    via_skip: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"parent": self.parent, "child": self.child, "contribution": _round(self.contribution),
                "share": round(self.share, 5), "via_skip": _round(self.via_skip)}


@dataclass
class Lineage:
    """The lineage of one unit: nodes by level (0 = the unit), edges parent -> child.

    ``maps[node_id]`` is the node's map ``(h, w)`` (the input channel for ``"input"`` nodes) and
    ``display`` the model input ``(C, H, W)`` in [0, 1], for pictures.
    """

    model: str
    weights: str
    unit: str
    method: str
    stations: list[str]
    nodes: list[LineageNode]
    edges: list[LineageEdge]
    approximate_ops: list[str] = field(default_factory=list)
    display: torch.Tensor | None = field(default=None, repr=False)
    maps: dict[int, np.ndarray] = field(default_factory=dict, repr=False)
    dropped: int = 0
    label: str | None = None

    @property
    def root(self) -> LineageNode:
        return self.nodes[0]

    def shown_share(self, parent: int) -> float:
        """The part of ``parent``'s |contributions| that its children in the lineage hold (the rest is spread
        over the maps left out)."""
        return sum(abs(edge.share) for edge in self.edges if edge.parent == parent)

    def _repr_png_(self) -> bytes:
        """In Jupyter: the lineage tree as :func:`~featuremaps.render_lineage` draws it."""
        from featuremaps.render.drawing import png_bytes
        from featuremaps.render.lineage import render_lineage

        return png_bytes(render_lineage(self))

    @property
    def exact(self) -> bool:
        """True when every expanded node's children and bias add up to its value."""
        return all(node.exact for node in self.nodes if node.exact is not None)

    def children(self, node: LineageNode | int) -> list[tuple[LineageEdge, LineageNode]]:
        """The node's children, strongest first."""
        node_id = node if isinstance(node, int) else node.id
        by_id = {n.id: n for n in self.nodes}
        return [(edge, by_id[edge.child]) for edge in self.edges if edge.parent == node_id]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "weights": self.weights, "unit": self.unit, "method": self.method,
                "exact": self.exact, "approximate_ops": self.approximate_ops, "stations": self.stations,
                "nodes": [n.to_dict() for n in self.nodes], "edges": [e.to_dict() for e in self.edges],
                "dropped_nodes": self.dropped}


def _round(value: float | None) -> float | None:
    return None if value is None else float(f"{value:.6g}")


def default_stations(catalogue: Sequence[LayerInfo]) -> list[str]:
    """The maps that feed a convolution: activation and pooling outputs with maps (of a chain of
    such layers with no convolution between, the last), in forward order; the convolutions
    themselves when the model has no activation modules (functional ReLUs)."""
    stations: list[str] = []
    mixed_since = True
    for entry in catalogue:
        if entry.type in _MIXING_TYPES:
            mixed_since = True
        elif entry.type in _STATION_TYPES and entry.is_spatial and not entry.global_field:
            if stations and not mixed_since:
                stations.pop()  # pooling right after an activation: the pooled maps are what feeds on
            stations.append(entry.name)
            mixed_since = False
    if not stations:
        stations = [e.name for e in catalogue if e.type in _MIXING_TYPES and e.is_spatial]
    return stations


@dataclass
class _Sum:
    out: torch.Tensor
    skip: torch.Tensor
    branch: torch.Tensor
    labelled: bool  # the operands differ in how many convolutions they went through


class _Audit(TorchFunctionMode):
    """Follows every tensor that depends on a cut (a leaf that is not a parameter): which operations
    touch them (the non-piecewise-linear ones make the lineage approximate), how many
    convolutions each went through, and every sum of two such tensors (residual additions)."""

    def __init__(self) -> None:
        super().__init__()
        self.depth: dict[int, int] = {}
        self.keep: list[torch.Tensor] = []
        self.nonlinear: set[str] = set()
        self.sums: list[_Sum] = []
        self.constants: list[tuple[torch.Tensor, torch.Tensor]] = []  # clamp bounds: (leaf, its value)

    def _depth(self, tensor: torch.Tensor) -> int | None:
        if id(tensor) in self.depth:
            return self.depth[id(tensor)]
        if tensor.is_leaf and tensor.requires_grad and not isinstance(tensor, nn.Parameter):
            self._mark(tensor, 0)
            return 0
        return None

    def _mark(self, tensor: torch.Tensor, depth: int) -> None:
        self.depth[id(tensor)] = depth
        self.keep.append(tensor)

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        inputs = list(tensors_in((args, kwargs)))
        depths = [(t, d) for t in inputs if (d := self._depth(t)) is not None]
        if not depths:
            return func(*args, **kwargs)
        if name in _SUMS and len(depths) >= 2 and len(args) >= 2 and all(isinstance(a, torch.Tensor) for a in args[:2]):
            first, second = args[0], args[1]
            alpha = {k: v for k, v in kwargs.items() if k == "alpha"}
            d_first, d_second = self.depth.get(id(first), 0), self.depth.get(id(second), 0)
            if name in _IN_PLACE_SUMS:  # keep the in-place semantics; the sum itself stays a separate tensor
                before = first.clone()
                total = torch.add(before, second, **alpha)
                out = first.copy_(total)
                first = before
            else:
                total = torch.add(first, second, **alpha)
                out = total.clone()  # a later in-place op (ReLU) changes the copy, not the sum
            skip, branch = (first, second) if d_first < d_second else (second, first)
            self.sums.append(_Sum(total, skip, branch, d_first != d_second))
        elif name in _CLAMPS and (bounds := _clamp_bounds(name, args, kwargs)) is not None and len(depths) == 1:
            out = self._clamp(args[0], *bounds)
        else:
            out = func(*args, **kwargs)
            if name in _SCALING and len(depths) >= 2:
                self.nonlinear.add(f"{name} of two maps")
            elif name in _SUMS | _DIFFERENCES and len(depths) == 1 and self._adds_a_constant(args, kwargs):
                self.nonlinear.add(f"{name} of a constant (no bias accounts for it)")
            elif name == "batch_norm" and _batch_statistics(args, kwargs):
                self.nonlinear.add("batch_norm on batch statistics (no running mean and variance)")
            elif name not in _PIECEWISE_LINEAR and name not in _SCALING:
                self.nonlinear.add(name)
        step = 1 if name in _MIXING_OPS else 0
        depth = max(d for _, d in depths) + step
        for tensor in tensors_in(out):
            if id(tensor) not in self.depth:
                self._mark(tensor, depth)
        return out


    def _adds_a_constant(self, args: Any, kwargs: dict[str, Any]) -> bool:
        """The other operand of a sum is a non-zero number, or a non-zero tensor that depends on no map (a
        parameter, a buffer: ``x + self.position_embedding``); no bias term accounts for it."""
        for operand in (*args[:2], kwargs.get("other")):
            if isinstance(operand, torch.Tensor):
                if self._depth(operand) is None and bool(operand.detach().ne(0).any()):
                    return True
            elif isinstance(operand, (int, float)) and not isinstance(operand, bool) and operand != 0:
                return True
        return False

    def _clamp(self, x: torch.Tensor, lo: float | None, hi: float | None, inplace: bool) -> torch.Tensor:
        """``clamp(x, lo, hi)`` as ``lo + relu(x - lo)`` then ``y - relu(y - hi)``: the same values, with the
        bounds as leaf constants whose gradients say how much of the value they are (saturated units)."""
        out = x
        if lo is not None:
            low = torch.tensor(lo, dtype=x.dtype, device=x.device, requires_grad=True)
            self.constants.append((low, low.detach()))
            out = low + torch.relu(out - low)
        if hi is not None:
            high = torch.tensor(hi, dtype=x.dtype, device=x.device, requires_grad=True)
            self.constants.append((high, high.detach()))
            out = out - torch.relu(out - high)
        if inplace and not x.is_leaf:
            return x.copy_(out)
        return out


def _batch_statistics(args: Any, kwargs: dict[str, Any]) -> bool:
    """F.batch_norm normalising with the batch's own statistics (training, or no running estimates)."""
    running_mean = args[1] if len(args) > 1 else kwargs.get("running_mean")
    training = args[5] if len(args) > 5 else kwargs.get("training", False)
    return running_mean is None or bool(training)


def _bias_terms(model: nn.Module) -> list[tuple[nn.Parameter, torch.Tensor]]:
    """Each additive constant of the model as ``(parameter whose gradient is d value / d constant,
    the constant)``: convolution and linear biases, batch norm's shift in eval mode."""
    terms: list[tuple[nn.Parameter, torch.Tensor]] = []
    for module in model.modules():
        bias = getattr(module, "bias", None)
        if not isinstance(bias, nn.Parameter):
            continue
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            mean, var = module.running_mean, module.running_var
            if mean is None or var is None:
                continue  # batch statistics: not an additive constant (the check then says approximate)
            scale = module.weight.detach() / torch.sqrt(var + module.eps)
            terms.append((bias, bias.detach() - mean * scale))
        elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.Linear)):
            terms.append((bias, bias.detach()))
    return terms


@contextmanager
def _bias_gradients(terms: list[tuple[nn.Parameter, torch.Tensor]]) -> Iterator[None]:
    """Biases require gradients for the block (a frozen model's too); put back afterwards."""
    before = [param.requires_grad for param, _ in terms]
    try:
        for param, _ in terms:
            param.requires_grad_(True)
        yield
    finally:
        for (param, _), flag in zip(terms, before):
            param.requires_grad_(flag)


def _resolve_target(model: nn.Module, catalogue: Sequence[LayerInfo], name: str, batch: torch.Tensor) -> LayerInfo:
    """The layer asked for; a container whose output is its last sub-layer's output is that sub-layer
    (so the stations inside it count)."""
    (entry,) = select_layers(catalogue, [name], model_name=model_info(model).name)
    index = catalogue.index(entry)
    inside = [e for e in catalogue[index + 1:] if e.module.startswith(entry.module + ".")]
    if not inside or not entry.is_spatial:
        return entry
    last = max(inside, key=catalogue.index)
    if last.output_shape != entry.output_shape:
        return entry
    maps = FeatureExtractor(model, [entry.name, last.name], input_shape=tuple(batch.shape[1:]), method="hooks")(batch)
    return last if torch.equal(maps[entry.name], maps[last.name]) else entry


def lineage(
    model: nn.Module,
    image: ImageSource | torch.Tensor,
    unit: str,
    *,
    levels: int = 3,
    top: int = 4,
    stations: Sequence[str] | None = None,
    max_nodes: int = 16,
) -> Lineage:
    """How ``unit`` is built from the maps below it, ``levels`` steps back.

    Args:
        model: any ``nn.Module``.
        image: a path, ``sample:NAME``, PIL image or array (prepared for the model), or a
            tensor ``(C, H, W)`` taken as ready model input.
        unit: ``LAYER:CHANNEL`` (the map's mean) or ``LAYER:CHANNEL:Y:X`` (one unit); a layer
            without maps (a classifier's logits) takes ``LAYER:INDEX``.
        levels: steps back from the unit (1 to 8).
        top: children kept per node, the largest contributions (1 to 16).
        stations: the layers to stop at (default :func:`default_stations`).
        max_nodes: nodes kept per level, the largest values (4 to 64).

    Raises:
        LayerError: the unit's layer, or a station, is not a layer of the model.
        SettingsError: a channel or position out of range, or bad numbers.
    """
    for label, number, low, high in (("levels", levels, 1, 8), ("top", top, 1, 16), ("max_nodes", max_nodes, 4, 64)):
        if isinstance(number, bool) or not isinstance(number, int) or not low <= number <= high:
            raise SettingsError(f"{label} must be an integer from {low} to {high}; got {number!r}")
    info = model_info(model)
    if isinstance(image, torch.Tensor):
        if image.ndim != 3:
            raise SettingsError(f"a tensor image must be model input (C, H, W); got {tuple(image.shape)}")
        batch = image[None].to(model_device(model), torch.float32)
        display = None
    else:
        prepared = info.input.prepare(image)
        batch = info.input.normalise(prepared)[None].to(model_device(model))
        display = info.input.picture(prepared)
    catalogue = catalogue_for(model, tuple(batch.shape[1:]))
    target, indices = _parse_target(unit, catalogue, info.name)
    target = _resolve_target(model, catalogue, target.name, batch)
    order = {entry.name: i for i, entry in enumerate(catalogue)}
    if stations is None:
        chosen = [name for name in default_stations(catalogue) if order[name] < order[target.name]]
    else:
        chosen = [e.name for e in select_layers(catalogue, list(stations), model_name=info.name)
                  if e.name != target.name]
    extractor = FeatureExtractor(model, [*chosen, target.name], input_shape=tuple(batch.shape[1:]), method="hooks")
    terms = _bias_terms(model)
    audit = _Audit()
    with model_lock(model), _bias_gradients(terms):
        with audit:
            outputs, leaves = extractor.cut(batch, chosen)
        value_tensor = _select(outputs[target.name][0], indices, target)
        builder = _Builder(leaves, outputs, [*terms, *audit.constants], audit, {e.name: e for e in catalogue},
                           top=top, max_nodes=max_nodes)
        root = builder.root(target, indices, value_tensor, outputs[target.name][0])
        with torch.enable_grad():
            builder.expand(root, value_tensor, levels)
    names = info.class_names or ()
    class_label = names[indices[0]] if len(target.output_shape) == 1 and indices[0] < len(names) else None
    approximate = set(audit.nonlinear)
    missed = [abs(node.residual) for node in builder.nodes if node.exact is False and node.residual is not None]
    if missed and not approximate:  # every operation looked piecewise linear, yet the parts miss the value
        approximate.add(f"a constant no bias accounts for (contributions + biases miss the value by up to "
                        f"{max(missed):.3g})")
    method = "exact (piecewise-linear path)" if not approximate else "gradient x input (approximate)"
    return Lineage(model=info.name, weights=info.weights_label, unit=unit, method=method, stations=chosen,
                   nodes=builder.nodes, edges=builder.edges, approximate_ops=sorted(approximate),
                   display=display if display is not None else batch[0].detach().cpu(), maps=builder.maps,
                   dropped=builder.dropped, label=class_label)


def _parse_target(unit: str, catalogue: Sequence[LayerInfo], model_name: str) -> tuple[LayerInfo, list[int]]:
    if not isinstance(unit, str) or ":" not in unit or len(unit) > 300:
        raise SettingsError(f"a unit is LAYER:CHANNEL or LAYER:CHANNEL:Y:X; got {unit[:300]!r}")
    names = {e.name for e in catalogue}
    pieces = unit.split(":")
    # The longest prefix that is a layer (a layer's name may hold ':' itself: layer1.0.relu:1, its second call).
    cut = next((cut for cut in range(len(pieces) - 1, 0, -1) if ":".join(pieces[:cut]) in names), None)
    if cut is None:
        select_layers(catalogue, [pieces[0]], model_name=model_name)  # raises the LayerError with valid names
        cut = 1
    name, numbers = ":".join(pieces[:cut]), pieces[cut:]
    if len(numbers) not in (1, 3):
        raise SettingsError(f"unit {unit!r}: layer {name} is followed by {len(numbers)} numbers ({':'.join(numbers)});"
                            " a unit is LAYER:CHANNEL (a map) or LAYER:CHANNEL:Y:X (one unit of it)")
    if not all(re.fullmatch(r"-?[0-9]{1,9}", number) for number in numbers):
        raise SettingsError(f"unit {unit!r}: the channel and position after layer {name} must be whole numbers; "
                            f"got {':'.join(numbers)}")
    indices = [int(number) for number in numbers]
    (entry,) = select_layers(catalogue, [name], model_name=model_name)
    shape = entry.output_shape
    if not shape:
        raise LayerError(f"layer {name} has no channels (its output is a scalar)")
    if len(indices) == 3 and not entry.is_spatial:
        raise SettingsError(f"layer {name} has no maps (output {list(shape)}); give LAYER:INDEX")
    bounds = [shape[0]] + (list(shape[1:3]) if len(indices) == 3 else [])
    for label, index, bound in zip(("channel", "y", "x"), indices, bounds):
        if not 0 <= index < bound:
            raise SettingsError(f"{label} {index} is out of range for layer {name} (output {list(shape)}): "
                                f"0 to {bound - 1}")
    return entry, indices


def _select(output: torch.Tensor, indices: list[int], entry: LayerInfo) -> torch.Tensor:
    if len(indices) == 3:
        return output[indices[0], indices[1], indices[2]]
    channel = output[indices[0]]
    return channel.mean() if channel.ndim else channel


class _Builder:
    """Expands nodes level by level, merging children that several parents picked."""

    def __init__(self, leaves: dict[str, torch.Tensor], connected: dict[str, torch.Tensor],
                 terms: list[tuple[torch.Tensor, torch.Tensor]], audit: _Audit, layers: dict[str, LayerInfo], *,
                 top: int, max_nodes: int) -> None:
        self.leaves = leaves
        self.connected = connected
        self.terms = terms
        self.audit = audit
        self.layers = layers
        self.top = top
        self.max_nodes = max_nodes
        self.nodes: list[LineageNode] = []
        self.edges: list[LineageEdge] = []
        self.maps: dict[int, np.ndarray] = {}
        self.dropped = 0
        self.totals: dict[int, float] = {}

    def root(self, entry: LayerInfo, indices: list[int], value: torch.Tensor, output: torch.Tensor) -> LineageNode:
        position = (indices[1], indices[2]) if len(indices) == 3 else None
        if position is None and output.ndim == 3:
            spot = int(output[indices[0]].argmax())
            position = divmod(spot, output.shape[2])
        node = LineageNode(0, 0, entry.name, indices[0], float(value.detach()), position, self._region(entry.name, position))
        self.nodes.append(node)
        if output.ndim == 3:
            self.maps[0] = output[indices[0]].detach().cpu().numpy()
        return node

    def _region(self, layer: str, position: tuple[int, int] | None) -> tuple[float, float, float, float] | None:
        entry = self.layers.get(layer)
        if position is None or entry is None or entry.receptive_field is None or entry.global_field:
            return None
        return entry.region(*position)

    def expand(self, root: LineageNode, value: torch.Tensor, levels: int) -> None:
        frontier: list[tuple[LineageNode, torch.Tensor]] = [(root, value)]
        for level in range(1, levels + 1):
            weights: dict[tuple[str, int], torch.Tensor] = {}
            picked: dict[tuple[str, int], list[tuple[int, float, float | None]]] = {}
            for node, functional in frontier:
                for key, weight, contribution, via_skip in self._step(node, functional):
                    weights[key] = weights[key] + weight if key in weights else weight
                    picked.setdefault(key, []).append((node.id, contribution, via_skip))
            if not weights:
                return
            values = {key: sum(c for _, c, _ in picked[key]) for key in weights}
            kept = sorted(weights, key=lambda k: -abs(values[k]))[:self.max_nodes]
            self.dropped += len(weights) - len(kept)
            frontier = []
            for key in kept:
                layer, channel = key
                leaf = self.leaves[layer][0, channel]
                weight = weights[key]
                product = (weight * leaf.detach())
                position = None
                if product.ndim == 2:
                    position = divmod(int(product.abs().argmax()), product.shape[1])
                node = LineageNode(len(self.nodes), level, layer, channel, values[key], position,
                                   self._region(layer, position))
                self.nodes.append(node)
                self.maps[node.id] = leaf.detach().cpu().numpy() if leaf.ndim == 2 else np.asarray([[float(leaf)]])
                for parent, contribution, via_skip in picked[key]:
                    total = self.totals[parent]
                    self.edges.append(LineageEdge(parent, node.id, contribution, contribution / total if total else 0.0,
                                                  via_skip))
                if layer != INPUT:
                    frontier.append((node, (weight * self.connected[layer][0, channel]).sum()))

    def _step(self, node: LineageNode, functional: torch.Tensor) -> Iterator[tuple[tuple[str, int], torch.Tensor, float, float | None]]:
        """Decompose ``functional`` (a scalar in the graph) into the nearest stations' channels; update
        the node with its bias, exactness and skip/branch parts; yield the ``top`` children."""
        names = list(self.leaves)
        sums = self.audit.sums
        targets = [self.leaves[n] for n in names] + [p for p, _ in self.terms] + [s.out for s in sums]
        grads = torch.autograd.grad(functional, targets, retain_graph=True, allow_unused=True)
        leaf_grads = dict(zip(names, grads[:len(names)]))
        bias = 0.0
        for (_, constant), grad in zip(self.terms, grads[len(names):len(names) + len(self.terms)]):
            if grad is not None:
                bias += float((grad * constant).sum())
        candidates: list[tuple[float, str, int]] = []
        total_abs, total = 0.0, 0.0
        per_channel: dict[str, torch.Tensor] = {}
        for name, grad in leaf_grads.items():
            if grad is None:
                continue
            contributions = (grad * self.leaves[name].detach())[0].flatten(1).sum(1) if grad.ndim >= 3 else \
                (grad * self.leaves[name].detach())[0].reshape(-1)
            per_channel[name] = contributions
            total_abs += float(contributions.abs().sum())
            total += float(contributions.sum())
            candidates += [(float(c), name, i) for i, c in enumerate(contributions.tolist())]
        value = float(functional.detach())
        residual = value - total - bias
        scale = max(1.0, abs(value), total_abs, abs(bias))
        exact = not self.audit.nonlinear and abs(residual) <= 1e-4 * scale
        crossed = [(s, g) for s, g in zip(sums, grads[len(names) + len(self.terms):]) if g is not None]
        skip = branch = None
        skip_grads: dict[str, torch.Tensor] = {}
        if len(crossed) == 1 and crossed[0][0].labelled:
            record, grad_z = crossed[0]
            skip = float((grad_z * record.skip.detach()).sum())
            branch = float((grad_z * record.branch.detach()).sum())
            if record.skip.requires_grad:
                wanted = [n for n in per_channel if self.leaves[n].requires_grad]
                back = torch.autograd.grad(record.skip, [self.leaves[n] for n in wanted], grad_outputs=grad_z,
                                           retain_graph=True, allow_unused=True)
                skip_grads = {n: g for n, g in zip(wanted, back) if g is not None}
        self.nodes[node.id] = LineageNode(node.id, node.level, node.layer, node.channel, node.value, node.position,
                                          node.region, bias, exact, residual, skip, branch)
        self.totals[node.id] = total_abs
        candidates.sort(key=lambda item: -abs(item[0]))
        for contribution, name, channel in candidates[:self.top]:
            grad = leaf_grads[name]
            if grad is None:
                continue
            via_skip = None
            if name in skip_grads:
                via_skip = float((skip_grads[name][0, channel] * self.leaves[name][0, channel].detach()).sum())
            elif skip is not None:
                via_skip = 0.0
            yield (name, channel), grad[0, channel].detach(), contribution, via_skip
