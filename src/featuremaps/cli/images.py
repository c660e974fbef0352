"""``featuremaps samples``: the bundled photos."""

from __future__ import annotations

from typing import Annotated

import typer

from featuremaps.cli._common import app, print_json
from featuremaps.images import load_image, samples


@app.command("samples")
def samples_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the bundled sample photos (use them as sample:NAME wherever an image is asked for)."""
    rows = []
    for sample in samples():
        shape = list(load_image(sample.path).shape)
        rows.append({"name": sample.name, "image": f"sample:{sample.name}", "shape": shape, "title": sample.title,
                     "author": sample.author, "licence": sample.licence, "source": sample.source, "url": sample.url,
                     "path": str(sample.path)})
    if as_json:
        print_json(rows)
        return
    for row in rows:
        size = "x".join(str(s) for s in row["shape"])
        typer.echo(f"{row['image']:<18} {size:<12} {row['title']} - {row['author']}, {row['licence']}")
