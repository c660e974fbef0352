"""Which layers: the catalogue of a model at an input size (cached), and selections over it."""

from __future__ import annotations

import difflib
import fnmatch
import weakref
from collections.abc import Sequence
from typing import Union

from torch import nn

from featuremaps.errors import LayerError
from featuremaps.features.catalogue import LayerInfo, LayerList, list_layers
from featuremaps.features.hooks import model_lock
from featuremaps.features.info import base_module, structure_key

__all__ = ["MAX_DEFAULT_LAYERS", "LayerSelection", "catalogue_for", "default_layers", "find_layer", "select_layers"]

LayerSelection = Union[str, Sequence[str]]
"""Layer names (``layer2``, ``layer1.0.relu:1``), glob patterns (``layer*.conv1``), module types
(``Conv2d``), ``"all"``, or a list / comma-separated string of those."""

MAX_DEFAULT_LAYERS = 16
_SKIP_TYPES = ("BatchNorm2d", "Dropout", "Dropout2d", "Identity", "Flatten")
_CONTAINER_TYPES = ("Sequential", "ModuleList")
_CATALOGUES: weakref.WeakKeyDictionary[nn.Module, tuple[int, dict[tuple[int, ...], LayerList]]] = \
    weakref.WeakKeyDictionary()


def catalogue_for(model: nn.Module, input_shape: Sequence[int]) -> LayerList:
    """:func:`~featuremaps.models.list_layers` for an input of ``(C, H, W)``, cached per model and shape
    (and per the model's layers: a replaced or changed layer makes a new catalogue, see
    :func:`~featuremaps.features.info.structure_key`).

    A ``torch.compile``d model has the catalogue of the model it wraps.
    """
    model = base_module(model)
    shape = tuple(int(v) for v in input_shape)
    with model_lock(model):
        key = structure_key(model)
        stored = _CATALOGUES.get(model)
        if stored is None or stored[0] != key:
            stored = _CATALOGUES[model] = (key, {})
        per_model = stored[1]
        if shape not in per_model:
            per_model[shape] = list_layers(model, shape, strict=False)
        return per_model[shape]


def _summary(names: list[str]) -> str:
    if len(names) <= 12:
        return ", ".join(names)
    return ", ".join(names[:8]) + ", ..., " + ", ".join(names[-3:]) + f" ({len(names)} layers)"


def select_layers(catalogue: Sequence[LayerInfo], layers: LayerSelection, *,
                  model_name: str = "the model") -> list[LayerInfo]:
    """The catalogue entries a selection names, in forward order.

    Raises:
        LayerError: an item matches nothing; the message lists close and valid names.
    """
    items = [part.strip() for part in layers.split(",")] if isinstance(layers, str) else [str(x) for x in layers]
    items = [item for item in items if item]
    if not items:
        raise LayerError("no layers given; name layers, a pattern like 'layer*', a type like 'Conv2d', or 'all'")
    names = [entry.name for entry in catalogue]
    chosen: set[str] = set()
    for item in items:
        if item == "all":
            matches = names
        elif item in names:
            matches = [item]
        else:
            matches = [e.name for e in catalogue if e.type == item]
            if not matches and any(ch in item for ch in "*?["):
                matches = [name for name in names if fnmatch.fnmatchcase(name, item)]
        if not matches:
            raise LayerError(_not_found(item, catalogue, names, model_name))
        chosen.update(matches)
    return [entry for entry in catalogue if entry.name in chosen]


def find_layer(catalogue: Sequence[LayerInfo], name: str, *, model_name: str = "the model") -> LayerInfo:
    """The one layer called ``name`` exactly (no pattern, no type).

    Raises:
        LayerError: no layer has that name; the message lists close and valid names.
    """
    for entry in catalogue:
        if entry.name == name:
            return entry
    raise LayerError(_not_found(name, catalogue, [entry.name for entry in catalogue], model_name))


def _not_found(item: str, catalogue: Sequence[LayerInfo], names: list[str], model_name: str) -> str:
    """Say whether ``item`` is a module the forward pass never reached, or no layer at all."""
    stopped = getattr(catalogue, "stopped_at", None)
    module = item.partition(":")[0]
    known_modules = getattr(catalogue, "module_names", ())
    ran = any(entry.module == module for entry in catalogue)
    if stopped is not None and module in known_modules and not ran:  # the pass ended before the module ran
        return (f"layer {item!r} is not reached: the forward pass of {model_name} fails at {stopped[0]} for this "
                f"input size ({stopped[1]}); layers before it work")
    close = difflib.get_close_matches(item, names, n=4, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    top = [e.name for e in catalogue if e.depth == 0 and e.call == 0]
    depth = 0
    while len(top) < 3 and depth < 4:  # a wrapper (a head around a backbone): list the level that has the layers
        depth += 1
        deeper = [e.name for e in catalogue if e.depth == depth and e.call == 0]
        if not deeper:
            break
        top = deeper
    return (f"layer {item!r} not found in {model_name}{hint}. Valid: {_summary(top or names)} "
            f"(see 'featuremaps layers {model_name}' for all {len(names)})")


def default_layers(catalogue: Sequence[LayerInfo]) -> list[LayerInfo]:
    """The model's stages: top-level layers with maps, one level deeper while there are fewer than 3;
    a single top-level container of stages (EfficientNet's ``blocks``) is opened into its stages.

    Normalisation, dropout and identity layers are left out; more than 16 are thinned
    evenly (first and last kept).
    """
    spatial = [e for e in catalogue if e.is_spatial and not e.global_field and e.type not in _SKIP_TYPES]
    chosen = [e for e in spatial if e.depth == 0]
    depth = 0
    while len(chosen) < 3 and depth < 4:
        depth += 1
        deeper = [e for e in spatial if e.depth == depth]
        if not deeper:
            break
        chosen = deeper
    containers = [e for e in chosen if e.type in _CONTAINER_TYPES]
    if len(containers) == 1:  # one container holds the stages: its children are the stages
        inside = [e for e in spatial if e.module.startswith(containers[0].module + ".") and e.call == 0
                  and e.depth == containers[0].depth + 1]
        if len(inside) >= 2:
            at = chosen.index(containers[0])
            chosen = chosen[:at] + inside + chosen[at + 1:]
    if len(chosen) > MAX_DEFAULT_LAYERS:
        step = (len(chosen) - 1) / (MAX_DEFAULT_LAYERS - 1)
        chosen = [chosen[round(i * step)] for i in range(MAX_DEFAULT_LAYERS)]
    return chosen
