"""U2's findings on what leaves the station, in headless Chromium: on the real GE scan, which lies outside the
demo models' training data, every score and verdict is greyed and struck (the headline, the cutoff line, the table's
BSTBI, metastasis probability and verdict rows; finding 5); the downloads of a DICOM scan offer SEG and SR beside the
zip, those of a PNG mammogram only the zip with why (finding 2). Screenshots to $SMARTIMAGING_SCREENSHOTS."""

from __future__ import annotations

import pytest

pytest.importorskip("trame_slicer")
pytest.importorskip("playwright.sync_api")

from web_station import (  # noqa: E402
    click_and_wait_idle,
    load_sample,
    open_module,
    screenshot_folder,
    station_page,
    wait_for_case,
)

STRUCK = "text-decoration-line-through"


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    with station_page(tmp_path_factory, ready_timeout_ms=120_000) as (page, _process):
        wait_for_case(page, 120_000)
        yield page


def _struck_rows(page) -> dict[str, bool]:
    """First cell of each result-table row -> whether the row is greyed and struck."""
    rows = page.locator("#si-result-table tbody tr")
    return {rows.nth(i).locator("td").first.inner_text(): STRUCK in (rows.nth(i).get_attribute("class") or "")
            for i in range(rows.count())}


def test_outside_the_domain_every_score_is_struck(station, tmp_path_factory):
    page = station
    load_sample(page, "Real GE whole-body scan")
    click_and_wait_idle(page, "Segment")
    click_and_wait_idle(page, "Compute BSTBI")
    assert page.inner_text("#si-domain-chip") == "Outside training data"
    assert STRUCK in page.get_attribute("#si-cutoff-line", "class")  # "Metastasis probability … · cutoff …"
    struck = _struck_rows(page)
    assert struck["BSTBI (mean)"] and struck["Metastasis probability"], struck
    assert not struck.get("Domain check") and "Reader edited" in struck and not struck["Reader edited"], struck
    page.locator("#si-downloads").scroll_into_view_if_needed()
    assert page.locator("#si-download-seg").count() and page.locator("#si-download-sr").count()  # a DICOM scan
    assert not page.locator("#si-download-zip-only").count()
    page.screenshot(path=str(screenshot_folder(tmp_path_factory) / "u2-outside-domain-bonescan.png"))


def test_a_png_mammogram_offers_its_dicom_only_as_the_zip(station, tmp_path_factory):
    page = station
    open_module(page, "Mammography Rad-score")
    load_sample(page, "Phantom benign mass")
    click_and_wait_idle(page, "Segment")
    click_and_wait_idle(page, "Compute Rad-score")
    page.locator("#si-downloads").wait_for()
    assert page.locator("#si-download-zip").count() and not page.locator("#si-download-sr").count()
    assert "come together in the zip" in page.inner_text("#si-download-zip-only")
    page.locator("#si-downloads").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_folder(tmp_path_factory) / "u2-downloads-zip-only.png"))
