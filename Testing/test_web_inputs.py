"""The station's inputs and progress in headless Chromium: a file of the wrong kind is refused in each tab with the
CLI's own message and nothing is loaded; a file uploaded again under the same name (refused, loaded, or changed) is
taken again; the upload field keeps no file name across tabs; long steps say what they do with a count."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("trame_slicer")
pytest.importorskip("playwright.sync_api")

from web_station import (  # noqa: E402
    click_and_wait_idle,
    load_sample,
    open_module,
    screenshot_folder,
    station_page,
    steps_done,
)

from smartimaging.errors import InputError  # noqa: E402
from smartimaging.io import read_series_or_volume  # noqa: E402

# Records every text the progress line shows (a step on the warm worker is over in a second: polling would miss it).
PROGRESS_RECORDER = """
() => {
  window.siProgress = [];
  new MutationObserver(() => {
    const text = document.querySelector('#si-progress')?.innerText;
    if (text && window.siProgress.at(-1) !== text) window.siProgress.push(text);
  }).observe(document.body, { subtree: true, childList: true, characterData: true });
}
"""


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    with station_page(tmp_path_factory) as (page, _process):
        page.evaluate(PROGRESS_RECORDER)
        yield page


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return screenshot_folder(tmp_path_factory)


def _error(page) -> str:
    return page.inner_text("#si-error") if page.locator("#si-error").count() else ""


def _upload_field(page) -> str:
    """The file names the upload field shows, and how many files its input holds."""
    shown = page.locator(".v-file-input .v-field__input").inner_text().strip()
    return f"{shown} ({page.evaluate('document.querySelector(`input[type=file]`).files.length')} files)"


def _choose_role(page, label: str) -> None:
    page.get_by_role("combobox", name="Upload as").click(force=True)  # the selected text lies over the field
    page.get_by_role("option", name=label, exact=True).click()
    page.get_by_role("listbox").wait_for(state="hidden")


def _upload(page, path: Path) -> None:
    """Send a file through the page's file input and wait until the step that loads or refuses it is over."""
    page.wait_for_function("!document.querySelector('#si-progress')", timeout=60_000)
    done = steps_done(page)
    page.locator("input[type=file]").set_input_files(str(path))
    page.wait_for_function(f"Number(document.querySelector('#si-steps-done').textContent) > {done}", timeout=60_000)
    page.wait_for_function("!document.querySelector('#si-progress')", timeout=60_000)


def _cli_message(check, path: Path, *arguments) -> str:
    """The refusal of the CLI's own check for that file."""
    with pytest.raises(InputError) as refused:
        check(read_series_or_volume(path), path.name, *arguments)
    return str(refused.value)


def _mri(path: Path, slices: int) -> Path:
    array = np.random.default_rng(slices).uniform(100, 900, (slices, 64, 64)).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.8, 2.0))
    sitk.WriteImage(image, str(path))
    return path


def test_a_file_of_the_wrong_kind_is_refused_in_each_tab_with_the_clis_message(page, tmp_path, screenshots):
    from PIL import Image

    from smartimaging.dce.volumes import check_mr_volume as dce_check
    from smartimaging.lvi.preprocess import check_mr_volume as lvi_check
    from smartimaging.mammo.images import load_mammogram

    png = tmp_path / "mammogram.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 4000, (300, 200), dtype=np.uint16)).save(png)
    mri = _mri(tmp_path / "breast_mri.nrrd", 20)
    with pytest.raises(InputError) as refused:
        load_mammogram(mri)
    expected = {
        ("Breast MRI LVI", "DCE (DICOM series, NRRD, NIfTI)", png): _cli_message(lvi_check, png),
        ("Breast MRI LVI", "FS-T2WI (DICOM series, NRRD, NIfTI)", png): _cli_message(lvi_check, png),
        ("Synthetic DCE", "T1WI (DICOM series, NRRD, NIfTI)", png): _cli_message(dce_check, png, "T1"),
        ("Synthetic DCE", "DCE (DICOM series, NRRD, NIfTI)", png): _cli_message(dce_check, png, "DCE"),
        ("Mammography Rad-score", None, mri): str(refused.value),
    }
    assert expected[("Breast MRI LVI", "DCE (DICOM series, NRRD, NIfTI)", png)] == (
        "mammogram.png is a single 2D image; BreastLVI needs MRI volumes (several slices), not a single 2D image")
    for (title, role, path), message in expected.items():
        open_module(page, title)
        if role:
            _choose_role(page, role)
        case = page.inner_text("#si-case")
        _upload(page, path)
        assert _error(page) == message
        assert page.inner_text("#si-case") == case  # nothing was loaded: the tab's case and its notes stay
        assert "Uploaded" not in page.inner_text("#si-case") and path.name not in page.inner_text("#si-case")
        assert path.name not in _upload_field(page) and "(0 files)" in _upload_field(page)
        if title == "Breast MRI LVI" and role.startswith("DCE"):
            page.wait_for_timeout(800)
            page.screenshot(path=str(screenshots / "station_input_refused_lvi.png"))


def test_the_same_file_name_is_taken_again_and_no_name_is_carried_across_tabs(page, tmp_path):
    open_module(page, "Breast MRI LVI")
    _choose_role(page, "DCE (DICOM series, NRRD, NIfTI)")
    path = tmp_path / "dce.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((64, 48), np.float32)), str(path))  # 2D: refused
    for _ in range(2):  # refused twice: the second upload of the same name is not ignored
        done = steps_done(page)
        _upload(page, path)
        assert steps_done(page) == done + 1 and "is a single 2D image" in _error(page)
    for slices in (16, 20):  # then loaded, then changed under the same name and loaded again
        _upload(page, _mri(path, slices))
        assert _error(page) == ""
        assert page.inner_text("#si-case") == "Uploaded: dce.nrrd"
        assert page.get_by_text(re.compile(rf"^DCE: 64×64×{slices} voxels")).is_visible()
        assert "dce.nrrd" not in _upload_field(page)
    shown = page.evaluate("window.siProgress")
    assert any(re.fullmatch(r"Upload: file 1 of 1, .+ of .+", text) for text in shown), shown
    assert "Upload: reading the DCE image (1 file)" in shown
    for title in ("Synthetic DCE", "Mammography Rad-score", "Breast MRI LVI"):
        open_module(page, title)
        assert "dce.nrrd" not in _upload_field(page) and "(0 files)" in _upload_field(page)


def test_long_steps_say_what_they_do_with_a_count(page):
    open_module(page, "Bone scan BSTBI")
    load_sample(page)  # its first sample: the phantom with 5 metastases
    page.evaluate("window.siProgress = []")
    click_and_wait_idle(page, "Segment")
    shown = page.evaluate("window.siProgress")
    assert any(re.fullmatch(r"Segment: (anterior|posterior) view [12] of 2, network [12] of 2 \(.+\)", text)
               for text in shown), shown
    assert "working" not in shown

    open_module(page, "Breast MRI LVI")
    page.evaluate("window.siProgress = []")
    load_sample(page, "Phantom cancer, LVI positive")  # its first sample (an upload is loaded: none is chosen)
    assert "Load sample: reading the T2 image (2 of 2)" in page.evaluate("window.siProgress")

    open_module(page, "Synthetic DCE")
    load_sample(page)
    page.evaluate("window.siProgress = []")
    click_and_wait_idle(page, "Synthesize DCE")
    shown = page.evaluate("window.siProgress")
    assert any(re.fullmatch(r"Synthesize DCE: slice \d+ of \d+", text) for text in shown), shown
