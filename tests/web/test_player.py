"""The explorer's step player, its page-level promises and /docs, in Debian's Chromium (Playwright).

The player computes every value in the page from the scene's padded input and weights; these tests check that
what it shows equals what ``/api/scene`` computes, for the current step, a clicked cell and a dragged window."""

from __future__ import annotations

import pytest

STEP_FROM_API = """async ([d, y, x]) => {
  const response = await fetch('/api/scene', {method: 'POST', headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({...state.sceneRequest, include_steps: true})});
  const scene = await response.json();
  const [, oh, ow] = scene.output.shape;
  return scene.steps[(d * oh + y) * ow + x];
}"""


def _shown(page) -> dict:
    """What the player shows: the position, the products and sums of each channel, and the total."""
    return page.evaluate("""() => {
      const eq = document.getElementById('player-equation');
      const products = [...document.querySelectorAll('#player-products table')].map((t) =>
        [...t.rows].map((row) => [...row.cells].map((td) => Number(td.dataset.value))));
      const sums = [...document.querySelectorAll('#player-products .sum')].map((s) => Number(s.dataset.value));
      return {d: Number(eq.dataset.d), y: Number(eq.dataset.y), x: Number(eq.dataset.x), products, sums,
              total: Number(eq.dataset.total), text: eq.textContent};
    }""")


def _assert_equal_to_api(page):
    shown = _shown(page)
    step = page.evaluate(STEP_FROM_API, [shown["d"], shown["y"], shown["x"]])
    assert (step["filter"], step["y"], step["x"]) == (shown["d"], shown["y"], shown["x"])
    assert shown["total"] == pytest.approx(step["total"], abs=1e-4)
    assert shown["sums"] == pytest.approx(step["channel_sums"], abs=1e-4)
    assert [v for grid in shown["products"] for row in grid for v in row] == pytest.approx(
        [v for grid in step["products"] for row in grid for v in row], abs=1e-4)
    return shown


@pytest.mark.timeout(300)
def test_the_player_shows_every_channel_and_computes_what_the_api_computes(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server + "/")
    page.wait_for_selector("[data-testid=player-equation]:not(:empty)", timeout=60_000)

    # the image's three channels, each filter's three kernels, three products tables with their sums
    assert page.locator("[data-testid^=player-input-]").count() == 3
    assert page.text_content("#player-inputs .grid-caption >> nth=0").startswith("channel 0 (R)")
    assert page.locator("[data-testid=player-filter-0] table").count() == 3
    assert page.locator("#player-products table").count() == 3
    shown = _assert_equal_to_api(page)
    assert (shown["d"], shown["y"], shown["x"]) == (0, 0, 0)
    assert shown["text"].startswith("map 0 at (y=0, x=0) = ") and " + bias 0 = " in shown["text"]

    # the chosen bank and depth: 8 random filters, paged 4 at a time
    assert page.text_content("[data-testid=filters-page]") == "1–4 of 8"
    page.click("[data-testid=filters-next]")
    assert page.text_content("[data-testid=filters-page]") == "5–8 of 8"
    assert page.locator("[data-testid=player-filter-6]").count() == 1
    page.click("[data-testid=player-map-6] td >> nth=9")  # map 6, row 1, column 3 (6 columns)
    shown = _assert_equal_to_api(page)
    assert (shown["d"], shown["y"], shown["x"]) == (6, 1, 3)

    # drag the window two cells right and one down on the green channel: the value is computed as it moves
    start = page.locator("[data-testid=player-input-1] td.win >> nth=0")
    box = start.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 2.5 * box["width"], box["y"] + 1.5 * box["height"], steps=6)
    page.mouse.up()
    shown = _assert_equal_to_api(page)
    assert (shown["d"], shown["y"], shown["x"]) == (6, 2, 5)

    # the integer grid, a transposed layer (its inserted zeros marked), stepping
    page.select_option("[data-testid=player-kind]", "grid")
    page.wait_for_function("document.querySelectorAll('[data-testid^=player-input-]').length === 1", timeout=30_000)
    page.check("[data-testid=conv-transposed]")
    page.fill("[data-testid=conv-stride]", "2")
    page.dispatch_event("[data-testid=conv-stride]", "input")
    page.wait_for_selector("#player-inputs td.inserted", timeout=30_000)
    before = _shown(page)
    depth, height, width = page.evaluate("state.scene.output.shape")
    page.click("[data-testid=scene-step]")
    page.click("[data-testid=scene-step]")
    shown = _assert_equal_to_api(page)
    index = ((before["d"] * height + before["y"]) * width + before["x"] + 2) % (depth * height * width)
    assert (shown["d"], shown["y"], shown["x"]) == (index // (height * width), index % (height * width) // width,
                                                     index % width)
    assert not errors, errors
    page.close()


@pytest.mark.timeout(300)
def test_page_promises_shrink_uploads_cancelling_and_docs(server, browser, tmp_path):
    from PIL import Image

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server + "/")
    page.wait_for_selector("#conv-maps [data-testid=feature-map]", timeout=60_000)

    # the shrink is stated
    page.select_option("[data-testid=sample-select]", "sample:coffee")
    page.wait_for_function("document.getElementById('shrink').textContent.includes('shrunk from 600x400')",
                           timeout=30_000)
    assert "computed at 512x341" in page.text_content("[data-testid=shrink]")

    # an upload joins the list and is selected there
    Image.new("RGB", (90, 60), (20, 140, 200)).save(tmp_path / "blue.png")
    page.set_input_files("[data-testid=upload]", str(tmp_path / "blue.png"))
    page.wait_for_function("document.querySelector('[data-testid=sample-select]').selectedOptions[0]"
                           ".textContent.startsWith('upload: blue.png (90×60)')", timeout=30_000)
    page.wait_for_function("document.getElementById('shrink').textContent === ''", timeout=30_000)  # not shrunk

    # a newer request of the same kind cancels the older one, and the busy indicator shows while one runs
    outcome = page.evaluate("""async () => {
      const body = {image: 'sample:cat', filters: 'sobel'};
      const first = api('/api/conv', body, {key: 'test'});
      const second = api('/api/conv', {...body, stride: 2}, {key: 'test'});
      const busy = !document.getElementById('busy').hidden;
      const results = await Promise.allSettled([first, second]);
      return {busy, first: results[0].status === 'rejected' ? results[0].reason.name : 'done',
              second: results[1].value.output_shape};
    }""")
    assert outcome == {"busy": True, "first": "AbortError", "second": [2, 149, 225]}
    page.wait_for_function("document.getElementById('busy').hidden", timeout=60_000)

    # an error lists every allowed form
    page.fill("[data-testid=conv-padding]", "abc")
    page.dispatch_event("[data-testid=conv-padding]", "input")
    page.wait_for_function("document.getElementById('conv-error').textContent.includes(\"'same' or 'valid'\")",
                           timeout=30_000)

    # /docs: Swagger UI 5 renders the OpenAPI 3.1 document, offline
    page.goto(server + "/docs")
    page.wait_for_selector(".opblock", timeout=60_000)
    assert page.locator(".opblock").count() >= 12
    assert "Unable to render" not in page.content()
    assert not errors, errors
    page.close()
