"""Benchmark: how quickly the explorer answers in a real browser (Chromium driven by Playwright).

Two interactions, each repeated (30 times by default) on a real ``featuremaps serve`` on loopback:

- conv: a convolution setting changes on a 512x512 photo (sample:astronaut; the stride flips between 1 and 2
  with 8 random 3x3 filters): from the input event to the new shape, formula and maps drawn in the page;
- layer: a layer of ResNet-18 is chosen (conv1, layer1 ... layer4 in turn): from the change event to its 32
  most active maps drawn.

Each time is measured inside the page (``performance.now()`` from dispatching the event to the frame after
the last tile image has loaded), so it includes the page's 60 ms wait for more keystrokes, the request, the
server's work and the drawing. For scale, the same requests are also timed without a browser (HTTP only).
Targets (issue 16): conv p50 <= 250 ms, layer p50 <= 500 ms.

Usage: ``python benchmarks/explorer_bench.py [--repeats 30] [--out results.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

MEASURE = """async ([kind, value]) => {
  const done = kind === 'conv'
    ? () => document.getElementById('output-shape').textContent === value.shape
    : () => document.getElementById('layer-info').textContent.includes(`· ${value.layer} (`);
  const tiles = kind === 'conv' ? '#conv-maps img' : '#model-maps img';
  const before = document.querySelector(tiles);
  const start = performance.now();
  if (kind === 'conv') {
    const input = document.getElementById('conv-stride');
    input.value = value.stride; input.dispatchEvent(new Event('input'));
  } else {
    const select = document.getElementById('layer-select');
    select.value = value.layer; select.dispatchEvent(new Event('change'));
  }
  await new Promise((resolve) => {
    const check = () => {
      const imgs = [...document.querySelectorAll(tiles)];
      if (done() && imgs.length && imgs[0] !== before && imgs.every((i) => i.complete)) resolve();
      else requestAnimationFrame(check);
    };
    check();
  });
  await new Promise((resolve) => requestAnimationFrame(resolve));
  return performance.now() - start;
}"""


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": statistics.median(ordered), "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
            "min": ordered[0], "max": ordered[-1], "n": len(ordered)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None)
    options = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    command = [str(Path(sys.executable).parent / "featuremaps"), "serve", "--port", str(port), "--model", "resnet18"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(base + "/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        results = {"conv": [], "layer": []}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                                 args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base + "/")
            page.wait_for_selector("#conv-maps [data-testid=feature-map]", timeout=120_000)
            page.select_option("[data-testid=sample-select]", "sample:astronaut")
            page.wait_for_function("document.getElementById('output-shape').textContent === '8 × 510 × 510'",
                                   timeout=60_000)
            page.wait_for_selector("#model-maps [data-testid=feature-map]", timeout=120_000)
            page.wait_for_timeout(1000)
            for k in range(options.repeats + 2):  # the first two warm the caches and are not counted
                stride = 2 if k % 2 == 0 else 1
                shape = "8 × 255 × 255" if stride == 2 else "8 × 510 × 510"
                ms = page.evaluate(MEASURE, ["conv", {"stride": str(stride), "shape": shape}])
                if k >= 2:
                    results["conv"].append(ms)
            layers = ["conv1", "layer1", "layer2", "layer3", "layer4"]
            for k in range(options.repeats + len(layers)):  # one warm-up per layer
                ms = page.evaluate(MEASURE, ["layer", {"layer": layers[k % len(layers)]}])
                if k >= len(layers):
                    results["layer"].append(ms)
            browser.close()
        http = {"conv": [], "layer": []}
        with httpx.Client(base_url=base, timeout=120) as client:
            for k in range(options.repeats):
                start = time.perf_counter()
                client.post("/api/conv", json={"image": "sample:astronaut", "filters": "random", "depth": 8,
                                               "stride": 1 + k % 2}).raise_for_status()
                http["conv"].append(1000 * (time.perf_counter() - start))
                start = time.perf_counter()
                client.post("/api/maps", json={"image": "sample:astronaut", "model": "resnet18",
                                               "layer": ["conv1", "layer1", "layer2", "layer3", "layer4"][k % 5],
                                               "max_maps": 32}).raise_for_status()
                http["layer"].append(1000 * (time.perf_counter() - start))
    finally:
        server.terminate()
        server.wait(timeout=30)
    report = {"cpus": os.cpu_count(), "repeats": options.repeats,
              "browser_ms": {k: percentiles(v) for k, v in results.items()},
              "http_only_ms": {k: percentiles(v) for k, v in http.items()},
              "targets_ms": {"conv": 250, "layer": 500}}
    for kind in ("conv", "layer"):
        b, h = report["browser_ms"][kind], report["http_only_ms"][kind]
        print(f"{kind:<5}  browser p50 {b['p50']:6.0f} ms  p95 {b['p95']:6.0f} ms   (HTTP only p50 {h['p50']:5.0f} ms; "
              f"target p50 <= {report['targets_ms'][kind]} ms: {'met' if b['p50'] <= report['targets_ms'][kind] else 'NOT met'})")
    if options.out:
        options.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
