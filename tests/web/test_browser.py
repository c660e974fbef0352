"""The page in a real browser (Debian's Chromium, driven by Playwright), and a load test on loopback."""

from __future__ import annotations

import io
import os
import resource
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "explorer.png"
"""The README's picture, rewritten only when FEATUREMAPS_DOCS_PICTURES=1 (tests never touch tracked files)."""


def _tiles(page, section: str) -> int:
    return page.locator(f"#{section} [data-testid=feature-map]").count()


@pytest.mark.timeout(300)
def test_explore_in_the_browser(server, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server + "/")
    page.wait_for_selector("#conv-maps [data-testid=feature-map]", timeout=60_000)

    # upload an image through the file input
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (90, 120, 3), dtype=np.uint8))
    photo.save(tmp_path / "noise.png")
    page.set_input_files("[data-testid=upload]", str(tmp_path / "noise.png"))
    page.wait_for_function("document.getElementById('image-status').textContent.includes('120×90')", timeout=30_000)
    page.wait_for_function("document.querySelector('[data-testid=output-shape]').textContent.includes('× 88 × 118')",
                           timeout=30_000)  # depth 8 random filters 3x3, no padding, on 90x120

    # stride and padding change the shape; depth changes the number of maps
    page.fill("[data-testid=conv-stride]", "2")
    page.fill("[data-testid=conv-padding]", "1")
    page.dispatch_event("[data-testid=conv-padding]", "input")
    page.wait_for_function("document.querySelector('[data-testid=output-shape]').textContent === '8 × 45 × 60'",
                           timeout=30_000)
    assert _tiles(page, "conv-maps") == 8
    page.fill("[data-testid=conv-depth]", "3")
    page.dispatch_event("[data-testid=conv-depth]", "input")
    page.wait_for_function("document.querySelectorAll('#conv-maps [data-testid=feature-map]').length === 3",
                           timeout=30_000)
    assert page.text_content("[data-testid=output-shape]") == "3 × 45 × 60"

    # transposed: the same knobs upsample ((90 - 1) * 2 - 2 + 2 + 1 = 179), output padding adds one more row
    page.check("[data-testid=conv-transposed]")
    page.wait_for_function("document.querySelector('[data-testid=output-shape]').textContent === '3 × 179 × 239'",
                           timeout=30_000)
    page.fill("[data-testid=conv-output-padding]", "1")
    page.dispatch_event("[data-testid=conv-output-padding]", "input")
    page.wait_for_function("document.querySelector('[data-testid=output-shape]').textContent === '3 × 180 × 240'",
                           timeout=30_000)
    page.fill("[data-testid=conv-output-padding]", "0")
    page.uncheck("[data-testid=conv-transposed]")
    page.wait_for_function("document.querySelector('[data-testid=output-shape]').textContent === '3 × 45 × 60'",
                           timeout=30_000)

    # a layer of a real CNN: its most active maps, at most 32
    page.select_option("[data-testid=model-select]", "resnet18")
    page.wait_for_selector("[data-testid=layer-select] option[value=layer3]", state="attached", timeout=60_000)
    page.select_option("[data-testid=layer-select]", "layer3")
    page.wait_for_function("document.getElementById('layer-info').textContent.includes('· layer3 (')", timeout=60_000)
    assert page.text_content('#layer-info').startswith('untrained (random) weights')
    assert _tiles(page, "model-maps") == 32
    page.click("#model-maps [data-testid=feature-map] >> nth=0")
    page.wait_for_selector("#focus-overlay[src^='data:image/png']", timeout=30_000)
    page.hover("#focus-map")

    # lineage: the clicked map's input maps with their shares; clicking one goes a level down
    page.wait_for_selector("[data-testid=lineage-row] [data-testid=lineage-card]", timeout=60_000)
    assert page.locator("[data-testid=lineage-row]").count() == 1
    assert page.locator("[data-testid=lineage-card]").count() == 6
    first_share = page.text_content("[data-testid=lineage-card] >> nth=0 >> .adds, .takes")
    assert first_share and first_share.endswith("%")
    assert "untrained (random) weights" in page.text_content("#lineage-status")
    page.click("[data-testid=lineage-card] >> nth=0")
    page.wait_for_function("document.querySelectorAll('[data-testid=lineage-row]').length === 2", timeout=60_000)
    second = page.text_content("[data-testid=lineage-row] >> nth=1 >> p")
    assert second and "built from" in second

    # what the clicked channel detects: an optimised image, and its weights said
    page.click("[data-testid=detect-run]")
    page.wait_for_selector("[data-testid=detect-image][src^='data:image/png']", timeout=120_000)
    status = page.text_content("#detect-status")
    assert "layer3:" in status and "untrained (random) weights" in status and "no store" in status

    # recognition and segmentation
    page.select_option("[data-testid=sample-select]", "sample:coffee")
    try:
        page.wait_for_function("document.querySelectorAll('[data-testid=prediction] li').length === 3 && "
                               "document.getElementById('classes').textContent.includes('knows 1,000 classes') && "
                               "document.querySelector('[data-testid=prediction] li').textContent.startsWith("
                               "'espresso')", timeout=120_000)  # the coffee's answer, not the upload's
    except Exception as error:  # say what the page shows instead
        raise AssertionError(f"no prediction: {page.text_content('[data-testid=prediction]')!r}; "
                             f"page errors {errors}") from error
    assert "builtin:imagenet (trained on ImageNet-1k)" in page.text_content("#classes")
    page.click("[data-testid=segment]")
    page.wait_for_selector("[data-testid=segmentation] img", timeout=60_000)
    page.wait_for_function("document.querySelector('[data-testid=output-shape]').textContent === '3 × 171 × 256'",
                           timeout=30_000)  # coffee 400x600 shrunk to 342x512 (longer side 512), stride 2, pad 1
    page.set_viewport_size({"width": 1280, "height": 900})
    page.wait_for_selector("[data-testid=player-equation]:not(:empty)", timeout=30_000)
    screenshot = DOCS_SCREENSHOT if os.environ.get("FEATUREMAPS_DOCS_PICTURES") == "1" else tmp_path / "explorer.png"
    page.add_style_tag(content=".bar { position: static; }")  # the sticky header would be stitched into the shot
    page.locator("#conv").screenshot(path=str(screenshot))  # the playground and its step player
    assert screenshot.stat().st_size > 10_000
    assert not errors, errors
    page.close()


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.timeout(300)
def test_load_on_loopback_no_5xx_and_stable_memory(server):
    buffer = io.BytesIO()
    Image.new("RGB", (80, 60), (200, 100, 0)).save(buffer, format="PNG")
    upload = httpx.post(server + "/api/images", files={"file": ("a.png", buffer.getvalue(), "image/png")}).json()
    requests = [("GET", "/api/health", None),
                ("POST", "/api/conv", {"image": upload["id"], "filters": "sobel", "stride": 2}),
                ("POST", "/api/conv", {"image": "sample:cat", "filters": "random", "depth": 4}),
                ("POST", "/api/maps", {"image": "sample:cat", "model": "tinyvgg", "layer": "pool1", "max_maps": 4})]
    statuses: list[int] = []
    lock = threading.Lock()

    def client(seed: int) -> None:
        with httpx.Client(base_url=server, timeout=60) as session:
            for k in range(40):
                method, path, body = requests[(seed + k) % len(requests)]
                response = session.request(method, path, json=body)
                with lock:
                    statuses.append(response.status_code)

    def round_of_load() -> None:
        threads = [threading.Thread(target=client, args=(seed,)) for seed in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    round_of_load()  # warm-up: caches and models load
    before = _rss_mib()
    round_of_load()
    after = _rss_mib()
    assert len(statuses) == 640 and not [s for s in statuses if s >= 500], sorted(set(statuses))
    assert after - before < 150, f"memory grew from {before:.0f} to {after:.0f} MiB over 320 requests"


@pytest.mark.timeout(300)
def test_microscope_navigation_in_the_browser(browser, tmp_path):
    """The microscope opens from the file system: contact sheet, channel view, previous/next, jump, sort."""
    from featuremaps.batch import ExtractConfig, run_extract
    from featuremaps.batch.microscope import build_microscope

    from ..batch.conftest import write_photos

    write_photos(tmp_path / "photos", 10, size=(80, 60), seed=3)
    config = ExtractConfig(model="tinyvgg", layers=("relu2_2",), batch_size=5, workers=0, top_k=3)
    run_extract(tmp_path / "photos", tmp_path / "store", config)
    site = build_microscope(tmp_path / "store", tmp_path / "site").parent
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto((site / "relu2_2" / "index.html").as_uri())
    channels = page.evaluate("D.channels.length")
    assert channels >= 8 and page.locator("#sheet .tile").count() == channels
    page.click("#sheet .tile[data-channel='4']")
    page.wait_for_function("location.hash === '#4'")
    assert "relu2_2 channel 4" in page.text_content("#channel")
    assert page.locator("#channel .patch").count() == 3
    background = page.eval_on_selector("#channel .patch .sprite", "e => getComputedStyle(e).backgroundImage")
    assert "patches-0.jpg" in background
    page.click("#next")
    page.wait_for_function("location.hash === '#5'")
    page.click("#prev")
    page.click("#prev")
    page.wait_for_function("location.hash === '#3'")
    page.fill("#to", "7")
    page.click("#jump button")
    page.wait_for_function("location.hash === '#7'")
    page.select_option("#sort", "max")
    first = int(page.get_attribute("#sheet .tile >> nth=0", "data-channel"))
    maxima = page.evaluate("D.channels.map(c => c.max)")
    assert maxima[first] == max(maxima)
    assert errors == []
