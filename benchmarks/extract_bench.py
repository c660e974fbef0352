"""Benchmark: ``featuremaps extract`` against a straightforward torchvision pipeline, in one run.

Both extract ResNet-18's layer1..layer4, average-pooled, from a generated folder of JPEGs
(500x375 crops of the bundled sample photos), with untrained weights. Each measurement runs
in its own subprocess, so peak RSS is that job's own (``ru_maxrss`` of the main process).

Reported:
- ratio = featuremaps images/s / baseline images/s (same images, model, layers, precision);
- pipeline efficiency = end-to-end images/s / forward-only images/s (same model, precision,
  batch size, on tensors already decoded in memory);
- peak RSS at each dataset size (it should not grow with the size).

Usage::

    python benchmarks/extract_bench.py --images 1000 10000 [--precision fp32 bf16] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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
        big.crop((left, top, left + 500, top + 375)).save(folder / f"img_{i:05d}.jpg", quality=90)


# --- the jobs, each run in a subprocess -----------------------------------------------


def job_baseline(folder: str, out: str, batch_size: int, workers: int, precision: str) -> dict:
    """torchvision only: ImageFolder-like Dataset with PIL, DataLoader, create_feature_extractor."""
    import numpy as np
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms
    from torchvision.models import resnet18
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
    paths = sorted(str(p) for p in Path(folder).glob("*.jpg"))
    torch.manual_seed(0)
    model = resnet18(weights=None).eval()
    extractor = create_feature_extractor(model, return_nodes={name: name for name in LAYERS})
    loader = DataLoader(Files(paths), batch_size=batch_size, num_workers=workers)
    pooled: dict[str, list] = {name: [] for name in LAYERS}
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        for batch in loader:
            for name, maps in extractor(batch).items():
                pooled[name].append(maps.float().mean(dim=(2, 3)).numpy())
    Path(out).mkdir(parents=True, exist_ok=True)
    for name, parts in pooled.items():
        np.save(Path(out) / f"{name}.npy", np.concatenate(parts))
    seconds = time.perf_counter() - start
    return {"images": len(paths), "seconds": seconds, "images_per_second": len(paths) / seconds}


def job_featuremaps(folder: str, out: str, batch_size: int, workers: int, precision: str) -> dict:
    from featuremaps.batch import ExtractConfig, run_extract

    config = ExtractConfig(model="resnet18", layers=LAYERS, pool="avg", batch_size=batch_size, workers=workers,
                           precision=precision, top_k=8, shard_size=512)
    start = time.perf_counter()
    summary = run_extract(folder, out, config)
    seconds = time.perf_counter() - start
    return {"images": summary.images, "seconds": seconds, "images_per_second": summary.images / seconds,
            "pipeline_images_per_second": summary.images_per_second}


def job_forward(folder: str, out: str, batch_size: int, workers: int, precision: str) -> dict:
    """featuremaps' forward alone (truncated, channels_last, inference_mode) on pre-decoded tensors."""
    import torch

    from featuremaps.batch.shards import layer_table
    from featuremaps.extract import capture
    from featuremaps.models import load_model

    model = load_model("resnet18").to(memory_format=torch.channels_last)
    layers = layer_table(model, LAYERS)
    batches = [torch.randn(batch_size, 3, 224, 224).contiguous(memory_format=torch.channels_last) for _ in range(4)]
    count = int(out)  # images to push through
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        capture(model, batches[0], layers)  # warm-up
        start = time.perf_counter()
        done = 0
        while done < count:
            maps = capture(model, batches[done // batch_size % 4], layers)
            _ = [m.float().mean(dim=(2, 3)) for m in maps.values()]
            done += batch_size
    seconds = time.perf_counter() - start
    return {"images": done, "seconds": seconds, "images_per_second": done / seconds}


JOBS = {"baseline": job_baseline, "featuremaps": job_featuremaps, "forward": job_forward}


def run_job(name: str, *args: str) -> dict:
    """Run a job in a fresh interpreter; add its peak RSS (MiB) to the result."""
    command = [sys.executable, __file__, "--job", name, *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ,
                                                                                      "PYTHONWARNINGS": "ignore"})
    if result.returncode != 0:
        raise RuntimeError(f"job {name} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--baseline-workers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--job", choices=sorted(JOBS), help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.job:
        folder, out, batch, workers, precision = options.args
        result = JOBS[options.job](folder, out, int(batch), int(workers), precision)
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    scratch = Path(tempfile.mkdtemp(prefix="extract-bench-"))
    report = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "runs": []}
    try:
        for count in options.images:
            folder = scratch / f"images-{count}"
            make_images(folder, count)
            for precision in options.precision:
                row = {"images": count, "precision": precision}
                row["baseline"] = run_job("baseline", str(folder), str(scratch / "baseline"),
                                          str(options.batch_size), str(options.baseline_workers), precision)
                shutil.rmtree(scratch / "store", ignore_errors=True)
                row["featuremaps"] = run_job("featuremaps", str(folder), str(scratch / "store"),
                                             str(options.batch_size), str(options.workers), precision)
                row["forward"] = run_job("forward", str(folder), str(min(count, 640)), str(options.batch_size), "0",
                                         precision)
                row["ratio"] = row["featuremaps"]["images_per_second"] / row["baseline"]["images_per_second"]
                row["efficiency"] = row["featuremaps"]["images_per_second"] / row["forward"]["images_per_second"]
                report["runs"].append(row)
                print(f"{count:>6} images {precision}: baseline {row['baseline']['images_per_second']:.1f} img/s "
                      f"(RSS {row['baseline']['peak_rss_mib']:.0f} MiB), featuremaps "
                      f"{row['featuremaps']['images_per_second']:.1f} img/s (RSS "
                      f"{row['featuremaps']['peak_rss_mib']:.0f} MiB), forward only "
                      f"{row['forward']['images_per_second']:.1f} img/s; ratio {row['ratio']:.2f}x, "
                      f"efficiency {row['efficiency']:.2f}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if options.out:
        options.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
