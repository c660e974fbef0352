"""``featuremaps segment``: masks and overlays from feature maps (clusters or a trained head)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from featuremaps.cli._common import Device, Overwrite, app, model_on, print_json
from featuremaps.errors import SEED_MAX, SettingsError


@app.command("segment")
def segment_command(
    images: Annotated[list[str], typer.Argument(metavar="IMAGE", help="Image files or sample:NAME.")],
    output: Annotated[Path, typer.Option("-o", "--output", metavar="DIR", help="Folder for <stem>_mask.png and "
                                         "<stem>_overlay.png.")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", metavar="MODEL", help="Cluster this model's "
                                                 "maps (or a torchvision segmentation model's own output).")] = None,
    weights: Annotated[Optional[str], typer.Option(metavar="W", help="Weights of --model.")] = None,
    layers: Annotated[Optional[str], typer.Option(metavar="L1,L2", help="Layers whose maps are clustered "
                                                  "(default: up to 3 early stages).")] = None,
    clusters: Annotated[Optional[int], typer.Option(metavar="K", help="Number of segments (default 4).")] = None,
    checkpoint: Annotated[Optional[str], typer.Option(metavar="CKPT|builtin:shapes-seg", help="A trained "
                                                      "segmentation head.")] = None,
    truth: Annotated[Optional[Path], typer.Option(metavar="DIR", help="Ground-truth masks named <stem>.png: "
                                                  "adds scores (clusters are matched to classes first).")] = None,
    seed: Annotated[int, typer.Option(metavar="N", min=0, max=SEED_MAX, help="Seed of k-means.")] = 0,
    device: Device = None,
    overwrite: Overwrite = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON: one entry per image.")] = False,
) -> None:
    """Split images into segments from feature maps: k-means on hypercolumns, or a trained per-pixel head."""
    from featuremaps.files import check_outputs, describe_earlier
    from featuremaps.images import read_header
    from featuremaps.segment.run import read_truth, segment_image, write_segmentation

    chosen = checkpoint or model
    if chosen is None or (model is not None and checkpoint is not None):
        raise SettingsError("give either --model M [--clusters K] or --checkpoint CKPT (e.g. builtin:shapes-seg)")
    stems = [Path(image.removeprefix("sample:")).stem for image in images]
    check_outputs([output / f"{stem}_{kind}.png" for stem in stems for kind in ("mask", "overlay")],
                  overwrite=overwrite)
    for image, stem in zip(images, stems):  # every input readable before any work: no half-written run
        if not image.startswith("sample:"):
            read_header(image)
        if truth is not None and not (truth / f"{stem}.png").is_file():
            raise SettingsError(f"no truth mask {truth / f'{stem}.png'} for {image}")
    net = model_on(chosen, device, weights=weights)
    entries = []
    for image in images:
        stem = Path(image.removeprefix("sample:")).stem
        result = segment_image(net, image, clusters=clusters, layers=layers.split(",") if layers else None,
                               seed=seed)
        truth_mask = None
        if truth is not None:
            truth_path = truth / f"{stem}.png"
            if not truth_path.is_file():
                raise SettingsError(f"no truth mask {truth_path} for {image}")
            truth_mask = read_truth(truth_path)
        entries.append(write_segmentation(result, output, stem, source=image, truth=truth_mask,
                                          truth_names=result.names if result.method != "clusters" else None,
                                          overwrite=overwrite))
    note = describe_earlier(output, [entry[kind] for entry in entries for kind in ("mask", "overlay")])
    if note:
        typer.echo(note, err=True)
    if as_json:
        print_json(entries)
        return
    for entry in entries:
        segments = ", ".join(f"{s['name']} {s['pixels']}" for s in entry["segments"])
        score = f"  mIoU {entry['scores']['miou']:.3f}" if "scores" in entry else ""
        typer.echo(f"{entry['path']}: {segments}{score}\n  wrote {entry['mask']}, {entry['overlay']}")
        if entry["note"]:
            typer.echo(f"  {entry['note']}")
