"""Editing in the browser station, in headless Debian Chromium (playwright): the view that stays put when the editor
opens, the AI's proposal outlined (a switch), undo / redo by button and by Ctrl+Z / Ctrl+Y, the brush in mm, zoom
buttons, no 3D controls, the AI ROI's result beside the edited ROI's. Screenshots go to $SMARTIMAGING_SCREENSHOTS
or to pytest's temporary folder."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trame_slicer")
pytest.importorskip("playwright.sync_api")

from PIL import Image  # noqa: E402
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
    view_images,
    wait_for_views_rendered,
)

MAMMO = "MammoRadiomics"
LESION_ZONE_PX = 70  # around the lesion the overlays change the view; elsewhere it must stay the same


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    with station_page(tmp_path_factory) as (page, _process):
        open_module(page, "Mammography Rad-score")
        wait_for_views_rendered(page, 1)
        yield page


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return screenshot_folder(tmp_path_factory)


def _view(page, settle_ms: int = 1500) -> np.ndarray:
    """The first view as the reader sees it (RGB), once the server's new frame has arrived."""
    page.wait_for_timeout(settle_ms)
    return np.asarray(Image.open(io.BytesIO(view_images(page).first.screenshot())).convert("RGB")).astype(int)


def _lesion_in_view(page) -> tuple[int, int]:
    """The lesion point's (x, y) in the first view's own pixels."""
    box = view_images(page).first.bounding_box()
    x, y = image_point_on_page(page, *sample_lesion(MAMMO))
    return round(x - box["x"]), round(y - box["y"])


def _away_from(view: np.ndarray, centre: tuple[int, int]) -> np.ndarray:
    rows, cols = np.indices(view.shape[:2])
    return np.hypot(cols - centre[0], rows - centre[1]) > LESION_ZONE_PX


def _green(view: np.ndarray) -> int:
    """Pixels of the AI proposal's green outline."""
    r, g, b = view[..., 0], view[..., 1], view[..., 2]
    return int(np.count_nonzero((g > 120) & (g > r + 40) & (g > b + 40)))


def _assert_green_outline(page, when: str) -> None:
    """The AI proposal's outline is seen over the reader's copy (an undo or redo once left the copy's new fill over
    it)."""
    assert _green(_view(page)) > 20, f"no green AI outline {when}"


def _count(page) -> int:
    return segment_counts(page)["Breast mass"]


def _wait_count(page, not_equal: int) -> int:
    page.wait_for_function("n => (document.querySelector('#si-segments')?.innerText ?? ': ' + n + ' ')"
                           ".includes('Breast mass: ') && !document.querySelector('#si-segments').innerText"
                           ".includes(': ' + n + ' ')", arg=not_equal, timeout=30_000)
    return _count(page)


def _erase_at_lesion(page) -> None:
    choose_effect(page, "mdi-eraser")
    x, y = image_point_on_page(page, *sample_lesion(MAMMO))
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 2, y, steps=2)
    page.mouse.up()


def test_the_view_stays_put_when_the_editor_opens_and_the_proposal_is_a_switch(page, screenshots):
    load_sample(page)
    reset_views_when_sized(page)
    assert page.inner_text("#si-no-roi").startswith("No ROI yet")  # the drawer is there before any ROI
    box = view_images(page).first.bounding_box()
    before = _view(page)
    lesion = _lesion_in_view(page)
    click_and_wait_idle(page, "Segment")
    assert _count(page) > 50
    after = _view(page)
    assert view_images(page).first.bounding_box() == box  # the editor did not narrow the view
    away = _away_from(before, lesion)
    change = np.abs(after - before).max(axis=-1)[away]
    assert np.mean(change) < 2 and np.percentile(change, 99) < 30  # the image did not move: only the ROI appeared
    assert np.abs(after - before).max(axis=-1)[~away].mean() > 3  # ...which is seen at the lesion (about 1 in 10 px)
    page.screenshot(path=str(screenshots / "web-editor-open.png"))

    assert page.get_by_label("AI proposal (green)").is_checked()
    assert _green(after) > 20  # the AI's proposal outlined in green around the reader's filled copy
    page.get_by_label("AI proposal (green)").uncheck()
    assert _green(_view(page)) == 0
    page.get_by_label("AI proposal (green)").check()
    assert _green(_view(page)) > 20

    choose_effect(page, "mdi-eraser")
    assert re.fullmatch(r"Brush diameter: 2\.5 mm \(12\.5 pixels\)", page.inner_text("#si-brush"))
    page.locator(".v-navigation-drawer--right").get_by_text("Rendering").click()  # its options unfolded
    page.wait_for_timeout(500)
    assert page.locator(".v-navigation-drawer--right i.mdi-video-3d").count() == 0  # no 3D view, no 3D controls

    unzoomed = _view(page)
    page.locator("#si-zoom-in").click()
    zoomed = _view(page)
    assert np.abs(zoomed - unzoomed).mean() > 5
    page.locator("#si-zoom-out").click()
    reset_views_when_sized(page)


def test_undo_and_redo_by_button_and_by_keys(page, screenshots):
    proposed = _count(page)
    _erase_at_lesion(page)
    erased = _wait_count(page, proposed)
    assert 0 < erased < proposed
    _assert_green_outline(page, "after Erase")
    page.screenshot(path=str(screenshots / "web-editor-erased.png"))
    page.get_by_role("button", name="Undo").click()
    assert _wait_count(page, erased) == proposed
    page.get_by_role("button", name="Redo").click()
    assert _wait_count(page, proposed) == erased
    _assert_green_outline(page, "after Redo")
    page.get_by_role("button", name="Undo").click()
    assert _wait_count(page, erased) == proposed
    _assert_green_outline(page, "after Undo")
    page.screenshot(path=str(screenshots / "web-editor-undone.png"))
    page.get_by_label("AI proposal (green)").uncheck()
    assert _green(_view(page)) == 0
    page.get_by_label("AI proposal (green)").check()
    _assert_green_outline(page, "after the switch off and on")
    page.get_by_role("button", name="Redo").click()
    assert _wait_count(page, proposed) == erased
    page.locator("#si-case").click()  # the keys act on the page, not on a text field
    page.keyboard.press("Control+z")
    assert _wait_count(page, erased) == proposed
    page.keyboard.press("Control+y")
    assert _wait_count(page, proposed) == erased
    page.keyboard.press("Control+z")
    assert _wait_count(page, erased) == proposed
    page.keyboard.press("Control+Shift+z")
    assert _wait_count(page, proposed) == erased
    _assert_green_outline(page, "after Ctrl+Z and Ctrl+Y")


def test_the_ai_rois_result_beside_the_edited_rois(page, screenshots):
    click_and_wait_idle(page, "Segment")  # a fresh proposal, computed as proposed
    proposed = _count(page)
    click_and_wait_idle(page, "Compute Rad-score")
    ai_headline = page.inner_text("#si-headline")
    assert page.locator("#si-compare").count() == 0  # nothing to compare yet
    _erase_at_lesion(page)
    _wait_count(page, proposed)
    click_and_wait_idle(page, "Compute Rad-score")
    rows = page.locator("#si-compare tr")
    assert [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())] == [
        ["Result from the AI's ROI", ai_headline], ["Result from the edited ROI", page.inner_text("#si-headline")]]
    page.screenshot(path=str(screenshots / "web-editor-ai-vs-edited.png"))


def test_a_hand_drawn_roi_takes_the_name_of_the_kind_chosen(page):
    page.get_by_label("Lesion kind").click(force=True)  # the selected text lies over the field
    page.get_by_role("option", name="calcification").click()
    click_and_wait_idle(page, "Draw ROI by hand")
    assert page.inner_text("#si-segments") == "Breast calcification: 0 pixels"
    assert page.locator("#si-show-proposal").count() == 0  # no AI proposal to show
    choose_effect(page, "mdi-brush")
    assert page.inner_text("#si-brush") == "Brush diameter: 0.5 mm (2.5 pixels)"  # calcifications are small
    page.get_by_label("Lesion kind").click(force=True)
    page.get_by_role("option", name="mass").click()  # the reader decides it is a mass
    page.wait_for_function("document.querySelector('#si-segments').innerText === 'Breast mass: 0 pixels'")
    editor_segments = page.locator(".v-navigation-drawer--right .v-list-item input")
    page.wait_for_function("[...document.querySelectorAll('.v-navigation-drawer--right .v-list-item input')]"
                           ".map(i => i.value).join() === 'Breast mass'", timeout=10_000)
    assert [field.input_value() for field in editor_segments.all()] == ["Breast mass"]
