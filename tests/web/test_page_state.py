"""The explorer's state is never stale (issue 22, item 6): settings that no longer apply are reset or
disabled, an error leaves nothing of the old answer on screen, fixed banks say their own depth, the
segmentation picture is shown at its own size with its warning, and no empty image box shows."""

from __future__ import annotations

import pytest

SHAPE = "document.querySelector('[data-testid=output-shape]').textContent"
MAPS = "document.querySelectorAll('#conv-maps [data-testid=feature-map]').length"


@pytest.mark.timeout(300)
def test_settings_that_no_longer_apply_never_block(server, browser):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server + "/")
    page.wait_for_selector("#conv-maps [data-testid=feature-map]", timeout=60_000)
    page.wait_for_function(f"{SHAPE} === '8 × 298 × 449'", timeout=30_000)  # the cat, 300x451, 3x3, no padding
    assert page.is_disabled("[data-testid=conv-output-padding]")  # not transposed: output padding does not apply

    # transposed with output padding 1, then unticked: the padding is reset, not left to block
    page.check("[data-testid=conv-transposed]")
    page.fill("[data-testid=conv-stride]", "2")
    page.dispatch_event("[data-testid=conv-stride]", "input")
    page.fill("[data-testid=conv-output-padding]", "1")
    page.dispatch_event("[data-testid=conv-output-padding]", "input")
    page.wait_for_function(f"{SHAPE} === '8 × 602 × 904'", timeout=30_000)  # (300-1)*2+3+1, (451-1)*2+3+1
    page.uncheck("[data-testid=conv-transposed]")
    page.wait_for_function(f"{SHAPE} === '8 × 149 × 225'", timeout=30_000)
    assert page.input_value("[data-testid=conv-output-padding]") == "0"
    assert page.is_disabled("[data-testid=conv-output-padding]")
    assert page.text_content("#conv-error") == ""
    page.wait_for_selector("[data-testid=player-equation]:not(:empty)", timeout=30_000)  # the player has steps

    # an error clears the old shape, formula and maps
    page.fill("[data-testid=conv-padding]", "lots")
    page.dispatch_event("[data-testid=conv-padding]", "input")
    page.wait_for_function("document.getElementById('conv-error').textContent.includes('padding')", timeout=30_000)
    assert page.text_content("[data-testid=output-shape]") == "—"
    assert page.evaluate(MAPS) == 0 and page.text_content("#formula") == ""
    page.fill("[data-testid=conv-padding]", "1")
    page.dispatch_event("[data-testid=conv-padding]", "input")
    page.wait_for_function(f"{SHAPE} === '8 × 150 × 226'", timeout=30_000)
    assert page.text_content("#conv-error") == ""

    # a fixed bank: Depth shows the bank's own count, disabled, and that many maps are drawn
    page.select_option("[data-testid=conv-filters]", "sobel")
    page.wait_for_function(f"{MAPS} === 2", timeout=30_000)
    assert page.input_value("[data-testid=conv-depth]") == "2" and page.is_disabled("[data-testid=conv-depth]")
    assert page.is_disabled("[data-testid=conv-kernel]") and page.input_value("[data-testid=conv-kernel]") == "3"
    assert page.text_content("[data-testid=output-shape]").startswith("2 × ")
    page.select_option("[data-testid=conv-filters]", "random")
    page.fill("[data-testid=conv-depth]", "4")
    page.dispatch_event("[data-testid=conv-depth]", "input")
    page.wait_for_function(f"{MAPS} === 4", timeout=30_000)
    assert not page.is_disabled("[data-testid=conv-depth]")

    # segmentation with the trained head: K does not apply; the cat is marked unfamiliar; the picture at its size
    page.select_option("[data-testid=seg-method]", "head")
    assert page.is_disabled("[data-testid=seg-k]")
    page.click("[data-testid=segment]")
    page.wait_for_selector("[data-testid=segmentation] img", timeout=60_000)
    page.wait_for_function("document.querySelector('[data-testid=segmentation] img').complete", timeout=10_000)
    note = page.text_content("[data-testid=seg-note]")
    assert note.startswith("⚠ unfamiliar image") and "labels mean little" in note
    natural, shown = page.evaluate("(() => { const i = document.querySelector('[data-testid=segmentation] img');"
                                   " return [i.naturalWidth, i.getBoundingClientRect().width]; })()")
    assert natural <= 540 and shown >= 0.95 * natural, (natural, shown)  # legend text at its own 12 px
    page.select_option("[data-testid=seg-method]", "clusters")
    assert not page.is_disabled("[data-testid=seg-k]")

    # no broken image box before "What does this channel detect?" is pressed
    page.select_option("[data-testid=model-select]", "builtin:shapes")
    page.wait_for_function("document.getElementById('layer-info').textContent.includes('bundled with featuremaps')",
                           timeout=60_000)
    page.click("#model-maps [data-testid=feature-map] >> nth=0")
    page.wait_for_selector("[data-testid=detect]:not([hidden])", timeout=30_000)
    assert not page.is_visible("[data-testid=detect-image]")
    assert not errors, errors
    page.close()
