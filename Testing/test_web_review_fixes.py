"""Radiologist U2's findings on the station (2026-12-07), in headless Chromium: the case fields show what the tab
holds after tab switches and a page reload, a typed pixel size is used by Load sample, no 3D control on any view,
result tables fit their panel, the AI-vs-edited rows are the table's last rows. Screenshots go to
$SMARTIMAGING_SCREENSHOTS or to pytest's temporary folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trame_slicer")
pytest.importorskip("playwright.sync_api")

from conftest import require_shared  # noqa: E402
from PIL import Image  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from web_station import (  # noqa: E402
    choose_effect,
    click_and_wait_idle,
    image_point_on_page,
    load_sample,
    open_module,
    reset_views_when_sized,
    sample_lesion,
    screenshot_folder,
    segment_counts,
    station_page,
    steps_done,
    table,
    wait_for_views_rendered,
)

from smartimaging.web.cases import realdata_folder  # noqa: E402

MAMMO = "MammoRadiomics"
NYU = "Real NYU mammogram (benign mass)"
BREAST1 = "Real breast MRI (pyradiomics breast1)"


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    """(page, station process)."""
    with station_page(tmp_path_factory) as page_and_process:
        yield page_and_process


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return screenshot_folder(tmp_path_factory)


SAMPLE_FIELD = """() => {
    const field = [...document.querySelectorAll('.v-select')].find(
        (s) => [...s.querySelectorAll('label')].some((l) => l.textContent.trim() === 'Sample case'));
    return field ? field.querySelector('.v-select__selection')?.innerText.trim() ?? '' : null;  // null: no field
}"""


def _sample_field(page, expected: str) -> str:
    """The text the "Sample case" field shows ("" when none is chosen), once it is `expected` or after 10 s (the
    server's answer to a tab switch arrives after the tab is shown)."""
    try:
        page.wait_for_function(f"({SAMPLE_FIELD})() === {expected!r}", timeout=10_000)
    except PlaywrightTimeout:
        pass
    return page.evaluate(SAMPLE_FIELD)


def _case_lines(page) -> str:
    """The case line and its notes (each image's grid: "mammogram: 160×200×1 voxels of 0.1×0.1×1 mm at ...")."""
    return page.evaluate("""() => {
        const lines = [document.querySelector('#si-case').innerText];
        for (let el = document.querySelector('#si-case').nextElementSibling; el?.classList.contains('text-caption');
             el = el.nextElementSibling) lines.push(el.innerText);
        return lines.join('\\n');
    }""")


def _load(page, name: str | None = None) -> str:
    """Load a sample case; its case lines."""
    load_sample(page, name)
    return _case_lines(page)


def _upload(page, path: Path) -> None:
    """Send a file through the page's file input and wait until the step that loads it is over."""
    done = steps_done(page)
    page.locator("input[type=file]").set_input_files(str(path))
    page.wait_for_function(f"Number(document.querySelector('#si-steps-done').textContent) > {done}", timeout=60_000)
    page.wait_for_function("!document.querySelector('#si-progress')", timeout=60_000)


def _pixel_field(page, expected: str) -> str:
    """The pixel-size field's text, once it is `expected` or after 10 s."""
    field = page.get_by_label("Pixel size mm (PNG/PGM)")
    try:
        page.wait_for_function("([el, v]) => el.value === v", arg=[field.element_handle(), expected], timeout=10_000)
    except PlaywrightTimeout:
        pass
    return field.input_value()


def _tables_fit(page) -> list[str]:
    """What of the result tables lies outside its panel: cells beyond the table's visible box (sideways), rows
    below it, and a table wider than the panel; [] when everything is seen without scrolling."""
    return page.evaluate("""() => {
        const cut = [];
        for (const table of document.querySelectorAll('#si-result-table, #si-compare')) {
            const wrapper = table.querySelector('.v-table__wrapper');
            const box = wrapper.getBoundingClientRect();
            const panel = table.closest('.v-navigation-drawer__content').getBoundingClientRect();
            if (box.right > panel.right + 1) cut.push(`${table.id} wider than the panel`);
            if (wrapper.scrollWidth > wrapper.clientWidth + 1) cut.push(`${table.id} scrolls sideways`);
            for (const cell of wrapper.querySelectorAll('th, td')) {
                const r = cell.getBoundingClientRect();
                if (r.right > box.right + 1) cut.push(`${table.id}: '${cell.innerText}' cut on the right`);
            }
            const rows = wrapper.querySelectorAll('tbody tr');
            const last = rows[rows.length - 1];  // a short table is shown whole
            if (rows.length <= 15 && last && last.getBoundingClientRect().bottom > box.bottom + 1)
                cut.push(`${table.id}: last row cut at the bottom`);
        }
        return cut;
    }""")


def test_no_view_has_a_3d_control(station, screenshots):
    """U2 #12: a "3D / Show in 3D" button sat on every view; the station has no 3D view."""
    page, _ = station
    wait_for_views_rendered(page, 2)  # the bone scan's two frames
    assert page.locator(".view-gutter .mdi-camera-flip-outline").count() == 2  # the gutter is there...
    assert page.locator(".mdi-video-3d").count() == 0  # ...without its 3D toggle
    open_module(page, "Synthetic DCE")
    wait_for_views_rendered(page, 2)
    assert page.locator(".view-gutter").count() >= 2 and page.locator(".mdi-video-3d").count() == 0
    page.screenshot(path=str(screenshots / "review-no-3d-control.png"))


def test_the_sample_field_shows_the_case_of_each_tab_after_switches_and_a_reload(station, screenshots):
    """U2 #8: after a tab switch or a page reload the field named the tab's first sample, not the one loaded."""
    page, _ = station
    open_module(page, "Breast MRI LVI")
    assert "LVI negative" in load_sample(page, "Phantom cancer, LVI negative")
    open_module(page, "Bone scan BSTBI")
    assert _sample_field(page, "Phantom with 5 metastases") == "Phantom with 5 metastases"
    open_module(page, "Breast MRI LVI")
    assert _sample_field(page, "Phantom cancer, LVI negative") == "Phantom cancer, LVI negative"
    page.reload()
    page.get_by_role("button", name="Load sample").wait_for(timeout=60_000)
    page.wait_for_function("document.querySelector('#si-case').innerText.startsWith('Phantom cancer, LVI negative')")
    assert _sample_field(page, "Phantom cancer, LVI negative") == "Phantom cancer, LVI negative"
    page.screenshot(path=str(screenshots / "review-sample-field-after-reload.png"))


def test_an_uploaded_mammogram_is_not_named_a_sample_and_its_pixel_size_is_shown(station, screenshots, tmp_path):
    """U2 #8: with an upload loaded the field named "Phantom malignant mass"; the pixel-size field kept the upload's
    0.1 mm while the phantom loaded next was read at 0.2 mm."""
    page, _ = station
    open_module(page, "Mammography Rad-score")
    assert _pixel_field(page, "0.2") == "0.2"  # the first sample, a phantom of 0.2 mm pixels
    image = np.zeros((200, 160), np.uint16)
    image[40:160, 30:130] = 2000
    image[90:110, 70:90] = 3000
    Image.fromarray(image).save(tmp_path / "upload.png")
    page.get_by_label("Pixel size mm (PNG/PGM)").fill("0.1")
    _upload(page, tmp_path / "upload.png")
    assert page.inner_text("#si-case").startswith("Uploaded: upload.png")
    assert "160×200×1 voxels of 0.1×0.1×1 mm" in _case_lines(page)
    assert (_sample_field(page, ""), _pixel_field(page, "0.1")) == ("", "0.1")
    assert page.get_by_role("button", name="Load sample").is_disabled()  # no sample chosen: nothing to load
    open_module(page, "Breast MRI LVI")
    open_module(page, "Mammography Rad-score")
    assert (_sample_field(page, ""), _pixel_field(page, "0.1")) == ("", "0.1")
    page.screenshot(path=str(screenshots / "review-upload-fields.png"))
    assert "0.2×0.2×1 mm" in _load(page, "Phantom malignant mass")
    assert (_sample_field(page, "Phantom malignant mass"), _pixel_field(page, "0.2")) == ("Phantom malignant mass",
                                                                                          "0.2")
    _upload(page, tmp_path / "upload.png")  # the phantom's 0.2 mm shown in the field is not the reader's
    assert "1×1×1 mm" in _case_lines(page) and _pixel_field(page, "") == ""
    load_sample(page, "Phantom malignant mass")
    page.get_by_label("Pixel size mm (PNG/PGM)").fill("0.2")  # typed, although the field showed 0.2 already
    _upload(page, tmp_path / "upload.png")
    assert "0.2×0.2×1 mm" in _case_lines(page) and _pixel_field(page, "0.2") == "0.2"


def test_a_typed_pixel_size_is_used_when_the_sample_is_loaded_again(station, screenshots):
    """U2 #9: the NYU warning says to type the pixel size and load again; 0.07 typed, the sample loaded again was
    still read as 1 mm."""
    require_shared(realdata_folder() / "mammo_gmic_nyu" / "0_R-CC_cropped.png")
    page, _ = station
    open_module(page, "Mammography Rad-score")
    page.get_by_label("Pixel size mm (PNG/PGM)").fill("")  # no pixel size of the reader's (a test before typed one)
    case = _load(page, NYU)
    assert "1×1×1 mm" in case and _pixel_field(page, "") == ""  # the file stores none: read as 1 mm, no size shown
    assert "type it in “Pixel size mm” and load the case again" in case  # the advice that works (below)
    page.get_by_label("Pixel size mm (PNG/PGM)").fill("0.07")
    case = _load(page)
    assert "0.07×0.07×1 mm" in case and _pixel_field(page, "0.07") == "0.07"
    assert "0.07×0.07×1 mm" in _load(page)  # the reader's value stays until changed
    page.screenshot(path=str(screenshots / "review-nyu-typed-pixel-size.png"))
    assert "0.2×0.2×1 mm" in _load(page, "Phantom malignant mass") and _pixel_field(page, "0.2") == "0.2"
    assert "1×1×1 mm" in _load(page, NYU)  # the phantom's size is not carried over


def test_the_ai_rois_result_and_the_edited_rois_are_the_tables_last_rows(station, screenshots):
    """U2 #14: "Result from the AI's ROI / edited ROI" were only under the headline; the README says they are also
    the result table's last two rows (and the CSV's)."""
    page, _ = station
    open_module(page, "Mammography Rad-score")
    load_sample(page, "Phantom malignant mass")
    reset_views_when_sized(page)
    click_and_wait_idle(page, "Segment")
    proposed = segment_counts(page)["Breast mass"]
    click_and_wait_idle(page, "Compute Rad-score")
    ai_headline = page.inner_text("#si-headline")
    choose_effect(page, "mdi-eraser")
    x, y = image_point_on_page(page, *sample_lesion(MAMMO))
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 2, y, steps=2)
    page.mouse.up()
    page.wait_for_function("n => !document.querySelector('#si-segments').innerText.includes(': ' + n + ' ')",
                           arg=proposed, timeout=30_000)
    click_and_wait_idle(page, "Compute Rad-score")
    rows = list(table(page).items())
    assert rows[-2:] == [("Result from the AI's ROI", [ai_headline]),
                         ("Result from the edited ROI", [page.inner_text("#si-headline")])]
    assert page.locator("#si-compare tr").count() == 2  # and still under the headline
    page.locator("#si-result-table tbody tr").last.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "review-ai-vs-edited-rows.png"))


def test_result_tables_fit_the_panel(station, screenshots):
    """U2 #10: the LVI table of breast1 ran past the panel ("Model carc", "lvi-dce-resn"); the DCE table's last row
    was half hidden."""
    require_shared(realdata_folder() / "breast_mri_pyradiomics" / "breast1_image.nrrd")
    page, _ = station
    open_module(page, "Breast MRI LVI")
    load_sample(page, BREAST1)
    click_and_wait_idle(page, "Segment")
    click_and_wait_idle(page, "Predict LVI")
    page.locator("#si-result-table").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "review-lvi-table.png"))
    assert _tables_fit(page) == []
    cell = page.locator("#si-result-table td", has_text="lvi-dce-resnet10-3d-demo").first
    assert cell.get_attribute("title").startswith("lvi-dce-resnet10-3d-demo")  # the full text on hover
    open_module(page, "Synthetic DCE")
    click_and_wait_idle(page, "Synthesize DCE")
    page.locator("#si-result-table").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "review-dce-table.png"))
    assert _tables_fit(page) == []
    assert list(table(page))[-1] == "Model"


def test_the_bone_scan_follow_up_names_a_case_once_and_plainly(station, screenshots):
    """U2 #17: "Real GE whole-body scan scan", listed again as "the same study" when the case was loaded again."""
    page, _ = station
    open_module(page, "Bone scan BSTBI")
    for _ in range(2):
        load_sample(page, "Real GE whole-body scan")
        click_and_wait_idle(page, "Segment")
        click_and_wait_idle(page, "Compute BSTBI")
    skipped = page.locator("#si-bone-session-skipped")
    assert skipped.count() == 0 or "Real GE" not in skipped.inner_text()  # its same result: not listed again
    assert page.locator(".si-bone-session").count() == 0
    load_sample(page, "Phantom with 5 metastases")
    click_and_wait_idle(page, "Segment")
    click_and_wait_idle(page, "Compute BSTBI")
    lines = page.inner_text("#si-bone-session-skipped").splitlines()
    assert lines[1:] == ["Real GE whole-body scan: another patient"]  # once, and not "... scan scan"
    page.locator("#si-bone-followup").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "review-bone-follow-up.png"))
    for lesion in (2, 8):  # rejected: grey numbers, no "rejected" label over the spine and #9
        done = steps_done(page)
        page.locator(f"#si-bone-toggle-{lesion}").click()
        page.wait_for_function(f"Number(document.querySelector('#si-steps-done').textContent) > {done}",
                               timeout=60_000)
        page.wait_for_function("!document.querySelector('#si-progress')")
    assert "2 rejected by the reader" in page.inner_text("#si-bone-counts")
    page.wait_for_timeout(1500)
    page.screenshot(path=str(screenshots / "review-bone-rejected.png"))
