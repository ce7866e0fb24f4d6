"""The MRI modules' views in the browser station, in headless Debian Chromium (playwright): Breast MRI LVI shows the
DCE and the FS-T2WI side by side, scrolling together; Synthetic DCE shows the T1 and the real DCE before Synthesize;
every view opens fitted to its whole image (as "Reset views" fits it), after a load and after Synthesize, with no
image under the slice slider.
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
    view_centre,
    view_images,
)

from smartimaging.web.view_fit import SLIDER_PX  # noqa: E402

SETTLE_MS = 2000  # the server's new frames reach the page


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    with station_page(tmp_path_factory) as (page, _process):
        yield page


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return screenshot_folder(tmp_path_factory)


def _views_when_sized(page, count: int) -> list[np.ndarray]:
    """The `count` views (RGB), once the server renders each one at its size in the page and the frames settled."""
    page.wait_for_function("n => { const views = [...document.querySelectorAll('img.image-display-area')];"
                           "return views.length === n && views.every(i => i.naturalWidth > 0 "
                           "&& Math.abs(i.naturalWidth - i.clientWidth) <= 2 "
                           "&& Math.abs(i.naturalHeight - i.clientHeight) <= 2); }", arg=count, timeout=30_000)
    page.wait_for_timeout(SETTLE_MS)
    return [np.asarray(Image.open(io.BytesIO(view.screenshot())).convert("RGB")).astype(int)
            for view in view_images(page).all()]


def _assert_fitted(page, views: list[np.ndarray]) -> None:
    """The views show what "Reset views" shows: each fitted to its whole image at the size the page gave it."""
    page.get_by_role("button", name="Reset views").click()
    for index, (shown, reset) in enumerate(zip(views, _views_when_sized(page, len(views)), strict=True)):
        assert np.abs(shown - reset).mean() < 2, f"view {index} was not fitted to its image"


def _rendered(page) -> list[np.ndarray]:
    """The views' images as the server rendered them (RGB), without the page's slice sliders over them."""
    urls = page.evaluate("() => [...document.querySelectorAll('img.image-display-area')].map(i => {"
                         "const c = document.createElement('canvas'); c.width = i.naturalWidth; "
                         "c.height = i.naturalHeight; c.getContext('2d').drawImage(i, 0, 0); "
                         "return c.toDataURL('image/png'); })")
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")).astype(int)
            for url in urls]


def _assert_clear_of_slider(page) -> None:
    """No image pixel (grey: the captions are orange) in the rows the slice slider covers."""
    for index, image in enumerate(_rendered(page)):
        band = image[-SLIDER_PX:]
        grey = (band.max(axis=-1) > 8) & (np.ptp(band, axis=-1) < 12)
        assert np.count_nonzero(grey) < 0.01 * grey.size, f"view {index}: the slider covers the image"


def _captions(page) -> list[str]:
    return page.locator("#si-display-captions > div").all_inner_texts()


def test_lvi_shows_the_dce_and_the_t2_side_by_side_scrolling_together(page, screenshots):
    open_module(page, "Breast MRI LVI")  # its first sample case: a DCE and a T2
    dce, t2 = _views_when_sized(page, 2)
    page.screenshot(path=str(screenshots / "web-lvi-dce-t2.png"))
    captions = _captions(page)
    assert len(captions) == 2 and captions[0].startswith("DCE") and captions[1] == "FS-T2WI"
    assert np.abs(dce - t2).mean() > 5  # two different images
    _assert_fitted(page, [dce, t2])
    _assert_clear_of_slider(page)

    before = _views_when_sized(page, 2)
    page.mouse.move(*view_centre(page, 0))
    page.mouse.wheel(0, 300)  # scroll the DCE view
    after = _views_when_sized(page, 2)
    assert np.abs(after[0] - before[0]).mean() > 1
    assert np.abs(after[1] - before[1]).mean() > 1  # the T2 view followed


def test_dce_shows_t1_and_real_dce_before_synthesis_and_fits_every_view(page, screenshots):
    open_module(page, "Synthetic DCE")  # its first sample case: a T1 and a real DCE
    views = _views_when_sized(page, 2)
    page.screenshot(path=str(screenshots / "web-dce-t1-real.png"))
    assert _captions(page) == ["T1 (pre-contrast)", "Real DCE"]
    _assert_fitted(page, views)
    _assert_clear_of_slider(page)

    click_and_wait_idle(page, "Synthesize DCE")
    views = _views_when_sized(page, 4)
    page.screenshot(path=str(screenshots / "web-dce-synthesized.png"))
    assert _captions(page) == ["T1 (pre-contrast)", "Synthetic DCE (AI)", "Real DCE",
                               "Subtraction MIP (synthetic − T1)"]
    _assert_fitted(page, views)
    _assert_clear_of_slider(page)


def test_lvi_grad_cam_has_a_colour_bar_and_a_switch_and_stays_on_the_dce(page, screenshots):
    open_module(page, "Breast MRI LVI")
    click_and_wait_idle(page, "Segment")
    click_and_wait_idle(page, "Predict LVI")
    page.locator("#si-heat-bar").wait_for(timeout=30_000)
    assert page.locator("#si-heat-bar").get_attribute("style").count("rgb(") == 9  # the map's own colours
    shown = _views_when_sized(page, 2)
    page.screenshot(path=str(screenshots / "web-lvi-grad-cam.png"))
    page.locator("#si-heat-shown").uncheck()
    page.wait_for_timeout(SETTLE_MS)
    hidden = _views_when_sized(page, 2)
    assert np.abs(shown[0] - hidden[0]).mean() > 0.5  # the map left the DCE view
    assert np.abs(shown[1] - hidden[1]).mean() < 0.5  # the T2 never had it
    page.locator("#si-heat-shown").check()
    page.wait_for_timeout(SETTLE_MS)
    assert np.abs(_views_when_sized(page, 2)[0] - shown[0]).mean() < 0.5


def test_a_tab_opened_from_the_keyboard_keeps_the_focus_and_the_page_is_not_built_again(page):
    """Another module's views (a new layout) replace the views only: the tab opened with Enter keeps the keyboard
    focus (Tab / arrows go on from it) and the rest of the page is the same page (its elements kept)."""
    open_module(page, "Bone scan BSTBI")  # the frames layout; LVI shows two MRI views side by side
    page.evaluate("window.siKept = [document.querySelector('.v-app-bar'), document.querySelector('#si-case')]")
    tab = page.get_by_role("tab", name="Breast MRI LVI")
    tab.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("window.trame.state.get('si_module') === 'BreastLVI' "
                           "&& window.trame.state.get('si_switching') == null", timeout=30_000)
    _views_when_sized(page, 2)
    assert page.evaluate("document.activeElement?.getAttribute('role') === 'tab' "
                         "&& document.activeElement.innerText.toLowerCase() === 'breast mri lvi'")
    assert page.evaluate("window.siKept.every((element) => element.isConnected)")
