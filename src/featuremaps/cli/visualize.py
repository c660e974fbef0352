"""``featuremaps visualize``: the images that most excite channels, units or classes of a model."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer

from featuremaps.cli._common import ModelName, Overwrite, Weights, app, print_json
from featuremaps.errors import SEED_MAX, SettingsError

_MAX_IMAGES = 256


def parse_indices(text: str, option: str, *, names: tuple[str, ...] = ()) -> list[int]:
    """``"0-15"``, ``"3,5,9"``, ``"0-3,8"`` (and class names when ``names`` are given) -> indices."""
    chosen: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part in names:
            chosen.append(names.index(part))
            continue
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if match is None:
            known = f"; or class names: {', '.join(names)}" if names else ""
            raise SettingsError(f"{option} takes indices like 0-15 or 3,5,9{known}; got {part!r}")
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if high < low:
            raise SettingsError(f"{option}: range {part!r} runs backwards")
        if high - low + 1 + len(chosen) > _MAX_IMAGES:
            raise SettingsError(f"{option} names more than {_MAX_IMAGES} images; choose fewer")
        chosen.extend(range(low, high + 1))
    if not chosen:
        raise SettingsError(f"{option} names nothing; give indices like 0-15 or 3,5,9")
    return list(dict.fromkeys(chosen))


def parse_direction(text: str) -> dict[int, float]:
    """``"3:1,7:-0.5"`` -> ``{3: 1.0, 7: -0.5}``."""
    weights: dict[int, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        match = re.fullmatch(r"(\d+):([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)", part)
        if match is None:
            raise SettingsError(f"--direction takes CHANNEL:WEIGHT pairs like 3:1,7:-0.5; got {part!r}")
        weights[int(match.group(1))] = float(match.group(2))
    if not weights:
        raise SettingsError("--direction takes CHANNEL:WEIGHT pairs like 3:1,7:-0.5")
    return weights


@app.command("visualize")
def visualize_command(
    model: ModelName,
    weights: Weights = None,
    layer: Annotated[Optional[str], typer.Option(metavar="LAYER", help="The layer whose channels are shown "
                                                 "(featuremaps layers MODEL lists them).")] = None,
    channels: Annotated[Optional[str], typer.Option(metavar="0-15|3,5", help="Channels of --layer, one image "
                                                    "each.")] = None,
    classes: Annotated[Optional[str], typer.Option(metavar="0-8|NAMES", help="Class logits instead of channels "
                                                   "(indices or class names).")] = None,
    direction: Annotated[Optional[str], typer.Option(metavar="C:W,C:W", help="One image for a weighted sum of "
                                                     "channel means of --layer, e.g. 3:1,7:-0.5.")] = None,
    objective: Annotated[str, typer.Option(metavar="channel|unit", help="Excite a whole map (its mean) or its "
                                           "centre unit.")] = "channel",
    negative: Annotated[bool, typer.Option("--negative", help="Make the objective as small as possible.")] = False,
    steps: Annotated[int, typer.Option(metavar="N", help="Optimisation steps.")] = 256,
    size: Annotated[Optional[int], typer.Option(metavar="PX", help="Image side (default: the model's "
                                                "input size).")] = None,
    lr: Annotated[float, typer.Option(metavar="LR", help="Adam's learning rate.")] = 0.1,
    param: Annotated[str, typer.Option(metavar="fourier|pixel", help="Image parameterisation.")] = "fourier",
    decorrelate: Annotated[bool, typer.Option(help="Decorrelated colours (RGB models).")] = True,
    transforms: Annotated[bool, typer.Option(help="Random jitter, scale and rotation at each step.")] = True,
    seed: Annotated[int, typer.Option(metavar="N", min=0, max=SEED_MAX, help="Seeds the start and the transforms.")] = 0,
    batch_size: Annotated[int, typer.Option(metavar="B", help="Images optimised together.")] = 16,
    device: Annotated[Optional[str], typer.Option(metavar="cpu|cuda", help="Where to run (default: cpu).")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", metavar="PNG", help="The grid picture.")] = Path("vis.png"),
    save: Annotated[Optional[Path], typer.Option(metavar="FILE.npy", help="Also keep the images, float32 "
                                                 "(N, C, H, W) in [0, 1].")] = None,
    overwrite: Overwrite = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print each objective's value as JSON.")] = False,
) -> None:
    """Optimise images that excite channels, centre units or class logits of a model (decorrelated
    Fourier-space pixels with random jitter, scale and rotation: Olah et al., Distill 2017)."""
    import numpy as np

    from featuremaps.cli._progress import CountBar
    from featuremaps.features.info import resolve_device
    from featuremaps.files import check_outputs, save_picture
    from featuremaps.models import load_model, model_info
    from featuremaps.optvis import Objective, Robustness, channel, logit, unit, visualize
    from featuremaps.optvis import direction as make_direction
    from featuremaps.optvis.param import PARAMS
    from featuremaps.render.grid import save_array

    if sum(x is not None for x in (channels, classes, direction)) != 1:
        raise SettingsError("give exactly one of --channels (with --layer), --classes or --direction (with --layer)")
    if objective not in ("channel", "unit"):
        raise SettingsError(f"--objective must be channel or unit; got {objective!r}")
    if param not in PARAMS:
        raise SettingsError(f"--param must be one of {', '.join(PARAMS)}; got {param!r}")
    if output.suffix.lower() != ".png":
        raise SettingsError(f"-o must name a .png file; got {output}")
    if save is not None and save.suffix.lower() != ".npy":
        raise SettingsError(f"--save must end in .npy; got {str(save)!r}")
    check_outputs([p for p in (output, save) if p is not None], overwrite=overwrite)
    where = resolve_device(device)
    net = load_model(model, weights=weights).to(where)
    names = model_info(net).class_names or ()
    chosen: list[Objective]
    if classes is not None:
        chosen = [logit(i) for i in parse_indices(classes, "--classes", names=tuple(names))]
    elif not layer:
        raise SettingsError("--channels and --direction need --layer (featuremaps layers MODEL lists the layers)")
    elif direction is not None:
        chosen = [make_direction(layer, parse_direction(direction))]
    else:
        make = channel if objective == "channel" else unit
        chosen = [make(layer, c) for c in parse_indices(channels or "", "--channels")]
    if negative:
        chosen = [-o for o in chosen]
    with CountBar("visualize", "steps") as bar:
        result = visualize(net, chosen, steps=steps, size=size, lr=lr, param=param,  # type: ignore[arg-type]
                           decorrelate=decorrelate, transforms=Robustness() if transforms else None,
                           seed=seed, batch_size=batch_size, progress=bar.update)
    save_picture(result.render(), output, overwrite=overwrite)
    if save is not None:
        save_array(result.images.numpy().astype(np.float32), save, overwrite=overwrite)
    if as_json:
        print_json({**result.to_dict(), "picture": str(output)})
        return
    typer.echo(f"{result.model} ({result.weights}): {len(chosen)} image{'s' if len(chosen) != 1 else ''}, "
               f"{steps} steps -> {output}")
    for entry in result.to_dict()["images"]:
        start, final = entry["start"] + 0.0, entry["value"] + 0.0  # + 0.0: no "-0"
        typer.echo(f"  {entry['label']:<28} start {start:>9.4g}   final {final:>9.4g}")
        if entry["note"]:
            typer.echo(f"  warning: {entry['note']}", err=True)
