"""Teaching mode in the browser station (headless Debian Chromium): a student session on a 3-case phantom teaching set
of the mammography module. Before Check the AI's proposal and the answer key are not in the scene (the scene's
segmentations as the station reports them, and the key's blue in the view), Segment is off and Check is off until
something is drawn, and `si_teach_active` (for the worklist's Next) is set until Check; the student paints with the
Segment Editor's brush and makes the call; Check shows Dice numbers equal to the core's `check_answer` on the same
masks (the outlines the station kept, the key's PNG), the three outlines (student, key, AI) with a legend in their
colours, and locks the outline; a case checked again replaces its row. The score sheet (with the student's call and
the key's label) downloaded as CSV has the page's rows; a sample loaded over the teaching case takes its outlines
away and frees the tab's buttons. A bone-scan student case is checked spot by spot (a positive study with a spot
found and a false positive, a negative one checked with nothing drawn: no Dice, no NaN). A hand-made PNG set without
pixel sizes asks for the set's (the station's pixel-size field emptied meanwhile) before its cases open. Screenshots
go to $SMARTIMAGING_SCREENSHOTS or to pytest's temporary folder."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trame_slicer")
pytest.importorskip("playwright.sync_api")

import SimpleITK as sitk  # noqa: E402
from PIL import Image  # noqa: E402
from web_station import (  # noqa: E402
    choose_effect,
    click_and_wait_idle,
    image_point_on_page,
    load_sample,
    open_module,
    reset_views_when_sized,
    screenshot_folder,
    station_page,
    steps_done,
    view_images,
    wait_for_views_rendered,
)

from smartimaging.mammo.cohort import write_mammo_phantom_cohort  # noqa: E402
from smartimaging.phantoms.mammo import PIXEL_MM  # noqa: E402
from smartimaging.teaching import COLUMNS, check_answer, check_spots, slice_to_show  # noqa: E402
from smartimaging.teaching_scene import OUTLINES  # noqa: E402

BRUSH_MM = 2.5  # the mass brush's default diameter


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    with station_page(tmp_path_factory) as (page, _process):
        open_module(page, "Mammography Rad-score")
        wait_for_views_rendered(page, 1)
        yield page


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return screenshot_folder(tmp_path_factory)


def _scene(page) -> list[dict]:
    """The scene's segmentations as the station reports them (name, teaching outline, shown, filled)."""
    return page.evaluate("() => window.trame.state.get('si_teach_scene')")


def _active(page) -> bool:
    """Whether the station says a teaching case is open and unchecked in the mammography tab."""
    return page.evaluate("() => window.trame.state.get('si_teach_active').MammoRadiomics")


def _key_blue(page) -> int:
    """Pixels of the answer key's blue outline in the first view."""
    return _pixels(page, "key")


def _paint(page, key: np.ndarray, step: float = 0.8 * BRUSH_MM / PIXEL_MM) -> None:
    """Brush strokes across the middle of the key's bounding box (rows `step` apart: about a brush)."""
    reset_views_when_sized(page)
    choose_effect(page, "mdi-brush")
    rows, cols = np.nonzero(key)
    height, width = rows.max() - rows.min(), cols.max() - cols.min()
    for row in np.arange(rows.min() + 0.2 * height, rows.max() - 0.2 * height + 1, step):
        start = image_point_on_page(page, key.shape[::-1], (cols.min() + 0.2 * width, row))
        end = image_point_on_page(page, key.shape[::-1], (cols.max() - 0.2 * width, row))
        page.mouse.move(*start)
        page.mouse.down()
        page.mouse.move(*end, steps=8)
        page.mouse.up()


def _choose_call(page, call: str) -> None:
    page.get_by_role("combobox", name="Your call: Pathology").click(force=True)  # the selected text lies over the field
    page.get_by_role("option", name=call, exact=True).click()


def test_a_student_session_on_three_phantom_cases(page, screenshots, tmp_path):
    click_and_wait_idle(page, "Phantom teaching set")
    assert page.locator("#si-teach-error").count() == 0
    folder = Path(page.input_value("#si-teach-folder"))
    with open(folder / "manifest.csv", encoding="utf-8", newline="") as f:
        cases = list(csv.DictReader(f))
    assert page.inner_text("#si-teach-title") == f"Teaching set {folder.name}: 3 cases with an answer key"
    labels = {"0": "benign", "1": "malignant"}
    calls = [labels[cases[0]["label"]], labels[str(1 - int(cases[1]["label"]))], labels[cases[2]["label"]]]
    shown = []
    for index, (case, call) in enumerate(zip(cases, calls, strict=True)):
        assert page.inner_text("#si-teach-case") == f"Case {index + 1} of 3: {case['patient_id']}"
        assert page.get_by_role("button", name="Segment", exact=True).is_disabled()  # it would show the AI
        assert page.get_by_role("button", name="Compute Rad-score").is_disabled()
        assert _active(page)
        click_and_wait_idle(page, "Draw ROI by hand")
        assert page.locator("#si-teach-check").is_disabled()  # nothing drawn yet
        key = np.asarray(Image.open(folder / case["mask"])) != 0
        _paint(page, key)
        page.wait_for_function("!document.querySelector('#si-teach-check').disabled", timeout=30_000)
        before = _scene(page)
        assert not any(node["outline"] for node in before)  # neither the key nor the AI is in the scene
        assert [node["name"] for node in before if node["visible"]] == [f"{case['patient_id']} mammogram drawn "
                                                                         "mass"]
        assert _key_blue(page) == 0
        if index == 0:
            page.screenshot(path=str(screenshots / "web-teaching-drawn.png"))
        _choose_call(page, call)
        click_and_wait_idle(page, "Check")
        assert page.locator("#si-teach-error").count() == 0

        checked = folder.parent / _set_folder(page, folder) / "checked" / case["patient_id"]
        student = sitk.ReadImage(str(checked / "student.seg.nrrd"))
        key_image = sitk.GetImageFromArray(key[None].astype(np.uint8))
        key_image.CopyInformation(student)
        expected = check_answer(student, key_image, sitk.ReadImage(str(checked / "ai.seg.nrrd")), call,
                                labels[case["label"]])
        assert page.inner_text("#si-teach-dice-student") == f"{expected.dice_student_key:.3f}"
        assert page.inner_text("#si-teach-dice-ai") == f"{expected.dice_ai_key:.3f}"
        assert 0.3 < expected.dice_student_key < 0.95 and expected.dice_ai_key > 0.5
        assert page.inner_text("#si-teach-call-result").startswith(expected.call)
        assert expected.call == ("wrong" if index == 1 else "right")
        assert page.inner_text("#si-teach-student") == expected.student.summary
        assert page.inner_text("#si-teach-ai") == expected.ai.summary
        assert "prompted at the answer key's centre" in page.inner_text("#si-teach-ai-source")

        if index == 0:
            page.screenshot(path=str(screenshots / "web-teaching-checked.png"))
        after = _scene(page)
        outlines = {node["outline"]: node for node in after if node["outline"]}
        assert set(outlines) == {"student", "key", "ai"}
        assert all(node["visible"] and not node["filled"] for node in outlines.values())
        assert [node["name"] for node in after if node["visible"] and not node["outline"]] == []  # locked
        assert page.locator("#si-teach-legend").inner_text().split("\n") == [o.title for o in OUTLINES]
        swatches = page.locator("#si-teach-legend > div > span:first-child")
        assert [swatches.nth(i).evaluate("e => getComputedStyle(e).borderTopColor") for i in range(3)] == [
            f"rgb({', '.join(str(round(255 * c)) for c in o.color)})" for o in OUTLINES]
        assert not _active(page) and page.locator("#si-teach-view").count() == 0  # one slice: none to name
        assert _key_blue(page) > 50
        assert page.get_by_role("button", name="Draw ROI by hand").is_disabled()
        assert page.locator("#si-no-roi").count() == 0 and page.locator("#si-teach-locked").is_visible()
        assert page.locator("#si-teach-check").is_disabled()
        shown.append([page.inner_text("#si-teach-dice-student"), page.inner_text("#si-teach-dice-ai")])
        if index < 2:
            click_and_wait_idle(page, "Next")

    rows = page.locator("#si-teach-table tbody tr")
    on_page = [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]
    assert [row[:3] for row in on_page] == [[c["patient_id"], *dice] for c, dice in zip(cases, shown, strict=True)]
    assert [row[3:6] for row in on_page] == [[call, labels[c["label"]], result] for c, call, result in
                                             zip(cases, calls, ["right", "wrong", "right"], strict=True)]
    assert all(float(row[6]) > 0 for row in on_page)
    assert page.inner_text("#si-teach-summary").startswith("3 cases: your mean Dice")
    assert page.inner_text("#si-teach-summary").endswith("calls right 2/3")
    page.screenshot(path=str(screenshots / "web-teaching-sheet.png"))

    click_and_wait_idle(page, "Previous")  # case 2 again: drawn anew (nothing of the first try shows), checked
    assert page.inner_text("#si-teach-case") == f"Case 2 of 3: {cases[1]['patient_id']}"
    assert not any(node["outline"] for node in _scene(page))
    click_and_wait_idle(page, "Draw ROI by hand")
    _paint(page, np.asarray(Image.open(folder / cases[1]["mask"])) != 0)
    page.wait_for_function("!document.querySelector('#si-teach-check').disabled", timeout=30_000)
    _choose_call(page, calls[1])
    click_and_wait_idle(page, "Check")
    assert page.inner_text("#si-teach-replaced") == (f"Case {cases[1]['patient_id']} was checked again: its new row "
                                                     f"replaces the earlier one (your Dice then {shown[1][0]}).")
    on_page[1] = rows.nth(1).locator("td").all_inner_texts()
    assert rows.count() == 3 and on_page[1][:6] == [cases[1]["patient_id"],
                                                    page.inner_text("#si-teach-dice-student"),
                                                    page.inner_text("#si-teach-dice-ai"), calls[1],
                                                    labels[cases[1]["label"]], "wrong"]

    with page.expect_download(timeout=60_000) as info:
        page.locator("#si-teach-download").click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    with open(path, encoding="utf-8", newline="") as f:
        downloaded = list(csv.reader(f))
    assert downloaded[0] == list(COLUMNS) and COLUMNS[:8] == ("case", "student_dice", "ai_dice", "student_call",
                                                              "key_label", "call", "seconds", "time")
    assert [row[:7] for row in downloaded[1:]] == on_page
    assert all(cell == "" for row in downloaded[1:] for cell in row[8:])  # no spot counts: one lesion, region-wise

    load_sample(page)  # another image replaces the teaching case: its outlines leave, the tab's buttons are free
    page.wait_for_function("document.querySelector('#si-teach-case')?.innerText.startsWith("
                           "'The teaching case was replaced by another image')", timeout=30_000)  # the state's echo
    assert not any(node["outline"] for node in _scene(page))
    assert page.get_by_role("button", name="Segment", exact=True).is_enabled()
    assert page.locator("#si-teach-table tbody tr").count() == 3  # the session's sheet stays


def test_a_png_set_without_pixel_sizes_asks_for_the_sets_pixel_size(page, screenshots, tmp_path):
    """A hand-made set of PNG files whose manifest has no pixel_mm: the section asks for the set's pixel size before
    the first case opens (the views empty, the station's field showing no earlier image's size), refuses 0 with the
    worklist's words, then opens the case at the size given, and the next case without asking again."""
    open_module(page, "Mammography Rad-score")
    field = page.get_by_label("Pixel size mm (PNG/PGM)")
    assert field.input_value() == f"{PIXEL_MM:g}"  # the phantom sample's own size
    folder = tmp_path / "set"
    write_mammo_phantom_cohort(folder, 3, seed=3, kind="mass")
    with open(folder / "manifest.csv", encoding="utf-8", newline="") as f:
        rows = [{k: v for k, v in row.items() if k != "pixel_mm"} for row in csv.DictReader(f)]
    with open(folder / "manifest.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    page.locator("#si-teach-folder").fill(str(folder))
    click_and_wait_idle(page, "Open set")
    assert page.inner_text("#si-teach-notice") == (  # the first test's sheet: said to be gone, not dropped silently
        "A new score sheet: the previous set's (3 cases checked) is no longer offered; download a score sheet "
        "before opening another set.")
    assert page.inner_text("#si-teach-pixel").startswith("The images of this teaching set (PNG files) store no pixel "
                                                         "size and its manifest.csv gives none")
    assert page.inner_text("#si-teach-case") == f"Case 1 of 3: {rows[0]['patient_id']}"
    assert page.inner_text("#si-case") == "No case loaded" and page.locator("#si-teach-check").count() == 0
    assert field.input_value() == ""  # not the earlier image's size
    page.wait_for_timeout(500)  # the panel scrolled to the question
    page.screenshot(path=str(screenshots / "web-teaching-pixel-size.png"))
    for text in ("0", "0.15"):
        page.locator("#si-teach-pixel-mm").fill(text)
        done = steps_done(page)
        page.locator("#si-teach-pixel-open").click()
        page.wait_for_function(f"Number(document.querySelector('#si-steps-done').textContent) > {done}",
                               timeout=120_000)
        if text == "0":
            assert page.inner_text("#si-teach-error") == ("Pixel size 0 is not a mammogram pixel size (expected 0.02 "
                                                          "to 10 mm)")
            assert page.locator("#si-teach-pixel").is_visible() and page.inner_text("#si-case") == "No case loaded"
    assert page.locator("#si-teach-pixel").count() == 0 and page.locator("#si-teach-error").count() == 0
    assert page.inner_text("#si-teach-case") == f"Case 1 of 3: {rows[0]['patient_id']}"
    assert page.locator("#si-teach-hint").is_visible() and field.input_value() == "0.15"  # the case read at 0.15 mm
    click_and_wait_idle(page, "Next")  # the set's size: the next case opens without asking
    assert page.inner_text("#si-teach-case") == f"Case 2 of 3: {rows[1]['patient_id']}"
    assert page.locator("#si-teach-pixel").count() == 0 and field.input_value() == "0.15"


def _set_folder(page, phantom: Path) -> str:
    """The teaching set's scratch folder (beside the phantom set, in the station's scratch)."""
    folders = sorted(p.name for p in phantom.parent.iterdir() if p.name.startswith("set-"))
    assert len(folders) == 1
    return folders[0]


def test_an_lvi_case_outlined_on_one_slice_is_shown_on_that_slice(page, screenshots):
    """A student outlines one slice of a multi-slice lesion: after Check the views stay where the student's outline
    and the key are seen together (the slice `slice_to_show` names, the page says which), and the feedback says the
    outline covers too few slices."""
    open_module(page, "Breast MRI LVI")
    click_and_wait_idle(page, "Phantom teaching set")
    assert page.locator("#si-teach-error").count() == 0
    assert page.evaluate("window.trame.state.get('si_case').MammoRadiomics").endswith(
        " (its teaching set is closed)")  # the mammography tab's set closed; its last case still shown there
    folder = Path(page.input_value("#si-teach-folder"))
    with open(folder / "manifest.csv", encoding="utf-8", newline="") as f:
        case = next(csv.DictReader(f))
    key = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / case["voi"]))) != 0
    click_and_wait_idle(page, "Draw ROI by hand")
    _paint(page, key.any(axis=0), step=1.0)  # strokes on the slice the views show (a 2 mm brush on 2 mm pixels)
    page.wait_for_function("!document.querySelector('#si-teach-check').disabled", timeout=30_000)
    click_and_wait_idle(page, "Check")
    assert page.locator("#si-teach-error").count() == 0
    checked = sorted(folder.parent.glob(f"set-*/checked/{case['patient_id']}"))[-1]
    student = sitk.GetArrayFromImage(sitk.ReadImage(str(checked / "student.seg.nrrd"))) != 0
    assert np.flatnonzero(student.any(axis=(1, 2))).size == 1  # the student drew on one slice
    shown = slice_to_show(student, key)
    assert page.inner_text("#si-teach-view") == shown.text
    expected = check_answer(sitk.ReadImage(str(checked / "student.seg.nrrd")),
                            sitk.ReadImage(str(folder / case["voi"])))
    assert page.inner_text("#si-teach-student") == expected.student.summary
    assert expected.student.summary.startswith("Your outline covers 1 slice")
    page.screenshot(path=str(screenshots / "web-teaching-lvi-checked.png"))
    assert _pixels(page, "student") > 30 and _pixels(page, "key") > 30  # both in the first view


def test_a_bone_scan_student_case_is_checked_spot_by_spot(page, screenshots, tmp_path):
    """The student paints across one anterior metastasis of the key and a midline spot without one, calls
    "yes" and checks: the page's spot counts, Dice and sentences are the core's on the masks the station kept, the
    outlines show on both views, a spot's button zooms them to it and Whole body back; the next study is negative:
    checked with nothing drawn, it has no Dice (the page says so, the CSV cell is empty) and the call is right."""
    from scipy import ndimage

    open_module(page, "Bone scan BSTBI")
    click_and_wait_idle(page, "Phantom teaching set")
    assert page.locator("#si-teach-error").count() == 0
    folder = Path(page.input_value("#si-teach-folder"))
    with open(folder / "manifest.csv", encoding="utf-8", newline="") as f:
        cases = list(csv.DictReader(f))
    assert [c["label"] for c in cases] == ["1", "0", "1"]
    assert page.locator("#si-teach-spot-hint").is_visible()
    assert page.locator("#si-teach-check").is_enabled()  # "none" is an answer: Check needs no drawing
    key = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / cases[0]["mask"]))) == 1
    anterior, count = ndimage.label(key[0], structure=np.ones((3, 3)))
    largest = 1 + int(np.argmax(ndimage.sum_labels(key[0], anterior, range(1, count + 1))))
    rows, cols = np.nonzero(anterior == largest)
    size = key.shape[:0:-1]  # (columns, rows)
    click_and_wait_idle(page, "Draw ROI by hand")
    reset_views_when_sized(page)
    choose_effect(page, "mdi-brush")
    clear = next(row for row in (0.12, 0.3, 0.6, 0.9) if not key[0, int(row * size[1]) - 15:int(row * size[1]) + 15,
                                                                    size[0] // 2 - 25:size[0] // 2 + 25].any())
    for start, end in (((cols.min() - 1, rows.mean()), (cols.max() + 1, rows.mean())),  # across the metastasis
                       ((size[0] / 2 - 12, clear * size[1]), (size[0] / 2 + 12, clear * size[1]))):  # no metastasis
        page.mouse.move(*image_point_on_page(page, size, start))
        page.mouse.down()
        page.mouse.move(*image_point_on_page(page, size, end), steps=8)
        page.mouse.up()
    page.wait_for_function("window.trame.state.get('si_teach_drawn')", timeout=30_000)
    page.get_by_role("combobox", name="Your call: Bone metastasis").click(force=True)
    page.get_by_role("option", name="yes", exact=True).click()
    click_and_wait_idle(page, "Check")
    assert page.locator("#si-teach-error").count() == 0

    checked = sorted(folder.parent.glob(f"set-*/checked/{cases[0]['patient_id']}"))[-1]
    student = sitk.ReadImage(str(checked / "student.seg.nrrd"))
    key_image = sitk.GetImageFromArray(key.astype(np.uint8))
    key_image.CopyInformation(student)
    expected = check_spots(student, key_image, sitk.ReadImage(str(checked / "ai.seg.nrrd")), "yes", "yes",
                           views=("anterior", "posterior"))
    found = expected.student_spots
    assert len(found.found) == 1 and len(found.false_positives) == 1  # the metastasis, the stroke beside none
    assert page.inner_text("#si-teach-key") == expected.key_summary
    assert page.inner_text("#si-teach-dice-student") == f"{expected.dice_student_key:.3f}"
    assert page.inner_text("#si-teach-dice-ai") == f"{expected.dice_ai_key:.3f}"
    student_text = page.inner_text("#si-teach-student")
    assert student_text.startswith(f"You found 1 of the key's {len(expected.key_spots)} hot spots; you missed "
                                   f"{len(found.missed)} (")
    assert "1 of your spots is not in the key (false positive: " in student_text
    assert student_text.count(" on the anterior view") >= 2 and " mm, y " not in student_text  # sites, no positions
    assert page.inner_text("#si-teach-ai").startswith(f"The AI found {len(expected.ai_spots.found)} of the key's")
    assert page.inner_text("#si-teach-ai-call").startswith("The AI's call, ")
    assert page.inner_text("#si-teach-call-result").startswith("right")
    outlines = {node["outline"]: node for node in _scene(page) if node["outline"]}
    assert set(outlines) == {"student", "key", "ai"}
    page.screenshot(path=str(screenshots / "web-teaching-bonescan-checked.png"))
    whole = [_pixels(page, "key", view) for view in (0, 1)]
    assert all(pixels > 20 for pixels in whole)  # the key's outline on the anterior and posterior

    spots = page.locator("#si-teach-spots .v-chip")  # missed, found, not in the key: each zooms the views to it
    texts = spots.all_inner_texts()
    assert len(texts) == len(found.missed) + 2 and texts[-2].startswith("found: ") and \
        texts[-1].startswith("not in the key: ") and all(t.startswith("missed: ") for t in texts[:-2])
    assert texts[-2].endswith(", anterior") and texts[-2] != "found: spot, anterior"  # named by its site
    shown = page.locator("img.image-display-area").first.get_attribute("src")
    spots.nth(len(texts) - 2).click()  # the metastasis found: its outline and the key's, 160 mm high
    page.wait_for_function("src => document.querySelector('img.image-display-area').src !== src", arg=shown,
                           timeout=30_000)  # the server's new frame
    zoomed = _pixels(page, "key", 0)
    assert zoomed > 3 * whole[0] / len(expected.key_spots)
    page.screenshot(path=str(screenshots / "web-teaching-bonescan-spot.png"))
    page.get_by_role("button", name="Whole body").click()
    assert abs(_pixels(page, "key", 0) - whole[0]) <= 0.1 * whole[0]

    click_and_wait_idle(page, "Next")  # the negative study: checked with nothing drawn
    page.get_by_role("combobox", name="Your call: Bone metastasis").click(force=True)
    page.get_by_role("option", name="no", exact=True).click()
    click_and_wait_idle(page, "Check")
    assert page.locator("#si-teach-error").count() == 0
    assert page.locator("#si-teach-dice").count() == 0
    no_dice = page.inner_text("#si-teach-no-dice")
    assert no_dice.startswith("False-positive spots: you 0 · AI ")
    assert no_dice.endswith("(no Dice: no lesion in the key)")
    assert page.inner_text("#si-teach-key") == ("No metastasis in the key (a negative study): false-positive spots "
                                                "are counted, Dice is not defined.")
    legend = page.locator("#si-teach-legend").inner_text().split("\n")
    assert "Your outline" not in legend and "Answer key" not in legend  # nothing of theirs to outline
    assert page.inner_text("#si-teach-student") == "No metastasis in the key, and you outlined no spot."
    assert page.inner_text("#si-teach-call-result").startswith("right")
    page.screenshot(path=str(screenshots / "web-teaching-bonescan-negative.png"))

    rows = page.locator("#si-teach-table tbody tr")
    on_page = [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]
    assert [row[0] for row in on_page] == [cases[0]["patient_id"], cases[1]["patient_id"]]
    assert on_page[0][7:] == [f"1/{len(expected.key_spots)}", "1"] and on_page[1][1] == "" and on_page[1][7:] == [
        "0/0", "0"]
    with page.expect_download(timeout=60_000) as info:
        page.locator("#si-teach-download").click()
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    with open(path, encoding="utf-8", newline="") as f:
        downloaded = list(csv.DictReader(f))
    assert [row["case"] for row in downloaded] == [cases[0]["patient_id"], cases[1]["patient_id"]]
    assert {k: downloaded[0][k] for k in ("student_dice", "key_spots", "spots_found", "spots_missed",
                                          "false_positive_spots", "ai_spots_found", "call")} == {
        "student_dice": f"{expected.dice_student_key:.3f}", "key_spots": str(len(expected.key_spots)),
        "spots_found": "1", "spots_missed": str(len(found.missed)), "false_positive_spots": "1",
        "ai_spots_found": str(len(expected.ai_spots.found)), "call": "right"}
    assert downloaded[1]["student_dice"] == downloaded[1]["ai_dice"] == "" and downloaded[1]["call"] == "right"
    assert downloaded[1]["key_spots"] == "0" and downloaded[1]["ai_call"] in ("yes", "no")
    assert "nan" not in path.read_text(encoding="utf-8").lower()


def _pixels(page, name: str, view: int = 0) -> int:
    """Pixels of an outline's colour in a view (the first by default)."""
    colour = np.array([round(255 * c) for c in next(o for o in OUTLINES if o.name == name).color])
    page.wait_for_timeout(1500)  # the server's new frame
    shown = np.asarray(Image.open(io.BytesIO(view_images(page).nth(view).screenshot())).convert("RGB")).astype(int)
    return int(np.count_nonzero(np.abs(shown - colour).max(axis=-1) < 30))


def test_spot_buttons_keep_the_false_positives_and_say_how_many_are_left_out():
    """An extensive study: at most MAX_SPOT_BUTTONS buttons, a quarter of them kept for the student's false
    positives, the rest counted; a few spots: every one, missed first, each kind told by its icon."""
    from smartimaging.teaching import Spot, SpotFindings
    from smartimaging.web.teaching_panel import MAX_SPOT_BUTTONS, _spot_buttons

    def spots(count: int, where: str) -> tuple:
        return tuple(Spot("anterior", 10.0 * i, 5.0, 9, 20.0, f"{where} {i}") for i in range(count))

    buttons, left_out = _spot_buttons(SpotFindings(spots(35, "ribs"), spots(5, "spine"), spots(12, "skull"), ""))
    texts = [button["text"] for _, button in buttons]
    assert len(buttons) == MAX_SPOT_BUTTONS == 40 and left_out == 12
    assert sum(t.startswith("not in the key: skull") for t in texts) == 10 and texts[0] == "missed: spine 0, anterior"
    buttons, left_out = _spot_buttons(SpotFindings(spots(2, "ribs"), spots(1, "spine"), spots(1, "skull"), ""))
    assert left_out == 0 and [(b["text"], b["icon"]) for _, b in buttons] == [
        ("missed: spine 0, anterior", "mdi-close-circle-outline"),
        ("found: ribs 0, anterior", "mdi-check-circle-outline"),
        ("found: ribs 1, anterior", "mdi-check-circle-outline"),
        ("not in the key: skull 0, anterior", "mdi-alert-circle-outline")]
