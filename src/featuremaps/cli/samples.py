"""``featuremaps samples``: the bundled photos."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from featuremaps.cli._common import app, print_json
from featuremaps.sample_photos import samples


def _png(array: Any) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_generated(folder: Path, pictures: dict[str, bytes], option: str) -> None:
    """Write generated pictures into ``folder``; the same pictures may be written again, a user's file never."""
    from featuremaps.errors import SettingsError
    from featuremaps.files import atomic_write

    if folder.exists() and not folder.is_dir():
        raise SettingsError(f"{option} {folder}: is a file, not a folder")
    others = [str(folder / name) for name, data in pictures.items()
              if (folder / name).exists() and (folder / name).read_bytes() != data]
    if others:
        raise SettingsError(f"{option} {folder}: {', '.join(others)} {'exists' if len(others) == 1 else 'exist'} "
                            "already and is not one of these pictures; choose another folder (nothing was written)")
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in pictures.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / name, partial(Path.write_bytes, data=data))


@app.command("samples")
def samples_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    objects: Annotated[Optional[Path], typer.Option("--objects", metavar="DIR", help="Also write one generated "
                                                    "image per object class (house.png, tree.png, ...; a seed no "
                                                    "bundled model saw) into DIR.")] = None,
    scenes: Annotated[Optional[Path], typer.Option("--scenes", metavar="DIR", help="Also write 4 generated shapes "
                                                   "scenes for segmentation (scene-1.png ... with their true masks "
                                                   "scene-1-mask.png; a seed no bundled model saw) into DIR.")] = None,
    photos: Annotated[Optional[Path], typer.Option("--photos", metavar="DIR", help="Also copy the bundled photos "
                                                   "(cat.jpg, coffee.jpg, ...) into DIR, a folder to try commands "
                                                   "that take a folder of photos.")] = None,
    folder: Annotated[Optional[Path], typer.Option("--folder", metavar="DIR", help="Also write a small dataset in "
                                                   "the ImageFolder layout (DIR/house/, DIR/tree/, DIR/car/, 12 "
                                                   "generated images each) to try train and evaluate on a folder.")] = None,
    masks: Annotated[Optional[Path], typer.Option("--masks", metavar="DIR", help="Also write a small segmentation "
                                                  "dataset (DIR/images/scene-N.png and DIR/masks/scene-N.png, 12 "
                                                  "shapes scenes) to try train --task segmentation.")] = None,
) -> None:
    """List the bundled sample photos (use them as sample:NAME wherever an image is asked for)."""
    if photos is not None:
        _write_generated(photos, {f"{sample.name}{sample.path.suffix}": sample.path.read_bytes()
                                  for sample in samples()}, "--photos")
        typer.echo(f"wrote {len(samples())} photos to {photos}: "
                   f"{', '.join(f'{s.name}{s.path.suffix}' for s in samples())}", err=as_json)
    if objects is not None:
        from featuremaps.data.objects import EXAMPLE_SEED, OBJECT_CLASSES, example_object

        _write_generated(objects, {f"{name}.png": _png(example_object(name)) for name in OBJECT_CLASSES},
                         "--objects")
        typer.echo(f"wrote {len(OBJECT_CLASSES)} objects images (128x128, seed {EXAMPLE_SEED}) to {objects}: "
                   f"{', '.join(f'{n}.png' for n in OBJECT_CLASSES)}", err=as_json)
    if scenes is not None:
        from featuremaps.data.objects import EXAMPLE_SEED
        from featuremaps.data.shapes import SHAPE_CLASSES, shapes_scene

        pictures, lines = {}, []
        for index in range(1, 5):
            scene = shapes_scene(EXAMPLE_SEED, index)
            pictures[f"scene-{index}.png"] = _png(scene.image)
            pictures[f"scene-{index}-mask.png"] = _png(scene.mask)
            lines.append(f"scene-{index}.png: {', '.join(SHAPE_CLASSES[label] for label in scene.labels)}")
        _write_generated(scenes, pictures, "--scenes")
        typer.echo(f"wrote 4 shapes scenes (128x128, seed {EXAMPLE_SEED}) and their masks (0 background, class + 1) "
                   f"to {scenes}: {'; '.join(lines)}", err=as_json)
    if folder is not None:
        from featuremaps.data.objects import EXAMPLE_SEED, OBJECT_CLASSES, draw_object

        chosen = ("house", "tree", "car")
        _write_generated(folder, {f"{name}/{name}-{index + 1:02d}.png": _png(draw_object(
            EXAMPLE_SEED + 1, 100 * number + index, 128, label=OBJECT_CLASSES.index(name)).image)
            for number, name in enumerate(chosen) for index in range(12)}, "--folder")
        typer.echo(f"wrote a dataset of 3 classes x 12 generated images (128x128) to {folder}: "
                   f"{', '.join(f'{name}/' for name in chosen)}", err=as_json)
    if masks is not None:
        from featuremaps.data.objects import EXAMPLE_SEED
        from featuremaps.data.shapes import shapes_scene

        pictures = {}
        for index in range(12):
            scene = shapes_scene(EXAMPLE_SEED + 1, index)
            pictures[f"images/scene-{index + 1:02d}.png"] = _png(scene.image)
            pictures[f"masks/scene-{index + 1:02d}.png"] = _png(scene.mask)
        _write_generated(masks, pictures, "--masks")
        typer.echo(f"wrote 12 shapes scenes (128x128) to {masks}/images/ and their masks (0 background, class + 1) "
                   f"to {masks}/masks/", err=as_json)
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
