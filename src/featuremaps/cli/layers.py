"""``featuremaps layers``: every layer of a model, its output shape and receptive field."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from featuremaps.cli._common import (
    MODEL_HELP,
    Weights,
    app,
    print_json,
)
from featuremaps.errors import SettingsError

if TYPE_CHECKING:
    from featuremaps.features.catalogue import LayerInfo


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
