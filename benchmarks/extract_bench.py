"""Benchmark: ``featuremaps extract`` against a plain torchvision pipeline, in one run, on the same files.

Jobs (each in its own subprocess, so its peak RSS is its own):

- ``baseline``: what a careful user writes with torchvision alone: a ``DataLoader`` over the
  files (PIL decode, ``Resize(256)``, ``CenterCrop(224)``, ``ToTensor``, ``Normalize`` in the
  workers), ``create_feature_extractor``, channels_last, autocast, the pooled features kept;
- ``featuremaps``: ``run_extract`` end to end (a store with statistics and top-K);
- ``decode``: featuremaps' loader alone (workers read, hash, check and decode; JPEGs batched on the
  device with ``--decode device``), no forward;
- ``forward``: featuremaps' device side alone (the truncated graph with the reductions inside) on
  model input already on the device.

Reported per run: images/s of each job, ratio = featuremaps / baseline, efficiency = featuremaps /
forward, and, on the CPU, the machine's limit: cores / (decode + forward core-seconds per image),
with how close featuremaps runs to it.

Usage::

    python benchmarks/extract_bench.py                                   # CPU: ResNet-18, 1,000 images
    python benchmarks/extract_bench.py --device cuda --model resnet50 --images 10000 100000 \\
        --batch-size 256 --workers 15 --precision bf16 --out results.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LAYERS = ("layer1", "layer2", "layer3", "layer4")


def make_images(folder: Path, count: int) -> None:
    """``count`` JPEGs of 500x375: random crops of the sample photos at random scales (real content)."""
    import numpy as np
    from PIL import Image

    from featuremaps.images import sample_path

    folder.mkdir(parents=True, exist_ok=True)
    photos = [Image.open(sample_path(n)).convert("RGB") for n in ("cat", "coffee", "astronaut", "rocket")]
    rng = np.random.default_rng(0)
    for i in range(count):
        photo = photos[i % len(photos)]
        scale = max(500 / photo.width, 375 / photo.height) * float(rng.uniform(1.0, 1.6))
        big = photo.resize((int(photo.width * scale) + 1, int(photo.height * scale) + 1), Image.Resampling.BILINEAR)
        left, top = int(rng.integers(0, big.width - 500 + 1)), int(rng.integers(0, big.height - 375 + 1))
        big.crop((left, top, left + 500, top + 375)).save(folder / f"img_{i:06d}.jpg", quality=90)


# --- the jobs, each run in a subprocess ---------------------------------------------------------


def job_baseline(o: dict[str, Any]) -> dict[str, Any]:
    """torchvision only: PIL in DataLoader workers, create_feature_extractor, channels_last, autocast."""
    import numpy as np
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import models, transforms
    from torchvision.models.feature_extraction import create_feature_extractor

    class Files(Dataset):
        def __init__(self, paths):
            self.paths = paths
            self.transform = transforms.Compose([
                transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
            ])

        def __len__(self):
            return len(self.paths)

        def __getitem__(self, i):
            return self.transform(Image.open(self.paths[i]).convert("RGB"))

    start = time.perf_counter()  # like featuremaps' timing: from the job's start to its saved output
    device = torch.device(o["device"])
    cuda = device.type == "cuda"
    paths = sorted(str(p) for p in Path(o["folder"]).glob("*.jpg"))
    torch.manual_seed(0)
    model = models.get_model(o["model"], weights=None).eval().to(device).to(memory_format=torch.channels_last)
    extractor = create_feature_extractor(model, return_nodes={name: name for name in LAYERS})
    loader = DataLoader(Files(paths), batch_size=o["batch_size"], num_workers=o["workers"], pin_memory=cuda)
    pooled: dict[str, list] = {name: [] for name in LAYERS}
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(o["precision"], torch.float32)
    with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=o["precision"] != "fp32"):
        for batch in loader:
            batch = batch.to(device, non_blocking=cuda).contiguous(memory_format=torch.channels_last)
            for name, maps in extractor(batch).items():
                pooled[name].append(maps.float().mean(dim=(2, 3)).cpu().numpy())
    Path(o["out"]).mkdir(parents=True, exist_ok=True)
    for name, parts in pooled.items():
        np.save(Path(o["out"]) / f"{name}.npy", np.concatenate(parts))
    seconds = time.perf_counter() - start
    return {"images": len(paths), "seconds": seconds, "images_per_second": len(paths) / seconds}


def job_featuremaps(o: dict[str, Any]) -> dict[str, Any]:
    import torchvision.models  # noqa: F401 - imported before the clock starts, as the baseline's imports are

    from featuremaps.batch import ExtractConfig, run_extract

    config = ExtractConfig(model=o["model"], layers=LAYERS, pool="avg", batch_size=o["batch_size"],
                           workers=o["workers"], device=o["device"], precision=o["precision"], top_k=8,
                           shard_size=max(512, o["batch_size"] * 4), compile=o["compile"], decode=o["decode"])
    start = time.perf_counter()
    summary = run_extract(o["folder"], o["out"], config)
    seconds = time.perf_counter() - start
    return {"images": summary.images, "seconds": seconds, "images_per_second": summary.images / seconds,
            "pipeline_images_per_second": summary.images_per_second, "stages": summary.seconds_by_stage}


def job_decode(o: dict[str, Any]) -> dict[str, Any]:
    """featuremaps' loader alone: workers read, hash, check, decode; deferred JPEGs decoded on the device."""
    import torch

    from featuremaps.batch.config import ExtractConfig
    from featuremaps.batch.decode import assemble
    from featuremaps.batch.pipeline import file_loader
    from featuremaps.models import load_model, model_info

    device = torch.device(o["device"])
    config = ExtractConfig(model=o["model"], layers=LAYERS, device=o["device"], decode=o["decode"],
                           batch_size=o["batch_size"], workers=o["workers"])
    model_input = model_info(load_model(o["model"])).input
    paths = sorted(str(p) for p in Path(o["folder"]).glob("*.jpg"))
    start, cpu = time.perf_counter(), time.process_time()
    done = 0
    if config.decode_place == "threads":
        from concurrent.futures import ThreadPoolExecutor

        from featuremaps.batch.decode import read_item

        with ThreadPoolExecutor(max(1, torch.get_num_threads())) as pool:
            for first in range(0, len(paths), o["batch_size"]):
                chunk = list(enumerate(paths))[first : first + o["batch_size"]]
                items = list(pool.map(lambda e: read_item(e[0], e[1], model_input, defer_jpeg=False), chunk))
                done += len(assemble(items, model_input, device).good)
    else:
        for batch in file_loader(list(enumerate(paths)), model_input, config):
            done += len(assemble(batch, model_input, device).good)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    core_seconds = time.process_time() - cpu + children.ru_utime + children.ru_stime
    return {"images": done, "seconds": seconds, "images_per_second": done / seconds,
            "core_seconds_per_image": core_seconds / max(done, 1)}


def job_forward(o: dict[str, Any]) -> dict[str, Any]:
    """featuremaps' device side alone on model input already on the device."""
    import torch

    from featuremaps.batch.config import ExtractConfig
    from featuremaps.batch.forward import autocast_for, device_forward
    from featuremaps.batch.shards import layer_table
    from featuremaps.models import load_model

    device = torch.device(o["device"])
    config = ExtractConfig(model=o["model"], layers=LAYERS, device=o["device"], precision=o["precision"],
                           compile=o["compile"])
    model = load_model(o["model"]).to(device).to(memory_format=torch.channels_last)
    forward = device_forward(model, layer_table(model, LAYERS), config)
    batches = [torch.randn(o["batch_size"], 3, 224, 224, device=device).contiguous(memory_format=torch.channels_last)
               for _ in range(2)]
    count = o["count"]
    with autocast_for(config, device):
        for batch in batches:
            forward(batch)  # warm-up (and compilation)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start, cpu = time.perf_counter(), time.process_time()
        done = 0
        while done < count:
            results = forward(batches[done // o["batch_size"] % 2])
            _ = {name: parts["vector"].cpu() for name, parts in results.items()}
            done += o["batch_size"]
    seconds = time.perf_counter() - start
    return {"images": done, "seconds": seconds, "images_per_second": done / seconds,
            "core_seconds_per_image": (time.process_time() - cpu) / done}


JOBS = {"baseline": job_baseline, "featuremaps": job_featuremaps, "decode": job_decode, "forward": job_forward}


def run_job(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """Run a job in a fresh interpreter; add its peak RSS (MiB)."""
    command = [sys.executable, __file__, "--job", name, json.dumps(options)]
    result = subprocess.run(command, capture_output=True, text=True, check=False,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if result.returncode != 0:
        raise RuntimeError(f"job {name} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def machine(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
                            "processor": platform.processor() or platform.machine()}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[1000])
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline-workers", type=int, default=None, help="default: --workers")
    parser.add_argument("--decode", default="auto", choices=["auto", "threads", "workers", "device"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--forward-images", type=int, default=640)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--job", choices=sorted(JOBS), help=argparse.SUPPRESS)
    parser.add_argument("options", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        result = JOBS[args.job](json.loads(args.options))
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    scratch = Path(tempfile.mkdtemp(prefix="extract-bench-"))
    report: dict[str, Any] = {"machine": machine(args.device), "settings": vars(args) | {"out": str(args.out)},
                              "runs": []}
    cores = os.cpu_count() or 1
    try:
        for count in args.images:
            folder = scratch / f"images-{count}"
            make_images(folder, count)
            for precision in args.precision:
                common = {"folder": str(folder), "device": args.device, "model": args.model,
                          "batch_size": args.batch_size, "precision": precision, "compile": args.compile,
                          "decode": args.decode}
                row: dict[str, Any] = {"images": count, "precision": precision}
                row["baseline"] = run_job("baseline", {**common, "out": str(scratch / "baseline"),
                                                       "workers": args.baseline_workers or args.workers})
                shutil.rmtree(scratch / "store", ignore_errors=True)
                row["featuremaps"] = run_job("featuremaps", {**common, "out": str(scratch / "store"),
                                                             "workers": args.workers})
                row["decode"] = run_job("decode", {**common, "workers": args.workers})
                row["forward"] = run_job("forward", {**common, "count": min(count, args.forward_images)})
                fm, base = row["featuremaps"]["images_per_second"], row["baseline"]["images_per_second"]
                row["ratio"] = fm / base
                row["efficiency"] = fm / row["forward"]["images_per_second"]
                line = (f"{count:>7} images {precision}: baseline {base:.1f} img/s (RSS "
                        f"{row['baseline']['peak_rss_mib']:.0f} MiB), featuremaps {fm:.1f} img/s (RSS "
                        f"{row['featuremaps']['peak_rss_mib']:.0f} MiB), decode only "
                        f"{row['decode']['images_per_second']:.1f}, forward only "
                        f"{row['forward']['images_per_second']:.1f} img/s; ratio {row['ratio']:.2f}x, "
                        f"efficiency {row['efficiency']:.2f}")
                if args.device == "cpu":
                    per_image = row["decode"]["core_seconds_per_image"] + row["forward"]["core_seconds_per_image"]
                    row["limit_images_per_second"] = cores / per_image
                    row["share_of_limit"] = fm / row["limit_images_per_second"]
                    line += (f"; machine limit {row['limit_images_per_second']:.1f} img/s "
                             f"({cores} cores / {per_image * 1000:.1f} core-ms per image), featuremaps at "
                             f"{row['share_of_limit']:.0%} of it")
                report["runs"].append(row)
                print(line, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
