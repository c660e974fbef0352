"""Benchmark: the Ray engine on a three-node loopback cluster against the local engine, in one run.

The same JPEG crops, model, layers and batch size; first ``featuremaps extract`` on the local engine (this
machine's cores, decode threads), then on a real Ray cluster of ``--nodes`` nodes of ``--cpus`` CPUs each,
all on 127.0.0.1 (head + workers started by ``ray start``, checked to listen on the loopback interface only;
the same recipe as the cluster tests). Both as the user runs them: the CLI, wall time from start to exit,
cluster start-up not included (a cluster is started once and serves many runs).

Reported: images/s of each, the ratio ray / local (above 1: the cluster is faster), the rows each node
computed and its seconds per stage, and the driver's time waiting for results and writing. On one machine
the nodes share its cores: the ratio shows the engine's overhead and that the work is spread, not what more
machines would add (see the README's cluster section).

Usage::

    python benchmarks/ray_bench.py                       # 2,400 images, 3 nodes x 1 CPU, resnet18
    python benchmarks/ray_bench.py --images 300 --nodes 3 --cpus 1

2,400 images by default: each actor's start (a process importing torch and building the model, about 4 s of
CPU) is paid once per run, and on one machine of two cores the cluster's three actors pay it on the cores that
the local engine computes on; a run has to be long enough for the work itself to show (the README gives 300
and 1,200 too).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.batch.conftest import write_photos  # noqa: E402 - the test data and the loopback recipe
from tests.batch.ray_loopback import LoopbackCluster  # noqa: E402


def _extract(folder: Path, out: Path, args: argparse.Namespace, env: dict, *extra: str) -> tuple[float, dict]:
    command = [str(Path(sys.executable).with_name("featuremaps")), "extract", str(folder), "--out", str(out),
               "--model", args.model, "--layers", args.layers, "--batch-size", str(args.batch_size), "--json",
               *extra]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return seconds, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2400)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=1)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--layers", default="layer2,layer4")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--decode", default="auto", help="--decode of both runs (auto: between forward passes; "
                        "workers: DataLoader processes locally, one reader actor per forward actor on Ray)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="featuremaps-ray-bench-") as temp:
        root = Path(temp)
        folder = root / "photos"
        write_photos(folder, args.images, size=(320, 240), seed=3)
        cluster = LoopbackCluster(root / "cluster", nodes=args.nodes, cpus=args.cpus).start()
        try:
            problems = cluster.check_loopback()
            if problems:
                raise SystemExit("the cluster is not on the loopback interface only: " + "; ".join(problems))
            local_s, local = _extract(folder, root / "local", args, cluster.env, "--decode", args.decode)
            ray_s, remote = _extract(folder, root / "ray", args, cluster.env, "--decode", args.decode,
                                     "--engine", "ray", "--ray-address", cluster.address)
        finally:
            cluster.stop()
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores",
        "images": args.images, "model": args.model, "layers": args.layers, "batch_size": args.batch_size,
        "cluster": f"{args.nodes} nodes x {args.cpus} CPU on 127.0.0.1", "decode": args.decode,
        "local_images_per_s": round(args.images / local_s, 1), "ray_images_per_s": round(args.images / ray_s, 1),
        "ratio_ray_over_local": round(local_s / ray_s, 2),
        "ray_nodes": remote["nodes"], "ray_seconds_by_stage": remote["seconds_by_stage"],
        "local_seconds_by_stage": local["seconds_by_stage"],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
