"""``featuremaps microscope``: a static site of what each channel of a store responds to."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from featuremaps.cli._common import (
    Overwrite,
    app,
)
from featuremaps.cli._progress import CountBar


@app.command("microscope")
def microscope_command(
    store: Annotated[Path, typer.Argument(metavar="STORE", help="A finished extraction store.")],
    output: Annotated[Path, typer.Option("-o", "--output", metavar="SITE", help="Folder of the static site.")],
    visualize: Annotated[bool, typer.Option("--visualize", help="Also optimise one image per channel that excites "
                                            "it (slow on a CPU; see featuremaps visualize).")] = False,
    vis_steps: Annotated[int, typer.Option(metavar="N", help="Optimisation steps per visualisation.")] = 128,
    vis_size: Annotated[Optional[int], typer.Option(metavar="PX", help="Side of the visualisations (default: the "
                                                    "model's input, at most 128).")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Write a static site: for each channel, the dataset patches that excite it most (receptive field
    clipped to the image, with the channel's heat map), its statistics and, with --visualize, the image
    optimised to excite it. One page and a few sprites per layer; it opens from the file system."""
    from featuremaps.batch.microscope import build_microscope

    bars = {"images": CountBar("patches", "patch"), "visualize": CountBar("visualize", "step")}
    try:
        index = build_microscope(store, output, visualize=visualize, vis_steps=vis_steps, vis_size=vis_size,
                                 overwrite=overwrite,
                                 progress=lambda stage, done, total: bars[stage].update(done, total))
    finally:
        for bar in bars.values():
            bar.__exit__(None, None, None)
    typer.echo(str(index.resolve()))
