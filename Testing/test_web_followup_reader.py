"""The station's bone-scan follow-up says when part of a change is the reader's (U2 finding 4), in headless Chromium:
an earlier reading of the phantom with a lesion rejected, then the same scan read again without rejections; the
earlier study's row says what the reader rejected, and a warning above the trend says that part of the change is the
reader's. Screenshots go to $SMARTIMAGING_SCREENSHOTS or to pytest's temporary folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("trame_slicer")
pytest.importorskip("playwright.sync_api")

from web_station import (  # noqa: E402
    click_and_wait_idle,
    load_sample,
    open_module,
    screenshot_folder,
    station_page,
    steps_done,
    wait_for_views_rendered,
)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    with station_page(tmp_path_factory) as (page, _process):
        yield page


def _headline(page) -> float:
    return float(re.search(r"\d+\.\d+", page.inner_text("#si-headline")).group())


def _segment_and_compute(page) -> None:
    click_and_wait_idle(page, "Segment")
    click_and_wait_idle(page, "Compute BSTBI")
    page.locator("#si-bone-lesions").wait_for()


def test_a_change_between_readings_that_rejected_differently_is_flagged(page, tmp_path_factory):
    open_module(page, "Bone scan BSTBI")  # its first sample, the phantom, loaded
    wait_for_views_rendered(page, 2)
    _segment_and_compute(page)
    done = steps_done(page)
    page.locator("#si-bone-toggle-1").click()  # the reader rejects lesion 1: BSTBI falls
    page.wait_for_function(f"Number(document.querySelector('#si-steps-done').textContent) > {done}", timeout=60_000)
    page.wait_for_function("!document.querySelector('#si-progress')")
    earlier = _headline(page)

    load_sample(page)  # the same scan read again, nothing rejected
    _segment_and_compute(page)
    current = _headline(page)
    assert current > earlier
    page.locator(".si-bone-session").click()
    page.locator("#si-bone-trend").wait_for(timeout=30_000)
    note = "the earlier study had 1 lesion rejected by the reader, this one none: part of the change is the reader's"
    assert page.inner_text("#si-bone-trend-reader").strip() == note
    assert page.inner_text(".si-bone-earlier").strip().endswith(f"BSTBI {earlier:.3f} · 1 lesion rejected by the "
                                                                "reader")
    lines = page.inner_text("#si-bone-trend")
    assert f"change from the previous study: {earlier:.3f} -> {current:.3f}" in lines and f"caution: {note}" in lines
    assert page.locator("#si-bone-trend svg text.reader").evaluate_all(
        "texts => texts.map(text => text.firstChild.textContent)") == ["1 rejected"]  # over the earlier point
    page.wait_for_timeout(800)  # a new result scrolls the panel to itself first
    page.locator("#si-bone-followup").screenshot(
        path=str(Path(screenshot_folder(tmp_path_factory)) / "web-bonescan-followup-reader.png"))

    page.locator(".si-bone-earlier button").click()  # removed: no trend, no warning
    page.locator("#si-bone-trend-reader").wait_for(state="detached", timeout=30_000)
