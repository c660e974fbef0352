"""Benchmark: builtin:imagenet's prediction and extraction against a plain timm loop, in one run.

On the same JPEGs (the bundled photos, re-encoded as ``--images`` crops of 500x375), the same model
(EfficientNet-Lite0, TensorFlow's ImageNet weights) and batch size:

- ``predict``: ``featuremaps.recognize.predict.predict`` (decode, resize 256, crop 224, [-1, 1], forward,
  softmax, top-5) against a plain loop: PIL decode, timm's own transform, ``torch.inference_mode``
  forward, softmax, top-5;
- ``extract``: ``featuremaps extract`` (the batch pipeline: decode threads, the truncated graph,
  average-pooled ``blocks.4`` and ``bn2``, Parquet shards) against a plain loop that runs the whole
  model with forward hooks on those two layers and pools on the host.

Reported: images/s of each and the ratio featuremaps / plain (above 1: featuremaps is faster), and
whether the top-1 classes agree. Run on an idle machine; the ratio is what to compare across machines.

Usage::

    python benchmarks/imagenet_bench.py                 # 256 images, batch 32, CPU
    python benchmarks/imagenet_bench.py --images 1024 --device cuda
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path


def _photos(folder: Path, count: int) -> list[Path]:
    """``count`` JPEG crops of 500x375 of the bundled photos (deterministic)."""
    import numpy as np
    from PIL import Image

    from featuremaps.images import samples

    sources = [Image.open(s.path).convert("RGB").resize((640, 480)) for s in samples()]
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        photo = sources[index % len(sources)]
        left, top = int(rng.integers(0, photo.width - 500)), int(rng.integers(0, photo.height - 375))
        path = folder / f"photo_{index:05d}.jpg"
        photo.crop((left, top, left + 500, top + 375)).save(path, quality=90)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="also write the results as JSON")
    args = parser.parse_args()

    import timm
    import torch
    from PIL import Image

    from featuremaps.batch import ExtractConfig, run_extract
    from featuremaps.models import load_model
    from featuremaps.models.imagenet import imagenet_weights_path
    from featuremaps.recognize.predict import predict

    work = Path(tempfile.mkdtemp(prefix="imagenet-bench-"))
    (work / "photos").mkdir()
    paths = _photos(work / "photos", args.images)
    device = torch.device(args.device)

    # the plain timm pipeline
    reference = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    state = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    reference.load_state_dict(dict(zip(reference.state_dict(), state.values())))
    reference = reference.eval().to(device)
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=reference))

    def plain_predict() -> list[int]:
        best = []
        with torch.inference_mode():
            for start in range(0, len(paths), args.batch_size):
                batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths[start:start + args.batch_size]])
                probabilities = reference(batch.to(device)).softmax(1)
                best += probabilities.topk(5, dim=1).indices[:, 0].tolist()
        return best

    model = load_model("builtin:imagenet").to(device)

    def ours_predict() -> list[int]:
        return [p.class_index for p in predict(model, [str(p) for p in paths], top_k=5, batch_size=args.batch_size)]

    layers = ("blocks.4", "bn2")

    def plain_extract() -> None:
        modules = dict(reference.named_modules())
        pooled: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
        handles = [modules[name].register_forward_hook(
            lambda _m, _i, out, name=name: pooled[name].append(out.float().mean((2, 3)).cpu())) for name in layers]
        try:
            with torch.inference_mode():
                for start in range(0, len(paths), args.batch_size):
                    batch = torch.stack([transform(Image.open(p).convert("RGB"))
                                         for p in paths[start:start + args.batch_size]])
                    reference(batch.to(device))
        finally:
            for handle in handles:
                handle.remove()

    def ours_extract(run: int) -> None:
        config = ExtractConfig(model="builtin:imagenet", layers=layers, batch_size=args.batch_size, device=args.device,
                               top_k=0, workers=1)
        run_extract(work / "photos", work / f"store-{run}", config)

    timings: dict[str, float] = {}
    agree = None
    plain_best: list[int] = []
    for run in range(2):  # the first run warms caches and threads; the second is reported
        for name, job in (("plain_predict", plain_predict), ("featuremaps_predict", ours_predict),
                          ("plain_extract", plain_extract), ("featuremaps_extract", lambda r=run: ours_extract(r))):
            started = time.perf_counter()
            result = job()
            timings[name] = time.perf_counter() - started
            if name == "plain_predict":
                plain_best = result
            elif name == "featuremaps_predict":
                agree = sum(a == b for a, b in zip(plain_best, result)) / len(paths)
    rate = {name: round(len(paths) / seconds, 1) for name, seconds in timings.items()}
    report = {"images": len(paths), "batch_size": args.batch_size, "device": args.device,
              "machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
              "images_per_second": rate,
              "predict_ratio": round(rate["featuremaps_predict"] / rate["plain_predict"], 2),
              "extract_ratio": round(rate["featuremaps_extract"] / rate["plain_extract"], 2),
              "top1_agreement": agree}
    print(json.dumps(report, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
