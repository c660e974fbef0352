"""``featuremaps calibrate``: the unfamiliar-image rule for a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from featuremaps.cli._common import (
    app,
    print_json,
    record_section,
)
from featuremaps.errors import SEED_MAX, SettingsError


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
    trained_on = record_section(net, "data").get("dataset")
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
        training = record_section(net, "training")
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

    from featuremaps.data.datasets import photo_crops
    from featuremaps.models import model_info
    from featuremaps.recognize.familiarity import fit_familiarity, measure
    from featuremaps.segment.data import mask_folder, scenes_dataset
    from featuremaps.segment.head import PixelHead

    if not isinstance(net, PixelHead):
        raise SettingsError(f"{checkpoint} is a torchvision segmentation model: calibrate learns from the data a "
                            "featuremaps checkpoint was trained on")
    trained_on = record_section(net, "training").get("dataset")
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
        fit, threshold_set = mask_folder(dataset, size).halves(seed)
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
