"""Benchmark: how few images per class a head on builtin:imagenet's maps needs, against the same head on the
untrained architecture and against a CNN trained from scratch, all in one run on the same images.

For each number of training images per class, on a dataset featuremaps generates or one a package ships:

- ``imagenet``: ``train --backbone builtin:imagenet --layer LAYER --head linear`` (the maps of a network
  trained on ImageNet photos, frozen; only the head learns);
- ``untrained``: the same head on the same architecture with random weights (what the maps give
  without training: the control);
- ``scratch``: a small CNN trained end to end on the same images (``--model tinyresnet``; LeNet-5 for
  digits).

Each is scored on the same held-out images (a seed no run trained on). The dataset is ``objects``
(generated composite objects, 9 classes): drawings, not photos, so this measures how far features
learnt on photos carry to another kind of image.

Usage::

    python benchmarks/transfer_bench.py                          # 1 2 5 10 20 images per class
    python benchmarks/transfer_bench.py --per-class 1 5 --test 180
"""

from __future__ import annotations

import argparse
import json
import platform
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, nargs="+", default=[1, 2, 5, 10, 20])
    parser.add_argument("--layer", default="bn2", help="the backbone layer whose pooled maps the head reads")
    parser.add_argument("--test", type=int, default=450, help="held-out images scored (objects)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the results as JSON")
    args = parser.parse_args()

    import torch

    from featuremaps.data.datasets import objects_dataset
    from featuremaps.models import model_info
    from featuremaps.recognize.evaluate import evaluate
    from featuremaps.recognize.train import TrainConfig, train_classifier

    torch.manual_seed(args.seed)
    classes = 9
    rows = []
    for per_class in args.per_class:
        row: dict[str, float | int] = {"per_class": per_class}
        for kind in ("imagenet", "untrained", "scratch"):
            started = time.perf_counter()
            common = {"samples": per_class * classes, "seed": args.seed, "batch_size": 32}
            if kind == "scratch":
                config = TrainConfig(dataset="objects", model="tinyresnet", epochs=max(10, 200 // per_class), **common)
            else:  # the untrained control: the same architecture (and input) with random weights
                backbone = "builtin:imagenet" if kind == "imagenet" else "timm:tf_efficientnet_lite0"
                config = TrainConfig(dataset="objects", backbone=backbone, layer=args.layer, head="linear",
                                     epochs=max(20, 400 // per_class), **common)
            result = train_classifier(config)
            info = model_info(result.model)
            test = objects_dataset(args.test, 424242, max(info.input.size), model_input=info.input)
            score = evaluate(result.model, test)
            row[kind] = round(100 * score.accuracy, 1)
            row[f"{kind}_seconds"] = round(time.perf_counter() - started, 1)
            print(f"{per_class:>3} per class  {kind:<9} {row[kind]:5.1f}%  ({row[f'{kind}_seconds']} s)", flush=True)
        rows.append(row)
    report = {"dataset": "objects", "classes": classes, "layer": args.layer, "test_images": args.test,
              "machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
              "rows": rows}
    print(json.dumps(report, indent=1))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=1)


if __name__ == "__main__":
    main()
