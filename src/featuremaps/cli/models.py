"""``featuremaps models``, ``layers`` and ``show``: real CNNs, their layers and their maps."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from featuremaps.cli._common import Device, Overwrite, Scale, TileSize, app, model_on, print_json
from featuremaps.errors import SettingsError

if TYPE_CHECKING:
    from featuremaps.features.catalogue import LayerInfo

MODEL_HELP = ("builtin:imagenet (trained on ImageNet photos), builtin:objects, builtin:shapes (trained on generated "
              "drawings), tinyvgg, tinyresnet, lenet5, a torchvision name (untrained), timm:NAME or a checkpoint "
              "(see 'featuremaps models').")
ModelName = Annotated[str, typer.Option("--model", "-m", metavar="MODEL",
                                        help=MODEL_HELP)]
Weights = Annotated[Optional[str], typer.Option(metavar="W", help="DEFAULT, a weights name, or a weights file "
                                                "(default: untrained).")]


@app.command("models")
def models_command(
    include_timm: Annotated[bool, typer.Option("--timm", help="Also list timm's models (when installed).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the models load_model accepts: built-in, torchvision, and timm with --timm."""
    from featuremaps.models import available_models

    rows = available_models(include_timm=include_timm)
    if as_json:
        print_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['name']:<34} {row['source']:<12} {row['description']}")
    typer.echo("\nAlso: timm:NAME (with the timm extra; --timm lists them) and checkpoint files (.safetensors, .pt).")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def _pair(values: tuple[float, float] | None) -> str:
    if values is None:
        return "-"
    return _number(values[0]) if values[0] == values[1] else f"{_number(values[0])}x{_number(values[1])}"


def _row(layer: LayerInfo) -> str:
    shape = "x".join(str(s) for s in layer.output_shape) or "-"
    field = "global" if layer.global_field else _pair(layer.receptive_field)
    flags = " ".join(flag for flag, on in (("merged", layer.merged), ("+context", layer.global_context),
                                                     ("uneven", layer.uneven)) if on)
    name = "  " * layer.depth + layer.name
    return f"{name:<36} {layer.type:<22} {shape:<16} {_pair(layer.jump):>7} {field:>8}  {flags}"


@app.command("layers")
def layers_command(
    model: Annotated[str, typer.Argument(metavar="MODEL", help=MODEL_HELP)],
    weights: Weights = None,
    input_size: Annotated[Optional[str], typer.Option(metavar="N|CxHxW", help="Input size (default: the model's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of layers.")] = False,
) -> None:
    """List every layer in forward order: output shape, stride (jump) and receptive field."""
    from featuremaps.models import list_layers, load_model, model_info

    net = load_model(model, weights=weights)
    info = model_info(net)
    size: tuple[int, ...] = info.input_size
    if input_size:
        try:
            parts = [int(v) for v in input_size.lower().replace(",", "x").split("x")]
        except ValueError:
            raise SettingsError(f"--input-size takes N, HxW or CxHxW (e.g. 224 or 3x224x224); got {input_size!r}") \
                from None
        size = (info.input_size[0], parts[0], parts[0]) if len(parts) == 1 else tuple(parts[-3:]) if len(parts) == 3 \
            else (info.input_size[0], parts[0], parts[1])
    layers = list_layers(net, size, strict=False)
    if as_json:
        print_json([layer.to_dict() for layer in layers])
        return
    typer.echo(f"{info.name}: input {'x'.join(map(str, size))}, {info.weights_label}")
    typer.echo(f"{'layer':<36} {'type':<22} {'output':<16} {'stride':>7} {'RF':>8}")
    for layer in layers:
        typer.echo(_row(layer))
    if layers.stopped_at is not None:
        typer.echo(f"(the forward pass stops at {layers.stopped_at[0]} for this input size: {layers.stopped_at[1]})")


@app.command("show")
def show_command(
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="Image file or sample:NAME.")],
    model: ModelName,
    weights: Weights = None,
    layers: Annotated[Optional[str], typer.Option(metavar="L1,L2|PATTERN|TYPE", help="Layers to show (names, "
                                                  "patterns like 'layer*', types like Conv2d; default: the stages).")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", metavar="DIR", help="Folder for the pictures and "
                                         "index.html.")] = Path("show-output"),
    max_maps: Annotated[int, typer.Option(metavar="N", help="Most active maps drawn per layer.")] = 16,
    overlay: Annotated[Optional[str], typer.Option(metavar="LAYER:CHANNEL", help="Blend that map over the "
                                                   "image.")] = None,
    unit: Annotated[Optional[str], typer.Option(metavar="LAYER:CHANNEL:Y:X", help="Draw that unit's receptive "
                                                "field on the image.")] = None,
    tile_size: TileSize = 128,
    scale: Scale = None,
    device: Device = None,
    overwrite: Overwrite = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Draw the feature maps of every chosen layer of a model for one image (PNGs + index.html)."""
    from featuremaps.files import describe_earlier
    from featuremaps.models import model_info
    from featuremaps.show import parse_unit, show

    net = model_on(model, device, weights=weights)
    overlay_spec = None
    if overlay:
        name, (channel,) = parse_unit(overlay, 1)
        overlay_spec = (name, channel)
    unit_spec = None
    if unit:
        name, (channel, y, x) = parse_unit(unit, 3)
        unit_spec = (name, channel, y, x)
    result = show(net, image, output, layers=layers, max_maps=max_maps, overlay=overlay_spec, unit=unit_spec,
                  tile_size=tile_size, scale=scale, overwrite=overwrite)
    note = describe_earlier(output, result.files)
    if note:
        typer.echo(note, err=True)
    if as_json:
        print_json({"model": model_info(net).name, "weights": model_info(net).weights_label, "image": image, "input_shape": list(result.input_shape),
                    "layers": result.layers, "index": str(result.index), "extra": [str(p) for p in result.extra]})
        return
    for row in result.layers:
        typer.echo(f"{row['name']:<24} {'x'.join(str(v) for v in row['output_shape'])}")
    typer.echo(f"wrote {result.index}")
