"""``featuremaps evaluate``: score a classifier or a segmenter."""

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
    record_section,
)
from featuremaps.errors import SEED_MAX, SettingsError
from featuremaps.files import check_outputs, save_picture


@app.command("evaluate")
def evaluate_command(
    checkpoint: Annotated[str, typer.Argument(metavar="CKPT", help="Checkpoint directory or builtin:shapes.")],
    dataset: Annotated[str, typer.Option(metavar="shapes|objects|digits|DIR", help="Data to score on.")],
    samples: Annotated[Optional[int], typer.Option(metavar="N", help="Shapes images (default 1000) or scenes "
                                                   "(default 100) to draw.")] = None,
    seed: Annotated[int, typer.Option(metavar="N", min=0, max=SEED_MAX, help="Seed of the generated shapes or objects (use one "
                                 "not trained on).")] = 2024,
    split: Annotated[str, typer.Option(metavar="validation|all", help="For digits and folders: the validation "
                                       "split the checkpoint recorded (images it did not train on), or every "
                                       "image (its training images too: a flattering score).")] = "validation",
    output: Annotated[Optional[Path], typer.Option("-o", "--output", metavar="CONFUSION.png",
                                                   help="Write the confusion matrix picture.")] = None,
    task: Annotated[str, typer.Option(metavar="classification|segmentation", help="What to score.")] = "classification",
    clusters: Annotated[Optional[int], typer.Option(metavar="K", help="Segmentation: score K clusters of CKPT's "
                                                    "maps (matched to classes) instead of a trained head.")] = None,
    size: Annotated[int, typer.Option(metavar="PIXELS", help="Segmentation: scene size.")] = 128,
    device: Device = None,
    overwrite: Overwrite = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Score a classifier (accuracy, per-class precision and recall, confusion matrix) or, with
    --task segmentation, a segmenter (mIoU, pixel accuracy, IoU per class)."""
    if task == "segmentation":
        _evaluate_segmentation(checkpoint, dataset, samples or 100, seed, size, clusters, as_json, device)
        return
    if task != "classification":
        raise SettingsError(f"--task must be classification or segmentation; got {task!r}")
    from featuremaps.data.datasets import digits_dataset, folder_dataset, load_dataset, objects_dataset, shapes_dataset
    from featuremaps.models import model_info
    from featuremaps.recognize.evaluate import evaluate
    from featuremaps.render.confusion import render_confusion

    if output is not None:
        if output.suffix.lower() != ".png":
            raise SettingsError(f"-o must name a .png file; got {str(output)!r}")
        check_outputs([output], overwrite=overwrite)
    if split not in ("validation", "all"):
        raise SettingsError(f"--split must be validation or all; got {split!r}")
    net = model_on(checkpoint, device)
    info = model_info(net)
    scored = f"{dataset}, seed {seed}"
    if dataset in ("shapes", "objects"):
        make = shapes_dataset if dataset == "shapes" else objects_dataset
        data = make(samples or 1000, seed, max(info.input.size), model_input=info.input)
    elif split == "validation":
        training = record_section(net, "training")
        split_seed = int(training.get("seed", seed))
        fraction = float(training.get("val_fraction", 0.2))
        data = load_dataset(dataset, info.input, seed=split_seed, val_fraction=fraction)[1]
        scored = (f"{dataset}, the validation split (seed {split_seed}, {fraction:.0%} of each class): images the "
                  "checkpoint did not train on" if training else f"{dataset}, a validation split of seed {split_seed}")
    else:
        data = (digits_dataset(max(info.input.size), info.input) if dataset == "digits"
                else folder_dataset(dataset, info.input))
        scored = f"{dataset}, every image (the checkpoint's training images too)"
    result = evaluate(net, data)
    if output is not None:
        save_picture(render_confusion(result.confusion, result.class_names, title=f"{info.name} on {dataset}"), output,
                     overwrite=overwrite)
    if as_json:
        print_json({"checkpoint": checkpoint, "dataset": dataset, "scored": scored, **result.to_dict(),
                    "confusion_picture": str(output) if output else None})
        return
    typer.echo(f"accuracy {result.accuracy:.1%} on {result.samples} images ({scored})")
    for name, p, r, s in zip(result.class_names, result.precision, result.recall, result.support):
        typer.echo(f"  {name:<16} precision {p:6.1%}  recall {r:6.1%}  ({s} images)")
    if output is not None:
        typer.echo(f"wrote {output}")


def _evaluate_segmentation(checkpoint: str, dataset: str, scenes: int, seed: int, size: int,
                           clusters: Optional[int], as_json: bool, device: Optional[str] = None) -> None:
    from featuremaps.segment.data import mask_folder, scenes_dataset
    from featuremaps.segment.train import evaluate_clusters, evaluate_segmenter

    net = model_on(checkpoint, device)
    data = scenes_dataset(scenes, seed, size) if dataset == "shapes" else mask_folder(dataset)
    scores = evaluate_clusters(net, data, k=clusters) if clusters else evaluate_segmenter(net, data)
    result = scores.to_dict(data.class_names)
    if as_json:
        print_json({"checkpoint": checkpoint, "dataset": dataset, "images": len(data),
                    "method": f"{clusters} clusters, Hungarian-matched" if clusters else "trained head", **result})
        return
    typer.echo(f"mIoU {scores.miou:.3f}, pixel accuracy {scores.pixel_accuracy:.1%} on {len(data)} images")
    for name, value in scores.iou_by_name(data.class_names).items():
        typer.echo(f"  {name:<16} IoU {value:.3f}")
