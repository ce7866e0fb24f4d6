"""Bone-scan lesion review (numbered lesions per view, anterior/posterior matching, counts after rejections) and
follow-up (result.json checks, trend ordering, change, plot; `bonescan trend`)."""

from __future__ import annotations

import json
import re
from datetime import date

import numpy as np
import pytest
import vtk
from scipy import ndimage

from smartimaging.bonescan.bstbi import bstbi_change
from smartimaging.bonescan.flow import BoneScanFlow
from smartimaging.bonescan.followup import (
    StudyPoint,
    check_comparable,
    parse_result,
    parse_study_date,
    read_result,
    trend,
    trend_lines,
    trend_svg,
)
from smartimaging.bonescan.lesions import (
    LESION,
    MATCH_TOLERANCE_MM,
    count_rows,
    describe,
    lesion_components,
    review,
)
from smartimaging.bonescan.outputs import write_result
from smartimaging.bonescan.pipeline import parse_lesion_ids, recompute_from_labelmaps
from smartimaging.bonescan.views import load_bone_scan, write_nm_dicom
from smartimaging.cli import main
from smartimaging.errors import InputError
from smartimaging.phantoms.bonescan import PIXEL_MM, make_bone_scan_phantom
from smartimaging.resources import resource_dir
from smartimaging.segmentation_nodes import segmentation_from_labels
from smartimaging.segments import BONESCAN_SEGMENTS


@pytest.fixture(scope="module")
def phantom_case(tmp_path_factory):
    """The station's "Phantom with 5 metastases" (seed 2) as NM DICOM, its ground-truth label maps and its study."""
    phantom = make_bone_scan_phantom(2)
    path = tmp_path_factory.mktemp("phantom") / "scan.dcm"
    write_nm_dicom(path, phantom.views, phantom.patient_id, phantom.age)
    return phantom, load_bone_scan([path])


def test_five_metastases_are_five_per_view_and_five_sites(phantom_case):
    phantom, study = phantom_case
    assert phantom.n_lesions == 5
    result = recompute_from_labelmaps(study, phantom.masks)
    counts = result.lesion_counts
    assert counts["per_view"] == {"anterior": 5, "posterior": 5}  # not "10 lesions" for both views added
    assert (counts["sites"], counts["sites_on_both_views"], counts["rejected"]) == (5, 5, [])
    for lesion in result.lesions:
        partner = result.lesions[lesion["matches"] - 1]
        assert partner["view"] != lesion["view"] and partner["matches"] == lesion["id"]
        assert partner["row"] == pytest.approx(lesion["row"], abs=1.0)  # same height, mirrored columns
        assert partner["col"] == pytest.approx(255 - lesion["col"], abs=1.0)
    assert count_rows(counts) == [["Lesions, anterior view", "5"], ["Lesions, posterior view", "5"],
                                  ["Lesion sites (both views matched)", "5 (5 seen on both views)"],
                                  ["Lesions rejected by the reader", "0"]]


def test_position_area_and_uptake_are_exact(phantom_case):
    phantom, study = phantom_case
    lesions = lesion_components(phantom.masks, {v.name: v.counts for v in study.views},
                                {v: (PIXEL_MM, PIXEL_MM) for v in phantom.masks})
    first = lesions[0]
    numbered, _ = ndimage.label(phantom.masks["anterior"] == LESION, structure=np.ones((3, 3)))
    rows, cols = np.nonzero(numbered == first["_index"])
    counts = study.view("anterior").counts[rows, cols]
    assert first["area_px"] == rows.size
    assert first["area_mm2"] == pytest.approx(rows.size * PIXEL_MM ** 2, abs=0.05)
    assert first["x_mm"] == pytest.approx(cols.mean() * PIXEL_MM, abs=0.05)
    assert first["y_mm"] == pytest.approx(rows.mean() * PIXEL_MM, abs=0.05)
    assert first["mean_counts"] == pytest.approx(counts.mean(), abs=0.05)
    assert first["max_counts"] == counts.max()


def _one_lesion(shape, row, col, size=4) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    labels[row:row + size, col:col + size] = LESION
    return labels


def test_matching_mirrors_the_posterior_view_and_keeps_its_tolerance():
    shape, pixel = (200, 60), (2.0, 2.0)
    counts = {v: np.ones(shape, np.float32) for v in ("anterior", "posterior")}
    pixel_mm = dict.fromkeys(counts, pixel)
    mirrored = {"anterior": _one_lesion(shape, 50, 10), "posterior": _one_lesion(shape, 50, 60 - 10 - 4)}
    assert [c["matches"] for c in lesion_components(mirrored, counts, pixel_mm)] == [2, 1]
    unmirrored = {"anterior": _one_lesion(shape, 50, 10), "posterior": _one_lesion(shape, 50, 10)}  # 80 mm apart
    assert [c["matches"] for c in lesion_components(unmirrored, counts, pixel_mm)] == [None, None]
    rows_off = int(MATCH_TOLERANCE_MM / pixel[0]) + 1  # just beyond the tolerance, straight down
    beyond = {"anterior": _one_lesion(shape, 50, 10), "posterior": _one_lesion(shape, 50 + rows_off, 46)}
    assert [c["matches"] for c in lesion_components(beyond, counts, pixel_mm)] == [None, None]
    other_names = {"view 1": mirrored["anterior"], "view 2": mirrored["posterior"]}
    lesions = lesion_components(other_names, {"view 1": counts["anterior"], "view 2": counts["posterior"]},
                                {"view 1": pixel, "view 2": pixel})
    assert [c["matches"] for c in lesions] == [None, None]  # views not known as anterior/posterior: not matched


def test_rejected_lesions_leave_bstbi_and_the_counts(phantom_case):
    phantom, study = phantom_case
    full = recompute_from_labelmaps(study, phantom.masks)
    partner = full.lesions[0]["matches"]
    one = recompute_from_labelmaps(study, phantom.masks, [1])
    both = recompute_from_labelmaps(study, phantom.masks, [1, partner])
    assert one.lesion_counts["per_view"] == {"anterior": 4, "posterior": 5}
    assert (one.lesion_counts["sites"], one.lesion_counts["sites_on_both_views"]) == (5, 4)  # still seen behind
    assert both.lesion_counts["per_view"] == {"anterior": 4, "posterior": 4}
    assert (both.lesion_counts["sites"], both.lesion_counts["rejected"]) == (4, [1, partner])
    assert full.bstbi["mean"] > one.bstbi["mean"] > both.bstbi["mean"] > 0
    assert count_rows(both.lesion_counts)[-1] == ["Lesions rejected by the reader", f"2 (#1, #{partner})"]
    listed = review(both.as_json())
    assert [group["view"] for group in listed["views"]] == ["anterior", "posterior"]
    assert [lesion["id"] for lesion in listed["views"][0]["lesions"]] == [1, 2, 3, 4, 5]
    assert [lesion["rejected"] for lesion in listed["views"][0]["lesions"]] == [True, False, False, False, False]
    assert listed["views"][0]["lesions"][0]["match"] == f"same site as #{partner} (posterior)"
    assert listed["counts"] == ("anterior 4 lesions · posterior 4 lesions; 4 sites (4 on both views); 2 rejected "
                                "by the reader")


def _result_folder(study, labelmaps, folder, exclude=None, study_date=None):
    """A result folder as `bonescan bstbi` writes it; `study_date` as --keep-identifiers records a StudyDate."""
    if study_date:
        study.meta["identifiers"] = {"study_date": study_date}
    try:
        write_result(study, recompute_from_labelmaps(study, labelmaps, exclude), folder, keep_identifiers=True)
    finally:
        study.meta.pop("identifiers", None)
    return folder


def test_trend_orders_by_study_date_and_gives_the_change(phantom_case, tmp_path):
    phantom, study = phantom_case
    late = _result_folder(study, phantom.masks, tmp_path / "late", study_date="20250301")
    early = _result_folder(study, phantom.masks, tmp_path / "early", [1, 2], study_date="20240915")
    points = [read_result(late), read_result(early)]
    result = trend(points)
    assert result["order"] == "by study date"
    assert [s["study_date"] for s in result["studies"]] == ["2024-09-15", "2025-03-01"]
    assert result["change_from_first"] == {**bstbi_change(points[1].bstbi, points[0].bstbi),
                                           "reader_note": "the earlier study had 2 lesions rejected by the reader, "
                                                          "this one none: part of the change is the reader's"}
    assert result["change_from_first"]["change"] > 0
    svg = trend_svg(result)
    assert svg.count("<circle") == 2 and "2024-09-15" in svg and "dates unknown" not in svg
    three = trend([*points, StudyPoint("third", 0.1, date(2025, 4, 1))])  # x in time: 167 days, then 31
    xs = [float(x) for x in re.findall(r'<circle cx="([\d.]+)"', trend_svg(three))]
    assert (xs[1] - xs[0]) / (xs[2] - xs[1]) == pytest.approx(167 / 31, rel=1e-2)

    undated = trend([StudyPoint("b", 0.2), StudyPoint("a", 0.1)])
    assert [s["label"] for s in undated["studies"]] == ["b", "a"]  # the reader's order
    assert undated["order"].startswith("as given by the reader: the study date of b, a is unknown")
    assert "dates unknown" in trend_svg(undated)
    assert trend_lines(undated)[-1] == "change from the previous study: 0.200 -> 0.100: -0.100 (-50.0 %)"
    with pytest.raises(InputError, match="at least two studies"):
        trend([StudyPoint("a", 0.1)])


def test_the_follow_up_says_when_part_of_a_change_is_the_readers(phantom_case, tmp_path, capsys):
    """U2 finding 4: an earlier study with two lesions rejected, then the same scan without rejections, read as a
    rising BSTBI: each study says what the reader changed, and the change says part of it is the reader's, in the
    CLI's lines, trend.json and trend.svg (the station and the desktop read the same trend)."""
    phantom, study = phantom_case
    earlier = _result_folder(study, phantom.masks, tmp_path / "earlier", [2, 4], study_date="20240915")
    later = _result_folder(study, phantom.masks, tmp_path / "later", study_date="20250301")
    points = [read_result(earlier), read_result(later)]
    assert (points[0].rejected, points[1].rejected) == (2, 0)
    assert main(["bonescan", "trend", str(earlier), str(later), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out.splitlines()
    note = "the earlier study had 2 lesions rejected by the reader, this one none: part of the change is the reader's"
    assert printed[0].endswith("(2 lesions rejected by the reader; segmentation edited or drawn by the reader)")
    assert printed[1].endswith("(segmentation edited or drawn by the reader)")  # `bonescan bstbi`: the reader's masks
    assert printed[-1].endswith(f"; caution: {note}") and printed[-2].endswith(f"; caution: {note}")
    written = json.loads((tmp_path / "out" / "trend.json").read_text())
    assert written["change_from_previous"]["reader_note"] == note and written["change_from_previous"]["change"] > 0
    assert [s["rejected_by_reader"] for s in written["studies"]] == [2, 0]
    svg = (tmp_path / "out" / "trend.svg").read_text()
    assert re.findall(r'class="reader">([^<]+)<title>', svg) == ["2 rejected, edited", "edited"]
    assert "orange label: what the reader changed (part of the change)" in svg
    assert main(["bonescan", "compare", str(earlier), str(later)]) == 0
    assert capsys.readouterr().out.strip().endswith(f"; caution: {note}")

    # the station's results compare the reader's segmentation with the AI's (Dice): rejections alone are no edit
    record = json.loads((later / "result.json").read_text())
    station = {**record, "reader_edited": True, "dice_ai_vs_edited": {"Bone metastasis": 1.0, "Bladder": 1.0}}
    rejected = {**station, "excluded_lesions": [2, 4]}
    edited = {**station, "dice_ai_vs_edited": {"Bone metastasis": 0.93, "Bladder": 1.0}}
    ai, ai_rejected, reader = (parse_result(json.dumps(r), n) for r, n in ((station, "ai"), (rejected, "rej"),
                                                                             (edited, "edited")))
    assert (ai.rejected, ai.reader_segmentation, ai_rejected.rejected, ai_rejected.reader_segmentation) == \
        (0, False, 2, False)
    assert reader.reader_segmentation and trend([ai, ai_rejected])["change_from_first"]["reader_note"] == (
        "the earlier study had no lesion rejected by the reader, this one 2: part of the change is the reader's")
    both = trend([reader, ai])
    assert both["change_from_first"]["reader_note"] == ("the earlier study's segmentation was the reader's (edited "
                                                        "or drawn), this one's the AI's: part of the change is the "
                                                        "reader's")
    assert trend([ai, StudyPoint("same reading", 0.2)])["change_from_first"]["reader_note"] == ""
    from smartimaging.web.bonescan_panel import _entry, _point  # the station's follow-up keeps them in its state

    assert _entry(ai_rejected)["reader"] == "2 lesions rejected by the reader" and \
        _point(_entry(ai_rejected)) == ai_rejected
    with pytest.raises(InputError, match="lists the lesions the reader rejected as 'two'"):
        parse_result(json.dumps({**record, "excluded_lesions": "two"}), "forged")


def test_results_of_other_modules_and_hand_edits_are_refused(phantom_case, tmp_path):
    phantom, study = phantom_case
    record = json.loads((_result_folder(study, phantom.masks, tmp_path / "r") / "result.json").read_text())
    assert parse_result(json.dumps(record), "r").bstbi == record["bstbi"]["mean"]
    edited = {**record, "bstbi": {**record["bstbi"], "mean": record["bstbi"]["mean"] / 2}}
    with pytest.raises(InputError, match="the file was changed after it was written"):
        parse_result(json.dumps(edited), "edited")
    mammo = {"models": [{"id": "mammo-mass-classifier-demo"}], "probability": 0.4}
    with pytest.raises(InputError, match="is a result of another SmartImaging module"):
        parse_result(json.dumps(mammo), "mammo")
    with pytest.raises(InputError, match="damaged or not JSON"):
        parse_result(b"\x89PNG", "image.png")


def test_cli_trend_prints_and_writes_the_same_numbers(phantom_case, tmp_path, capsys):
    phantom, study = phantom_case
    first = _result_folder(study, phantom.masks, tmp_path / "first", [1])
    second = _result_folder(study, phantom.masks, tmp_path / "second")
    assert main(["bonescan", "trend", str(first), str(second / "result.json"), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    written = json.loads((tmp_path / "out" / "trend.json").read_text())
    before, after = (read_result(p).bstbi for p in (first, second))
    assert written["change_from_previous"] == {**bstbi_change(before, after), "reader_note": (
        "the earlier study had 1 lesion rejected by the reader, this one none: part of the change is the reader's")}
    assert f"change from the first study: {before:.3f} -> {after:.3f}: {after - before:+.3f}" in printed
    assert (tmp_path / "out" / "trend.svg").read_text().startswith("<svg")
    assert main(["bonescan", "compare", str(first), str(second)]) == 0
    assert f"{after - before:+.3f}" in capsys.readouterr().out  # compare gives the same change


def test_flow_numbers_the_lesions_in_the_views_and_rejects_by_click(scene, phantom_case):
    phantom, study = phantom_case
    flow = BoneScanFlow(scene)
    volume = flow.load("scan", study.paths[0])
    truth = np.stack([phantom.masks["anterior"], phantom.masks["posterior"]])
    flow.select({"scan": volume}, segmentation=segmentation_from_labels(scene, volume, truth, BONESCAN_SEGMENTS,
                                                                        "reader", "edited"))
    first = flow.run(flow.compute())
    assert ["Lesions, anterior view", "5"] in first.rows and ["Lesions, posterior view", "5"] in first.rows
    markers = flow.extra_nodes["lesion numbers"]
    assert markers.GetNumberOfControlPoints() == 10 and markers.GetLocked()
    to_ijk = vtk.vtkMatrix4x4()
    volume.GetRASToIJKMatrix(to_ijk)
    for index, lesion in enumerate(flow.result_record["lesions"]):
        ras = [0.0, 0.0, 0.0]
        markers.GetNthControlPointPositionWorld(index, ras)
        i, j, k = to_ijk.MultiplyPoint((*ras, 1.0))[:3]
        assert (i, j, k) == pytest.approx((lesion["col"], lesion["row"], study.view(lesion["view"]).frame), abs=1e-6)
        assert markers.GetNthControlPointLabel(index) == str(lesion["id"])

    flow.toggle_lesion(1)
    second = flow.run(flow.compute())
    assert ["Lesions, anterior view", "4"] in second.rows
    assert ["Lesions rejected by the reader", "1 (#1)"] in second.rows
    assert first.roi_source == "AI" and second.roi_source == "AI; 1 lesion rejected by the reader"
    assert float(second.headline.split()[1]) < float(first.headline.split()[1])
    assert markers.GetNthControlPointLabel(0) == "1" and not markers.GetNthControlPointSelected(0)  # grey, no words
    listed = flow.extra_nodes["lesion table"]  # the desktop's lesion list
    assert listed.GetNumberOfRows() == 10
    assert [listed.GetCellText(0, c) for c in (0, 1, 7)] == ["#1", "anterior", "rejected"]
    assert listed.GetCellText(1, 7) == "counted" and listed.GetCellText(0, 6).startswith("same site as #")
    assert listed.GetCellText(0, 2) and listed.GetCellText(0, 3).startswith("x ")  # the site, then the mm
    flow.toggle_lesion(1)  # accepted again
    assert float(flow.run(flow.compute()).headline.split()[1]) == float(first.headline.split()[1])

    flow.toggle_lesion(2)
    segmentation = flow.segmentation.GetSegmentation()  # an edit after the rejection renumbers the lesions
    segmentation.RemoveSegment(segmentation.GetNthSegmentID(1))
    with pytest.raises(InputError, match="Compute BSTBI first"):
        flow.toggle_lesion(3)  # from the list of a result that is no longer current
    edited = flow.run(flow.compute())
    assert any("edited after lesions were rejected" in warning for warning in edited.warnings)
    assert ["Lesions rejected by the reader", "0"] in edited.rows


def test_cli_lists_the_lesions_for_exclude_and_counts_per_view(phantom_case, tmp_path, capsys):
    phantom, study = phantom_case
    truth = _result_folder(study, phantom.masks, tmp_path / "truth") / "segmentation_labels.nii.gz"
    assert main(["bonescan", "bstbi", str(study.paths[0]), "--mask", str(truth), "--exclude", "1",
                 "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"lesion #1 anterior: [a-z (),]+ \(x \d+ mm, y \d+ mm\) · \d+ mm² \(\d+ px\) · "
                     r"mean \d+, max \d+ counts · same site as #6 \(posterior\) · rejected", printed)
    assert "lesions: anterior 4 lesions · posterior 5 lesions; 5 sites (4 on both views); 1 rejected by the reader" \
        in printed
    record = json.loads((tmp_path / "out" / "result.json").read_text())
    assert record["lesion_counts"]["per_view"] == {"anterior": 4, "posterior": 5}


def test_huge_float32_counts_give_finite_lesion_uptake():
    counts = np.full((40, 40), 3e38, np.float32)  # a float32 mean of these overflows to inf
    labels = np.zeros((40, 40), np.uint8)
    labels[10:20, 10:20] = LESION
    lesion = lesion_components({"anterior": labels}, {"anterior": counts}, {"anterior": (1.0, 1.0)})[0]
    assert lesion["mean_counts"] == pytest.approx(3e38, rel=1e-6) and np.isfinite(lesion["mean_counts"])
    json.dumps(lesion, allow_nan=False)
    assert describe(lesion)["uptake"] == "mean 3e+38, max 3e+38 counts"  # not 39 digits


def test_a_near_zero_baseline_has_no_relative_change_and_writes_valid_json(phantom_case, tmp_path, capsys):
    assert bstbi_change(1e-320, 0.1)["relative_change_percent"] is None  # 0.1 / 1e-320 is inf
    record = json.loads((_result_folder(phantom_case[1], phantom_case[0].masks, tmp_path / "r") /
                         "result.json").read_text())
    tiny = tmp_path / "tiny.json"
    parts = {name: 1e-320 for name in record["bstbi"]["per_subimage"]}
    tiny.write_text(json.dumps({**record, "bstbi": {**record["bstbi"], "per_subimage": parts, "mean": 1e-320}}))
    for command in ("trend", "compare"):
        assert main(["bonescan", command, str(tiny), str(tmp_path / "r"), "--out", str(tmp_path / command)]) == 0
        assert "(relative change undefined: baseline 1e-320)" in capsys.readouterr().out
        written = (tmp_path / command / f"{command}.json").read_text()
        assert json.loads(written, parse_constant=pytest.fail)  # no Infinity / NaN


def test_trend_refuses_studies_that_are_not_one_patients_series(phantom_case, tmp_path):
    phantom, study = phantom_case
    two_views = read_result(_result_folder(study, phantom.masks, tmp_path / "phantom"))
    assert two_views.acquisition == {"views": 2, "grid": [1024, 256], "pixel_mm": [PIXEL_MM, PIXEL_MM],
                                     "manufacturer": "SmartImaging phantom"}
    one_view = StudyPoint("GE scan", 0.05, None, {"views": 1, "grid": [512, 256], "manufacturer": "GE Medical Systems"})
    with pytest.raises(InputError, match=r"were acquired differently \(number of views 2 vs 1\)"):
        trend([two_views, one_view])
    with pytest.raises(InputError, match="are the same study"):
        trend([two_views, read_result(tmp_path / "phantom" / "result.json")])
    earlier, current = StudyPoint("earlier", 0.1, date(2024, 5, 1)), StudyPoint("current", 0.2, date(2024, 1, 1))
    assert trend([earlier, current])["studies"][0]["label"] == "current"  # the CLI orders by date
    with pytest.raises(InputError, match=r"earlier is dated after the current study \(2024-01-01\)"):
        check_comparable([earlier, current], current_last=True)  # the station's "earlier" study
    with pytest.raises(InputError, match="is after today"):
        parse_study_date(date.today().replace(year=date.today().year + 1).strftime("%Y%m%d"))
    with pytest.raises(InputError, match="is before 1900"):
        parse_study_date("1899-12-31")
    assert parse_study_date("19000101") == date(1900, 1, 1)


def test_trend_marks_studies_outside_the_training_data_and_never_mixes_dates_with_order():
    points = [StudyPoint("a", 0.1, date(2024, 1, 5), outside_domain=True), StudyPoint("b", 0.2)]
    result = trend(points)
    assert result["studies"][0]["outside_training_data"] and not result["studies"][1]["outside_training_data"]
    assert trend_lines(result)[0].endswith("(outside the models' training data)")
    svg = trend_svg(result)
    assert svg.count('fill="white" stroke="#c62828"') == 1 and "open circle: outside the training data" in svg
    axis = re.findall(r'text-anchor="middle">([^<]+)</text>', svg)
    assert [label for label in axis if not re.fullmatch(r"[\d.]+", label)] == ["study 1", "study 2"]


def test_parser_refuses_deep_nesting_huge_numbers_and_non_regular_files(tmp_path):
    for text in ("[" * 100_000, '{"bstbi": {"mean": ' + "1" * 5000 + "}}"):
        with pytest.raises(InputError, match=r"is not a bone-scan result \(damaged or not JSON\)"):
            parse_result(text, "forged")
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    with pytest.raises(InputError, match="is not a regular file"):
        read_result(tmp_path / "zero.json")
    with pytest.raises(InputError, match=r"got '9{37}\.\.\.'$"):  # 40 characters of the 5000 typed
        parse_lesion_ids("9" * 5000)


def test_a_view_the_file_does_not_record_is_named_so_in_the_list_table_and_counts(phantom_case):
    ge = load_bone_scan([resource_dir("SampleData") / "GE_NM_wholebody_bone.dcm"])
    assert ge.unrecorded_views == ["anterior"] and phantom_case[1].unrecorded_views == []
    labels = np.zeros(ge.views[0].counts.shape, np.uint8)
    labels[100:110, 100:110] = LESION
    record = recompute_from_labelmaps(ge, {"anterior": labels}).as_json()
    title = "view not recorded (analysed as anterior)"
    assert review(record)["views"][0]["title"] == title
    assert count_rows(record["lesion_counts"])[0] == ["Lesions, anterior view", "1"]  # no view names given
    assert count_rows(record["lesion_counts"], record["unrecorded_views"])[0] == [f"Lesions, {title}", "1"]
    assert review(record)["counts"].startswith(f"{title} 1 lesion;")  # one lesion, not "1 lesions"
    assert review(recompute_from_labelmaps(phantom_case[1], phantom_case[0].masks).as_json())["views"][0][
        "title"] == "anterior view"
