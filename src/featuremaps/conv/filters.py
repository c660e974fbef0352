"""Named filter banks: the classic hand-made kernels of image processing, Gabor, random.

A bank is a list of 2-D filters ``(D, kh, kw)`` with a name per filter. Like PyTorch,
featuremaps computes cross-correlation (the kernel is not flipped), so ``sobel_x`` is
positive where the image gets brighter to the right.

Several banks combine with commas: ``"sobel_x,sobel_y,laplacian"`` is a bank of 3.

How a bank applies to an input with C channels (per group): the hand-made filters
(Sobel, Gabor, ...) are repeated over the channels and divided by C, so a map is the
filter applied to the mean of the channels (the image's gray level); an RGB photo and its
gray version give the same maps. The ``random`` and ``random_int`` banks draw an
independent kernel for every channel, like the initial weights of a CNN. Pass a
``(D, C, kh, kw)`` array for any other per-channel filters.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np

from featuremaps.errors import SettingsError, check_seed

if TYPE_CHECKING:  # torch is imported where filters become tensors, so listing the banks needs only numpy
    import torch

__all__ = ["BANKS", "BankInfo", "FilterBank", "bank", "describe_banks", "filters_from_array", "load_filters"]


@dataclass(frozen=True)
class FilterBank:
    """Filters with one name each.

    Attributes:
        weights: float32 tensor ``(D, C_in_per_group, kh, kw)``.
        names: one name per filter, ``len(names) == D``.
    """

    weights: torch.Tensor
    names: tuple[str, ...]

    @property
    def depth(self) -> int:
        return int(self.weights.shape[0])


class _Fixed:
    """A hand-made kernel of one size (``fixed_size``)."""

    def __init__(self, kernel: list[list[float]]) -> None:
        self.array = np.asarray(kernel, dtype=np.float64)
        self.fixed_size = (int(self.array.shape[0]), int(self.array.shape[1]))

    def __call__(self, size: tuple[int, int] | None, depth: int | None, seed: int) -> np.ndarray:
        return self.array[None]


def _fixed(kernel: list[list[float]]) -> _Fixed:
    return _Fixed(kernel)


def _gaussian(size: tuple[int, int] | None, depth: int | None, seed: int) -> np.ndarray:
    kh, kw = size or (5, 5)
    axes = []
    for k in (kh, kw):
        sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8  # OpenCV's default sigma for a kernel size
        coords = np.arange(k) - (k - 1) / 2
        axes.append(np.exp(-(coords**2) / (2 * sigma**2)))
    kernel = np.outer(axes[0], axes[1])
    return (kernel / kernel.sum())[None]


def _box(size: tuple[int, int] | None, depth: int | None, seed: int) -> np.ndarray:
    kh, kw = size or (3, 3)
    return np.full((1, kh, kw), 1.0 / (kh * kw))


def _gabor(size: tuple[int, int] | None, depth: int | None, seed: int) -> np.ndarray:
    """``depth`` orientations evenly spread over 180°, zero mean, unit L1 norm (at least 3x3: a smaller
    window cannot hold a stripe, and its zero-mean kernel would be all zeros)."""
    kh, kw = size or (7, 7)
    if max(kh, kw) < 3:
        raise SettingsError(f"gabor filters need a kernel of at least 3 pixels on one side; got {kh}x{kw}")
    count = depth or 4
    extent = max(kh, kw)
    sigma, wavelength, aspect = extent / 4.0, extent / 2.0, 0.5
    y, x = np.meshgrid(np.arange(kh) - (kh - 1) / 2, np.arange(kw) - (kw - 1) / 2, indexing="ij")
    kernels = []
    for i in range(count):
        theta = math.pi * i / count
        xr = x * math.cos(theta) + y * math.sin(theta)
        yr = -x * math.sin(theta) + y * math.cos(theta)
        kernel = np.exp(-(xr**2 + (aspect * yr) ** 2) / (2 * sigma**2)) * np.cos(2 * math.pi * xr / wavelength)
        kernel -= kernel.mean()
        kernels.append(kernel / np.abs(kernel).sum())
    return np.stack(kernels)


def _random(size: tuple[int, int] | None, depth: int | None, seed: int, channels: int = 1) -> np.ndarray:
    """He-normal filters ``(D, C, kh, kw)`` from a seeded generator (same seed, same filters)."""
    kh, kw = size or (3, 3)
    generator = np.random.default_rng(seed)
    return generator.standard_normal((depth or 8, channels, kh, kw)) * math.sqrt(2.0 / (channels * kh * kw))


def _random_int(size: tuple[int, int] | None, depth: int | None, seed: int, channels: int = 1) -> np.ndarray:
    """Seeded integers in {-1, 0, 1} ``(D, C, kh, kw)``: sums a reader can check by hand."""
    kh, kw = size or (3, 3)
    generator = np.random.default_rng(seed)
    return generator.integers(-1, 2, (depth or 2, channels, kh, kw)).astype(np.float64)


def _gabor_names(count: int) -> list[str]:
    return [f"gabor_{round(180 * i / count)}deg" for i in range(count)]


BANKS: dict[str, Callable[..., np.ndarray]] = {
    "sobel_x": _fixed([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
    "sobel_y": _fixed([[-1, -2, -1], [0, 0, 0], [1, 2, 1]]),
    "scharr_x": _fixed([[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]]),
    "scharr_y": _fixed([[-3, -10, -3], [0, 0, 0], [3, 10, 3]]),
    "prewitt_x": _fixed([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]]),
    "prewitt_y": _fixed([[-1, -1, -1], [0, 0, 0], [1, 1, 1]]),
    "laplacian": _fixed([[0, 1, 0], [1, -4, 1], [0, 1, 0]]),
    "sharpen": _fixed([[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    "emboss": _fixed([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]]),
    "gaussian": _gaussian,
    "box": _box,
    "gabor": _gabor,
    "random": _random,
    "random_int": _random_int,
}
"""Every bank by name. ``gabor``, ``random`` and ``random_int`` take ``depth``; those and
``gaussian`` and ``box`` take any kernel size; the others are 3×3."""

GROUPS: dict[str, tuple[str, ...]] = {
    "sobel": ("sobel_x", "sobel_y"),
    "scharr": ("scharr_x", "scharr_y"),
    "prewitt": ("prewitt_x", "prewitt_y"),
    "edges": ("sobel_x", "sobel_y", "laplacian"),
    "classic": ("sobel_x", "sobel_y", "laplacian", "sharpen", "emboss", "gaussian"),
}
"""Shorthands for several banks at once."""

_DEPTH_BANKS = ("gabor", "random", "random_int")
_PER_CHANNEL_BANKS = ("random", "random_int")


def bank_names() -> list[str]:
    """Every accepted name: single banks, then the shorthand groups."""
    return [*BANKS, *GROUPS]


def bank_depth(name: str) -> int | None:
    """How many filters the bank (or group) ``name`` gives: fixed for hand-made kernels, None for
    the banks that take ``depth``."""
    members = GROUPS.get(name, (name,))
    if any(member in _DEPTH_BANKS for member in members):
        return None
    return len(members)


def bank_is_sizeable(name: str) -> bool:
    """True when every member of ``name`` takes any kernel size (``gaussian``, ``box`` and the depth banks)."""
    return all(getattr(BANKS.get(member), "fixed_size", None) is None for member in GROUPS.get(name, (name,)))


def bank(
    spec: str,
    *,
    kernel_size: tuple[int, int] | None = None,
    depth: int | None = None,
    seed: int = 0,
    channels: int = 1,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Filters ``(D, channels, kh, kw)`` and their names for a bank spec like ``"sobel,gabor"``.

    Args:
        spec: bank names separated by commas (see :data:`BANKS` and :data:`GROUPS`).
        kernel_size: size for the sizeable banks; the fixed 3×3 banks refuse another size.
        depth: number of filters of a ``gabor`` or ``random`` bank; for other banks it
            must equal the bank's own number of filters.
        seed: seed of the ``random`` banks.
        channels: input channels per group; hand-made filters are spread over them
            (divided by ``channels``), random banks draw one kernel per channel.

    Example:
        >>> bank("sobel")[0].shape
        (2, 1, 3, 3)
    """
    check_seed(seed)
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    if not parts:
        raise SettingsError(f"filters: empty bank name; choose from {', '.join(bank_names())}")
    names_in_order: list[str] = []
    for part in parts:
        if part in GROUPS:
            names_in_order.extend(GROUPS[part])
        elif part in BANKS:
            names_in_order.append(part)
        else:
            raise SettingsError(
                f"unknown filter bank {part!r}; choose from {', '.join(bank_names())}"
                + (f" (to read filters from a file, pass pathlib.Path({part!r}))" if part.lower().endswith(".npy")
                   else "")
            )
    if depth is not None and not (len(names_in_order) == 1 and names_in_order[0] in _DEPTH_BANKS):
        if any(name in _DEPTH_BANKS for name in names_in_order):
            raise SettingsError(
                f"depth {depth} is ambiguous for filters {spec!r}: depth sets the number of filters "
                "of a single 'gabor', 'random' or 'random_int' bank"
            )
        if depth != len(names_in_order):
            raise SettingsError(
                f"filters {spec!r} are {len(names_in_order)} filters ({', '.join(names_in_order)}), not "
                f"depth {depth}; depth sets the number of filters of a single 'gabor', 'random' or 'random_int' bank"
            )
        depth = None
    fixed_sizes = {getattr(BANKS[name], "fixed_size", None) for name in names_in_order} - {None}
    if kernel_size is None and len(fixed_sizes) == 1:
        kernel_size = next(iter(fixed_sizes))  # sizeable banks follow the fixed ones (e.g. 'classic')
    sizes = set()
    arrays, names = [], []
    for name in names_in_order:
        make = BANKS[name]
        fixed = getattr(make, "fixed_size", None)
        if fixed is not None and kernel_size is not None and tuple(kernel_size) != fixed:
            raise SettingsError(
                f"filter bank {name!r} is {fixed[0]}x{fixed[1]}; kernel_size {kernel_size[0]}x{kernel_size[1]} "
                "is allowed only for gaussian, box, gabor, random and random_int"
            )
        if name in _PER_CHANNEL_BANKS:
            array = make(kernel_size, depth, seed, channels)
        else:
            flat = make(kernel_size, depth, seed)  # (D, kh, kw)
            array = np.repeat(flat[:, None], channels, axis=1) / channels
        arrays.append(array)
        sizes.add(array.shape[2:])
        if name == "gabor":
            names.extend(_gabor_names(array.shape[0]))
        elif name in ("random", "random_int"):
            names.extend(f"{name}_{i}" for i in range(array.shape[0]))
        else:
            names.append(name)
    if len(sizes) > 1:
        listed = ", ".join(f"{h}x{w}" for h, w in sorted(sizes))
        raise SettingsError(f"filters {spec!r} mix kernel sizes ({listed}); give kernel_size or use one size")
    return np.concatenate(arrays).astype(np.float32), tuple(names)


def filters_from_array(
    array: np.ndarray | torch.Tensor, *, in_channels: int | None, groups: int, source: str = "filter array"
) -> FilterBank:
    """Filters from an array ``(D, C/groups, kh, kw)``; ``(D, kh, kw)`` and ``(kh, kw)`` are lifted.

    A 2-D or 3-D array is spread over the channels like a hand-made bank (divided by C/groups).
    """
    import torch

    weights = torch.as_tensor(np.asarray(array) if not isinstance(array, torch.Tensor) else array)
    if not torch.is_floating_point(weights) and weights.dtype not in (torch.int8, torch.int16, torch.int32, torch.int64):
        raise SettingsError(f"{source} has dtype {weights.dtype}; expected numbers")
    weights = weights.to(torch.float32)
    if weights.ndim == 2:
        weights = weights[None]  # (1, kh, kw)
    if weights.ndim == 3:
        if in_channels is None:
            raise SettingsError(f"{source} of shape {tuple(weights.shape)} needs in_channels to be spread over")
        per_group = in_channels // groups
        weights = weights[:, None].repeat(1, per_group, 1, 1) / per_group  # (D, C/g, kh, kw)
    if weights.ndim != 4 or min(weights.shape) < 1:
        raise SettingsError(
            f"{source} must have shape (D, C/groups, kh, kw) (or (D, kh, kw), (kh, kw)); got {tuple(weights.shape)}"
        )
    if not torch.isfinite(weights).all():
        raise SettingsError(f"{source} contains NaN or infinite values")
    depth, per_group = int(weights.shape[0]), int(weights.shape[1])
    if in_channels is not None and per_group * groups != in_channels:
        raise SettingsError(
            f"{source} has shape {tuple(weights.shape)}: dimension 1 must be in_channels / groups = "
            f"{in_channels} / {groups} = {in_channels // groups if in_channels % groups == 0 else in_channels / groups}; "
            f"got {per_group}"
        )
    if depth % groups != 0:
        raise SettingsError(f"{source} has {depth} filters; the number of filters must be divisible by groups={groups}")
    return FilterBank(weights.contiguous(), tuple(f"filter_{i}" for i in range(depth)))


def load_filters(path: str | os.PathLike[str]) -> np.ndarray:
    """Read filters from a ``.npy`` file (never unpickles)."""
    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise SettingsError(f"filter file {str(path)!r} must be a .npy array")
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise SettingsError(f"filter file {str(path)!r} not found") from None
    except (ValueError, OSError) as error:
        raise SettingsError(f"filter file {str(path)!r} is not a readable .npy array ({error})") from None


def bank_for_layer(
    filters: str | np.ndarray | torch.Tensor | os.PathLike[str],
    *,
    in_channels: int,
    groups: int,
    kernel_size: tuple[int, int] | None,
    depth: int | None,
    seed: int,
) -> FilterBank:
    """Resolve any filter spec into ``(D, C/groups, kh, kw)``.

    A ``str`` is always bank names and never opens a file (so text from a web form or a
    config cannot name a file on the server); a file is read only from a ``pathlib.Path``
    (or another ``os.PathLike``).
    """
    import torch

    if isinstance(filters, os.PathLike):
        filters = load_filters(filters)
        source = "filter file"
    elif isinstance(filters, str):
        array, names = bank(filters, kernel_size=kernel_size, depth=depth, seed=seed,
                            channels=in_channels // groups)
        weights = torch.from_numpy(array)
        if weights.shape[0] % groups != 0:
            raise SettingsError(
                f"bank {filters!r} has {weights.shape[0]} filters, not divisible by groups={groups}"
            )
        return FilterBank(weights, names)
    else:
        source = "filter array"
    result = filters_from_array(filters, in_channels=in_channels, groups=groups, source=source)
    if kernel_size is not None and tuple(result.weights.shape[2:]) != tuple(kernel_size):
        raise SettingsError(
            f"{source} has kernels of {result.weights.shape[2]}x{result.weights.shape[3]}, "
            f"but kernel_size {kernel_size[0]}x{kernel_size[1]} was given"
        )
    if depth is not None and result.depth != depth:
        raise SettingsError(f"{source} has {result.depth} filters, but depth {depth} was given")
    return result


class BankInfo(TypedDict):
    """A bank name, the names of its filters and their size (``[kh, kw]``); ``resized`` names the members of
    a group that take the group's size instead of their own (``gaussian`` is 5x5 alone, 3x3 in ``classic``)."""

    name: str
    filters: list[str]
    kernel_size: list[int]
    resized: dict[str, list[int]]


def describe_banks() -> list[BankInfo]:
    """One entry per bank name: its filters and size, for listings."""
    rows: list[BankInfo] = []
    for name in bank_names():
        array, names = bank(name)
        resized = {member: list(bank(member)[0].shape[2:]) for member in GROUPS.get(name, ())
                   if bank(member)[0].shape[2:] != array.shape[2:]}
        rows.append({"name": name, "filters": list(names), "kernel_size": list(array.shape[2:]), "resized": resized})
    return rows

