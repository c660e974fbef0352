"""Benchmark: feature visualisation of 16 channels against the bare forward+backward it needs, in one run.

Jobs, on the same model, layer, image size, batch and number of steps:

- ``floor``: 16 images through the model truncated at the layer, forward and backward to the input,
  ``steps`` times: the least any optimiser must spend;
- ``visualize``: :func:`featuremaps.optvis.visualize` with its defaults (decorrelated Fourier image,
  random jitter/scale/rotation, redirected ReLU, Adam);
- ``pixel``: the same with plain pixels (no Fourier, no colour decorrelation).

Reported: seconds of each, the ratio visualize / floor (the overhead of parameterisation and
transforms), and the steps each parameterisation needs to reach, per channel, the activation of
the strongest of ``--real`` real images of the model's own dataset (fewer is better).

Usage::

    python benchmarks/visualize_bench.py                        # builtin:objects, stage2, 128 px, 256 steps
    python benchmarks/visualize_bench.py --model builtin:shapes --layer relu2_2 --steps 128
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="builtin:objects")
    parser.add_argument("--layer", default="stage2")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--real", type=int, default=300, help="real images for the target activations")
    parser.add_argument("--out", default=None, help="also write the results as JSON")
    args = parser.parse_args()

    from featuremaps import load_model, model_info
    from featuremaps.features import FeatureExtractor
    from featuremaps.optvis import channel, visualize

    model = load_model(args.model)
    info = model_info(model)
    extractor = FeatureExtractor(model, [args.layer], input_shape=(info.input.channels, args.size, args.size))

    # Targets: each channel's mean on the strongest of `--real` real images of the model's own data.
    if info.name in ("tinyresnet", "tinyvgg") and info.class_names:
        from featuremaps.data import objects_dataset, shapes_dataset

        make = objects_dataset if "house" in info.class_names else shapes_dataset
        real = info.input.normalise(make(args.real, seed=31337, size=args.size, model_input=info.input).images)
    else:
        from featuremaps.images import samples

        real = torch.stack([info.input.tensor(s.path) for s in samples()])
    with torch.no_grad():
        means = torch.cat([extractor(batch)[args.layer].flatten(2).mean(2) for batch in real.split(64)])
    strongest = means.max(dim=0).values
    chosen = [int(c) for c in strongest.argsort(descending=True)[: args.channels]]

    images = torch.rand(len(chosen), info.input.channels, args.size, args.size, requires_grad=True)
    start = time.perf_counter()
    for _ in range(args.steps):
        maps = extractor(info.input.standardise(images), grad=True)[args.layer]
        (grad,) = torch.autograd.grad(maps.mean(), images)
    floor = time.perf_counter() - start

    timings, steps = {}, {}
    for param in ("fourier", "pixel"):
        start = time.perf_counter()
        result = visualize(model, [channel(args.layer, c) for c in chosen], steps=args.steps, size=args.size,
                           param=param, decorrelate=param == "fourier", batch_size=len(chosen))
        timings[param] = time.perf_counter() - start
        reached = result.steps_to_reach(strongest[chosen])
        steps[param] = {"per_channel": reached.tolist(), "ratio_to_real": (result.values / strongest[chosen]).tolist()}

    def median_steps(values: list[int]) -> float:
        done = [v for v in values if v > 0]
        return float(np.median(done)) if done else float("nan")

    report = {
        "machine": platform.machine(), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "model": info.name, "weights": info.weights_label, "layer": args.layer, "channels": chosen,
        "size": args.size, "steps": args.steps,
        "seconds": {"floor": round(floor, 2), "visualize": round(timings["fourier"], 2),
                    "pixel": round(timings["pixel"], 2)},
        "ratio_visualize_to_floor": round(timings["fourier"] / floor, 2),
        "steps_to_strongest_real_image": {
            param: {"median": median_steps(s["per_channel"]),
                    "never": sum(v < 0 for v in s["per_channel"]), **s} for param, s in steps.items()},
        "final_over_strongest_real": {param: round(float(np.min(s["ratio_to_real"])), 2) for param, s in steps.items()},
    }
    print(json.dumps(report, indent=2))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
