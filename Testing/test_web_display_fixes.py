"""The radiologist's review of the station's display, in headless Chromium: left-drag on the LVI Grad-CAM changes the
MRI's window/level (not the overlay's colours), the LVI result table fits the panel, no orientation-preset errors
in the station log, and a right CDD-CESM view stored chest wall right is hung as stored. Screenshots go to
$SMARTIMAGING_SCREENSHOTS or to pytest's temporary folder."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trame_slicer")
pytest.importorskip("playwright.sync_api")

from PIL import Image  # noqa: E402
from web_station import (  # noqa: E402
    VIEWPORT,
    click_and_wait_idle,
    image_point_on_page,
    load_sample,
    open_module,
    reset_views_when_sized,
    sample_lesion,
    screenshot_folder,
    station_log,
    station_page,
    wait_for_views_rendered,
)

from smartimaging.web.cases import realdata_folder, sample_cases  # noqa: E402


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    """(page, station process)."""
    with station_page(tmp_path_factory) as page_and_process:
        yield page_and_process


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return screenshot_folder(tmp_path_factory)


def test_lvi_drag_on_the_grad_cam_adjusts_the_mri_and_the_table_fits(station, screenshots):
    page, process = station
    open_module(page, "Breast MRI LVI")
    assert "LVI positive" in load_sample(page)
    click_and_wait_idle(page, "Segment")
    click_and_wait_idle(page, "Predict LVI")
    wait_for_views_rendered(page, 1)
    reset_views_when_sized(page)
    label_right, shown_right = page.evaluate("""() => {  // the Label column on screen without scrolling sideways
        const wrapper = document.querySelector('#si-result-table .v-table__wrapper');
        const label = [...wrapper.querySelectorAll('th')].find((th) => th.innerText.trim() === 'Label');
        return [label.getBoundingClientRect().right, wrapper.getBoundingClientRect().right];
    }""")
    assert label_right <= shown_right
    window = page.inner_text("#si-display-wl")
    size, (column, row) = sample_lesion("BreastLVI")
    x, y = image_point_on_page(page, size, (column + 8, row + 10))  # under the Grad-CAM, clear of the lesion point
    shot = np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"), dtype=int)
    colour = shot[round(y * shot.shape[0] / VIEWPORT["height"]), round(x * shot.shape[1] / VIEWPORT["width"])]
    assert colour.max() - colour.min() > 40, colour  # the drag starts on the coloured overlay, not on grey MRI
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 80, y + 40, steps=6)
    page.mouse.up()
    page.wait_for_function(f"document.querySelector('#si-display-wl').innerText !== {window!r}", timeout=15_000)
    page.screenshot(path=str(screenshots / "web-fixes-lvi-drag.png"))
    assert "invalid orientation preset name" not in station_log(process)


@pytest.mark.skipif(not (realdata_folder() / "mammo_cddcesm").is_dir(), reason="needs ../shared/realdata")
def test_right_cdd_cesm_view_is_hung_as_stored(station, screenshots):
    page, process = station
    name = next((c.name for c in sample_cases()["MammoRadiomics"] if "CDD-CESM" in c.name and " R-" in c.name), None)
    if name is None:
        pytest.skip("no right CDD-CESM sample case")
    open_module(page, "Mammography Rad-score")
    load_sample(page, name)
    wait_for_views_rendered(page, 1)
    reset_views_when_sized(page)
    captions = page.inner_text("#si-display-captions")
    assert "hung chest wall right" in captions and "mirrored" not in captions
    page.screenshot(path=str(screenshots / "web-fixes-cdd-right.png"))
    assert "invalid orientation preset name" not in station_log(process)


def test_hostile_dicom_header_withheld_cut_and_its_window_not_the_default(station, screenshots, tmp_path):
    """A mammogram whose free-text tags name the patient, with a 3000-character Manufacturer, a 500-character
    ViewPosition and a window far outside its pixels: identifiers withheld, long values cut with "…" (full text on
    hover), the Tissue preset shown."""
    from test_display import _hostile_mammogram

    page, _ = station
    open_module(page, "Mammography Rad-score")
    path = tmp_path / "hostile.dcm"
    _hostile_mammogram(path)
    page.locator("input[type=file]").set_input_files(str(path))
    page.wait_for_function("document.querySelector('#si-case').innerText.includes('hostile.dcm')", timeout=30_000)
    wait_for_views_rendered(page, 1)
    header = page.inner_text("#si-display-header")
    assert "withheld" in header and not any(word in header.upper() for word in ("SMITH", "JANE", "998877", "1950"))
    assert page.locator("#si-display-presets .v-btn--variant-flat").text_content().strip() == "Tissue"
    clipped = page.evaluate("""() => [
        ...document.querySelectorAll('#si-display-header > span, #si-display-captions > div')]
        .filter((e) => e.scrollWidth > e.clientWidth + 1)
        .map((e) => [e.innerText.slice(0, 20), e.title.length, e.getBoundingClientRect().right])""")
    panel_right = page.locator("#si-display-header").bounding_box()
    assert any(title > 2000 for _, title, _ in clipped)  # the Manufacturer, its 3000 characters on hover
    assert all(right <= panel_right["x"] + panel_right["width"] + 1 for _, _, right in clipped)
    page.screenshot(path=str(screenshots / "web-fixes-hostile-header.png"))
