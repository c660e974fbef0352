"""``featuremaps samples``: the bundled photos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from featuremaps.cli._common import app, print_json
from featuremaps.sample_photos import samples


@app.command("samples")
def samples_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    objects: Annotated[Optional[Path], typer.Option("--objects", metavar="DIR", help="Also write one generated "
                                                    "image per object class (house.png, tree.png, ...; a seed no "
                                                    "bundled model saw) into DIR.")] = None,
) -> None:
    """List the bundled sample photos (use them as sample:NAME wherever an image is asked for)."""
    if objects is not None:
        import io
        from functools import partial

        from PIL import Image

        from featuremaps.data.objects import EXAMPLE_SEED, OBJECT_CLASSES, example_object
        from featuremaps.errors import SettingsError
        from featuremaps.files import atomic_write

        if objects.exists() and not objects.is_dir():
            raise SettingsError(f"--objects {objects}: is a file, not a folder")
        pictures = {}
        for name in OBJECT_CLASSES:
            buffer = io.BytesIO()
            Image.fromarray(example_object(name)).save(buffer, format="PNG")
            pictures[objects / f"{name}.png"] = buffer.getvalue()
        others = [str(path) for path, data in pictures.items() if path.exists() and path.read_bytes() != data]
        if others:  # the same pictures are written again; anything else is the user's
            raise SettingsError(f"--objects {objects}: {', '.join(others)} {'exists' if len(others) == 1 else 'exist'} "
                                "already and is not one of these pictures; choose another folder (nothing was "
                                "written)")
        objects.mkdir(parents=True, exist_ok=True)
        for path, data in pictures.items():
            atomic_write(path, partial(Path.write_bytes, data=data))
        typer.echo(f"wrote {len(OBJECT_CLASSES)} objects images (128x128, seed {EXAMPLE_SEED}) to {objects}: "
                   f"{', '.join(f'{n}.png' for n in OBJECT_CLASSES)}", err=as_json)
    rows = []
    for sample in samples():
        shape = list(sample.shape)
        rows.append({"name": sample.name, "image": f"sample:{sample.name}", "shape": shape, "title": sample.title,
                     "author": sample.author, "licence": sample.licence, "source": sample.source, "url": sample.url,
                     "path": str(sample.path)})
    if as_json:
        print_json(rows)
        return
    for row in rows:
        size = "x".join(str(s) for s in row["shape"])
        typer.echo(f"{row['image']:<18} {size:<12} {row['title']} - {row['author']}, {row['licence']}")
