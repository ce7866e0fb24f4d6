"""Teaching mode's scoring (smartimaging.teaching) on synthetic masks whose Dice, regions, sizes and centroids are
known by construction: 2D (one-slice 3D and SimpleITK 2D) and 3D, non-unit spacing, non-identity origin and
direction; refusals; the score sheet's CSV."""

from __future__ import annotations

import csv
import io
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import SimpleITK as sitk

from smartimaging.errors import InputError
from smartimaging.teaching import COLUMNS, ScoreSheet, check_answer, check_spots, slice_to_show

SPACING_2D = (0.5, 0.8, 1.0)  # mm: columns, rows, (slice)
ORIGIN_2D = (-20.0, 35.5, 7.0)
LABELS = {"0": "benign", "1": "malignant"}
SPOT_COLUMNS = ("key_spots", "spots_found", "spots_missed", "false_positive_spots", "ai_spots_found", "ai_spots_missed",
                "ai_false_positive_spots", "ai_call")


def image_of(array: np.ndarray, spacing, origin, direction=None) -> sitk.Image:
    """A label image of a (k, j, i) or (j, i) array with the given geometry."""
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    return image


def masks_2d():
    """key: rows 10–19 × columns 10–29 (200 px, 80 mm²); the AI misses rows 10–12 × columns 14–21 (24 px, upper)
    and rows 15–18 × columns 10–12 (12 px, at the left: no side is said in 2D), misses a one-pixel band (column 29,
    rows 13–19: too thin to count) and adds rows 22–25 × columns 18–21 (16 px, below)."""
    key = np.zeros((1, 30, 40), bool)
    key[0, 10:20, 10:30] = True
    ai = key.copy()
    ai[0, 10:13, 14:22] = False
    ai[0, 15:19, 10:13] = False
    ai[0, 13:20, 29] = False
    ai[0, 22:26, 18:22] = True
    return key, ai


def lps_2d(row: float, column: float) -> tuple[float, float, float]:
    """The LPS point (mm) of a continuous (row, column) of the 2D grid (identity direction)."""
    return (ORIGIN_2D[0] + column * SPACING_2D[0], ORIGIN_2D[1] + row * SPACING_2D[1], ORIGIN_2D[2])


def check_2d(student: np.ndarray, key: np.ndarray, ai: np.ndarray | None = None, **kwargs):
    as_image = lambda a: image_of(a, SPACING_2D, ORIGIN_2D)  # noqa: E731
    return check_answer(as_image(student), as_image(key), None if ai is None else as_image(ai), **kwargs)


def test_2d_dice_regions_sizes_centroids_and_sides():
    key, ai = masks_2d()
    student = key.copy()
    student[0, 17:20, 22:26] = False  # 12 px missed, lower (2.8 mm) but not twice as much as right (2 mm)
    result = check_2d(student, key, ai)

    assert result.dice_ai_key == pytest.approx(2 * 157 / (200 + 173), abs=1e-12)
    assert result.dice_student_key == pytest.approx(2 * 188 / (200 + 188), abs=1e-12)
    pixel_mm2 = 0.5 * 0.8
    missed = result.ai.missed
    assert [r.pixels for r in missed] == [24, 12]  # the one-pixel band does not count
    assert [r.size for r in missed] == pytest.approx([24 * pixel_mm2, 12 * pixel_mm2], abs=1e-12)
    assert {r.unit for r in missed} == {"mm²"}
    assert missed[0].centroid_lps == pytest.approx(lps_2d(11, 17.5), abs=1e-9)
    assert missed[1].centroid_lps == pytest.approx(lps_2d(16.5, 11), abs=1e-9)
    assert [r.side for r in missed] == ["upper", None]  # left/right is never said in 2D (hanging may mirror)
    (extra,) = result.ai.extra
    assert (extra.pixels, extra.size, extra.side) == (16, pytest.approx(16 * pixel_mm2, abs=1e-12), "lower")
    assert extra.centroid_lps == pytest.approx(lps_2d(23.5, 19.5), abs=1e-9)
    assert result.ai.summary == ("The AI missed 2 regions of the lesion (largest 9.6 mm² at the upper edge) and "
                                 "included 1 region outside it (6.4 mm² beyond the lower edge).")

    (student_missed,) = result.student.missed
    assert (student_missed.pixels, student_missed.side) == (12, None)
    assert student_missed.centroid_lps == pytest.approx(lps_2d(18, 23.5), abs=1e-9)
    assert result.student.extra == ()
    assert result.student.summary == ("You missed 1 region of the lesion (4.8 mm²) and included nothing "
                                      "outside it.")


def test_2d_simpleitk_image_same_as_one_slice():
    key, ai = masks_2d()
    as_2d = lambda a: image_of(a[0], SPACING_2D[:2], ORIGIN_2D[:2])  # noqa: E731
    result = check_answer(as_2d(key), as_2d(key), as_2d(ai))
    assert result.dice_student_key == 1.0
    assert result.dice_ai_key == pytest.approx(2 * 157 / (200 + 173), abs=1e-12)
    assert [(r.pixels, r.side) for r in result.ai.missed] == [(24, "upper"), (12, None)]
    assert result.ai.missed[0].centroid_lps == pytest.approx((*lps_2d(11, 17.5)[:2], 0.0), abs=1e-9)
    assert result.student.summary == "You missed no part of the lesion and included nothing outside it."


def test_2d_sides_are_up_and_down_in_lps():
    """Rows running towards -y (anterior): the rows' first end shows at the bottom of an axial view, so the block
    missed at the first rows is at the lower edge."""
    key, ai = masks_2d()
    flipped = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
    as_image = lambda a: image_of(a, SPACING_2D, ORIGIN_2D, flipped)  # noqa: E731
    result = check_answer(as_image(key), as_image(key), as_image(ai))
    assert [r.side for r in result.ai.missed] == ["lower", None]
    assert result.ai.extra[0].side == "upper"
    assert result.ai.missed[0].centroid_lps == pytest.approx(
        (ORIGIN_2D[0] + 17.5 * 0.5, ORIGIN_2D[1] - 11 * 0.8, ORIGIN_2D[2]), abs=1e-9)


def test_thin_band_only_is_said_and_dice_shows_it():
    key, _ = masks_2d()
    student = key.copy()
    student[0, 9, 10:30] = True  # one extra row above the key: 20 px, one pixel wide
    result = check_2d(student, key)
    assert result.dice_student_key == pytest.approx(2 * 200 / (200 + 220), abs=1e-12)
    assert result.student.missed == result.student.extra == ()
    assert result.student.summary == ("You missed no part of the lesion and included nothing outside it; the "
                                      "outlines differ only along a band at most two pixels wide.")
    assert result.dice_ai_key is None and result.ai is None


def test_ai_that_found_nothing_missed_the_whole_lesion():
    key, _ = masks_2d()
    result = check_2d(key, key, np.zeros_like(key))
    assert result.dice_ai_key == 0.0
    (missed,) = result.ai.missed
    assert (missed.pixels, missed.side, result.ai.extra) == (200, None, ())
    assert missed.centroid_lps == pytest.approx(lps_2d(14.5, 19.5), abs=1e-9)
    assert result.ai.summary == "The AI missed 1 region of the lesion (80 mm²) and included nothing outside it."


def test_an_outline_off_the_lesion_is_said_to_be_off_it_and_where_the_lesion_is():
    """Dice 0: not "missed 1 region and included 1 region" but that the outline is not on the lesion; the lesion's
    side of it only when clear-cut (never left/right in 2D)."""
    key, _ = masks_2d()
    above = np.zeros_like(key)
    above[0, 0:4, 16:24] = True  # 32 px (12.8 mm²), centroid 13 rows (10.4 mm) above the key's
    result = check_2d(above, key, above)
    assert result.dice_student_key == 0.0
    assert result.student.summary == ("Your outline (13 mm²) is not on the lesion (80 mm²): the lesion is below it, "
                                      "10 mm away centre to centre.")
    assert result.ai.summary.startswith("The AI's outline (13 mm²) is not on the lesion (80 mm²)")
    beside = np.zeros_like(key)
    beside[0, 12:18, 34:40] = True  # 36 px (14.4 mm²), 17 columns (8.5 mm) to one side: no side said in 2D
    assert check_2d(beside, key).student.summary == ("Your outline (14 mm²) is not on the lesion (80 mm²): their "
                                                     "centres are 8.5 mm apart.")


def _volume_key():
    """Spacing (0.7, 0.7, 2.0) mm, origin (-50, 20, -30); key: slices 4–9 × rows 10–29 × columns 10–29."""
    key = np.zeros((14, 40, 40), bool)
    key[4:10, 10:30, 10:30] = True
    return key, lambda a: image_of(a, (0.7, 0.7, 2.0), (-50.0, 20.0, -30.0))


def test_a_volume_outlined_on_too_few_slices_is_said_so():
    key, as_image = _volume_key()
    one = np.zeros_like(key)
    one[6] = key[6]
    result = check_answer(as_image(one), as_image(key))
    assert result.dice_student_key == pytest.approx(2 * 400 / 2800, abs=1e-12)
    assert result.student.summary == ("Your outline covers 1 slice (slice 7); the lesion spans 6 slices (slices 5–10, "
                                      "12 mm): outline it on every slice. You missed 2 regions of the lesion (largest "
                                      "1176 mm³) and included nothing outside it.")
    half = np.zeros_like(key)
    half[4:7] = key[4:7]
    assert check_answer(as_image(half), as_image(key)).student.summary.startswith(
        "Your outline covers 3 slices (slices 5–7); the lesion spans 6 slices")
    most = np.zeros_like(key)
    most[4:8] = key[4:8]
    assert check_answer(as_image(most), as_image(key)).student.summary.startswith("You missed 1 region")
    off = np.zeros_like(key)
    off[12] = key[6]  # 3 slices beyond the key's last: the lesion is inferior to it (z runs superior)
    result = check_answer(as_image(off), as_image(key), as_image(one))
    assert result.student.summary == ("Your outline covers 1 slice (slice 13); the lesion spans 6 slices (slices "
                                      "5–10, 12 mm): outline it on every slice. Your outline (392 mm³) is not on the "
                                      "lesion (2352 mm³): the lesion is inferior to it, 11 mm away centre to centre.")
    assert result.ai.summary.startswith("The AI's outline covers 1 slice (slice 7); the lesion spans 6 slices (slices "
                                        "5–10, 12 mm). The AI missed")
    nothing = check_answer(as_image(one), as_image(key), as_image(np.zeros_like(key)))
    assert nothing.ai.summary == "The AI missed 1 region of the lesion (2352 mm³) and included nothing outside it."


def test_the_slice_shown_after_check_has_the_students_outline_and_the_key():
    key, _ = _volume_key()
    student = np.zeros_like(key)
    student[5, 10:15, 10:15] = True  # overlap 25
    student[7] = key[7]  # overlap 400: shown
    assert (slice_to_show(student, key).index, slice_to_show(student, key).text) == (
        7, "The views show slice 8 of 14, where your outline and the key overlap most.")
    beside = np.zeros_like(key)
    beside[6, 32:36, 10:20] = True  # on a slice of the key, beside it: 40 px
    beside[12, 10:30, 10:30] = True  # more pixels, but no key on that slice
    assert (slice_to_show(beside, key).index, slice_to_show(beside, key).text) == (
        6, "The views show slice 7 of 14, where both your outline and the key are (they do not overlap).")
    off = np.zeros_like(key)
    off[11, 10:14, 10:14] = off[12, 10:30, 10:30] = True
    assert (slice_to_show(off, key).index, slice_to_show(off, key).text) == (
        12, "The views show slice 13 of 14, your outline's; the key is on slices 5–10.")
    flat, _ = masks_2d()
    assert slice_to_show(flat, flat) is None  # one slice: nothing to choose


def test_3d_volumes_centroids_and_anatomical_sides():
    """Spacing (0.7, 0.7, 2.0) mm, origin (-50, 20, -30); key: slices 4–9 × rows 10–29 × columns 10–29 (2400 voxels).
    The AI misses slice 9 × rows 12–27 × columns 12–27 (256 voxels, superior) and adds rows 32–35 × columns
    16–23 on slices 5–8 (128 voxels, posterior)."""
    spacing, origin = (0.7, 0.7, 2.0), (-50.0, 20.0, -30.0)
    key = np.zeros((14, 40, 40), bool)
    key[4:10, 10:30, 10:30] = True
    ai = key.copy()
    ai[9, 12:28, 12:28] = False
    ai[5:9, 32:36, 16:24] = True
    as_image = lambda a: image_of(a, spacing, origin)  # noqa: E731
    result = check_answer(as_image(key), as_image(key), as_image(ai))
    voxel = 0.7 * 0.7 * 2.0
    (missed,) = result.ai.missed
    (extra,) = result.ai.extra
    assert (missed.pixels, missed.unit, missed.side) == (256, "mm³", "superior")
    assert missed.size == pytest.approx(256 * voxel, abs=1e-9)
    assert missed.centroid_lps == pytest.approx((-50 + 19.5 * 0.7, 20 + 19.5 * 0.7, -30 + 9 * 2.0), abs=1e-9)
    assert (extra.pixels, extra.side) == (128, "posterior")
    assert extra.size == pytest.approx(128 * voxel, abs=1e-9)
    assert extra.centroid_lps == pytest.approx((-50 + 19.5 * 0.7, 20 + 33.5 * 0.7, -30 + 6.5 * 2.0), abs=1e-9)
    assert result.dice_ai_key == pytest.approx(2 * 2144 / (2400 + 2272), abs=1e-12)
    assert result.ai.summary == ("The AI missed 1 region of the lesion (251 mm³ at the superior edge) and included "
                                 "1 region outside it (125 mm³ beyond the posterior edge).")


def test_3d_sides_come_from_lps_not_from_the_grid():
    """A coronal grid (columns +x, rows -z, slices +y), key 10 × 10 × 10 voxels of 1 mm: the AI misses its first
    rows (superior), its last slices (posterior) and its last columns (the patient's left)."""
    direction = (1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0)
    key = np.zeros((20, 20, 20), bool)
    key[5:15, 5:15, 5:15] = True
    ai = key.copy()
    ai[8:12, 5:8, 8:12] = False  # 48 voxels, rows 5–7: superior
    ai[7:10, 8:12, 12:15] = False  # 36 voxels, columns 12–14: the patient's left
    ai[13:15, 8:12, 8:12] = False  # 32 voxels, slices 13–14: posterior
    as_image = lambda a: image_of(a, (1.0, 1.0, 1.0), (3.0, -4.0, 5.0), direction)  # noqa: E731
    result = check_answer(as_image(key), as_image(key), as_image(ai))
    assert [(r.pixels, r.side) for r in result.ai.missed] == [(48, "superior"), (36, "patient's left"),
                                                               (32, "posterior")]
    assert result.ai.missed[0].centroid_lps == pytest.approx((3.0 + 9.5, -4.0 + 9.5, 5.0 - 6.0), abs=1e-9)


def test_calls_right_wrong_and_none():
    key, _ = masks_2d()
    right = check_2d(key, key, student_call="1", key_label="1", labels=LABELS)
    assert (right.call, right.call_summary) == ("right", "Your call, malignant, is right.")
    wrong = check_2d(key, key, student_call="0", key_label="1", labels=LABELS)
    assert (wrong.call, wrong.call_summary) == ("wrong", "Your call, benign, is wrong: the answer key says malignant.")
    no_call = check_2d(key, key, key_label=1, labels={0: "benign", 1: "malignant"})
    assert (no_call.call, no_call.call_summary) == ("none", "You made no call; the answer key says malignant.")
    assert check_2d(key, key, student_call="1").call == "none"  # the key has no label
    assert check_2d(key, key, student_call="B3", key_label="B4").call == "wrong"  # no words: the codes are said
    with pytest.raises(InputError, match="Your call '2' is none of this teaching set's labels"):
        check_2d(key, key, student_call="2", key_label="1", labels=LABELS)
    with pytest.raises(InputError, match="The answer key's label 'x'"):
        check_2d(key, key, student_call="1", key_label="x", labels=LABELS)


def test_refusals():
    key, ai = masks_2d()
    with pytest.raises(InputError, match="Draw the lesion first"):
        check_2d(np.zeros_like(key), key, ai)
    with pytest.raises(InputError, match="answer key of this case outlines nothing"):
        check_2d(key, np.zeros_like(key))
    good = image_of(key, SPACING_2D, ORIGIN_2D)
    for bad, what in ((image_of(key, (0.5, 0.81, 1.0), ORIGIN_2D), "spacing differs"),
                      (image_of(key, SPACING_2D, (-20.0, 35.5, 7.5)), "origin differs"),
                      (image_of(key[:, :29], SPACING_2D, ORIGIN_2D), "size differs"),
                      (image_of(key, SPACING_2D, ORIGIN_2D, (0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0)),
                       "direction differs")):
        with pytest.raises(InputError, match=f"Your outline is not on the answer key's image grid .its {what}"):
            check_answer(bad, good)
        with pytest.raises(InputError, match="The AI's outline is not on the answer key's image grid"):
            check_answer(good, good, bad)
    with pytest.raises(InputError, match="spacing and origin differ"):
        check_answer(image_of(key, (0.6, 0.8, 1.0), (0.0, 0.0, 0.0)), good)
    nan = sitk.GetImageFromArray(np.where(key, np.nan, 0.0))
    nan.CopyInformation(good)
    with pytest.raises(InputError, match="not numbers"):
        check_answer(nan, good)
    with pytest.raises(InputError, match="one value per pixel"):
        check_answer(sitk.Image([40, 30], sitk.sitkVectorUInt8, 3), good)


def test_score_sheet_csv_round_trip_and_summary(tmp_path):
    key, ai = masks_2d()
    sheet = ScoreSheet()
    assert sheet.summary().text == "No case checked yet."
    start = datetime(2026, 12, 7, 14, 5, 9, tzinfo=timezone(timedelta(hours=1)))
    first = check_2d(key, key, ai, student_call="1", key_label="1", labels=LABELS)
    assert (first.student_call, first.key_label) == ("malignant", "malignant")
    sheet.add("mammo-07", first, 42.25, start)
    student = key.copy()
    student[0, 10:13, 14:22] = False
    second = check_2d(student, key, student_call="0", key_label="1", labels=LABELS)
    sheet.add("=HYPERLINK(1)", second, 12.0, start + timedelta(minutes=1))
    sheet.add("case 3", check_2d(key, key), 5.0, start + timedelta(minutes=2))
    formula = check_2d(key, key, student_call="a", key_label="b", labels={"a": "=1+1", "b": "-2"})

    path = sheet.to_csv(tmp_path / "sheets" / "session.csv")
    assert [p.name for p in path.parent.iterdir()] == ["session.csv"]  # no temporary file left
    text = path.read_bytes().decode("utf-8")
    assert text == sheet.to_csv_text() and text.startswith("case,student_dice,")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert tuple(rows[0]) == COLUMNS == ("case", "student_dice", "ai_dice", "student_call", "key_label", "call",
                                         "seconds", "time", *SPOT_COLUMNS)
    assert all(row[column] == "" for row in rows for column in SPOT_COLUMNS)  # region-wise cases: no spot counts
    rows = [{column: row[column] for column in COLUMNS[:8]} for row in rows]
    assert rows[0] == {"case": "mammo-07", "student_dice": "1.000", "ai_dice": f"{2 * 157 / 373:.3f}",
                       "student_call": "malignant", "key_label": "malignant", "call": "right", "seconds": "42.2",
                       "time": "2026-12-07T14:05:09+01:00"}
    assert rows[1] == {"case": "'=HYPERLINK(1)", "student_dice": f"{2 * 176 / 376:.3f}", "ai_dice": "",
                       "student_call": "benign", "key_label": "malignant", "call": "wrong", "seconds": "12.0",
                       "time": "2026-12-07T14:06:09+01:00"}
    assert [rows[2][c] for c in ("case", "student_call", "key_label", "call")] == ["case 3", "", "", "none"]
    assert ScoreSheet().add("case 4", formula, 1.0).cells()[3:6] == ["'=1+1", "-2", "wrong"]

    summary = sheet.summary()
    assert summary.mean_student_dice == pytest.approx((1 + 2 * 176 / 376 + 1) / 3, abs=1e-12)
    assert summary.mean_ai_dice == pytest.approx(2 * 157 / 373, abs=1e-12)
    assert (summary.cases, summary.calls_right, summary.calls_checked) == (3, 1, 2)
    assert summary.text == "3 cases: your mean Dice 0.98 (the AI's 0.84); calls right 1/2"

    sheet.to_csv(path)  # written again over the old file
    assert len(list(csv.reader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))) == 4
    assert sheet.add("case 4", first, 1.0).time.tzinfo is not None  # now, with its UTC offset
    with pytest.raises(InputError, match="needs an id"):
        sheet.add(" ", first, 1.0)
    with pytest.raises(InputError, match="number of seconds"):
        sheet.add("case 5", first, float("nan"))


# Lesion-wise (bone scan): two views as the grid's two slices, columns 2.0 mm, rows 2.5 mm apart
SPOT_SPACING, SPOT_ORIGIN, VIEWS = (2.0, 2.5, 1.0), (-30.0, 12.0, 0.0), ("anterior", "posterior")
METASTASIS = {"0": "no", "1": "yes"}


def spot_check(student, key, ai=None, **kwargs):
    as_image = lambda a: image_of(a, SPOT_SPACING, SPOT_ORIGIN)  # noqa: E731
    return check_spots(as_image(student), as_image(key), None if ai is None else as_image(ai), views=VIEWS,
                       labels=METASTASIS, **kwargs)


def test_spots_of_a_positive_key_found_missed_and_false_positives_by_site_else_position():
    """Key: anterior A rows 10–13 × columns 5–8 (16 px), anterior B rows 40–43 × columns 20–22 (12 px), posterior C
    rows 10–13 × columns 21–24 (16 px). The student touches A (4 px), misses B, covers C, adds a posterior spot
    rows 50–53 × columns 10–13 (16 px) and a one-pixel stroke (anterior row 30, columns 0–5: a slip, not a spot).
    `where` names the sites above row 20 of the anterior view only; the others are placed by position."""
    key = np.zeros((2, 60, 30), bool)
    key[0, 10:14, 5:9] = key[0, 40:44, 20:23] = key[1, 10:14, 21:25] = True
    student = np.zeros_like(key)
    student[0, 11:13, 6:8] = student[1, 10:14, 21:25] = student[1, 50:54, 10:14] = True
    student[0, 30, 0:6] = True
    ai = key.copy()
    ai[1] = False  # misses C
    ai[0, 50:54, 0:4] = True  # a false positive
    asked = []

    def where(view, row, col):
        asked.append((view, round(row, 2), round(col, 2)))
        return "left ribs" if view == 0 and row < 20 else None

    result = spot_check(student, key, ai, student_call="1", key_label="1", where=where, ai_call="0")
    assert result.dice_student_key == pytest.approx(2 * 20 / (42 + 44), abs=1e-12)
    assert result.dice_ai_key == pytest.approx(2 * 28 / (44 + 44), abs=1e-12)
    assert result.student is None and result.ai is None  # no region-wise sentences around one lesion
    assert [(s.view, s.row, s.col, s.pixels, s.where) for s in result.key_spots] == [
        ("anterior", 11.5, 6.5, 16, "left ribs"), ("anterior", 41.5, 21.0, 12, "x 42 mm, y 104 mm"),
        ("posterior", 11.5, 22.5, 16, "x 45 mm, y 29 mm")]
    assert [s.area for s in result.key_spots] == pytest.approx([80.0, 60.0, 80.0], abs=1e-12)  # 5 mm² a pixel
    assert (0, 11.5, 6.5) in asked and (1, 11.5, 22.5) in asked  # a spot's site asked with its view and centroid
    assert result.key_summary == ("The answer key has 3 hot spots (metastases): 2 on the anterior view, 1 on the "
                                  "posterior view (a metastasis seen on both views is a spot on each).")
    found = result.student_spots
    assert [s.where for s in found.found] == ["left ribs", "x 45 mm, y 29 mm"]
    assert [s.where for s in found.missed] == ["x 42 mm, y 104 mm"]
    assert [(s.view, s.pixels, s.where) for s in found.false_positives] == [("posterior", 16, "x 23 mm, y 129 mm")]
    assert found.summary == ("You found 2 of the key's 3 hot spots; you missed 1 (at x 42 mm, y 104 mm on the "
                             "anterior view, 60 mm²); 1 of your spots is not in the key (false positive: at x 23 mm, "
                             "y 129 mm on the posterior view, 80 mm²).")
    assert result.ai_spots.summary == ("The AI found 2 of the key's 3 hot spots; it missed 1 (at x 45 mm, y 29 mm on "
                                       "the posterior view, 80 mm²); 1 of its spots is not in the key (false "
                                       "positive: at x 3 mm, y 129 mm on the anterior view, 80 mm²).")
    assert (result.call, result.call_summary) == ("right", "Your call, yes, is right.")
    assert (result.ai_call, result.ai_call_summary) == ("no", "The AI's call, no, is wrong: the answer key says "
                                                        "yes. The call comes from the AI's classifier network, the "
                                                        "spots from its segmentation network: here they disagree.")
    row = ScoreSheet().add("bs-1", result, 30.0).cells()
    assert dict(zip(COLUMNS, row, strict=True)) | {"time": ""} == {
        "case": "bs-1", "student_dice": f"{40 / 86:.3f}", "ai_dice": f"{56 / 88:.3f}", "student_call": "yes",
        "key_label": "yes", "call": "right", "seconds": "30.0", "time": "", "key_spots": "3", "spots_found": "2",
        "spots_missed": "1", "false_positive_spots": "1", "ai_spots_found": "2", "ai_spots_missed": "1",
        "ai_false_positive_spots": "1", "ai_call": "no"}


def test_a_negative_key_counts_false_positive_spots_instead_of_dice():
    key = np.zeros((2, 60, 30), bool)
    student = np.zeros_like(key)
    student[1, 20:23, 4:7] = True  # 9 px, a false positive
    result = spot_check(student, key, np.zeros_like(key), student_call="1", key_label="0", ai_call="0")
    assert result.dice_student_key is None and result.dice_ai_key is None  # undefined: never NaN
    assert result.key_spots == () and result.key_summary.startswith("No metastasis in the key")
    assert result.student_spots.summary == ("No metastasis in the key: your 1 spot is a false positive (at x 10 mm, "
                                            "y 52 mm on the posterior view, 45 mm²).")
    assert result.ai_spots.summary == "No metastasis in the key, and the AI outlined no spot."
    assert (result.call, result.call_summary) == ("wrong", "Your call, yes, is wrong: the answer key says no.")
    assert result.ai_call_summary == "The AI's call, no, is right."
    two = student.copy()
    two[0, 40:44, 10:14] = True
    assert spot_check(two, key).student_spots.summary.startswith("No metastasis in the key: your 2 spots are false "
                                                                 "positives (at x 23 mm, y 104 mm on the anterior")
    sheet = ScoreSheet()
    cells = dict(zip(COLUMNS, sheet.add("bs-2", result, 12.0).cells(), strict=True))
    assert (cells["student_dice"], cells["ai_dice"]) == ("", "")
    assert [cells[c] for c in SPOT_COLUMNS] == ["0", "0", "0", "1", "0", "0", "0", "no"]
    assert sheet.summary().text == ("1 case: no Dice (no case with a lesion in its key); calls right 0/1; hot spots "
                                    "found 0/0, 1 false-positive spot")


def test_the_smallest_brush_dab_is_a_false_positive_spot_and_a_one_pixel_stroke_is_a_slip():
    """A station brush of 2.4 pixels paints a 2×2 square or a plus of five pixels: a mark the student meant, counted;
    a one-pixel line or a lone pixel is a slip, left to the Dice."""
    key = np.zeros((2, 60, 30), bool)
    key[0, 10:14, 5:9] = True
    marks = {"a 2×2 dab": [(30, 10), (30, 11), (31, 10), (31, 11)],
             "a plus": [(40, 20), (39, 20), (41, 20), (40, 19), (40, 21)]}
    for what, pixels in marks.items():
        student = key.copy()
        for row, col in pixels:
            student[0, row, col] = True
        false = spot_check(student, key).student_spots.false_positives
        assert [s.pixels for s in false] == [len(pixels)], what
    slips = key.copy()
    slips[0, 30, 0:6] = slips[1, 50, 3] = slips[0, 45:50, 25] = True  # a row, a lone pixel, a column: short
    assert spot_check(slips, key).student_spots.false_positives == ()
    strokes = key.copy()
    strokes[1, 5:55, 2] = True  # a one-pixel line 50 pixels long
    strokes[1, 40:50, 10:20] = np.indices((10, 10)).sum(axis=0) % 2 == 0  # a checkerboard fill: pixels apart
    false = spot_check(strokes, key).student_spots.false_positives
    assert [s.pixels for s in false] == [50, 50]  # both counted: longer than a slip (8-connected)
    one_view = check_spots(image_of(key[:1], SPOT_SPACING, SPOT_ORIGIN), image_of(key[:1], SPOT_SPACING, SPOT_ORIGIN),
                           views=VIEWS[:1])
    assert one_view.key_summary == "The answer key has 1 hot spot (metastases): 1 on the anterior view."


def test_no_spot_outlined_on_a_negative_study_is_right_and_the_sheet_mixes_cases():
    key = np.zeros((2, 60, 30), bool)
    result = spot_check(np.zeros_like(key), key, student_call="0", key_label="0")
    assert (result.call, result.call_summary) == ("right", "Your call, no, is right.")
    assert result.student_spots.summary == "No metastasis in the key, and you outlined no spot."
    assert result.dice_student_key is None and result.ai_spots is None and result.ai_call_summary is None
    positive = key.copy()
    positive[0, 10:14, 5:9] = True
    missed_all = spot_check(np.zeros_like(key), positive, student_call="0", key_label="1")
    assert missed_all.dice_student_key == 0.0 and missed_all.student_spots.summary.startswith(
        "You found 0 of the key's 1 hot spot; you missed 1 (")
    sheet = ScoreSheet()
    sheet.add("negative", result, 5.0)
    sheet.add("positive", spot_check(positive, positive, student_call="1", key_label="1"), 5.0)
    sheet.add("missed", missed_all, 5.0)
    text = sheet.to_csv_text()
    assert "nan" not in text.lower()
    assert sheet.summary().text == ("3 cases: your mean Dice 0.50 over 2 cases with metastases; calls right 2/3; hot "
                                    "spots found 1/2, 0 false-positive spots")
    unnamed = check_spots(*(image_of(mask, SPOT_SPACING, SPOT_ORIGIN) for mask in (np.zeros_like(key), positive)))
    assert unnamed.student_spots.summary == ("You found 0 of the key's 1 hot spot; you missed 1 (at x 13 mm, y 29 mm "
                                             "on the first view, 80 mm²); you marked no false-positive spot.")
    with pytest.raises(InputError, match="Your outline is not on the answer key's image grid"):
        check_spots(image_of(key[:, :59], SPOT_SPACING, SPOT_ORIGIN), image_of(key, SPOT_SPACING, SPOT_ORIGIN))


def test_a_key_of_many_spots_is_labelled_once_per_view_not_scanned_once_per_spot():
    """131072 one-pixel spots on 2 x 512 x 512 views: 15 s when every spot rescanned the view, under 1 s now."""
    key = np.zeros((2, 512, 512), bool)
    key[:, ::2, ::2] = True
    student = np.zeros_like(key)
    student[0] = key[0]  # every spot of the anterior view
    student[1, 100:103, 101:104] = True  # a 3 x 3 square on the posterior view: over its spots (100, 102), (102, 102)
    started = time.perf_counter()
    result = spot_check(student, key)
    assert time.perf_counter() - started < 5.0
    assert len(result.key_spots) == 131072 and result.key_spots[0].view == "anterior"
    found = result.student_spots
    assert (len(found.found), len(found.missed), len(found.false_positives)) == (65538, 65534, 0)
    assert [(spot.view, spot.row, spot.col) for spot in found.found[-2:]] == [("posterior", 100.0, 102.0),
                                                                              ("posterior", 102.0, 102.0)]


@pytest.mark.parametrize(("labels", "yes", "no"), [(METASTASIS, "1", "0"), ({"yes": "yes", "no": "no"}, "yes", "no")])
def test_the_ais_call_and_spots_disagree_only_when_they_do(labels, yes, no):
    """As codes ("1") or as the station's words ("yes"): a "yes" with spots outlined, or a "no" without, agree; a
    "no" with spots, or a "yes" without, disagree (helper 83: a "yes" with spots read as a disagreement)."""
    key = np.zeros((2, 60, 30), bool)
    key[0, 10:14, 5:9] = True
    as_image = lambda a: image_of(a, SPOT_SPACING, SPOT_ORIGIN)  # noqa: E731
    for call, ai, disagree in ((yes, key, False), (no, np.zeros_like(key), False), (no, key, True),
                               (yes, np.zeros_like(key), True)):
        result = check_spots(as_image(key), as_image(key), as_image(ai), yes, yes, labels, VIEWS, ai_call=call)
        assert result.ai_call_summary.endswith("here they disagree.") == disagree, (call, ai.any())
