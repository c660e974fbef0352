"""``featuremaps hierarchy``: what each layer's maps tell, low to high, against an untrained control."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from featuremaps.cli._common import Device, Overwrite, app, model_on, print_json
from featuremaps.cli._progress import StepBars
from featuremaps.errors import SEED_MAX


@app.command("hierarchy")
def hierarchy_command(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="A model name or checkpoint (e.g. builtin:objects).")],
    dataset: Annotated[str, typer.Option(metavar="objects|shapes", help="Generated images to probe with.")] = "objects",
    layers: Annotated[Optional[str], typer.Option(metavar="L1,L2|PATTERN", help="Layers to probe (default: the "
                                                  "model's stages).")] = None,
    train: Annotated[int, typer.Option(metavar="N", help="Images the probes train on.")] = 1800,
    test: Annotated[int, typer.Option(metavar="N", help="Held-out images they are scored on.")] = 900,
    seed: Annotated[int, typer.Option(metavar="N", min=0, max=SEED_MAX - 2,
                                             help="Seed of the images (the held-out ones use N+1).")] = 20261128,
    control: Annotated[bool, typer.Option("--control/--no-control", help="Also probe the same architecture with "
                                          "untrained (random) weights.")] = True,
    output: Annotated[Path, typer.Option("-o", "--output", metavar="PNG", help="The chart.")] = Path("hierarchy.png"),
    where: Annotated[bool, typer.Option("--where", help="Also measure where each channel fires: its map against "
                                        "the part and object masks, position by position (objects only).")] = False,
    device: Device = None,
    overwrite: Overwrite = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Per layer: receptive field, held-out accuracy of linear probes on the pooled maps (object
    class, part presence), and how many channels detect a part or a whole object; with the
    untrained architecture as the control."""
    from featuremaps.analysis.hierarchy import hierarchy, localization
    from featuremaps.errors import SettingsError
    from featuremaps.features.info import model_device
    from featuremaps.files import check_outputs, save_picture
    from featuremaps.models import model_info, untrained_like
    from featuremaps.render.hierarchy import render_hierarchy

    if output.suffix.lower() != ".png":  # checked before minutes of probing
        raise SettingsError(f"-o must name a .png file; got {str(output)!r}")
    if where and dataset != "objects":
        raise SettingsError("--where needs --dataset objects (the images with part masks)")
    check_outputs([output], overwrite=overwrite)
    net = model_on(model, device)
    with StepBars("hierarchy") as bars:
        results = [hierarchy(net, dataset=dataset, layers=layers, train_samples=train, test_samples=test, seed=seed,
                             on_progress=bars)]
        control_net = untrained_like(net).to(model_device(net)) if control and model_info(net).trained else None
        if control_net is not None:
            results.append(hierarchy(control_net, dataset=dataset, layers=layers, train_samples=train,
                                     test_samples=test, seed=seed, on_progress=bars))
        save_picture(render_hierarchy(results), output, overwrite=overwrite)
        places = []
        if where:
            places.append(localization(net, layers=layers, seed=seed, on_progress=bars))
            if control_net is not None:
                places.append(localization(control_net, layers=layers, seed=seed, on_progress=bars))
    if as_json:
        print_json({"results": [result.to_dict() for result in results], "picture": str(output),
                    "localization": [place.to_dict() for place in places]})
        return
    for result in results:
        typer.echo(result.table())
        typer.echo("")
    for place in places:
        typer.echo(place.table())
        typer.echo("")
    typer.echo(f"wrote {output}")
