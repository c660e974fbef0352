"""``featuremaps train``, ``evaluate`` and ``predict``: recognition from feature maps."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from featuremaps.cli._common import Device, Overwrite, app, model_on, print_json
from featuremaps.cli._progress import stderr as _stderr
from featuremaps.errors import SEED_MAX, SettingsError
from featuremaps.files import check_outputs, safe_name, save_picture

if TYPE_CHECKING:
    from featuremaps.training import Progress as TrainingProgress



class _EpochBars:
    """A progress bar per epoch on stderr: loss, accuracy (when there is one), img/s, validation."""

    def __init__(self) -> None:
        self.bar = Progress(
            TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f} {task.fields[acc]} {task.fields[speed]:.0f} img/s "
                       "{task.fields[val]}"),
            TimeRemainingColumn(), console=_stderr, transient=False,
        )
        self.tasks: dict[int, TaskID] = {}

        self.started = False

    def __enter__(self) -> _EpochBars:
        return self  # the bars appear on the first report, after the checks that may refuse the job

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.bar.stop()

    def update(self, progress: TrainingProgress) -> None:
        """Show one :class:`~featuremaps.training.Progress` report."""
        if not self.started:
            self.bar.start()
            self.started = True
        epoch = progress.epoch
        if epoch not in self.tasks:
            self.tasks[epoch] = self.bar.add_task("train", total=progress.batches, epoch=f"{epoch}/{progress.epochs}",
                                                  loss=0.0, acc="", speed=0.0, val="")
        figures = progress.validation
        validation = ", ".join(f"val {k.replace('_', ' ')} {v:.1%}" if k != "loss" and k != "miou" else
                               f"val {k} {v:.3f}" for k, v in figures.items() if k != "loss")
        self.bar.update(self.tasks[epoch], completed=progress.batch, loss=progress.loss,
                        speed=progress.images_per_second, val=validation,
                        acc=f"acc {progress.accuracy:.1%}" if progress.accuracy is not None else "")


_CLASSIFICATION_ONLY = ("model", "width", "layer", "head", "pool", "samples", "val_fraction", "half_weights")
_SEGMENTATION_ONLY = ("layers", "scenes", "size")


def _refuse_other_task(ctx: typer.Context, task: str) -> None:
    """Options of the other task, given on the command line, are an error (not silently ignored)."""
    other = _SEGMENTATION_ONLY if task == "classification" else _CLASSIFICATION_ONLY
    sources = {name: ctx.get_parameter_source(name) for name in other}
    given = [name for name, source in sources.items() if source is not None and source.name != "DEFAULT"]
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise SettingsError(f"{flags} {'does' if len(given) == 1 else 'do'} not apply to --task {task} "
                            f"(see 'featuremaps train --help')")


@app.command("train")
def train_command(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option(metavar="shapes|objects|digits|DIR", help="Training data: the generated "
                                         "shapes or objects (made of parts), scikit-learn digits, or a folder with "
                                         "one sub-folder per class.")],
    output: Annotated[Path, typer.Option("-o", "--output", metavar="CKPT_DIR", help="Checkpoint directory to "
                                         "write.")],
    model: Annotated[str, typer.Option(metavar="NAME", help="Built-in CNN to train end to end.")] = "tinyvgg",
    width: Annotated[Optional[int], typer.Option(metavar="N", help="Filters per conv of TinyVGG (default 10); "
                                                 "stage1 width of TinyResNet (default 32, then 2x, 4x, 8x).")] = None,
    backbone: Annotated[Optional[str], typer.Option(metavar="MODEL", help="Train a head on this model's frozen "
                                                    "maps instead.")] = None,
    backbone_weights: Annotated[Optional[str], typer.Option(metavar="W", help="Weights of the backbone "
                                                            "(default untrained).")] = None,
    layer: Annotated[Optional[str], typer.Option(metavar="LAYER", help="Backbone layer whose maps feed the "
                                                 "head.")] = None,
    head: Annotated[str, typer.Option(metavar="linear|mlp", help="Head on the frozen maps.")] = "linear",
    pool: Annotated[str, typer.Option(metavar="avg|max|avgmax|flatten", help="How maps become a vector.")] = "avg",
    epochs: Annotated[int, typer.Option(metavar="N", help="Passes over the data.")] = 5,
    batch_size: Annotated[Optional[int], typer.Option(metavar="B", help="Images per step (default 64; 8 for "
                                                      "segmentation).")] = None,
    lr: Annotated[Optional[float], typer.Option(metavar="LR", help="Learning rate (default 3e-3 CNN, 1e-3 "
                                                "head).")] = None,
    samples: Annotated[int, typer.Option(metavar="N", help="Generated images per epoch (fresh each epoch).")] = 4000,
    val_fraction: Annotated[float, typer.Option(metavar="F", help="Share kept for validation.")] = 0.2,
    seed: Annotated[int, typer.Option(metavar="N", min=0, max=SEED_MAX, help="Seed of data, initialisation and shuffling.")] = 0,
    device: Annotated[str, typer.Option(metavar="cpu|cuda", help="Where to train.")] = "cpu",
    task: Annotated[str, typer.Option(metavar="classification|segmentation", help="What to train.")] = "classification",
    layers: Annotated[Optional[str], typer.Option(metavar="L1,L2", help="Segmentation: backbone layers whose "
                                                  "maps feed the per-pixel head.")] = None,
    scenes: Annotated[int, typer.Option(metavar="N", help="Segmentation: shapes scenes to train on.")] = 800,
    size: Annotated[int, typer.Option(metavar="PIXELS", help="Segmentation: image size.")] = 128,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the checkpoint in a non-empty output "
                                            "directory (default: refuse, before training).")] = False,
    half_weights: Annotated[bool, typer.Option("--half-weights", help="Store the weights as float16 (half the "
                                               "file; they load back as float32).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the checkpoint record as JSON.")] = False,
) -> None:
    """Train a classifier (a built-in CNN end to end, or a head on a backbone layer's frozen maps) or,
    with --task segmentation, a per-pixel head on frozen hypercolumns."""
    from featuremaps.recognize.train import TrainConfig, chance_hint, train_classifier

    if task not in ("classification", "segmentation"):
        raise SettingsError(f"--task must be classification or segmentation; got {task!r}")
    _refuse_other_task(ctx, task)
    if batch_size is not None and not 1 <= batch_size <= 4096:
        raise SettingsError(f"--batch-size must be from 1 to 4096; got {batch_size}")
    if task == "segmentation":
        _train_segmentation(dataset, output, backbone or "builtin:shapes", backbone_weights, layers, scenes, size,
                            epochs, 8 if batch_size is None else batch_size, 1e-3 if lr is None else lr, seed, device, as_json, overwrite)
        return
    options = {"width": width} if width is not None else None
    config = TrainConfig(dataset=dataset, model=model, options=options, backbone=backbone,
                         backbone_weights=backbone_weights, layer=layer, head=head, pool=pool, epochs=epochs,
                         batch_size=64 if batch_size is None else batch_size, lr=lr, seed=seed, samples=samples, val_fraction=val_fraction,
                         device=device, half_weights=half_weights)
    from featuremaps.cli._progress import CountBar

    with CountBar("caching features", "img") as caching, _EpochBars() as bars:
        result = train_classifier(config, output, overwrite=overwrite, on_progress=bars.update,
                                  on_features=caching.update)
    if result.skipped:
        _stderr.print(f"skipped {len(result.skipped)} unreadable files, e.g. {result.skipped[0][0]}: "
                      f"{result.skipped[0][1]}")
    hint = chance_hint(result, config)
    if hint:
        _stderr.print(f"train: warning: {hint}", markup=False, highlight=False)
    if as_json:
        print_json({"checkpoint": str(result.checkpoint), **result.record, "hint": hint})
        return
    metrics = result.record["metrics"]
    typer.echo(f"val accuracy {metrics['val_accuracy']:.1%} (train {metrics['train_accuracy']:.1%}); "
               f"wrote {result.checkpoint}")


def _train_segmentation(dataset: str, output: Path, backbone: str, backbone_weights: Optional[str],
                        layers: Optional[str], scenes: int, size: int, epochs: int, batch_size: int, lr: float,
                        seed: int, device: str, as_json: bool, overwrite: bool) -> None:
    from featuremaps.segment.train import SegmentTrainConfig, train_segmenter

    config = SegmentTrainConfig(dataset=dataset, backbone=backbone, backbone_weights=backbone_weights,
                                layers=tuple(layers.split(",")) if layers else None, scenes=scenes, size=size,
                                epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device=device)
    with _EpochBars() as bars:
        result = train_segmenter(config, output, overwrite=overwrite, on_progress=bars.update)
    if as_json:
        print_json({"checkpoint": str(result.checkpoint), **result.record})
        return
    metrics = result.record["metrics"]
    typer.echo(f"val mIoU {metrics['val_miou']:.3f}, pixel accuracy {metrics['val_pixel_accuracy']:.1%}; "
               f"wrote {result.checkpoint}")


@app.command("calibrate")
def calibrate_command(
    checkpoint: Annotated[Path, typer.Argument(metavar="CKPT_DIR", help="Checkpoint directory of a classifier or a segmentation head.")],
    dataset: Annotated[Optional[str], typer.Option(metavar="shapes|objects|DIR", help="The data it was trained "
                                                   "on: generated shapes or objects, or your folder of images "
                                                   "(one sub-folder per class). Default: what its record names.")] = None,
    samples: Annotated[int, typer.Option(metavar="N", help="Generated data: held-out images to fit on (half as "
                                         "many set the threshold, as many again check it).")] = 1000,
    seed: Annotated[int, typer.Option(metavar="N", min=0, max=SEED_MAX, help="Generated data: seed of those images "
                                      "(use one not trained on; the threshold and the check use N+1 and N+2).")] = 7,
    false_alarms: Annotated[float, typer.Option(metavar="F", help="Share of familiar images allowed above the "
                                                "threshold.")] = 0.05,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Learn what images like a model's training data look like to its maps, so predict and segment
    can mark unfamiliar ones; writes familiarity.safetensors into CKPT_DIR, then measures the rule:
    false alarms on other held-out images, and flags on crops of the bundled photos.

    With a folder, the statistics are fitted on the checkpoint's own training split of it and the
    threshold set on its validation split (the seed and fraction its record names)."""
    from featuremaps.data.datasets import load_dataset, objects_dataset, photo_crops, shapes_dataset
    from featuremaps.models import load_model, model_info
    from featuremaps.recognize.familiarity import fit_familiarity, measure
    from featuremaps.segment.run import is_segmentation_model

    net = load_model(checkpoint)
    info = model_info(net)
    if is_segmentation_model(net):
        _calibrate_segmenter(net, checkpoint, dataset, samples, seed, false_alarms, as_json)
        return
    trained_on = _record_section(net, "data").get("dataset")
    if dataset is None:
        if not isinstance(trained_on, str):
            raise SettingsError(f"{checkpoint}: its record does not name the data it was trained on; give "
                                "--dataset shapes, objects or the folder of images")
        dataset = trained_on
    if dataset in ("shapes", "objects") and isinstance(trained_on, str) and trained_on != dataset:
        raise SettingsError(f"{checkpoint} was trained on {trained_on}, not {dataset}: calibrate on the data it was "
                            f"trained on (--dataset {trained_on})")
    if dataset not in ("shapes", "objects") and not Path(dataset).is_dir():
        raise SettingsError(f"--dataset must be shapes, objects or a folder of images (one sub-folder per class); "
                            f"{dataset!r} is neither" + (" (the folder its record names is gone)"
                                                         if dataset == trained_on else ""))
    size = max(info.input.size)
    if dataset in ("shapes", "objects"):
        make = shapes_dataset if dataset == "shapes" else objects_dataset
        fit, threshold_set = make(samples, seed, size, model_input=info.input), \
            make(max(samples // 2, 20), seed + 1, size, model_input=info.input)
        familiar = make(samples, seed + 2, size, model_input=info.input)
    else:
        training = _record_section(net, "training")
        split_seed, fraction = int(training.get("seed", 0)), float(training.get("val_fraction", 0.2))
        fit, threshold_set = load_dataset(dataset, info.input, seed=split_seed, val_fraction=fraction)
        familiar = None
    if list(info.class_names or []) != fit.class_names:
        raise SettingsError(f"{checkpoint} knows {', '.join(info.class_names or ['unnamed classes'])}; {dataset} has "
                            f"{', '.join(fit.class_names)}: calibrate on the data it was trained on")
    familiarity = fit_familiarity(net, fit, threshold_set, false_alarms=false_alarms)
    familiarity.save(checkpoint)
    crops = photo_crops(200, seed, info.input)
    check = measure(net, familiarity, familiar if familiar is not None else threshold_set, crops)
    if as_json:
        print_json({"checkpoint": str(checkpoint), "dataset": dataset, "fit_images": len(fit),
                    "threshold_images": len(threshold_set), "false_alarms_target": false_alarms,
                    **check.to_dict(), "false_alarms_measured_on": "other held-out images" if familiar is not None
                    else "the threshold images themselves (a folder has no third set)"})
        return
    typer.echo(f"wrote {checkpoint / 'familiarity.safetensors'} (threshold {check.threshold:.2f}; fitted on "
               f"{len(fit)} images of {dataset}, threshold set on {len(threshold_set)} others)")
    if familiar is not None:
        typer.echo(f"  false alarms on {check.familiar_images} other held-out {dataset} images: "
                   f"{check.false_alarm_rate:.1%} (target {false_alarms:.0%})")
    else:
        typer.echo(f"  false alarms: not measured on other images (a folder has no third set; "
                   f"{check.false_alarm_rate:.1%} of the threshold images by construction)")
    typer.echo(f"  crops of the bundled photos marked unfamiliar: {check.far_flagged} of {check.far_images}"
               + ("" if familiar is not None else " (if your images are photos, these may look familiar)"))


def _calibrate_segmenter(net: Any, checkpoint: Path, dataset: Optional[str], samples: int, seed: int,
                         false_alarms: float, as_json: bool) -> None:
    """calibrate for a trained segmentation head: the reference network's stages (its own layers are
    its backbone's), fitted on generated scenes or on half of a masks folder (the other half thresholds)."""
    import torch

    from featuremaps.data.datasets import photo_crops
    from featuremaps.models import model_info
    from featuremaps.recognize.familiarity import fit_familiarity, measure
    from featuremaps.segment.data import mask_folder, scenes_dataset
    from featuremaps.segment.head import PixelHead

    if not isinstance(net, PixelHead):
        raise SettingsError(f"{checkpoint} is a torchvision segmentation model: calibrate learns from the data a "
                            "featuremaps checkpoint was trained on")
    trained_on = _record_section(net, "training").get("dataset")
    dataset = dataset or (trained_on if isinstance(trained_on, str) else None)
    if dataset is None:
        raise SettingsError(f"{checkpoint}: its record does not name the scenes it was trained on; give --dataset "
                            "shapes or a masks folder (images/ and masks/)")
    if dataset == "shapes" and isinstance(trained_on, str) and trained_on != "shapes":
        raise SettingsError(f"{checkpoint} was trained on {trained_on}, not shapes scenes: calibrate on the data it "
                            f"was trained on (--dataset {trained_on})")
    info = model_info(net)
    size = int(info.input_size[1])
    familiar = None
    if dataset == "shapes":
        fit, threshold_set = scenes_dataset(samples, seed, size), scenes_dataset(max(samples // 2, 10), seed + 1, size)
        familiar = scenes_dataset(samples, seed + 2, size)
    elif Path(dataset).is_dir():
        everything = mask_folder(dataset, size)
        order = torch.randperm(len(everything), generator=torch.Generator().manual_seed(seed))
        half = len(everything) // 2
        fit = type(everything)(everything.images[order[:half]], everything.masks[order[:half]], everything.class_names)
        threshold_set = type(everything)(everything.images[order[half:]], everything.masks[order[half:]],
                                         everything.class_names)
    else:
        raise SettingsError(f"--dataset must be shapes (generated scenes) or a masks folder (images/ and masks/) for "
                            f"a segmentation head; {dataset!r} is neither")
    familiarity = fit_familiarity(net, fit, threshold_set, false_alarms=false_alarms, own=False)
    familiarity.save(checkpoint)
    check = measure(net, familiarity, familiar if familiar is not None else threshold_set,
                    photo_crops(200, seed, info.input))
    if as_json:
        print_json({"checkpoint": str(checkpoint), "dataset": dataset, "fit_images": len(fit),
                    "threshold_images": len(threshold_set), "false_alarms_target": false_alarms, **check.to_dict()})
        return
    typer.echo(f"wrote {checkpoint / 'familiarity.safetensors'} (threshold {check.threshold:.2f}; fitted on "
               f"{len(fit)} {dataset} scenes, threshold set on {len(threshold_set)} others)")
    if familiar is not None:
        typer.echo(f"  false alarms on {check.familiar_images} other held-out scenes: {check.false_alarm_rate:.1%} "
                   f"(target {false_alarms:.0%})")
    typer.echo(f"  crops of the bundled photos marked unfamiliar: {check.far_flagged} of {check.far_images}")


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
        training = _record_section(net, "training")
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


def _record_section(model: Any, key: str) -> dict[str, Any]:
    """The section ``key`` (``training``, ``data``) of the record of the checkpoint ``model`` was loaded
    from (empty without one)."""
    from featuremaps.files import parse_json
    from featuremaps.models.registry import checkpoint_folder

    folder = checkpoint_folder(model)
    try:
        record = parse_json((folder / "featuremaps.json").read_bytes()) if folder is not None else {}
    except (OSError, ValueError):
        return {}
    section = record.get(key) if isinstance(record, dict) else None
    return section if isinstance(section, dict) else {}


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
    from featuremaps.recognize.predict import CAM_SCALE, class_activation_map, predict
    from featuremaps.render.overlay import render_overlay

    images = _image_list(images)
    if cam is not None:
        check_outputs([cam / _cam_name(image) for image in images], overwrite=overwrite, option="--cam")
    net = model_on(checkpoint, device)
    names = list(model_info(net).class_names or [])
    chosen = _class_index(cam_class, names) if cam_class is not None else None
    results = predict(net, images, top_k=top_k, batch_size=batch_size)
    rows = [result.to_dict() for result in results]
    if cam is not None:
        for image, result, row in zip(images, results, rows):
            heat, layer, index = class_activation_map(net, image, class_index=chosen)
            label, probability = result.labels[0]
            title = (f"{label} {probability:.0%}: where {layer} saw it" if chosen is None else
                     f"{names[index] if index < len(names) else index}: where {layer} saw it (the top class: "
                     f"{label} {probability:.0%})")
            if result.note:  # the picture says what the terminal says
                title += f". {result.note}"
            picture = render_overlay(model_info(net).input.display(image), heat, alpha=0.5, cmap="jet",
                                     scale_label=CAM_SCALE, title=title + model_info(net).untrained_note)
            row["cam"] = str(save_picture(picture, cam / _cam_name(image), overwrite=overwrite))
            row["cam_class"] = {"label": names[index] if index < len(names) else str(index), "index": index}
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
