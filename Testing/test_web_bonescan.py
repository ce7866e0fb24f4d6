"""The bone-scan tab of the reading station in headless Chromium: the numbered lesion list per view, rejecting a
lesion (counts and BSTBI recomputed on the page), and the follow-up (an earlier result of the session and an uploaded
result.json: change and trend plot; another module's result refused). Screenshots go to $SMARTIMAGING_SCREENSHOTS or
to pytest's temporary folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("trame_slicer")
pytest.importorskip("playwright.sync_api")

from web_station import (  # noqa: E402
    choose_effect,
    click_and_wait_idle,
    load_sample,
    open_module,
    screenshot_folder,
    station_page,
    table,
    wait_for_views_rendered,
)

from smartimaging.phantoms.bonescan import PIXEL_MM, make_bone_scan_phantom  # noqa: E402


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    with station_page(tmp_path_factory) as (page, _process):
        yield page


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return screenshot_folder(tmp_path_factory)


def _headline(page) -> float:
    return float(re.search(r"\d+\.\d+", page.inner_text("#si-headline")).group())


def _lesions(page, view: str) -> list[str]:
    return page.locator(f"#si-bone-view-{view} .si-bone-lesion").all_inner_texts()


def _segment_and_compute(page) -> None:
    click_and_wait_idle(page, "Segment")
    click_and_wait_idle(page, "Compute BSTBI")
    page.locator("#si-bone-lesions").wait_for()


def _choose_result(page, path: Path) -> None:
    with page.expect_file_chooser() as chooser:
        page.locator("#si-bone-result-file").click()
    chooser.value.set_files(str(path))


def _screenshot(page, element: str, path: Path, block: str = "start") -> None:
    page.wait_for_timeout(800)  # a new result scrolls the panel to itself first
    page.locator(element).evaluate(f"element => element.scrollIntoView({{block: '{block}'}})")
    page.wait_for_timeout(500)
    page.screenshot(path=str(path))


def test_lesions_numbered_per_view_and_a_rejection_recomputes(page, screenshots):
    open_module(page, "Bone scan BSTBI")
    assert "Phantom with 5 metastases" in load_sample(page)
    wait_for_views_rendered(page, 2)
    _segment_and_compute(page)
    anterior, posterior = _lesions(page, "anterior"), _lesions(page, "posterior")
    assert anterior and posterior
    numbers = [int(re.match(r"#(\d+)", text).group(1)) for text in anterior + posterior]
    assert numbers == list(range(1, len(numbers) + 1))  # numbered through both views, anterior first
    assert all(re.search(r"· \d+ mm² \(\d+ px\)", t) and re.search(r"x \d+ mm, y \d+ mm", t) and "mean" in t
               and "max" in t for t in anterior + posterior)  # the site, area, uptake, and the position in mm
    rows = table(page)
    assert rows["Lesions, anterior view"] == [str(len(anterior))]
    assert rows["Lesions, posterior view"] == [str(len(posterior))]
    assert rows["Lesions rejected by the reader"] == ["0"]
    assert "Lesions counted" not in rows  # never both views added up as one number
    sites = int(rows["Lesion sites (both views matched)"][0].split()[0])
    assert max(len(anterior), len(posterior)) <= sites <= len(anterior) + len(posterior)
    _screenshot(page, "#si-bone-lesions", screenshots / "web-bonescan-lesions.png")

    # The reader rejects what is not a metastasis of the phantom (its injection-site contamination, say): each
    # lesion whose centre lies outside the phantom's true metastases, found by the position the list shows.
    phantom = make_bone_scan_phantom(2)
    false = [number for number, text in zip(numbers, anterior + posterior, strict=True)
             if not _on_true_metastasis(phantom, "anterior" if number <= len(anterior) else "posterior", text)]
    assert false, "the demo segmenter finds the phantom's injection-site contamination"
    before = _headline(page)
    for number in false:
        done = int(page.text_content("#si-steps-done"))
        page.locator(f"#si-bone-toggle-{number}").click()
        page.wait_for_function(f"Number(document.querySelector('#si-steps-done').textContent) > {done}",
                               timeout=60_000)
        page.wait_for_function("!document.querySelector('#si-progress')")
    rows = table(page)
    kept = {view: len(texts) - sum(n in false for n in ids)
            for view, texts, ids in (("anterior", anterior, numbers[:len(anterior)]),
                                     ("posterior", posterior, numbers[len(anterior):]))}
    assert rows["Lesions, anterior view"] == [str(kept["anterior"])]
    assert rows["Lesions, posterior view"] == [str(kept["posterior"])]
    assert rows["Lesions rejected by the reader"] == [f"{len(false)} (#{', #'.join(map(str, false))})"]
    assert int(rows["Lesion sites (both views matched)"][0].split()[0]) <= phantom.n_lesions
    assert _headline(page) < before  # the rejected lesions' uptake left BSTBI
    assert f"{len(false)} rejected by the reader" in page.inner_text("#si-bone-counts")
    rejected = page.locator(f"#si-bone-toggle-{false[0]}").locator("xpath=..")
    assert "text-decoration-line-through" in rejected.locator("div.flex-grow-1").get_attribute("class")
    assert page.locator(f"#si-bone-toggle-{false[0]}").inner_text().strip().lower() == "accept"
    _screenshot(page, "#si-bone-lesions", screenshots / "web-bonescan-rejected.png")


def _on_true_metastasis(phantom, view: str, text: str) -> bool:
    """Whether the lesion centre the list shows ("x 276 mm, y 635 mm") lies on one of the phantom's metastases."""
    x_mm, y_mm = map(float, re.search(r"x (\d+) mm, y (\d+) mm", text).groups())
    row, col = round(y_mm / PIXEL_MM), round(x_mm / PIXEL_MM)
    return bool((phantom.masks[view][row - 1:row + 2, col - 1:col + 2] == 1).any())


def test_followup_shows_the_change_and_a_trend_plot(page, screenshots, tmp_path):
    open_module(page, "Bone scan BSTBI")
    earlier = _headline(page)  # the previous test's result, the false positives rejected
    load_sample(page)  # the same patient again: a new case of the session
    _segment_and_compute(page)
    current = _headline(page)
    assert current > earlier

    assert page.locator(".si-bone-session").count() == 1  # the earlier case; the current one is not offered
    page.locator(".si-bone-session").click()
    page.locator("#si-bone-trend").wait_for(timeout=30_000)
    lines = page.inner_text("#si-bone-trend")
    change = re.search(rf"change from the previous study: {earlier:.3f} -> {current:.3f}: ([+-]\d\.\d+)", lines)
    assert float(change.group(1)) == pytest.approx(current - earlier, abs=1.5e-3)  # both shown rounded
    assert "date unknown" in lines and "ordered as given by the reader" in lines
    assert page.locator("#si-bone-trend svg polyline").count() == 1
    assert page.locator("#si-bone-trend svg circle").count() == 2

    # An uploaded result.json of `bonescan predict` joins the trend; another module's result is refused.
    uploaded = tmp_path / "result.json"
    uploaded.write_text(json.dumps({"views": ["anterior", "posterior"], "models": [{"id": "bonescan-unet-demo"}],
                                    "bstbi": {"per_subimage": {"anterior / standard": 0.02, "posterior / standard":
                                                               0.04}, "mean": 0.03},
                                    "study": {"study_date": "20240105"}}), encoding="utf-8")
    _choose_result(page, uploaded)
    page.wait_for_function("document.querySelectorAll('#si-bone-trend svg circle').length === 3", timeout=30_000)
    assert "2. result.json · 2024-01-05 · BSTBI 0.030" in page.inner_text("#si-bone-followup")
    assert "ordered as given by the reader" in page.inner_text("#si-bone-trend")  # two dates are unknown
    _screenshot(page, "#si-bone-trend", screenshots / "web-bonescan-followup.png", "center")

    other = tmp_path / "mammo" / "result.json"
    other.parent.mkdir()
    other.write_text(json.dumps({"models": [{"id": "mammo-mass-classifier-demo"}], "probability": 0.4}),
                     encoding="utf-8")
    _choose_result(page, other)
    page.locator("#si-bone-followup-error").wait_for(timeout=30_000)
    assert "is a result of another SmartImaging module" in page.inner_text("#si-bone-followup-error")
    assert page.locator("#si-bone-trend svg circle").count() == 3  # nothing added

    # An edit makes this result stale: no trend point from it, no rejection from its list, until compute.
    choose_effect(page, "mdi-scatter-plot")
    page.get_by_role("button", name="Keep largest").click()
    page.get_by_role("button", name="Apply").click()
    page.locator("#si-stale").wait_for(timeout=30_000)
    page.locator("#si-bone-trend").wait_for(state="detached", timeout=30_000)
    assert page.locator("#si-bone-toggle-1").is_disabled()
    click_and_wait_idle(page, "Compute BSTBI")
    page.locator("#si-bone-trend").wait_for(timeout=30_000)
    assert page.locator("#si-bone-toggle-1").is_enabled()


def test_one_toggle_per_click_and_damaged_results_refused(page, tmp_path):
    open_module(page, "Bone scan BSTBI")
    toggle = page.locator("#si-bone-toggle-1")
    was = toggle.inner_text().strip().lower()
    done = int(page.text_content("#si-steps-done"))
    toggle.dblclick()  # the second click of a double-click must not undo the first
    page.wait_for_function(f"Number(document.querySelector('#si-steps-done').textContent) > {done}", timeout=60_000)
    page.wait_for_function("!document.querySelector('#si-progress')")
    page.wait_for_timeout(1500)  # a second toggle, if any, would have started by now
    assert int(page.text_content("#si-steps-done")) == done + 1
    assert toggle.inner_text().strip().lower() == ("accept" if was == "reject" else "reject")
    done += 1
    page.evaluate("() => { const b = document.querySelector('#si-bone-toggle-2');"
                  " for (let i = 0; i < 7; i++) b.click(); }")  # seven rapid clicks
    page.wait_for_function(f"Number(document.querySelector('#si-steps-done').textContent) > {done}", timeout=60_000)
    page.wait_for_function("!document.querySelector('#si-progress')")
    page.wait_for_timeout(1500)
    assert int(page.text_content("#si-steps-done")) == done + 1
    assert page.locator("#si-error").count() == 0  # no "Wait until the running step is over" left behind

    for text in ("[" * 100_000, '{"bstbi": {"mean": ' + "1" * 5000 + "}}"):
        damaged = tmp_path / f"damaged{len(text)}" / "result.json"
        damaged.parent.mkdir()
        damaged.write_text(text, encoding="utf-8")
        _choose_result(page, damaged)
        page.wait_for_function("(document.querySelector('#si-bone-followup-error') || {}).textContent"
                               "?.includes('damaged or not JSON')", timeout=30_000)


def test_another_patients_study_is_refused_and_the_x_axis_never_mixes_dates(page, screenshots, tmp_path):
    open_module(page, "Bone scan BSTBI")
    assert page.locator(".si-bone-earlier").count() == 2  # the phantom's earlier studies, from the test before
    load_sample(page, "Real GE whole-body scan")  # another patient: one view, another camera
    _segment_and_compute(page)
    title = "view not recorded (analysed as anterior)"  # as the case note says: the file records no view
    assert page.inner_text("#si-bone-lesions").count("View not recorded (analysed as anterior): ") == 1
    assert f"Lesions, {title}" in table(page) and "Lesions, anterior view" not in table(page)
    assert page.inner_text("#si-bone-counts").startswith(f"{title} ")
    error = page.locator("#si-bone-followup-error")
    error.wait_for(timeout=30_000)
    assert "were acquired differently (number of views 2 vs 1)" in error.inner_text()
    assert page.locator("#si-bone-trend").count() == 0  # no change from another patient's study
    _screenshot(page, "#si-bone-followup", screenshots / "web-bonescan-other-patient.png", "center")
    while page.locator(".si-bone-earlier").count():
        page.locator(".si-bone-earlier button").first.click()
        page.wait_for_timeout(300)
    page.locator("#si-bone-followup-error").wait_for(state="detached", timeout=30_000)
    assert page.locator(".si-bone-session").count() == 0  # the phantom's results of this session: not offered
    assert page.inner_text("#si-bone-session-skipped").count("another patient") == 2  # and why

    # An earlier study of the same camera and grid dated after this one (2004-08-26) is refused.
    later = tmp_path / "later.json"
    record = {"views": ["anterior"], "models": [{"id": "bonescan-unet-demo"}],
              "bstbi": {"per_subimage": {"anterior / standard": 0.02, "anterior / high-contrast": 0.04},
                        "mean": 0.03}, "study": {"study_date": "20050105", "manufacturer": "GE Medical Systems"}}
    later.write_text(json.dumps(record), encoding="utf-8")
    _choose_result(page, later)
    page.wait_for_function("(document.querySelector('#si-bone-followup-error') || {}).textContent"
                           "?.includes('is dated after the current study (2004-08-26)')", timeout=30_000)
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({**record, "study": {"manufacturer": "GE Medical Systems"}}), encoding="utf-8")
    _choose_result(page, earlier)  # undated: the x-axis says "study N" for every point, no date beside them
    page.locator("#si-bone-trend svg").wait_for(timeout=30_000)
    axis = page.locator("#si-bone-trend svg text[text-anchor='middle']").all_text_contents()
    assert [t for t in axis if not re.fullmatch(r"[\d.]+", t)] == ["study 1", "study 2"]
    assert "open circle: outside the training data" in page.text_content("#si-bone-trend svg")  # the GE scan
    _screenshot(page, "#si-bone-trend", screenshots / "web-bonescan-followup-ge.png", "center")
