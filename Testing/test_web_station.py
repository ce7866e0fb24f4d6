"""The browser reading station driven in headless Debian Chromium (playwright): each module's flow load -> Segment
-> edit -> compute, uploads (limits, streaming to disk, deletion), cancel, binding. Screenshots go to
$SMARTIMAGING_SCREENSHOTS (the README's come from there) or to pytest's temporary folder."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trame_slicer")
playwright_api = pytest.importorskip("playwright.sync_api")

from web_station import (  # noqa: E402
    CHROMIUM,
    REPO,
    VIEWPORT,
    choose_effect,
    click_and_wait_idle,
    free_port,
    image_point_on_page,
    launch_chromium,
    load_sample,
    open_module,
    reset_views_when_sized,
    running_station,
    sample_lesion,
    segment_counts,
    station_log,
    steps_done,
    table,
    view_centre,
    view_images,
    wait_for_views_rendered,
)

MB = 1024 * 1024
UPLOAD_LIMITS = {"SMARTIMAGING_UPLOAD_MAX_FILE_MB": "3", "SMARTIMAGING_UPLOAD_MAX_TOTAL_MB": "4"}  # small, for tests


@pytest.fixture(scope="module")
def station_tmp(tmp_path_factory) -> Path:
    """The station's temporary folder ($TMPDIR): its uploads go there."""
    return tmp_path_factory.mktemp("station-tmp")


@pytest.fixture(scope="module")
def station(station_tmp):
    with running_station(environment={"TMPDIR": str(station_tmp), **UPLOAD_LIMITS}) as (url, process):
        yield url, process


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (tools/system-packages.sh)")
    with playwright_api.sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(station, browser):
    url, process = station
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(url)
    page.get_by_role("button", name="Load sample").wait_for(timeout=60_000)
    yield page
    page.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("SMARTIMAGING_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _screenshot(page, path: Path) -> None:
    page.wait_for_timeout(800)  # let button and drawer transitions settle
    page.screenshot(path=str(path))


def _headline_number(page) -> float:
    return float(re.search(r"\d+\.\d+", page.inner_text("#si-headline")).group())


DOMAIN_CHIPS = {"Inside training data": "inside", "Outside training data": "outside",
                "Training data not checked": "unknown"}


def _settled_boxes(page, *selectors: str) -> list[dict]:
    """Bounding boxes of elements measured together, once the panel has stopped scrolling (a new result scrolls the
    panel to itself smoothly: boxes read one after the other mid-scroll disagree)."""
    measure = ("selectors => selectors.map(s => { const r = document.querySelector(s).getBoundingClientRect(); "
               "return {x: r.x, y: r.y, width: r.width, height: r.height}; })")
    previous = None
    for _ in range(100):
        boxes = page.evaluate(measure, list(selectors))
        if boxes == previous:
            return boxes
        previous = boxes
        page.wait_for_timeout(100)
    raise AssertionError(f"{selectors} kept moving for 10 s")


def _domain_verdict_beside_the_score(page) -> str:
    """The result's domain verdict, read from the chip beside the score, checked to be shown as the verdict asks:
    on the score's line (or wrapped right under it) and seen without scrolling, an outside score greyed with the
    reasons, never a table row."""
    chip = page.locator("#si-domain-chip")
    verdict = DOMAIN_CHIPS[chip.inner_text().strip()]
    headline = page.locator("#si-headline")
    line, box = _settled_boxes(page, "#si-headline", "#si-domain-chip")
    assert line["y"] - 8 <= box["y"] <= line["y"] + line["height"] + 8
    assert box["y"] + box["height"] <= VIEWPORT["height"]
    greyed = "text-disabled" in headline.get_attribute("class")
    assert greyed == (verdict == "outside")
    if verdict == "inside":
        assert page.inner_text("#si-domain-text").startswith("Domain check: inside")
    else:
        assert page.locator("#si-domain").is_visible() and "Why:" in page.inner_text("#si-domain")
    assert "Domain check" not in table(page)  # shown with the score, not buried in the table
    return verdict


def _error(page) -> str:
    return page.inner_text("#si-error") if page.locator("#si-error").count() else ""


def _upload_field(page) -> str:
    """What the file input shows (the chosen files' names), and how many files it holds."""
    shown = page.locator(".v-file-input .v-field__input").inner_text().strip()
    count = page.evaluate("document.querySelector('input[type=file]').files.length")
    return f"{shown} ({count} files)"


def _words_split_or_cells_clipped(page) -> list[str]:
    """Result table cells with a word broken over two lines, or text cut off (wider than the cell, no tooltip)."""
    return page.evaluate("""() => {
        const bad = [];
        for (const cell of document.querySelectorAll('#si-result-table td, #si-result-table th')) {
            if (cell.scrollWidth > cell.clientWidth + 1 && cell.title !== cell.innerText) bad.push(cell.innerText);
            const texts = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
            for (let text = texts.nextNode(); text; text = texts.nextNode()) {
                const re = /\\S+/g;
                let match;
                while ((match = re.exec(text.data))) {
                    const range = document.createRange();
                    range.setStart(text, match.index);
                    range.setEnd(text, match.index + match[0].length);
                    const tops = new Set([...range.getClientRects()].map((r) => Math.round(r.top)));
                    if (tops.size > 1) bad.push(match[0]);
                }
            }
        }
        return bad;
    }""")


def _uploaded(station_tmp: Path, name: str = "*") -> list[Path]:
    """Files named `name` in the station's upload folders."""
    return sorted(station_tmp.glob(f"smartimaging-station-*/upload-*/{name}"))


def _upload(page, *paths) -> None:
    """Send files through the page's file input and wait until they are loaded or refused (a step ends, or another
    error message appears: a module change may still be clearing the previous one)."""
    page.wait_for_function("!document.querySelector('#si-progress')", timeout=60_000)  # no step running
    done, error = steps_done(page), _error(page)
    page.locator("input[type=file]").set_input_files([str(path) for path in paths])
    page.wait_for_function("([done, error]) => Number(document.querySelector('#si-steps-done').textContent) > done "
                           "|| ![error, ''].includes(document.querySelector('#si-error')?.innerText ?? '')",
                           arg=[done, error], timeout=60_000)
    page.wait_for_function("!document.querySelector('#si-progress')", timeout=60_000)


def test_page_shows_four_modules_and_the_demo_weights_warning(page):
    for title in ("Bone scan BSTBI", "Mammography Rad-score", "Breast MRI LVI", "Synthetic DCE"):
        assert page.get_by_role("tab", name=title).is_visible()
    assert page.get_by_text("Demo weights, not for clinical use").is_visible()


def test_bone_scan_flow_with_cancel_and_an_islands_edit(page, screenshots):
    open_module(page, "Bone scan BSTBI")
    assert "Phantom with 5 metastases" in load_sample(page)
    wait_for_views_rendered(page, 2)  # anterior and posterior side by side
    assert page.get_by_text("Left view: anterior · right view: posterior").is_visible()

    # Cancel a running job: the server stays responsive while the worker runs, and nothing is added.
    page.get_by_role("button", name="Segment", exact=True).click()
    page.get_by_role("button", name="Cancel").click(timeout=30_000)
    page.wait_for_selector("#si-progress", state="detached", timeout=30_000)
    assert "Cancelled" in _error(page)
    assert page.locator("#si-segments").count() == 0

    page.get_by_role("button", name="Segment", exact=True).click()
    page.wait_for_function("/classified and segmented/.test(document.querySelector('#si-progress')?.innerText)",
                           timeout=60_000)  # the worker's progress reaches the page while it runs
    page.wait_for_selector("#si-segments", timeout=120_000)
    counts = segment_counts(page)
    assert counts["Bone metastasis"] > 0 and counts["Urinary bladder"] > 0
    click_and_wait_idle(page, "Compute BSTBI")
    before = _headline_number(page)
    rows = table(page)
    assert float(rows["BSTBI (mean)"][0]) == pytest.approx(before, abs=1e-3)
    assert 0 < before < 5
    _domain_verdict_beside_the_score(page)
    _screenshot(page, screenshots / "web-bonescan.png")

    # Edit: keep only the largest metastasis (Islands effect on the active, first segment); BSTBI must drop.
    choose_effect(page, "mdi-scatter-plot")
    page.get_by_role("button", name="Keep largest").click()
    page.get_by_role("button", name="Apply").click()
    page.wait_for_function(f"!document.querySelector('#si-segments').innerText.includes("
                           f"'Bone metastasis: {counts['Bone metastasis']} ')")
    assert segment_counts(page)["Bone metastasis"] < counts["Bone metastasis"]
    assert page.locator("#si-stale").is_visible()
    click_and_wait_idle(page, "Compute BSTBI")
    assert _headline_number(page) < before
    assert float(table(page)["Dice AI vs edited (Bone metastasis)"][0]) < 1


def _erase_at_lesion(page, module: str) -> None:
    """One Erase stroke at the sample case's lesion point (the view, fitted to the image, does not follow it)."""
    reset_views_when_sized(page)
    choose_effect(page, "mdi-eraser")
    x, y = image_point_on_page(page, *sample_lesion(module))
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 2, y, steps=2)
    page.mouse.up()  # the effect stays active: view events may reach the server after later clicks


def test_mammography_flow_with_an_erase_edit(page, screenshots):
    open_module(page, "Mammography Rad-score")
    assert "Phantom malignant mass" in load_sample(page)
    wait_for_views_rendered(page, 1)
    click_and_wait_idle(page, "Segment")
    pixels = segment_counts(page)["Breast mass"]
    assert 50 < pixels < 5000
    click_and_wait_idle(page, "Compute Rad-score")
    assert 0 <= _headline_number(page) <= 1
    rows = table(page)
    assert rows["ROI pixels"] == [str(pixels)]
    assert rows["Dice AI vs edited ROI"] == ["1.000"]
    _domain_verdict_beside_the_score(page)
    _screenshot(page, screenshots / "web-mammo.png")

    _erase_at_lesion(page, "MammoRadiomics")
    page.wait_for_function(f"!document.querySelector('#si-segments').innerText.includes(': {pixels} ')",
                           timeout=60_000)
    erased = segment_counts(page)["Breast mass"]
    assert 0 < erased < pixels
    click_and_wait_idle(page, "Compute Rad-score")
    rows = table(page)
    assert rows["ROI pixels"] == [str(erased)]
    assert float(rows["Dice AI vs edited ROI"][0]) < 1


def _paint_at_view_centre(page, length_px: float = 10) -> None:
    """A short Paint stroke through the centre of the first view (on the image, fitted to the view)."""
    x, y = view_centre(page)
    page.mouse.move(x - length_px / 2, y)
    page.mouse.down()
    page.mouse.move(x + length_px / 2, y, steps=4)
    page.mouse.up()


def test_draw_the_roi_by_hand_then_compute(page, screenshots):
    open_module(page, "Mammography Rad-score")
    assert "Phantom malignant mass" in load_sample(page)
    wait_for_views_rendered(page, 1)
    click_and_wait_idle(page, "Draw ROI by hand")
    assert page.inner_text("#si-roi-source") == "ROI: drawn by the reader"
    assert "Paint the lesion" in page.inner_text("#si-draw-hint")
    editor_segments = page.locator(".v-navigation-drawer--right .v-list-item input")
    editor_segments.first.wait_for()
    assert [field.input_value() for field in editor_segments.all()] == ["Breast mass"]  # empty, ready to paint
    page.locator(".v-navigation-drawer--right button.v-btn--active:has(i.mdi-brush)").wait_for(timeout=30_000)
    assert segment_counts(page) == {"Breast mass": 0}

    _paint_at_view_centre(page)
    page.wait_for_function("!document.querySelector('#si-segments').innerText.includes(': 0 ')", timeout=60_000)
    painted = segment_counts(page)["Breast mass"]
    assert painted > 0
    click_and_wait_idle(page, "Compute Rad-score")
    assert not _error(page)
    rows = table(page)
    assert rows["ROI"] == ["drawn by the reader"] and rows["ROI pixels"] == [str(painted)]
    assert page.inner_text("#si-result-roi-source") == "ROI of this result: drawn by the reader"
    _screenshot(page, screenshots / "web-mammo-drawn.png")


def test_a_real_mammogram_shows_its_verdict_without_scrolling(page):
    """A real CDD-CESM view (pixel size unknown, read as 1 mm): the Rad-score is greyed as outside the training
    data, with the reasons, and the result is scrolled into view above the long case notes."""
    from smartimaging.web.cases import sample_cases

    name = "Real CDD-CESM P121 L-CC (malignant mass)"
    if name not in [case.name for case in sample_cases()["MammoRadiomics"]]:
        pytest.skip("../shared/realdata/mammo_cddcesm is absent (see its README.md)")
    open_module(page, "Mammography Rad-score")
    assert "CDD-CESM P121" in load_sample(page, name)
    assert "Pixel size unknown" in page.inner_text(".v-navigation-drawer--left")  # the case notes say so
    click_and_wait_idle(page, "Segment")
    click_and_wait_idle(page, "Compute Rad-score")
    page.wait_for_timeout(600)  # the panel scrolls to the new result
    assert _domain_verdict_beside_the_score(page) == "outside"
    assert "pixel size" in page.inner_text("#si-domain")
    assert page.locator("#si-domain").bounding_box()["y"] < VIEWPORT["height"]  # its reasons start on screen


def test_breast_lvi_flow_with_an_erase_edit(page, screenshots):
    open_module(page, "Breast MRI LVI")
    assert "LVI positive" in load_sample(page)
    click_and_wait_idle(page, "Segment")
    voxels = segment_counts(page)["Breast mass"]
    assert voxels > 50
    click_and_wait_idle(page, "Predict LVI")
    rows = table(page)
    assert set(rows) >= {"DCE", "T2", "fused"}
    fused = float(rows["fused"][1])
    assert 0 <= fused <= 1
    assert rows["fused"][0] == "mean of the models' probabilities"
    assert _words_split_or_cells_clipped(page) == []  # "LVI positive", not "LVI positi / ve"
    assert page.inner_text("#si-headline").startswith(f"LVI probability {fused:.3f}")
    _domain_verdict_beside_the_score(page)
    _screenshot(page, screenshots / "web-lvi.png")

    _erase_at_lesion(page, "BreastLVI")
    page.wait_for_function(f"!document.querySelector('#si-segments').innerText.includes(': {voxels} ')",
                           timeout=60_000)
    assert segment_counts(page)["Breast mass"] < voxels
    click_and_wait_idle(page, "Predict LVI")
    rows = table(page)
    assert float(rows["VOI"][1]) < 1  # Dice AI vs edited VOI


def test_dce_synthesis_side_by_side(page, screenshots):
    open_module(page, "Synthetic DCE")
    assert "two lesions" in load_sample(page)
    assert page.get_by_role("button", name="Segment", exact=True).count() == 0  # no ROI in this module
    click_and_wait_idle(page, "Synthesize DCE")
    wait_for_views_rendered(page, 4)  # T1 | synthetic | real | subtraction MIP
    assert view_images(page).count() == 4
    rows = table(page)
    ssim = float(rows["SSIM (mean of slices)"][0])
    assert 0.6 < ssim <= 1
    assert f"SSIM {ssim:.3f}" in page.inner_text("#si-headline")
    assert float(rows["PSNR (dB, mean of slices)"][0]) > 15
    _screenshot(page, screenshots / "web-dce.png")


def test_upload_a_mammogram_place_a_point_and_segment(page, tmp_path, station_tmp):
    from PIL import Image

    from smartimaging.phantoms.mammo import make_mammo_phantom

    open_module(page, "Mammography Rad-score")
    load_sample(page)
    click_and_wait_idle(page, "Segment")
    editor_segments = page.locator(".v-navigation-drawer--right .v-list-item input")  # segment names
    editor_segments.first.wait_for()
    assert [field.input_value() for field in editor_segments.all()] == ["Breast mass"]
    corrupt = tmp_path / "scan.dcm"
    corrupt.write_bytes(b"not a dicom file at all")
    _upload(page, corrupt)
    assert "scan.dcm" in _error(page)
    assert not _uploaded(station_tmp, "scan.dcm")  # a refused file is deleted at once
    page.wait_for_timeout(500)
    assert [field.input_value() for field in editor_segments.all()] == ["Breast mass"]  # still being edited

    case = make_mammo_phantom(920_011, "mass", 1)
    path = tmp_path / "uploaded_mammogram.png"
    Image.fromarray(case.image.round().astype(np.uint16)).save(path)
    page.get_by_label("Pixel size mm (PNG/PGM)").fill("0.2")
    page.locator("input[type=file]").set_input_files(str(path))
    page.wait_for_function("document.querySelector('#si-case').innerText.includes('uploaded_mammogram.png')",
                           timeout=30_000)
    wait_for_views_rendered(page, 1)
    reset_views_when_sized(page)

    # The view fits the whole image: its centre is the image centre, its scale the larger side.
    rows, cols = case.image.shape
    box = view_images(page).first.bounding_box()
    scale = min(box["width"] / cols, box["height"] / rows)
    row, col = case.centre
    x = box["x"] + box["width"] / 2 + (col - (cols - 1) / 2) * scale
    y = box["y"] + box["height"] / 2 + (row - (rows - 1) / 2) * scale
    page.get_by_role("button", name="Place lesion point").click()
    page.get_by_text("Click on the lesion in the view").wait_for()
    page.mouse.click(x, y)
    page.get_by_text("Click on the lesion in the view").wait_for(state="detached")
    click_and_wait_idle(page, "Segment")
    assert not _error(page)
    assert segment_counts(page)["Breast mass"] > 50

    # A point placed beside the image is refused at once; the previous point stays and Segment still works.
    free_x, free_y = box["width"] - cols * scale, box["height"] - rows * scale
    assert max(free_x, free_y) > 10  # the view shows background beside the image
    outside = (box["x"] + free_x / 4, box["y"] + box["height"] / 2) if free_x > free_y else \
        (box["x"] + box["width"] / 2, box["y"] + free_y / 4)
    page.get_by_role("button", name="Place lesion point").click()
    page.get_by_text("Click on the lesion in the view").wait_for()
    page.mouse.click(*outside)
    page.get_by_text("Click on the lesion in the view").wait_for(state="detached")
    assert "outside the image" in _error(page)
    click_and_wait_idle(page, "Segment")
    assert not _error(page)
    assert segment_counts(page)["Breast mass"] > 50


def test_result_warnings_are_shown_above_the_headline(page, tmp_path):
    from PIL import Image

    from smartimaging.phantoms.mammo import make_mammo_phantom

    open_module(page, "Mammography Rad-score")
    path = tmp_path / "fine_pixels.png"
    Image.fromarray(make_mammo_phantom(920_012, "mass", 1).image.round().astype(np.uint16)).save(path)
    page.get_by_label("Pixel size mm (PNG/PGM)").fill("0.1")  # not the 0.2 mm the classifier was trained on
    _upload(page, path)
    assert "fine_pixels.png" in page.inner_text("#si-case") and _upload_field(page) == " (0 files)"
    click_and_wait_idle(page, "Segment")
    click_and_wait_idle(page, "Compute Rad-score")
    warnings = page.locator("#si-warnings")
    assert warnings.is_visible()
    text = warnings.inner_text()
    assert "trained on 0.2 mm pixels but this image has 0.1 mm" in text
    # the page brings the result into view by itself after a compute (SHOW_RESULT_SCRIPT), the reader never scrolls
    page.wait_for_function("document.getElementById('si-warnings').getBoundingClientRect().bottom <= "
                           "window.innerHeight", timeout=5000)
    box, headline = warnings.bounding_box(), page.locator("#si-headline").bounding_box()
    assert box["y"] + box["height"] <= headline["y"] + 1  # directly above the score
    assert box["y"] + box["height"] <= VIEWPORT["height"]  # seen without scrolling
    assert "Warning" not in table(page)  # not a row buried in the table
    assert _domain_verdict_beside_the_score(page) == "outside"  # 0.1 mm pixels: not what the classifier learned
    assert "pixel size" in page.inner_text("#si-domain")
    page.get_by_label("Pixel size mm (PNG/PGM)").fill("")


def test_upload_a_dicom_series_and_a_nifti_volume_to_dce_synthesis(page, tmp_path, station_tmp):
    import SimpleITK as sitk
    from dicom_series import write_dicom_series

    from smartimaging.phantoms.breast_mri import make_breast_mri_phantom

    case = make_breast_mri_phantom(930_021, shape=(12, 96, 96))
    t1 = sitk.GetImageFromArray(np.round(case.t1).astype(np.float32))
    t1.SetSpacing((1.5, 1.5, 3.0))
    t1.SetOrigin((-70.0, -40.0, -15.0))
    write_dicom_series(t1, tmp_path / "t1_series", "1.2.826.0.1.3680043.2.1.77")
    dce = sitk.GetImageFromArray(case.dce.astype(np.float32))
    dce.CopyInformation(t1)
    sitk.WriteImage(dce, str(tmp_path / "dce.nii.gz"))

    open_module(page, "Synthetic DCE")
    page.locator("input[type=file]").set_input_files(sorted((tmp_path / "t1_series").iterdir()))
    page.wait_for_function("document.querySelector('#si-case').innerText.includes('Uploaded:')", timeout=60_000)
    assert "T1: 96×96×12 voxels of 1.5×1.5×3 mm at (-70, -40, -15)" in page.inner_text("body")
    page.get_by_label("Upload as").click(force=True)
    page.get_by_role("option", name=re.compile("^DCE")).click()
    page.locator("input[type=file]").set_input_files(str(tmp_path / "dce.nii.gz"))
    page.wait_for_function("document.querySelector('#si-case').innerText.includes('DCE: dce.nii.gz')",
                           timeout=60_000)
    assert "DCE: 96×96×12 voxels of 1.5×1.5×3 mm" in page.inner_text("body")
    click_and_wait_idle(page, "Synthesize DCE")
    assert not _error(page)
    assert 0 < float(table(page)["SSIM (mean of slices)"][0]) <= 1

    # Another DCE image replaces the first one: the first one's upload is deleted, the T1 series' stays.
    assert len(_uploaded(station_tmp, "dce.nii.gz")) == 1
    (tmp_path / "dce.nii.gz").rename(tmp_path / "dce_again.nii.gz")
    _upload(page, tmp_path / "dce_again.nii.gz")
    assert "DCE: dce_again.nii.gz" in page.inner_text("#si-case")
    assert not _uploaded(station_tmp, "dce.nii.gz")
    assert len(_uploaded(station_tmp, "dce_again.nii.gz")) == 1
    assert len(_uploaded(station_tmp, "*.dcm")) == 12


def test_an_upload_arrives_whole_and_is_deleted_when_another_case_is_loaded(page, tmp_path, station_tmp):
    from PIL import Image

    open_module(page, "Mammography Rad-score")
    noise = np.random.default_rng(7).integers(0, 65535, (1100, 1100), dtype=np.uint16)
    path = tmp_path / "noise.png"
    Image.fromarray(noise).save(path)
    assert 2 * MB < path.stat().st_size < 3 * MB  # more than one 2 MB chunk, within the test station's limit
    page.get_by_label("Pixel size mm (PNG/PGM)").fill("0.1")
    _upload(page, path)
    assert not _error(page)
    assert "Uploaded: noise.png" in page.inner_text("#si-case")
    (stored,) = _uploaded(station_tmp, "noise.png")
    assert stored.read_bytes() == path.read_bytes()

    load_sample(page)
    assert not _uploaded(station_tmp, "noise.png")  # the case left the scene, its files left the disk


def test_an_over_limit_upload_is_refused_before_any_content_is_sent(page, tmp_path, station_tmp):
    open_module(page, "Mammography Rad-score")
    case, uploads = page.inner_text("#si-case"), _uploaded(station_tmp)
    big = tmp_path / "scan.dcm"
    with big.open("wb") as file:
        file.truncate(5 * MB)
    _upload(page, big)
    assert _upload_field(page) == " (0 files)"  # no name left that reads as "scan.dcm is loaded"
    assert _error(page) == ("scan.dcm is 5 MB; the station accepts files up to 3 MB. Export a smaller file, or start "
                            "the station with a larger SMARTIMAGING_UPLOAD_MAX_FILE_MB.")
    assert page.inner_text("#si-case") == case  # the scene is unchanged
    assert _uploaded(station_tmp) == uploads  # nothing written

    halves = [tmp_path / "a.dcm", tmp_path / "b.dcm"]
    for half in halves:
        with half.open("wb") as file:
            file.truncate(5 * MB // 2)
    _upload(page, *halves)
    assert _error(page) == ("The 2 files are 5 MB together; the station accepts up to 4 MB per upload. Upload one "
                            "series (or one file) at a time, or start the station with a larger "
                            "SMARTIMAGING_UPLOAD_MAX_TOTAL_MB.")
    assert page.inner_text("#si-case") == case
    assert _uploaded(station_tmp) == uploads
    assert page.get_by_role("button", name="Load sample").is_enabled()


def test_files_that_are_not_one_image_are_refused_in_the_readers_words(page, tmp_path, station_tmp):
    from PIL import Image

    for name in ("a.png", "b.png"):
        Image.fromarray(np.arange(2500, dtype=np.uint16).reshape(50, 50)).save(tmp_path / name)
    open_module(page, "Mammography Rad-score")
    _upload(page, tmp_path / "a.png", tmp_path / "b.png")
    assert _error(page) == "Mammography Rad-score reads one image file; 2 files were uploaded"
    assert "a.png" not in _upload_field(page)
    open_module(page, "Synthetic DCE")
    assert _error(page) == ""  # one module's refusal is not shown in another
    _upload(page, tmp_path / "a.png", tmp_path / "b.png")  # the same files again: sent again
    assert _error(page) == "The upload (2 files) holds no readable DICOM series"
    assert str(station_tmp) not in page.inner_text("body")
    assert not _uploaded(station_tmp, "a.png")
    load_sample(page)  # another case: the refusal is over
    assert _error(page) == ""


def test_an_upload_can_be_cancelled(page, station_tmp):
    open_module(page, "Mammography Rad-score")
    upload = page.evaluate("trame.trigger('si_upload_begin', [[{ name: 'slow.dcm', size: 2000000 }]])")
    assert len(_uploaded(station_tmp, "slow.dcm")) == 1
    page.get_by_role("button", name="Cancel").click()
    page.get_by_text("Upload cancelled: nothing was loaded").wait_for()
    assert not _uploaded(station_tmp, "slow.dcm")
    assert page.evaluate(f"trame.trigger('si_upload_chunk', [{upload}, 0, 0, new DataView(new ArrayBuffer(9))])") \
        is False
    assert page.get_by_role("button", name="Load sample").is_enabled()


def test_a_client_sending_more_than_it_declared_is_stopped_at_that_chunk(page, station_tmp):
    open_module(page, "Mammography Rad-score")
    case = page.inner_text("#si-case")
    answers = page.evaluate("""async () => {
        const upload = await trame.trigger('si_upload_begin', [[{ name: 'liar.dcm', size: 1000 }]]);
        const first = await trame.trigger('si_upload_chunk', [upload, 0, 0, new DataView(new ArrayBuffer(600))]);
        const second = await trame.trigger('si_upload_chunk', [upload, 0, 600, new DataView(new ArrayBuffer(600))]);
        const third = await trame.trigger('si_upload_chunk', [upload, 0, 1200, new DataView(new ArrayBuffer(10))]);
        return [upload > 0, first, second, third];
    }""")
    assert answers == [True, True, False, False]
    page.get_by_text("liar.dcm is larger than the 1000 bytes it declared: upload stopped").wait_for()
    assert not _uploaded(station_tmp, "liar.dcm")
    assert page.inner_text("#si-case") == case
    assert page.get_by_role("button", name="Load sample").is_enabled()


def test_default_binding_is_loopback_only(station):
    url, process = station
    port = int(url.rsplit(":", 1)[1].strip("/"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("10.255.255.255", 1))  # no packet is sent; this finds the machine's outward address
        outward = probe.getsockname()[0]
    if outward.startswith("127."):
        pytest.skip("this machine has no non-loopback address to check against")
    with pytest.raises(OSError):
        socket.create_connection((outward, port), timeout=2).close()
    assert "Single-user mode" in station_log(process)


def test_another_host_only_with_a_warning():
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "smartimaging.cli", "app", "--host", "0.0.0.0", "--port",
                                str(port), "--no-browser", "--timeout", "1"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        first_line = process.stderr.readline()
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert first_line.startswith("WARNING: serving on 0.0.0.0")
    assert "no login" in first_line


def test_a_bad_upload_limit_stops_the_station_with_one_line():
    result = subprocess.run([sys.executable, "-m", "smartimaging.cli", "app", "--port", str(free_port()),
                             "--no-browser"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO), "SMARTIMAGING_UPLOAD_MAX_FILE_MB": "lots"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == ("error: SMARTIMAGING_UPLOAD_MAX_FILE_MB=lots is not a size in "
                                                       "whole megabytes (e.g. 512)")
    assert "Traceback" not in result.stderr


def test_timeout_stops_a_station_without_browser_tabs():
    process = subprocess.Popen([sys.executable, "-m", "smartimaging.cli", "app", "--port", str(free_port()),
                                "--no-browser", "--timeout", "2"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert process.wait(timeout=90) == 0  # while the default, --timeout 0, keeps the fixture's station up
    finally:
        if process.poll() is None:
            process.kill()
