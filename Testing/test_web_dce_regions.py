"""The regions that enhance on the real DCE, marked in the browser station's Synthetic DCE views (headless Debian
Chromium, playwright): after Synthesize, a legend names each outlined region as the result table numbers it; "Go to"
brings the linked views to it; its outline, in its legend colour, is on the synthetic and the real DCE views only;
the switch takes the outlines off and puts them back.
Screenshots go to $SMARTIMAGING_SCREENSHOTS or to pytest's temporary folder."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trame_slicer")
pytest.importorskip("playwright.sync_api")

from PIL import Image  # noqa: E402
from web_station import (  # noqa: E402
    click_and_wait_idle,
    open_module,
    screenshot_folder,
    station_page,
    table,
    wait_for_views_sized,
)

SETTLE_MS = 2000  # the server's new frames reach the page
VIEWS = ("T1", "synthetic DCE", "real DCE", "subtraction MIP")  # the page's views, in order
OUTLINE_PIXELS = 15  # an outlined region on a view: at least this many pixels of its colour


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    with station_page(tmp_path_factory) as (page, _process):
        yield page


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return screenshot_folder(tmp_path_factory)


def _rendered(page) -> list[np.ndarray]:
    """The views' images as the server rendered them (RGB), once settled, without the page's sliders over them."""
    wait_for_views_sized(page)
    page.wait_for_timeout(SETTLE_MS)
    urls = page.evaluate("() => [...document.querySelectorAll('img.image-display-area')].map(i => {"
                         "const c = document.createElement('canvas'); c.width = i.naturalWidth; "
                         "c.height = i.naturalHeight; c.getContext('2d').drawImage(i, 0, 0); "
                         "return c.toDataURL('image/png'); })")
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")).astype(int)
            for url in urls]


def _coloured(image: np.ndarray, colour: str) -> int:
    """Pixels of `image` close to `colour` (#rrggbb): an outline's."""
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int(np.count_nonzero(np.abs(image - rgb).max(axis=-1) < 40))


def _legend(page) -> list[dict]:
    return page.evaluate("() => window.trame.state.get('si_dce_regions')")


def test_enhancing_regions_are_named_and_outlined_on_the_synthetic_and_real_dce_views(page, screenshots):
    open_module(page, "Synthetic DCE")  # its first sample case: a T1 and its real DCE, two lesions
    click_and_wait_idle(page, "Synthesize DCE")
    page.locator("#si-dce-regions").wait_for(timeout=30_000)
    legend = _legend(page)
    rows = [name for name in table(page) if name.startswith("Enhancing region")]
    assert len(legend) == len(rows) >= 1  # the phantom's lesions enhance on its real DCE
    entries = page.locator("#si-dce-regions .si-dce-region").all_inner_texts()
    for entry, text, row in zip(legend, entries, rows, strict=True):
        kind = "faint on synthetic" if entry["faint"] else "shows on synthetic"
        assert text.startswith(f"Region {entry['number']}: enhances on real DCE, {kind}")
        assert row == f"Enhancing region {entry['number']}: contrast synthetic / real"  # the table's numbering
        assert f"slices {entry['slices'][0]}–{entry['slices'][1]}" in text
    swatches = page.locator("#si-dce-regions .si-dce-region-swatch")
    assert all(_rgb(swatches.nth(i).evaluate("e => getComputedStyle(e).borderTopColor")) == entry["colour"]
               for i, entry in enumerate(legend))

    for entry in legend:
        page.locator("#si-dce-regions .si-dce-region-go").nth(entry["number"] - 1).click()
        shown = _rendered(page)
        page.screenshot(path=str(screenshots / f"web-dce-region-{entry['number']}.png"))
        counts = {view: _coloured(image, entry["colour"]) for view, image in zip(VIEWS, shown, strict=True)}
        assert counts["synthetic DCE"] >= OUTLINE_PIXELS and counts["real DCE"] >= OUTLINE_PIXELS, counts
        assert counts["T1"] < OUTLINE_PIXELS / 3 and counts["subtraction MIP"] < OUTLINE_PIXELS / 3, counts

    page.locator("#si-dce-regions-shown").uncheck()
    hidden = _rendered(page)
    page.screenshot(path=str(screenshots / "web-dce-regions-hidden.png"))
    colour = legend[-1]["colour"]  # the views still show the last region's slice
    assert _coloured(hidden[1], colour) < OUTLINE_PIXELS / 3 and _coloured(hidden[2], colour) < OUTLINE_PIXELS / 3
    assert np.abs(hidden[0] - shown[0]).mean() < 0.5  # the T1 never had them
    page.locator("#si-dce-regions-shown").check()
    again = _rendered(page)
    assert _coloured(again[2], colour) >= OUTLINE_PIXELS


def _rgb(css: str) -> str:
    """'rgb(255, 51, 204)' -> '#ff33cc'."""
    return "#" + "".join(f"{int(v):02x}" for v in css[css.index("(") + 1:css.index(")")].split(",")[:3])
