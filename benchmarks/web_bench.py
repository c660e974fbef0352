"""Benchmark: how much the explorer adds on top of the bare computation of feature maps.

Two cases, each measured at four levels in one run:

- conv: a 512x512 photo (sample:astronaut) through the ``classic`` bank (6 filters, 3x3);
- layer2: ResNet-18's layer2 maps of the photo (224x224 input, 128 maps, the 32 most active drawn).

Levels: ``bare`` = the library computation only (ConvLayer forward / truncated forward);
``service`` = the explorer's function (computation + ranking + PNG tiles); ``http`` = a POST to
a real uvicorn server on loopback; ``browser`` = from changing a control in Chromium to the new
tiles in the page. Ratios are against ``bare``. Medians of repeated runs.

Usage: ``python benchmarks/web_bench.py [--repeats 15] [--out results.json]``
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import threading
import time
from pathlib import Path


def median_seconds(work, repeats: int) -> float:
    work()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", type=Path, default=None)
    options = parser.parse_args()

    import httpx
    import torch
    import uvicorn
    from featuremaps.models.preprocess import prepare_batch
    from featuremaps.render._draw import to_pil

    from featuremaps.conv import ConvLayer
    from featuremaps.extract import capture, catalogue_for, select_layers
    from featuremaps.images import load_image
    from featuremaps.models import load_model
    from featuremaps.web import ExplorerSettings, create_app

    image = load_image("sample:astronaut", mode="rgb")  # 3 x 512 x 512
    layer = ConvLayer(3, "classic", stride=1)
    resnet = load_model("resnet18")
    batch, _ = prepare_batch(resnet, [to_pil(image)])
    entry = select_layers(catalogue_for(resnet, tuple(batch.shape[1:])), "layer2")

    def bare_conv() -> None:
        with torch.inference_mode():
            layer(image)

    def bare_layer2() -> None:
        capture(resnet, batch, entry)

    app = create_app(ExplorerSettings())
    explorer = app.state.explorer
    conv_body = {"image": "sample:astronaut", "filters": "classic", "stride": 1}
    maps_body = {"image": "sample:astronaut", "model": "resnet18", "layer": "layer2", "max_maps": 32}
    results: dict[str, dict[str, float]] = {"conv": {}, "layer2": {}}
    results["conv"]["bare"] = median_seconds(bare_conv, options.repeats)
    results["layer2"]["bare"] = median_seconds(bare_layer2, options.repeats)
    results["conv"]["service"] = median_seconds(lambda: explorer.conv("sample:astronaut", conv_body),
                                                options.repeats)
    results["layer2"]["service"] = median_seconds(lambda: explorer.maps("sample:astronaut", "resnet18", "layer2", 32),
                                                  options.repeats)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=120) as client:
        results["conv"]["http"] = median_seconds(lambda: client.post("/api/conv", json=conv_body).raise_for_status(),
                                                 options.repeats)
        results["layer2"]["http"] = median_seconds(
            lambda: client.post("/api/maps", json=maps_body).raise_for_status(), options.repeats)
    timings = browser_timings(base, options.repeats)
    if timings is not None:
        results["conv"]["browser"], results["layer2"]["browser"] = timings
    server.should_exit = True
    for case, levels in results.items():
        bare = levels["bare"]
        text = ", ".join(f"{level} {seconds * 1000:.0f} ms ({seconds / bare:.2f}x)" for level, seconds in levels.items())
        print(f"{case}: {text}")
    if options.out:
        options.out.write_text(json.dumps(results, indent=2))


def browser_timings(base: str, repeats: int) -> tuple[float, float] | None:
    """Seconds from a control change to new tiles in Chromium: (conv, layer2); None without Chromium."""
    if not Path("/usr/bin/chromium").exists():
        return None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        page = browser.new_page()
        page.goto(base + "/")
        page.wait_for_selector("#conv-maps [data-testid=feature-map]", timeout=60_000)
        page.select_option("[data-testid=sample-select]", "sample:astronaut")
        page.select_option("[data-testid=conv-filters]", "classic")
        page.wait_for_timeout(3000)
        conv_times, layer_times = [], []
        for k in range(repeats + 1):
            stride = 1 + k % 2
            page.evaluate("document.getElementById('conv-maps').replaceChildren()")
            start = time.perf_counter()
            page.fill("[data-testid=conv-stride]", str(stride))
            page.dispatch_event("[data-testid=conv-stride]", "input")
            page.wait_for_selector("#conv-maps [data-testid=feature-map]", timeout=60_000)
            conv_times.append(time.perf_counter() - start - 0.15)  # the page waits 150 ms for more keystrokes
        page.select_option("[data-testid=model-select]", "resnet18")
        page.wait_for_selector("[data-testid=layer-select] option[value=layer2]", state="attached", timeout=60_000)
        for k in range(repeats + 1):
            name = ("layer2", "layer1")[k % 2]
            page.evaluate("document.getElementById('model-maps').replaceChildren()")
            start = time.perf_counter()
            page.select_option("[data-testid=layer-select]", name)
            page.wait_for_selector("#model-maps [data-testid=feature-map]", timeout=60_000)
            if name == "layer2":
                layer_times.append(time.perf_counter() - start - 0.15)
        browser.close()
    return statistics.median(conv_times[1:]), statistics.median(layer_times[1:])


if __name__ == "__main__":
    main()
