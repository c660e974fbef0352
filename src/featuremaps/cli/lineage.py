"""``featuremaps lineage``: which maps below a unit it is built from, and how much each gave."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from featuremaps.cli._common import Device, ModelName, Overwrite, Weights, app, model_on, print_json


@app.command("lineage")
def lineage_command(
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="Image file or sample:NAME.")],
    model: ModelName,
    unit: Annotated[str, typer.Option(metavar="LAYER:CHANNEL[:Y:X]", help="The map (its mean) or one unit of it; "
                                      "a classifier output is LAYER:INDEX (e.g. fc:3).")],
    weights: Weights = None,
    levels: Annotated[int, typer.Option(metavar="N", help="Steps back from the unit (1-8).")] = 3,
    top: Annotated[int, typer.Option(metavar="K", help="Strongest input maps kept per node (1-16).")] = 4,
    stations: Annotated[Optional[str], typer.Option(metavar="L1,L2|PATTERN", help="Layers to stop at (default: "
                                                    "the maps that feed a convolution).")] = None,
    output: Annotated[Path, typer.Option("-o", "--output", metavar="PNG", help="The tree picture.")] = Path(
        "lineage.png"),
    roles: Annotated[bool, typer.Option("--roles", help="Label each map with what it detects best (a part or a "
                                        "whole object), measured on 600 generated objects images.")] = False,
    device: Device = None,
    overwrite: Overwrite = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the nodes and edges as JSON.")] = False,
) -> None:
    """Split a unit's value into the contributions of the maps it is built from, and follow the
    strongest back several layers (exact for convolutions, batch norm, ReLU, pooling, residual
    sums and concatenation; gradient x input, marked approximate, through anything else)."""
    from featuremaps.analysis.lineage import lineage
    from featuremaps.errors import SettingsError
    from featuremaps.files import check_outputs, save_picture
    from featuremaps.render.lineage import render_lineage

    if output.suffix.lower() != ".png":
        raise SettingsError(f"-o must name a .png file; got {str(output)!r}")
    check_outputs([output], overwrite=overwrite)
    net = model_on(model, device, weights=weights)
    chosen = [part.strip() for part in stations.split(",") if part.strip()] if stations else None
    result = lineage(net, image, unit, levels=levels, top=top, stations=chosen)
    found: dict[tuple[str, int], str] = {}
    if roles:
        from featuremaps.analysis.hierarchy import channel_roles
        from featuremaps.cli._progress import StepBars

        with StepBars("lineage --roles") as bars:
            found = channel_roles(net, sorted({node.layer for node in result.nodes if node.layer != "input"}),
                                  on_progress=bars)
    save_picture(render_lineage(result, roles=found), output, overwrite=overwrite)
    if as_json:
        data = result.to_dict()
        for node in data["nodes"]:
            node["role"] = found.get((node["layer"], node["channel"]))
        print_json({**data, "image": image, "picture": str(output)})
        return
    root = result.root
    typer.echo(f"{result.unit} = {root.value:.4g} ({result.weights}; {result.method})")
    if root.skip is not None:
        typer.echo(f"  through the skip {root.skip:.4g}, through the branch {root.branch:.4g}")
    for edge, child in result.children(root):
        role = found.get((child.layer, child.channel), "")
        typer.echo(f"  {child.layer}:{child.channel:<5} {edge.contribution:+.4g}  ({edge.share:+.1%})"
                   + (f"  {role}" if role else ""))
    if root.bias is not None:
        typer.echo(f"  biases {root.bias:+.4g}; residual {root.residual:.2g}")
    typer.echo(f"wrote {output}")
