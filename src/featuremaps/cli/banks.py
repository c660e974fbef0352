"""``featuremaps banks``: the named filter banks."""

from __future__ import annotations

from typing import Annotated

import typer

from featuremaps.cli._common import (
    app,
    print_json,
)


@app.command("banks")
def banks_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the named filter banks that --filters accepts."""
    from featuremaps.conv.filters import describe_banks

    rows = describe_banks()
    if as_json:
        print_json(rows)
        return
    for row in rows:
        size = "x".join(str(s) for s in row["kernel_size"])
        members = [f"{name} (alone {'x'.join(map(str, row['resized'][name]))}, {size} here)"
                   if name in row["resized"] else name for name in row["filters"]]
        typer.echo(f"{row['name']:<10} {size:<6} {', '.join(members)}")
