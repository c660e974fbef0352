"""``featuremaps models``: the model names load_model accepts."""

from __future__ import annotations

from typing import Annotated

import typer

from featuremaps.cli._common import (
    app,
    print_json,
)


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
