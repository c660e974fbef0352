"""``featuremaps predict``: name the object in each image (and where the maps saw it)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from featuremaps.cli._common import (
    Device,
    Overwrite,
    app,
    model_on,
    print_json,
)
from featuremaps.cli._progress import stderr as _stderr
from featuremaps.errors import SettingsError
from featuremaps.files import check_outputs, safe_name, save_picture


def _note_earlier(folder: Path, written: list[str]) -> None:
    """Say on stderr when ``folder`` also holds pictures of an earlier run."""
    from featuremaps.files import describe_earlier

    note = describe_earlier(folder, written)
    if note:
        _stderr.print(note, markup=False, highlight=False)


def _cam_name(image: str) -> str:
    return f"{safe_name(Path(image.removeprefix('sample:')).stem, fallback='image')}_cam.png"


def _image_list(images: list[str]) -> list[str]:
    """Image arguments with each folder replaced by its image files (sorted, recursively)."""
    from featuremaps.data.datasets import IMAGE_SUFFIXES

    found: list[str] = []
    for image in images:
        path = Path(image)
        if not image.startswith("sample:") and path.is_dir():
            files = sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not files:
                raise SettingsError(f"{image}: a folder with no image files ({', '.join(IMAGE_SUFFIXES)})")
            found.extend(files)
        else:
            found.append(image)
    return found


def _class_index(text: str, names: list[str]) -> int:
    """A class given by name or index: its index (a name is matched exactly, then ignoring case)."""
    if text in names:
        return names.index(text)
    folded = [name.lower() for name in names]
    if text.lower() in folded:
        return folded.index(text.lower())
    if text.isdigit() and (not names or int(text) < len(names)):
        return int(text)
    import difflib

    close = difflib.get_close_matches(text, names, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise SettingsError(f"--cam-class {text!r} is not one of the model's classes{hint}; give a class name or an "
                        f"index from 0 to {max(len(names) - 1, 0)}")


def _class_summary(names: list[str]) -> str:
    if len(names) <= 12:
        return ", ".join(names) or "(unnamed outputs)"
    return f"{len(names):,} classes ({', '.join(names[:4])}, ..., {', '.join(names[-2:])})"


@app.command("predict")
def predict_command(
    images: Annotated[list[str], typer.Argument(metavar="IMAGE", help="Image files, folders of images, or "
                                                "sample:NAME.")],
    checkpoint: Annotated[str, typer.Option(metavar="CKPT|builtin:imagenet|builtin:objects|builtin:shapes",
                                            help="The classifier: builtin:imagenet names 1,000 kinds of things in "
                                            "photos; builtin:objects and builtin:shapes know generated drawings; "
                                            "or a checkpoint you trained.")] = "builtin:shapes",
    top_k: Annotated[int, typer.Option(metavar="K", help="Classes to list per image.")] = 3,
    batch_size: Annotated[int, typer.Option(metavar="B", help="Images per forward pass.")] = 16,
    device: Device = None,
    cam: Annotated[Optional[Path], typer.Option(metavar="DIR", help="Write a class activation map per image.")] = None,
    cam_class: Annotated[Optional[str], typer.Option(metavar="NAME|INDEX", help="The class the map is for "
                                                     "(default: each image's top class).")] = None,
    overwrite: Overwrite = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Name the object in each image, with probabilities (and where the maps saw it, with --cam)."""
    from featuremaps.models import model_info
    from featuremaps.recognize.predict import recognize

    images = _image_list(images)
    if cam is not None:
        check_outputs([cam / _cam_name(image) for image in images], overwrite=overwrite, option="--cam")
    net = model_on(checkpoint, device)
    names = list(model_info(net).class_names or [])
    chosen = _class_index(cam_class, names) if cam_class is not None else None
    # one decode and one forward pass per image: the prediction and its Grad-CAM
    found = recognize(net, images, top_k=top_k, batch_size=batch_size, cam=cam is not None, cam_class=chosen)
    results = [item.prediction for item in found]
    rows = [item.to_dict() for item in found]
    if cam is not None:
        for image, item, row in zip(images, found, rows):
            row["cam"] = str(save_picture(item.overlay(), cam / _cam_name(image), overwrite=overwrite))
        _note_earlier(cam, [row["cam"] for row in rows])
    info = model_info(net)
    if as_json:
        print_json({"model": info.name, "weights": info.weights_label, "classes": list(info.class_names or []),
                    "images": rows})
        return
    typer.echo(f"{info.name} ({info.weights_label}) knows: {_class_summary(list(info.class_names or []))}")
    for result, row in zip(results, rows):
        best = ", ".join(f"{p['label']} {p['probability']:.1%}" for p in row["predictions"])
        typer.echo(f"{row['path']}: {best}" + (f"  (CAM: {row['cam']})" if "cam" in row else ""))
        if result.note:
            typer.echo(f"  {result.note}")
