"""``show``: every chosen layer's maps of one image as pictures and an HTML page.

Writes into a folder: ``input.png``, one ``<layer>.png`` grid per layer (the most active
maps first), ``overview.png`` (all layers, low to high), optional overlay and
receptive-field pictures, and ``index.html`` tying them together.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from featuremaps.errors import LayerError, SettingsError
from featuremaps.extract import LayerSelection, capture, catalogue_for, select_layers
from featuremaps.images import ImageSource
from featuremaps.models.catalogue import LayerInfo
from featuremaps.models.preprocess import model_info, prepare_batch
from featuremaps.render._draw import to_pil
from featuremaps.render.grid import render_grid
from featuremaps.render.overlay import display_image, rank_maps, render_overlay, render_receptive_field
from featuremaps.render.overview import describe_layer, render_overview, spatial_maps
from featuremaps.render.report import Report

__all__ = ["ShowResult", "default_layers", "parse_unit", "show"]

_SKIP_TYPES = ("BatchNorm2d", "Dropout", "Dropout2d", "Identity", "Flatten")
MAX_DEFAULT_LAYERS = 16


def default_layers(catalogue: Sequence[LayerInfo]) -> list[LayerInfo]:
    """The model's stages: top-level layers with maps, one level deeper while there are fewer than 3.

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
    if len(chosen) > MAX_DEFAULT_LAYERS:
        step = (len(chosen) - 1) / (MAX_DEFAULT_LAYERS - 1)
        chosen = [chosen[round(i * step)] for i in range(MAX_DEFAULT_LAYERS)]
    return chosen


def parse_unit(text: str, parts: int) -> tuple[str, list[int]]:
    """``"layer2:5"`` -> ("layer2", [5]); ``"layer1.0.relu:1:3:4:7"`` with parts=3 -> (name, [3, 4, 7])."""
    pieces = text.rsplit(":", parts)
    if len(pieces) != parts + 1:
        shape = "LAYER:CHANNEL" if parts == 1 else "LAYER:CHANNEL:Y:X"
        raise SettingsError(f"expected {shape}; got {text!r}")
    try:
        return pieces[0], [int(v) for v in pieces[1:]]
    except ValueError:
        raise SettingsError(f"channel and position must be integers; got {text!r}") from None


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "layer"


@dataclass
class ShowResult:
    """What :func:`show` wrote."""

    index: Path
    input_shape: tuple[int, ...]
    layers: list[dict[str, object]] = field(default_factory=list)
    extra: list[Path] = field(default_factory=list)


def _layer_maps(entry: LayerInfo, maps: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    tensor = spatial_maps(entry, maps[name][0])
    if tensor is None:
        raise SettingsError(f"layer {name} has no feature maps (its output is {list(entry.output_shape)})")
    return tensor


def show(
    model: nn.Module,
    image: ImageSource,
    out_dir: str | Path,
    *,
    layers: LayerSelection | None = None,
    max_maps: int = 16,
    overlay: tuple[str, int] | None = None,
    unit: tuple[str, int, int, int] | None = None,
    title: str | None = None,
) -> ShowResult:
    """Render the maps of ``layers`` (default: :func:`default_layers`) of ``image`` into ``out_dir``.

    Args:
        overlay: ``(layer, channel)``: that map blended over the input, with the receptive
            field of its most active unit outlined.
        unit: ``(layer, channel, y, x)``: the receptive field of that unit on the input.
    """
    if max_maps < 1:
        raise SettingsError(f"max_maps must be >= 1; got {max_maps}")
    info = model_info(model)
    batch, _ = prepare_batch(model, image)
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    catalogue = catalogue_for(model, tuple(batch.shape[1:]))
    chosen = select_layers(catalogue, layers, model_name=info.name) if layers else default_layers(catalogue)
    extra_names = [spec[0] for spec in (overlay, unit) if spec is not None]
    wanted = chosen + [e for e in select_layers(catalogue, extra_names, model_name=info.name)
                       if e not in chosen] if extra_names else chosen
    maps = capture(model, batch.to(device), wanted)
    by_name = {entry.name: entry for entry in catalogue}
    picture_input = display_image(model, image)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = info.weights or "untrained (random) weights"
    result = ShowResult(index=out / "index.html", input_shape=tuple(batch.shape[1:]))
    grids, overview_maps = [], {}
    for entry in chosen:
        tensor = spatial_maps(entry, maps[entry.name][0])
        row: dict[str, object] = {"name": entry.name, "type": entry.type, "output_shape": list(entry.output_shape),
                                  **{k: v for k, v in entry.to_dict().items() if k in ("stride", "receptive_field")}}
        if tensor is not None:
            overview_maps[entry.name] = tensor
            order = rank_maps(tensor)[:max_maps]
            grid = render_grid(tensor[order], indices=order, clip=0.5, tile_size=96, title=describe_layer(entry))
            path = out / f"{_slug(entry.name)}.png"
            grid.save(path)
            row["picture"] = str(path)
            grids.append((grid, f"{describe_layer(entry)}; the {len(order)} most active of {tensor.shape[0]} maps",
                          _slug(entry.name)))
        result.layers.append(row)
    overview = render_overview(picture_input, overview_maps, by_name, max_maps=min(max_maps, 8),
                               title=f"{info.name}: feature maps from low to high level")
    overview.save(out / "overview.png")
    to_pil(picture_input).save(out / "input.png")
    report = Report(title or f"{info.name}: feature maps, low to high",
                    intro=f"Model {info.name} ({info.source}), weights: {weights}. Input {list(batch.shape[1:])}.")
    report.section("Overview").figure(overview, "Each row is a layer, low to high; its most active maps.",
                                      name="overview-page")
    layers_section = report.section("Layers")
    for grid, caption, name in grids:
        layers_section.figure(grid, caption, name=name)
    if overlay is not None:
        name, channel = overlay
        tensor = _layer_maps(by_name[name], maps, name)
        _check_channel(name, channel, tensor)
        picture = render_overlay(picture_input, tensor[channel], layer=by_name[name],
                                 title=f"{name} channel {channel}")
        path = out / f"overlay-{_slug(name)}-{channel}.png"
        picture.save(path)
        result.extra.append(path)
        report.section("Overlay").figure(picture, f"{name} channel {channel} over the input; the box is the "
                                                  "receptive field of its most active unit.", name=path.stem)
    if unit is not None:
        name, channel, y, x = unit
        entry = by_name[name]
        tensor = _layer_maps(entry, maps, name)
        _check_channel(name, channel, tensor)
        picture = render_receptive_field(picture_input, entry, y, x, channel=channel,
                                         value=float(tensor[channel, y, x]) if y < tensor.shape[1] and
                                         x < tensor.shape[2] else None)
        path = out / f"unit-{_slug(name)}-{channel}-{y}-{x}.png"
        picture.save(path)
        result.extra.append(path)
        report.section("Receptive field").figure(picture, f"What unit ({y}, {x}) of {name} sees.", name=path.stem)
    report.write(out)
    return result


def _check_channel(name: str, channel: int, tensor: torch.Tensor) -> None:
    if not 0 <= channel < tensor.shape[0]:
        raise LayerError(f"channel {channel} is out of range for {name}, which has {tensor.shape[0]} maps "
                         f"(0..{tensor.shape[0] - 1})")
