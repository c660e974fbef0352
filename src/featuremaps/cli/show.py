"""``featuremaps show``: the feature maps of every chosen layer for one image."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from featuremaps.cli._common import (
    Device,
    ModelName,
    Overwrite,
    Scale,
    TileSize,
    Weights,
    app,
    model_on,
    print_json,
)


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
    from featuremaps.render.show import parse_unit, show

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
