"""``featuremaps extract``: the feature maps of a whole dataset into a store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from featuremaps.cli._common import (
    app,
    print_json,
)
from featuremaps.cli._progress import CountBar
from featuremaps.cli._progress import stderr as _stderr


@app.command("extract")
def extract_command(
    source: Annotated[str, typer.Argument(metavar="SOURCE", help="A folder of images, or a .txt/.csv/.parquet "
                                          "list of paths.")],
    model: Annotated[str, typer.Option("--model", "-m", metavar="MODEL", help="Model name or checkpoint.")],
    layers: Annotated[str, typer.Option(metavar="L1,L2", help="Layers to extract (names, patterns or types).")],
    out: Annotated[Path, typer.Option("--out", "--output", "-o", metavar="STORE", help="The store folder to write.")],
    weights: Annotated[Optional[str], typer.Option(metavar="W", help="Weights (default: untrained).")] = None,
    pool: Annotated[str, typer.Option(metavar="avg|max|avgmax|none", help="Pooling of each map into a vector; none "
                                      "keeps the full maps in Zarr.")] = "avg",
    batch_size: Annotated[int, typer.Option(metavar="B", help="Images per forward.")] = 32,
    workers: Annotated[int, typer.Option(metavar="N", help="Processes that read files beside each forward "
                                         "pass, for --decode workers (which they decode) or device; on --engine "
                                         "ray, N reader processes per forward actor, spread over the cluster.")] = 1,
    device: Annotated[str, typer.Option(metavar="cpu|cuda", help="Where the model runs.")] = "cpu",
    precision: Annotated[str, typer.Option(metavar="fp32|bf16|fp16", help="Compute precision (bf16/fp16 store "
                                           "float16 vectors).")] = "fp32",
    top_k: Annotated[int, typer.Option(metavar="K", help="Best images kept per channel (for the microscope).")] = 8,
    shard_size: Annotated[int, typer.Option(metavar="N", help="Images per shard (the unit of resume).")] = 256,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the truncated graph with its "
                                          "reductions (CPU or CUDA; compiling takes a while up front).")] = False,
    decode: Annotated[str, typer.Option(metavar="auto|threads|workers|device", help="Where images are decoded: "
                                        "threads between forward passes (auto on the CPU), worker processes beside "
                                        "it, or JPEGs in batches on the device (auto on a GPU).")] = "auto",
    engine: Annotated[str, typer.Option(metavar="local|ray", help="Run here, or on a Ray cluster.")] = "local",
    ray_address: Annotated[Optional[str], typer.Option(metavar="ADDR", help="Ray cluster to run on: HEAD:6379, "
                                                       "or auto on a node of it (one forward actor per CPU, or "
                                                       "GPU); default: a local Ray on this machine.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a killed or interrupted run.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Extract feature maps of every image of a dataset into a store (resumable, bounded memory)."""
    from featuremaps.batch import ExtractConfig, run_extract

    config = ExtractConfig(model=model, weights=weights, layers=tuple(x for x in layers.split(",") if x), pool=pool,
                           batch_size=batch_size, workers=workers, device=device, precision=precision, top_k=top_k,
                           shard_size=shard_size, compile=compile, engine=engine, ray_address=ray_address,
                           decode=decode)
    if workers > 1 and config.decode_place == "threads":  # 0 or 1: nothing to add either way
        _stderr.print(f"note: --workers {workers} is for --decode workers (processes that decode beside the forward "
                      "pass); here images are decoded between forward passes (the default on a CPU, "
                      f"faster on a few cores): add --decode workers to use {workers} processes",
                      markup=False, highlight=False)
    with CountBar("extract", "img") as bar:
        summary = run_extract(source, out, config, resume=resume, on_progress=bar.update)
    if as_json:
        print_json(summary.to_dict())
        return
    skipped = f", {summary.shards_skipped} of {summary.shards} shards already done" if summary.shards_skipped else ""
    for redone in summary.shards_redone:
        _stderr.print(f"shard {redone['shard']} was done again: {redone['reason']}", markup=False, highlight=False)
    typer.echo(f"{summary.images} images: {summary.readable} read, {summary.errors} errors (see errors.parquet); "
               f"{summary.images_per_second:.1f} images/s overall{skipped}; store {summary.store}")
    for node in summary.nodes:  # the Ray engine: who did the work
        stages = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in node["seconds_by_stage"].items())
        typer.echo(f"  node {node['node'][:12]} ({node['address']}): {node['rows']} images computed, "
                   f"{node['rows_read']} read; {stages}")
