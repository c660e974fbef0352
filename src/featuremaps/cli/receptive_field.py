"""``featuremaps receptive-field``: which input pixels one unit of a stack of layers sees."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from featuremaps.cli._common import (
    Overwrite,
    app,
    parse_pair,
    parse_size,
    print_json,
)
from featuremaps.errors import SettingsError


@app.command("receptive-field")
def receptive_field_command(
    layers: Annotated[str, typer.Argument(metavar="LAYERS", help="Comma-separated [conv|pool]K[sS][pP][dD], "
                                          "e.g. '3,3s2,3' or '7s2p3,pool3s2p1'.")],
    input_size: Annotated[str, typer.Option(metavar="N|HxW", help="Input size.")] = "15",
    unit: Annotated[Optional[str], typer.Option(metavar="Y,X", help="Unit of the last layer (default: centre).")] = None,
    output: Annotated[Optional[Path], typer.Option("-o", "--output", metavar="OUT.png|svg", help="Write the diagram.")] = None,
    overwrite: Overwrite = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the levels as JSON.")] = False,
) -> None:
    """Show which input pixels one unit of a stack of layers sees, layer by layer."""
    from featuremaps.files import check_outputs, save_picture
    from featuremaps.render.receptive_diagram import field_levels, parse_stack, receptive_field_diagram

    if output is not None:
        if output.suffix.lower() not in (".png", ".svg"):
            raise SettingsError(f"-o must end in .png or .svg; got {str(output)!r}")
        check_outputs([output], overwrite=overwrite)
    stack = parse_stack(layers)
    size = parse_size(input_size, "--input-size")
    position = None
    if unit is not None:
        value = parse_pair(unit, "--unit")
        position = (value, value) if isinstance(value, int) else value
    levels = field_levels(stack, size, position)
    if output is not None:
        picture = receptive_field_diagram(stack, size, unit=position, svg=output.suffix.lower() == ".svg")
        save_picture(picture, output, overwrite=overwrite)
    rows = [
        {"name": lv.name, "size": list(lv.size), "region": list(lv.region),
         "receptive_field": list(lv.field.size), "jump": list(lv.field.jump), "start": list(lv.field.start)}
        for lv in levels
    ]
    if as_json:
        print_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['name']:<28} {row['size'][0]}x{row['size'][1]:<5} RF {row['receptive_field'][0]}x"
                   f"{row['receptive_field'][1]:<4} jump {row['jump'][0]}x{row['jump'][1]:<3} "
                   f"unit sees rows {row['region'][0]}..{row['region'][2]}, cols {row['region'][1]}..{row['region'][3]}")
    if output is not None:
        typer.echo(f"wrote {output}")
