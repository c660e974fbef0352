"""``featuremaps train``: a classifier or a segmenter from feature maps."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

from featuremaps.cli._common import (
    app,
    print_json,
)
from featuremaps.cli._progress import stderr as _stderr
from featuremaps.errors import SEED_MAX, SettingsError

if TYPE_CHECKING:
    from featuremaps.recognize.training import Progress as TrainingProgress


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
        """Show one :class:`~featuremaps.recognize.training.Progress` report."""
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
    pool: Annotated[str, typer.Option(metavar="avg|max|avgmax|none", help="How maps become a vector (none: every position).")] = "avg",
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
