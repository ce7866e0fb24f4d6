"""A radiologist reviewer's leftovers in the station, in headless Chromium: a tab switch that arrives while another
tab's step runs, and fast switches between two-view tabs, leave the last tab's views; every layout shows its whole
image clear of the slice slider and of the orientation letters; bone-scan lesions are named by skeletal site and the
patient's side (mm on hover); the session's results of other patients are not offered, and the page says why; no
"1 lesions" anywhere. Screenshots go to $SMARTIMAGING_SCREENSHOTS or to pytest's temporary folder."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trame_slicer")
pytest.importorskip("playwright.sync_api")

from PIL import Image  # noqa: E402
from scipy import ndimage  # noqa: E402
from web_station import (  # noqa: E402
    click_and_wait_idle,
    load_sample,
    open_module,
    screenshot_folder,
    station_page,
    steps_done,
    wait_for_layout,
)

from smartimaging.bonescan.sites import _BANDS  # noqa: E402
from smartimaging.web.app import FLOWS  # noqa: E402
from smartimaging.web.view_fit import SLIDER_PX  # noqa: E402

SETTLE_MS = 1200  # the server's new frames reach the page (`_rendered` reads twice: they must agree)
SITE_NAMES = {name for band in _BANDS for name in band[1:4]} | {"sternum or thoracic spine"}
ONE_PLURAL = re.compile(r"(?<![\d.,×])1 (lesions|sites|pixels|voxels|reasons|more reasons|files|features|regions|"
                        r"results|studies|views)\b")
MODULES = {flow.title: module for module, flow in FLOWS.items()}


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    with station_page(tmp_path_factory) as (page, _process):
        yield page


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return screenshot_folder(tmp_path_factory)


def _rendered(page) -> list[np.ndarray]:
    """The views' images as the server rendered them (RGB), without the page's slice sliders over them, once the
    open module's layout is on the page and its frames settled: two reads SETTLE_MS apart agree (a busy server may
    still send a view's first frame, at a default size, then the sized one)."""
    last = None
    for _attempt in range(10):
        wait_for_layout(page)
        page.wait_for_timeout(SETTLE_MS)
        urls = page.evaluate("() => [...document.querySelectorAll('img.image-display-area')].map(i => {"
                             "if (!i.complete || !i.naturalWidth) return ''; "
                             "const c = document.createElement('canvas'); c.width = i.naturalWidth; "
                             "c.height = i.naturalHeight; c.getContext('2d').drawImage(i, 0, 0); "
                             "return c.toDataURL('image/png'); })")
        if not all(url.startswith("data:image/png;base64,") for url in urls):
            continue
        views = [np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")).astype(int)
                 for url in urls]
        if last is not None and _same(views, last):
            return views
        last = views
    raise AssertionError("the views never settled")


def _assert_no_plural_after_one(page) -> None:
    found = ONE_PLURAL.findall(page.inner_text("body"))
    assert not found, f"'1 {found[0]}' on the page"


# ---- a tab switch during a step, fast switches ----------------------------------------------------------------------

def _selected_tab(page) -> str:
    return page.inner_text(".v-tab--selected").strip().lower()


def _same(views: list[np.ndarray], others: list[np.ndarray]) -> bool:
    """The same views: as many, of the same sizes, showing the same images (up to the frames' compression)."""
    return len(views) == len(others) and all(a.shape == b.shape and np.abs(a - b).mean() < 2
                                             for a, b in zip(views, others, strict=True))


def test_the_last_tab_switch_wins(page):
    open_module(page, "Breast MRI LVI")
    lvi = _rendered(page)
    open_module(page, "Synthetic DCE")
    dce = _rendered(page)
    assert len(dce) == 2 and len(lvi) == 2 and not _same(dce, lvi)

    # A switch that arrives while another tab's step runs (sent before the page knew the tabs were disabled): the step
    # ends, the views stay the last tab's.
    open_module(page, "Bone scan BSTBI")
    done = steps_done(page)
    page.get_by_role("button", name="Segment", exact=True).click()
    page.wait_for_function(f"document.querySelector('#si-progress') "
                           f"|| Number(document.querySelector('#si-steps-done').textContent) > {done}")
    assert page.locator("#si-progress").count(), "Segment ended before the switch: nothing to race"
    page.evaluate(f"() => window.trame.state.set('si_module', '{MODULES['Synthetic DCE']}')")
    page.wait_for_function(f"Number(document.querySelector('#si-steps-done').textContent) > {done}",
                           timeout=120_000)
    page.wait_for_function("!document.querySelector('#si-progress')", timeout=60_000)
    assert _selected_tab(page) == "synthetic dce"
    assert _same(_rendered(page), dce)

    # Fast clicks between the two two-view tabs: the last one's views.
    page.evaluate("async () => { const tabs = [...document.querySelectorAll('.v-tab')];"
                  "const lvi = tabs.find(t => t.innerText.toLowerCase() === 'breast mri lvi');"
                  "const dce = tabs.find(t => t.innerText.toLowerCase() === 'synthetic dce');"
                  "for (let i = 0; i < 4; i++) { lvi.click(); await new Promise(r => setTimeout(r, 60));"
                  "dce.click(); await new Promise(r => setTimeout(r, 60)); } lvi.click(); }")
    page.wait_for_function("document.querySelector('.v-tab--selected')?.innerText.toLowerCase() === 'breast mri lvi'")
    wait_for_layout(page)
    assert _same(_rendered(page), lvi)
    _assert_no_plural_after_one(page)


# ---- the image clear of the slider and of the letters ---------------------------------------------------------------

def _image_box(view: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) pixel rows/columns of the image, shown with a light background (inverted MRI and
    mammogram, bone scan): grey pixels that are not black (orange letters and coloured overlays aside)."""
    grey = (view.max(axis=-1) > 30) & (np.ptp(view, axis=-1) < 12)
    rows, cols = np.flatnonzero(grey.any(axis=1)), np.flatnonzero(grey.any(axis=0))
    return rows[0], rows[-1], cols[0], cols[-1]


def _letters(view: np.ndarray) -> dict[str, tuple[int, int, int, int]]:
    """The orientation letters drawn at the view's edges and the caption in its upper right corner (orange): edge
    or "caption" -> (top, bottom, left, right) of the glyphs."""
    height, width = view.shape[:2]
    orange = (view[..., 0] > 150) & (view[..., 1] > 50) & (view[..., 1] < 210) & (view[..., 2] < 90)
    numbered, _count = ndimage.label(ndimage.binary_dilation(orange, np.ones((3, 3))))
    found = {}
    rows, cols = np.nonzero(orange[:60, width // 2 + 20:])
    if rows.size:
        found["caption"] = (rows.min(), rows.max(), width // 2 + 20 + cols.min(), width // 2 + 20 + cols.max())
    for box in ndimage.find_objects(numbered):
        top, bottom, left, right = box[0].start, box[0].stop - 1, box[1].start, box[1].stop - 1
        middle_x, middle_y = (left + right) / 2, (top + bottom) / 2
        if right - left > 24 or bottom - top > 26:
            continue  # a caption's word, not a letter
        if abs(middle_x - width / 2) < 15 and bottom < 50:
            found["top"] = (top, bottom, left, right)
        elif abs(middle_x - width / 2) < 15 and top > height - 80:
            found["bottom"] = (top, bottom, left, right)
        elif abs(middle_y - height / 2) < 25 and left < 20:
            found["left"] = (top, bottom, left, right)
        elif abs(middle_y - height / 2) < 25 and right > width - 20:
            found["right"] = (top, bottom, left, right)
    return found


def _assert_clear(page, name: str, letters_expected: bool) -> int:
    """Every view's image above the slider's rows and off its letters' boxes; the number of letters checked."""
    checked = 0
    for index, view in enumerate(_rendered(page)):
        top, bottom, left, right = _image_box(view)
        assert bottom < view.shape[0] - SLIDER_PX, f"{name} view {index}: the slider covers the image's lower rows"
        letters = _letters(view)
        assert len(letters) > 1 or not letters_expected, f"{name} view {index}: no orientation letter found"
        for edge, (l_top, l_bottom, l_left, l_right) in letters.items():
            overlap = l_top <= bottom and l_bottom >= top and l_left <= right and l_right >= left
            assert not overlap, f"{name} view {index}: the {edge} {'letter' * (edge != 'caption')} lies over the image"
            checked += 1
    return checked


def _inverted(page, on: bool) -> None:
    switch = page.get_by_role("checkbox", name="Invert")
    if switch.is_checked() != on:
        switch.click()
        page.wait_for_timeout(500)


def test_every_layout_shows_the_whole_image_clear_of_slider_and_letters(page, screenshots):
    open_module(page, "Bone scan BSTBI")  # two views, uptake dark on white: the image's box is white
    assert _assert_clear(page, "bone scan", True) == 6  # R, L and the caption on each view
    front, back = _rendered(page)
    top, bottom, left, right = _image_box(front)
    assert np.abs(front[top:bottom, left:right] - back[top:bottom, left:right]).mean() > 1  # not one frame twice
    page.screenshot(path=str(screenshots / "web-polish-bonescan-views.png"))

    open_module(page, "Mammography Rad-score")  # one view
    _inverted(page, True)
    _assert_clear(page, "mammogram", False)
    page.screenshot(path=str(screenshots / "web-polish-mammo-view.png"))
    _inverted(page, False)

    open_module(page, "Breast MRI LVI")  # two views
    _inverted(page, True)
    assert _assert_clear(page, "LVI", True) >= 8
    _inverted(page, False)

    open_module(page, "Synthetic DCE")
    click_and_wait_idle(page, "Synthesize DCE")
    wait_for_layout(page)  # four views
    page.screenshot(path=str(screenshots / "web-polish-dce-four-views.png"))
    _inverted(page, True)
    assert _assert_clear(page, "DCE", True) >= 16  # A, P, R, L and the caption around each of the four images
    page.screenshot(path=str(screenshots / "web-polish-dce-four-views-inverted.png"))
    _inverted(page, False)
    _assert_no_plural_after_one(page)


# ---- bone scan: sites, counts, the session's results ---------------------------------------------------------------

def _lesion_rows(page, view: str) -> list[dict]:
    rows = page.locator(f"#si-bone-view-{view} .si-bone-lesion")
    found = []
    for index in range(rows.count()):
        row = rows.nth(index)
        site_line = row.locator(".si-bone-site")
        number = int(row.locator(".v-chip").inner_text().strip("# "))
        text = row.inner_text()
        x_mm = float(re.search(r"x (\d+) mm, y (\d+) mm", text).group(1))
        partner = re.search(r"same site as #(\d+)", text)
        found.append({"id": number, "site": site_line.inner_text().split(" · ")[0], "x_mm": x_mm,
                      "title": site_line.get_attribute("title"), "partner": int(partner.group(1)) if partner else None})
    return found


def _screenshot(page, element: str, path: Path) -> None:
    page.wait_for_timeout(800)  # a new result scrolls the panel to itself first
    page.locator(element).evaluate("element => element.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(500)
    page.screenshot(path=str(path))


def _segment_and_compute(page) -> None:
    click_and_wait_idle(page, "Segment")
    click_and_wait_idle(page, "Compute BSTBI")
    page.locator("#si-bone-lesions").wait_for()


def test_bone_scan_sites_singular_counts_and_this_patients_results_only(page, screenshots):
    open_module(page, "Bone scan BSTBI")
    _segment_and_compute(page)
    width_mm = 256 * 2.26  # the phantom's views: 256 columns of 2.26 mm
    lesions = {view: _lesion_rows(page, view) for view in ("anterior", "posterior")}
    by_id = {lesion["id"]: lesion for rows in lesions.values() for lesion in rows}
    assert len(by_id) >= 4
    for view, rows in lesions.items():
        for lesion in rows:
            side, _, name = lesion["site"].partition(" ") if lesion["site"].startswith(("left ", "right ")) \
                else ("", "", lesion["site"])
            assert name in SITE_NAMES, f"#{lesion['id']}: {lesion['site']!r} is no site"
            assert re.fullmatch(r"Centre: x \d+ mm, y \d+ mm from the top-left corner of the view", lesion["title"])
            if side and abs(lesion["x_mm"] - width_mm / 2) > 40:  # clearly off the midline
                viewer_left = lesion["x_mm"] < width_mm / 2
                # The anterior view shows the patient's right on the viewer's left; the posterior view the opposite.
                assert side == ("right" if viewer_left == (view == "anterior") else "left"), lesion
            if lesion["partner"]:  # one site on both views: the same bone and the same side
                assert lesion["site"].replace("sternum or ", "") == by_id[lesion["partner"]]["site"].replace(
                    "sternum or ", "")
    _assert_no_plural_after_one(page)

    # Reject all but one anterior lesion: "anterior 1 lesion", never "1 lesions".
    for lesion in lesions["anterior"][1:]:
        done = int(page.text_content("#si-steps-done"))
        page.locator(f"#si-bone-toggle-{lesion['id']}").click()
        page.wait_for_function(f"Number(document.querySelector('#si-steps-done').textContent) > {done}",
                               timeout=60_000)
        page.wait_for_function("!document.querySelector('#si-progress')")
    assert page.inner_text("#si-bone-counts").startswith("anterior 1 lesion · posterior ")
    _assert_no_plural_after_one(page)
    _screenshot(page, "#si-bone-lesions", screenshots / "web-polish-bonescan-sites.png")

    # Another patient's scan: the phantom's result is not offered, and the page says why.
    load_sample(page, "Real GE whole-body scan")
    _segment_and_compute(page)
    assert page.locator(".si-bone-session").count() == 0
    assert "another patient" in page.inner_text("#si-bone-session-skipped")
    _screenshot(page, "#si-bone-followup", screenshots / "web-polish-bonescan-other-patient.png")
    more = page.locator("#si-domain-more")
    if more.count():
        count = int(re.search(r"and (\d+) more reason", more.inner_text()).group(1))
        assert more.inner_text().startswith(f"and {count} more reason{'' if count == 1 else 's'} ")
    _assert_no_plural_after_one(page)

    # The phantom again (the same patient, a new study): its earlier result is offered, the GE scan's is not.
    load_sample(page, "Phantom with 5 metastases")
    _segment_and_compute(page)
    offered = page.locator(".si-bone-session").all_inner_texts()
    assert len(offered) == 1 and "phantom" in offered[0].lower()
    assert "Real GE" in page.inner_text("#si-bone-session-skipped")
    page.locator(".si-bone-session").click()
    page.locator("#si-bone-trend").wait_for(timeout=30_000)
    assert page.locator(".si-bone-session").count() == 0  # added: offered no more
    assert "already in the follow-up" in page.inner_text("#si-bone-session-skipped")
    _screenshot(page, "#si-bone-followup", screenshots / "web-polish-bonescan-session.png")
    _assert_no_plural_after_one(page)
