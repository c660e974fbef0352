"""Benchmark: how few images per class a head on builtin:imagenet's maps needs, against the same head on the
untrained architecture and against a CNN trained from scratch, all in one run on the same images.

For each number of training images per class, on a dataset featuremaps generates or one a package ships:

- ``imagenet``: ``train --backbone builtin:imagenet --layer LAYER --head linear`` (the maps of a network
  trained on ImageNet photos, frozen; only the head learns);
- ``untrained``: the same head on the same architecture with random weights (what the maps give
  without training: the control);
- ``scratch``: a small CNN (TinyResNet, the architecture of builtin:objects) trained end to end on exactly the
  same images, with the library's training loop, for 600 steps (``train --dataset objects --model tinyresnet``
  itself draws fresh images every epoch, so it would not be trained on N images per class).

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
from dataclasses import replace


def _scratch(images: int, seed: int, steps: int = 600):
    """TinyResNet trained end to end on exactly ``images`` generated images (fixed), ``steps`` steps of 32."""
    import torch
    import torch.nn.functional as F

    from featuremaps.data.datasets import objects_dataset
    from featuremaps.features.info import attach
    from featuremaps.models import load_model, model_info
    from featuremaps.recognize.training import fit

    model = load_model("tinyresnet", num_classes=9, seed=seed)
    info = model_info(model)
    data = objects_dataset(images, seed, max(info.input.size), model_input=info.input)
    x, y = info.input.normalise(data.images), data.labels
    generator = torch.Generator().manual_seed(seed)
    per_epoch = -(-images // 32)

    def step(index):
        logits = model(x[index])
        yield F.cross_entropy(logits, y[index]), int((logits.argmax(1) == y[index]).sum())

    fit(list(model.parameters()), epochs=max(1, steps // per_epoch), lr=2e-3, weight_decay=1e-4,
        batches=lambda _epoch: list(torch.randperm(images, generator=generator).split(32)), step=step,
        validate=lambda: {}, train_mode=model.train)
    return attach(model.eval(), replace(info, class_names=tuple(data.class_names), num_classes=len(data.class_names)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-class", type=int, nargs="+", default=[1, 2, 5, 10, 20])
    parser.add_argument("--layer", default="bn2", help="the backbone layer whose pooled maps the head reads")
    parser.add_argument("--test", type=int, default=450, help="held-out images scored (objects)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("imagenet", "untrained", "scratch"), nargs="+",
                        default=["imagenet", "untrained", "scratch"])
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
        for kind in args.only:
            started = time.perf_counter()
            if kind == "scratch":
                model = _scratch(per_class * classes, args.seed)
            else:  # the untrained control: the same architecture (and input) with random weights
                backbone = "builtin:imagenet" if kind == "imagenet" else "timm:tf_efficientnet_lite0"
                config = TrainConfig(dataset="objects", backbone=backbone, layer=args.layer, head="linear",
                                     epochs=max(20, 400 // per_class), samples=per_class * classes, seed=args.seed,
                                     batch_size=32)
                model = train_classifier(config).model
            info = model_info(model)
            test = objects_dataset(args.test, 424242, max(info.input.size), model_input=info.input)
            score = evaluate(model, test)
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
