"""``show``: every chosen layer's maps of one image as pictures and an HTML page.

Writes into a folder: ``input.png``, one ``<layer>.png`` grid per layer (the most active
maps first), ``overview.png`` (all layers, low to high), optional overlay and
receptive-field pictures, and ``index.html`` tying them together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from featuremaps.errors import LayerError, SettingsError
from featuremaps.features import FeatureExtractor, LayerSelection, catalogue_for, default_layers, select_layers
from featuremaps.features.catalogue import LayerInfo
from featuremaps.features.info import model_device, model_info
from featuremaps.files import check_outputs, save_picture
from featuremaps.images import ImageSource
from featuremaps.render.drawing import to_pil
from featuremaps.render.grid import check_tiles, render_grid
from featuremaps.render.overlay import rank_maps, render_overlay, render_receptive_field
from featuremaps.render.overview import describe_layer, render_overview, spatial_maps
from featuremaps.render.report import Report

__all__ = ["ImageMaps", "ShowResult", "image_maps", "parse_unit", "show"]


@dataclass(frozen=True)
class ImageMaps:
    """One image's maps of chosen layers, and the input the model saw.

    Attributes:
        display: the model's input before normalisation, ``(C, H, W)`` in [0, 1] (pictures
            are drawn on it, so receptive fields land on the right pixels).
        maps: layer name -> that layer's output for the image (``(C, h, w)`` for maps).
        layers: layer name -> its catalogue entry, for every layer in ``maps``.
        catalogue: every layer of the model at this input size.
    """

    display: torch.Tensor
    maps: dict[str, torch.Tensor]
    layers: dict[str, LayerInfo]
    catalogue: list[LayerInfo]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.display.shape)

    def spatial(self, name: str) -> torch.Tensor:
        """The maps ``(C, h, w)`` of layer ``name``; a layer without maps is a SettingsError."""
        tensor = spatial_maps(self.layers[name], self.maps[name])
        if tensor is None:
            raise SettingsError(f"layer {name} has no feature maps (its output is {list(self.layers[name].output_shape)})")
        return tensor


def image_maps(model: nn.Module, image: ImageSource, layers: LayerSelection | None = None) -> ImageMaps:
    """The maps of ``layers`` (default: the model's stages, :func:`default_layers`) for one image.

    The image is decoded and prepared once (the model's input description); the display
    image and the model input come from the same pixels.
    """
    model_input = model_info(model).input
    prepared = model_input.prepare(image)  # (C, H, W) uint8
    batch = model_input.normalise(prepared)[None].to(model_device(model))
    catalogue = catalogue_for(model, tuple(batch.shape[1:]))
    names = [e.name for e in default_layers(catalogue)] if layers is None else layers
    extractor = FeatureExtractor(model, names, input_shape=tuple(batch.shape[1:]))
    maps = extractor(batch)
    return ImageMaps(display=model_input.picture(prepared), maps={name: m[0].cpu() for name, m in maps.items()},
                     layers={entry.name: entry for entry in extractor.layers}, catalogue=list(catalogue))


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
    """What :func:`show` wrote; in Jupyter, the pictures themselves."""

    index: Path
    input_shape: tuple[int, ...]
    layers: list[dict[str, Any]] = field(default_factory=list)
    extra: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    """Every file written (pictures, the page and its figures)."""

    def _repr_html_(self) -> str:
        import base64
        import html

        parts = [f"<p>wrote <code>{html.escape(str(self.index))}</code> (input {'x'.join(map(str, self.input_shape))})"
                 "</p>"]
        pictures = [(row["name"], Path(row["picture"])) for row in self.layers if row.get("picture")]
        pictures += [(path.stem, path) for path in self.extra]
        for name, path in pictures:
            if path.exists():
                data = base64.b64encode(path.read_bytes()).decode()
                parts.append(f"<div><b>{html.escape(str(name))}</b><br><img src='data:image/png;base64,{data}' "
                             "style='max-width:100%'></div>")
        return "".join(parts)


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
    tile_size: int = 128,
    scale: float | None = None,
    overwrite: bool = False,
) -> ShowResult:
    """Render the maps of ``layers`` (default: :func:`default_layers`) of ``image`` into ``out_dir``.

    Files are written atomically; one featuremaps did not write (a user's ``index.html``) is
    replaced only with ``overwrite``, which is checked before the forward pass.

    Args:
        tile_size, scale: the grids' tile side in pixels, or pixels per map unit (then maps of
            different layers keep their true relative size); see :func:`~featuremaps.render_grid`.
        overlay: ``(layer, channel)``: that map blended over the input, with the receptive
            field of its most active unit outlined.
        unit: ``(layer, channel, y, x)``: the receptive field of that unit on the input.
    """
    if max_maps < 1:
        raise SettingsError(f"max_maps must be >= 1; got {max_maps}")
    check_tiles(tile_size, scale)
    info = model_info(model)
    model_input = info.input
    catalogue = catalogue_for(model, model_input.shape)
    chosen = select_layers(catalogue, layers, model_name=info.name) if layers else default_layers(catalogue)
    extra_names = [spec[0] for spec in (overlay, unit) if spec is not None]
    extra = select_layers(catalogue, extra_names, model_name=info.name) if extra_names else []
    out = Path(out_dir)
    names = ["index.html", "overview.png", "overview-page.png", "input.png",
             *(f"{_slug(entry.name)}.png" for entry in chosen)]
    if overlay is not None:
        names.append(f"overlay-{_slug(overlay[0])}-{overlay[1]}.png")
    if unit is not None:
        names.append(f"unit-{_slug(unit[0])}-{unit[1]}-{unit[2]}-{unit[3]}.png")
    check_outputs([out / name for name in names], overwrite=overwrite)
    seen = image_maps(model, image, [e.name for e in chosen] + [e.name for e in extra if e not in chosen])
    picture_input = seen.display
    result = ShowResult(index=out / "index.html", input_shape=seen.input_shape)
    grids, overview_maps = [], {}
    for entry in chosen:
        tensor = spatial_maps(entry, seen.maps[entry.name])
        row: dict[str, Any] = {"name": entry.name, "type": entry.type, "output_shape": list(entry.output_shape),
                                  **{k: v for k, v in entry.to_dict().items() if k in ("stride", "receptive_field")}}
        if tensor is not None:
            overview_maps[entry.name] = tensor
            order = rank_maps(tensor)[:max_maps]
            grid = render_grid(tensor[order], indices=order, clip=0.5, tile_size=tile_size, scale=scale, title=describe_layer(entry) + info.untrained_note)
            path = save_picture(grid, out / f"{_slug(entry.name)}.png", overwrite=overwrite)
            row["picture"] = str(path)
            grids.append((grid, f"{describe_layer(entry)}; the {len(order)} most active of {tensor.shape[0]} maps",
                          _slug(entry.name)))
        result.layers.append(row)
    by_name = {entry.name: entry for entry in catalogue}
    weights = info.weights_label
    overview = render_overview(picture_input, overview_maps, by_name, max_maps=min(max_maps, 8),
                               title=f"{info.name}: feature maps from low to high level"
                                     + info.untrained_note)
    save_picture(overview, out / "overview.png", overwrite=overwrite)
    save_picture(to_pil(picture_input), out / "input.png", overwrite=overwrite)
    report = Report(title or f"{info.name}: feature maps, low to high",
                    intro=f"Model {info.name} ({info.source}), {weights}. Input {list(seen.input_shape)}.")
    report.section("Overview").figure(overview, "Each row is a layer, low to high; its most active maps.",
                                      name="overview-page")
    layers_section = report.section("Layers")
    for grid, caption, name in grids:
        layers_section.figure(grid, caption, name=name)
    if overlay is not None:
        name, channel = overlay
        tensor = seen.spatial(name)
        _check_channel(name, channel, tensor)
        picture = render_overlay(picture_input, tensor[channel], layer=by_name[name],
                                 title=f"{name} channel {channel}{info.untrained_note}")
        path = save_picture(picture, out / f"overlay-{_slug(name)}-{channel}.png", overwrite=overwrite)
        result.extra.append(path)
        report.section("Overlay").figure(picture, f"{name} channel {channel} over the input; the box is the "
                                                  "receptive field of its most active unit.", name=path.stem)
    if unit is not None:
        name, channel, y, x = unit
        entry = by_name[name]
        tensor = seen.spatial(name)
        _check_channel(name, channel, tensor)
        picture = render_receptive_field(picture_input, entry, y, x, channel=channel,
                                         value=float(tensor[channel, y, x]) if y < tensor.shape[1] and
                                         x < tensor.shape[2] else None)
        path = save_picture(picture, out / f"unit-{_slug(name)}-{channel}-{y}-{x}.png", overwrite=overwrite)
        result.extra.append(path)
        report.section("Receptive field").figure(picture, f"What unit ({y}, {x}) of {name} sees.", name=path.stem)
    report.write(out, overwrite=overwrite)
    result.files = sorted({out / "overview.png", out / "input.png", *result.extra, *(out / name for name in report.files()),
                           *(Path(row["picture"]) for row in result.layers if row.get("picture"))})
    return result


def _check_channel(name: str, channel: int, tensor: torch.Tensor) -> None:
    if not 0 <= channel < tensor.shape[0]:
        raise LayerError(f"channel {channel} is out of range for {name}, which has {tensor.shape[0]} maps "
                         f"(0..{tensor.shape[0] - 1})")
