"""Teaching mode in a real MRML scene (slicer-core), as the station's teaching panel drives it: a teaching set keeps
only the cases with an answer key and says why others were left out, never writes into the teacher's cohort, finds
the AI proposal a cohort's worklist saved, makes one with Segment at the key's centre without touching the student's
outline, and shows the three outlines in their colours, outlined: the AI's in the station's proposal green, and the
three told apart with simulated colour-vision deficiencies. A set of PNG files without pixel sizes asks for one (once
for the set when no case has one, else per case; the worklist's refusals) and is checked in the millimetres given."""

import csv
import itertools

import numpy as np
import pytest
import SimpleITK as sitk

from smartimaging.errors import InputError
from smartimaging.mammo.cohort import write_mammo_phantom_cohort
from smartimaging.mammo.flow import MammoFlow
from smartimaging.mrml import create_headless_scene, ijk_to_ras_matrix, volume_node_to_sitk
from smartimaging.segmentation_nodes import PROPOSAL_COLOR, labels_from_segmentation
from smartimaging.teaching import check_answer, check_spots, slice_to_show
from smartimaging.teaching_scene import (
    OUTLINE_ROLE,
    OUTLINES,
    PHANTOM_BONE_SCANS,
    TeachingSet,
    image_of,
    key_centre_lps,
    proposal_call,
    proposal_flow,
    proposal_mask,
    ras_bounds,
    read_proposal,
    segmentations_shown,
    show_outlines,
    slice_centre_ras,
    spot_sites,
    student_mask,
    write_phantom_set,
)
from smartimaging.worklist import PixelSizeNeededError
from smartimaging.worklist_scene import WorklistReading, set_segments


def _files(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


# Machado, Oliveira & Fernandes 2009, severity 1: linear-RGB simulation of protanopia, deuteranopia, tritanopia
CVD = {"protan": ((0.152286, 1.052583, -0.204868), (0.114503, 0.786281, 0.099216), (-0.003882, -0.048116, 1.051998)),
       "deutan": ((0.367322, 0.860646, -0.227968), (0.280085, 0.672501, 0.047413), (-0.011820, 0.042940, 0.968881)),
       "tritan": ((1.255528, -0.076749, -0.178779), (-0.078411, 0.930809, 0.147602), (0.004733, 0.691367, 0.303900))}
MIN_DELTA_E = 25  # CIELAB ΔE76 between any two outlines' colours, with normal and each simulated vision


def _lab(srgb) -> np.ndarray:
    """CIELAB (D65) of an sRGB colour (0–1)."""
    rgb = np.clip(srgb, 0, 1)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    t = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _seen(srgb, matrix) -> np.ndarray:
    """An sRGB colour as a simulated deficiency sees it (sRGB)."""
    rgb = np.asarray(srgb, float)
    linear = np.clip(np.array(matrix) @ np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4), 0, 1)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def test_outline_colours_are_the_stations_and_told_apart_with_colour_vision_deficiencies():
    colours = {outline.name: outline.color for outline in OUTLINES}
    assert colours["ai"] == PROPOSAL_COLOR  # green, as the AI's proposal everywhere in the station
    for vision, matrix in {"normal": np.eye(3), **CVD}.items():
        for a, b in itertools.combinations(colours, 2):
            delta = np.linalg.norm(_lab(_seen(colours[a], matrix)) - _lab(_seen(colours[b], matrix)))
            assert delta >= MIN_DELTA_E, (vision, a, b, delta)
    yellow = (0.941, 0.894, 0.259)  # the student's former colour: beside the station's green, lost to a deutan
    assert np.linalg.norm(_lab(_seen(yellow, CVD["deutan"])) - _lab(_seen(PROPOSAL_COLOR, CVD["deutan"]))) < 10


def test_only_cases_with_a_key_are_taught_and_the_cohort_is_never_written(tmp_path):
    cohort = tmp_path / "cohort"
    write_mammo_phantom_cohort(cohort, 4, seed=3, kind="mass")
    manifest = cohort / "manifest.csv"
    with open(manifest, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    rows[1]["mask"] = ""  # no reference outline
    rows[2]["label"] = ""  # no label
    with open(manifest, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    before = _files(cohort)
    flow = MammoFlow(create_headless_scene())
    teaching = TeachingSet(flow, cohort, tmp_path / "scratch")
    assert [case.case_id for case in teaching.cases] == [rows[0]["patient_id"], rows[3]["patient_id"]]
    assert teaching.left_out == ("Left out: 1 case without a reference outline (the manifest's mask column); 1 case "
                                 "without a label (the manifest's label column). Only cases with an answer key "
                                 "(outline and label) are taught.")
    assert teaching.choices == ("benign", "malignant")
    case = teaching.open(1)
    assert case.case_id == rows[3]["patient_id"] and flow.primary is not None
    assert flow.segmentation is None and flow.ai_segmentation is None  # nothing but the image in the scene
    assert teaching.key().any()
    assert _files(cohort) == before  # the student's session wrote nothing into the teacher's folder

    for row in rows:
        row["mask"] = ""
    with open(manifest, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(InputError, match="no case with an answer key.*4 cases without a reference outline"):
        TeachingSet(MammoFlow(create_headless_scene()), cohort, tmp_path / "scratch2")


def test_check_with_the_ai_at_the_keys_centre_and_the_three_outlines(tmp_path):
    cohort = write_phantom_set(tmp_path / "set", "MammoRadiomics", seed=5, kind="mass")
    scene = create_headless_scene()
    flow = MammoFlow(scene)
    teaching = TeachingSet(flow, cohort, tmp_path / "scratch")
    assert len(teaching.cases) == 3 and teaching.left_out == ""
    case = teaching.open(0)
    assert teaching.saved_proposal(case) is None  # the cohort has no worklist yet
    key = teaching.key()
    reference = volume_node_to_sitk(flow.primary)
    flow.draw_by_hand()
    drawn = np.zeros(key.shape, np.uint8)
    rows, cols = np.nonzero(key[0])
    drawn[0, rows.min():rows.max() + 1, cols.min():(cols.min() + cols.max()) // 2] = 1  # the left half of the box
    set_segments(scene, flow.segmentation, flow.primary, drawn, flow.drawn_segments)
    before = flow.segmentation

    ai_flow = proposal_flow(flow, case, key_centre_lps(key, reference))
    ai_flow.run(ai_flow.segment())
    ai = proposal_mask(ai_flow)
    ai_flow.clear()
    assert flow.segmentation is before and scene.IsNodePresent(before)  # the student's outline untouched
    student = student_mask(flow)
    assert np.array_equal(student, drawn != 0)
    result = check_answer(image_of(student, reference), image_of(key, reference), image_of(ai, reference),
                          "malignant", case.key_label, {c: c for c in teaching.choices})
    assert result.dice_ai_key > 0.6 > result.dice_student_key > 0.2  # the AI outlined the lesion; half a box did not

    masks = {"student": student, "key": key, "ai": ai}
    nodes = show_outlines(scene, flow.primary, masks, flow.drawn_segments[0])
    assert [node.GetAttribute(OUTLINE_ROLE) for node in nodes] == ["student", "ai", "key"]  # the key drawn on top
    for node, outline in zip(nodes, OUTLINES, strict=True):
        segment = node.GetSegmentation().GetNthSegment(0)
        assert segment.GetName() == outline.title and np.allclose(segment.GetColor(), outline.color)
        assert np.array_equal(labels_from_segmentation(scene, node, flow.primary, flow.drawn_segments) != 0,
                              masks[outline.name])
    assert len({outline.hex for outline in OUTLINES}) == 3
    shown = {entry["outline"]: entry for entry in segmentations_shown(scene) if entry["outline"]}
    assert set(shown) == {"student", "key", "ai"}
    assert all(entry["visible"] and not entry["filled"] for entry in shown.values())

    folder = teaching.keep(case, {"student": student, "ai": ai}, reference, flow.drawn_segments[0])
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "student.seg.nrrd"))) != 0, student)
    assert str(folder).startswith(str(tmp_path / "scratch"))

    bounds = ras_bounds([key], flow.primary)  # the key's box in RAS: half a pixel beyond its outer pixels' centres
    spacing = reference.GetSpacing()[0]
    assert bounds[1] - bounds[0] == pytest.approx((cols.max() - cols.min() + 1) * spacing)
    assert bounds[3] - bounds[2] == pytest.approx((rows.max() - rows.min() + 1) * spacing)


def test_a_proposal_saved_by_the_cohorts_worklist_is_used(tmp_path):
    cohort = write_phantom_set(tmp_path / "set", "MammoRadiomics", seed=6, kind="mass")
    reader = WorklistReading(MammoFlow(create_headless_scene()), cohort)  # the teacher's worklist on the cohort
    case = reader.open_case()
    proposal = np.zeros(volume_node_to_sitk(reader.flow.primary).GetSize()[::-1], np.uint8)
    proposal[0, 10:20, 10:20] = 1
    reader.worklist.save_proposal(case.case_id, proposal, volume_node_to_sitk(reader.flow.primary),
                                  reader.flow.drawn_segments, {"id": "test"})
    flow = MammoFlow(create_headless_scene())
    teaching = TeachingSet(flow, cohort, tmp_path / "scratch")
    opened = teaching.open(0)
    path = teaching.saved_proposal(opened)
    assert path == cohort / "smartimaging" / "MammoRadiomics" / "cases" / case.case_id / "ai.seg.nrrd"
    assert np.array_equal(read_proposal(path, volume_node_to_sitk(flow.primary)), proposal != 0)
    assert flow.ai_segmentation is None  # kept out of the scene until Check
    assert teaching.saved_proposal(teaching.cases[1]) is None


def test_a_worklists_output_folder_is_a_teaching_set_with_its_saved_proposals(tmp_path):
    """The reader's corrected ROIs and labels (a worklist's manifest) are the keys; its ai_mask column the AI."""
    cohort = write_phantom_set(tmp_path / "set", "MammoRadiomics", seed=7, kind="mass")
    reader = WorklistReading(MammoFlow(create_headless_scene()), cohort)
    proposals, corrections = {}, {}
    for case in reader.worklist.cases[:2]:
        reader.open_case(case.case_id)
        reference = volume_node_to_sitk(reader.flow.primary)
        proposal = np.zeros(reference.GetSize()[::-1], np.uint8)
        proposal[0, 100:140, 100:150] = 1
        reader.worklist.save_proposal(case.case_id, proposal, reference, reader.flow.drawn_segments, {"id": "test"})
        reader.open_case(case.case_id)
        corrected = proposal.copy()
        corrected[0, 140:150, 100:150] = 1
        set_segments(reader.flow.scene, reader.flow.segmentation, reader.flow.primary, corrected,
                     reader.flow.drawn_segments)
        reader.save({"kind": "mass", "pathology": "malignant"})
        proposals[case.case_id], corrections[case.case_id] = proposal != 0, corrected != 0
    output = reader.worklist.out  # <cohort>/smartimaging/MammoRadiomics: its manifest lists the 2 cases done

    flow = MammoFlow(create_headless_scene())
    teaching = TeachingSet(flow, output, tmp_path / "scratch")
    assert len(teaching.cases) == 2 and teaching.left_out == ""
    for index, source in enumerate(reader.worklist.cases[:2]):
        case = teaching.open(index)
        assert case.key_label == "malignant"
        assert np.array_equal(teaching.key(), corrections[source.case_id])
        saved = teaching.saved_proposal(case)
        assert saved == output / "cases" / source.case_id / "ai.seg.nrrd"
        assert np.array_equal(read_proposal(saved, volume_node_to_sitk(flow.primary)), proposals[source.case_id])


def _hand_made_set(folder, pixel_mm: dict[int, str]):
    """A 3-case PNG mammography set whose manifest gives a pixel_mm only to the rows in `pixel_mm` (no column when
    none): a teacher's hand-made manifest. Its rows."""
    write_mammo_phantom_cohort(folder, 3, seed=3, kind="mass")
    with open(folder / "manifest.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {row["pixel_mm"] for row in rows} == {"0.2"}  # the phantoms' true pixel size
    for index, row in enumerate(rows):
        row["pixel_mm"] = pixel_mm.get(index, "")
        if not pixel_mm:
            del row["pixel_mm"]
    with open(folder / "manifest.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def test_a_png_set_without_pixel_sizes_asks_once_for_the_set_and_computes_in_its_mm(tmp_path):
    cohort = tmp_path / "set"
    rows = _hand_made_set(cohort, {})
    before = _files(cohort)
    flow = MammoFlow(create_headless_scene())
    teaching = TeachingSet(flow, cohort, tmp_path / "scratch")
    assert teaching.pixel_size_for_set
    with pytest.raises(PixelSizeNeededError):  # never read at a silent 1 mm
        teaching.open(0)
    assert flow.primary is None
    asked = ("The images of this teaching set (PNG files) store no pixel size and its manifest.csv gives none (a "
             "pixel_mm column): give the pixel size in mm (e.g. 0.1) of every case of the set; it is kept for this "
             "session.")
    assert [teaching.pixel_size_request(i) for i in range(3)] == [asked] * 3
    for text, refusal in (("0", "Pixel size 0 is not a mammogram pixel size"), ("nan", "Pixel size nan is not a "),
                          ("inf", "Pixel size inf is not a "), ("12", "Pixel size 12 is not a "),
                          ("0.1 mm", "Pixel size '0.1 mm' is not a number"), (" ", "Type the pixel size in mm")):
        with pytest.raises(InputError, match=refusal):
            teaching.set_pixel_size(0, text)
        assert [teaching.pixel_size_request(i) for i in range(3)] == [asked] * 3  # nothing kept

    assert teaching.set_pixel_size(0, "0.2") == [row["patient_id"] for row in rows]  # asked once: the whole set
    assert [teaching.pixel_size_request(i) for i in range(3)] == [""] * 3
    case = teaching.open(2)
    reference = volume_node_to_sitk(flow.primary)
    assert reference.GetSpacing()[:2] == (0.2, 0.2)
    key = teaching.key()
    student = key.copy()
    rows_, cols = np.nonzero(key[0])
    student[0, :, (cols.min() + cols.max()) // 2:] = False  # the key's left half
    student[0, rows_.min():rows_.max() + 1, cols.min() - 20:cols.min()] = True  # and a band left of it
    result = check_answer(image_of(student, reference), image_of(key, reference))
    missed, extra = result.student.missed, result.student.extra
    assert missed and extra and missed[0].unit == "mm²"
    assert sum(r.pixels for r in missed) == np.count_nonzero(key & ~student)
    for region in (*missed, *extra):  # areas in the given millimetres (0.04 mm² a pixel), not 1 mm² a pixel
        assert region.size == pytest.approx(region.pixels * 0.2 * 0.2)

    ai_flow = proposal_flow(flow, case, key_centre_lps(key, reference))  # the AI reads the case at the same size
    assert ai_flow.primary.GetSpacing()[:2] == (0.2, 0.2)
    ai_flow.clear()
    assert teaching.reading.worklist.pixel_size(case.case_id) == "0.2"
    assert (tmp_path / "scratch" / "worklist" / "cases" / case.case_id / "case.json").is_file()
    assert _files(cohort) == before  # kept in the station's scratch, never in the teacher's folder
    again = TeachingSet(MammoFlow(create_headless_scene()), cohort, tmp_path / "scratch2")  # a new session asks again
    assert again.pixel_size_request(0) == asked


def test_a_set_with_some_pixel_sizes_asks_for_each_case_that_has_none(tmp_path):
    cohort = tmp_path / "set"
    rows = _hand_made_set(cohort, {0: "0.2"})
    flow = MammoFlow(create_headless_scene())
    teaching = TeachingSet(flow, cohort, tmp_path / "scratch")
    assert not teaching.pixel_size_for_set
    teaching.open(0)  # its manifest row gives its size
    assert flow.primary.GetSpacing()[:2] == (0.2, 0.2) and teaching.pixel_size_request(0) == ""
    with pytest.raises(PixelSizeNeededError):
        teaching.open(1)
    assert flow.primary is None
    assert teaching.pixel_size_request(1) == (f"Case {teaching.cases[1].name}: its PNG file stores no pixel size and "
                                              "the manifest gives none: give the pixel size in mm (e.g. 0.1) to open "
                                              "it; it is kept for this session.")
    assert teaching.set_pixel_size(1, "0.15") == [rows[1]["patient_id"]]  # this case only
    assert teaching.pixel_size_request(2) != ""
    teaching.open(1)
    assert flow.primary.GetSpacing()[:2] == (0.15, 0.15)


def test_an_lvi_teaching_set_is_checked_in_mm3(tmp_path):
    from smartimaging.lvi.flow import LVIFlow

    cohort = write_phantom_set(tmp_path / "set", "BreastLVI", seed=1)
    scene = create_headless_scene()
    flow = LVIFlow(scene)
    teaching = TeachingSet(flow, cohort, tmp_path / "scratch")
    assert teaching.choices == ("negative", "positive") and len(teaching.cases) == 3
    case = teaching.open(0)
    assert set(flow.volumes) == {"DCE", "T2"} and flow.segmentation is None
    key = teaching.key()
    reference = volume_node_to_sitk(flow.primary)
    assert key.shape == reference.GetSize()[::-1] and key.shape[0] > 1  # a volume
    ai_flow = proposal_flow(flow, case, key_centre_lps(key, reference))
    ai_flow.run(ai_flow.segment())
    ai = proposal_mask(ai_flow)
    ai_flow.clear()
    assert [node.GetName() for node in _volumes(scene)] == [node.GetName() for node in flow.volumes.values()]
    student = key.copy()
    student[: key.shape[0] // 2] = False  # the slices of the volume's upper half only
    result = check_answer(image_of(student, reference), image_of(key, reference), image_of(ai, reference),
                          "positive", case.key_label, {c: c for c in teaching.choices})
    assert result.dice_ai_key > 0.8 and result.student.missed[0].unit == "mm³"
    assert result.call == ("right" if case.key_label == "positive" else "wrong")

    lesion = np.flatnonzero(key.any(axis=(1, 2)))  # the student outlines one slice of the lesion
    middle = int(lesion[len(lesion) // 2])
    one = np.zeros_like(key)
    one[middle] = key[middle]
    result = check_answer(image_of(one, reference), image_of(key, reference))
    thickness = reference.GetSpacing()[2]
    assert result.student.summary.startswith(
        f"Your outline covers 1 slice (slice {middle + 1}); the lesion spans {len(lesion)} slices (slices "
        f"{lesion[0] + 1}–{lesion[-1] + 1}, {len(lesion) * thickness:.3g} mm): outline it on every slice. You missed")
    shown = slice_to_show(one, key)
    assert shown.index == middle
    centre = slice_centre_ras([one, key, ai], flow.primary, shown.index)  # the views centre there after Check
    ijk = np.linalg.inv(ijk_to_ras_matrix(flow.primary)) @ [*centre, 1.0]
    rows, cols = np.nonzero(key.any(axis=0) | ai.any(axis=0))
    assert ijk[:3] == pytest.approx([(cols.min() + cols.max()) / 2, (rows.min() + rows.max()) / 2, middle], abs=1e-9)


def test_a_bone_scan_teaching_set_is_checked_spot_by_spot_with_negative_studies(tmp_path):
    """The phantom set has PHANTOM_BONE_SCANS' negative study; its key is empty, and an outline of none is checked
    (no Dice); on a positive study the student outlines the key's anterior spots only (and paints the bladder, which
    is no metastasis): the anterior spots are found, the posterior ones missed, each named by its skeletal site; the
    AI (Segment on the whole study, in the worker) gives its lesion segment and its call; the outlines show on both
    frames. A negative row without a mask is still taught (an empty key); a positive one is left out."""
    from smartimaging.bonescan.flow import BoneScanFlow
    from smartimaging.bonescan.scene import RESULT
    from smartimaging.mrml import get_json_attribute

    cohort = write_phantom_set(tmp_path / "set", "BoneScanBSTBI", seed=1)
    before = _files(cohort)
    scene = create_headless_scene()
    flow = BoneScanFlow(scene)
    teaching = TeachingSet(flow, cohort, tmp_path / "scratch")
    assert teaching.choices == ("no", "yes") and teaching.left_out == ""
    assert [case.key_label for case in teaching.cases] == ["yes" if s == "positive" else "no"
                                                           for s in PHANTOM_BONE_SCANS] == ["yes", "no", "yes"]
    words = {c: c for c in teaching.choices}

    negative = teaching.open(1)
    reference = volume_node_to_sitk(flow.primary)
    key = teaching.key()
    assert key.shape == (2, *reference.GetSize()[1::-1]) and not key.any()  # two frames, no metastasis
    assert teaching.bladder() is None or teaching.bladder().any()
    none = student_mask(flow)  # nothing drawn: the student outlined no spot
    assert none.shape == key.shape and not none.any()
    views, where = spot_sites(flow, teaching.bladder())
    result = check_spots(image_of(none, reference), image_of(key, reference), None, "no", negative.key_label, words,
                         views, where)
    assert (result.call, result.dice_student_key, result.key_spots) == ("right", None, ())
    assert result.student_spots.summary == "No metastasis in the key, and you outlined no spot."

    positive = teaching.open(0)
    reference = volume_node_to_sitk(flow.primary)
    key = teaching.key()
    assert key[0].any() and key[1].any()
    flow.draw_by_hand()
    drawn = np.zeros(key.shape, np.uint8)
    drawn[0][key[0]] = 1  # the anterior view's metastases
    drawn[1, 500:520, 100:120] = 2  # the bladder segment: not a metastasis
    set_segments(scene, flow.segmentation, flow.primary, drawn, flow.drawn_segments)
    student = student_mask(flow)
    assert np.array_equal(student, drawn == 1)
    views, where = spot_sites(flow, teaching.bladder())
    assert views == ["anterior", "posterior"]
    flow.segmenter_card = tmp_path / "fine-tuned.json"  # the tab's Proposal network choice: the AI's too
    chosen = proposal_flow(flow, positive, None)
    assert (chosen.segmenter_card, chosen.classifier_card) == (flow.segmenter_card, None)
    chosen.clear()
    flow.segmenter_card = None
    ai_flow = proposal_flow(flow, positive, None)
    ai_flow.run(ai_flow.segment())
    ai, ai_call = proposal_mask(ai_flow), proposal_call(ai_flow)
    suspected = get_json_attribute(ai_flow.ai_segmentation, RESULT)["metastasis_suspected"]
    ai_labels = labels_from_segmentation(scene, ai_flow.ai_segmentation, ai_flow.primary, ai_flow.drawn_segments)
    ai_flow.clear()
    assert ai_call == ("yes" if suspected else "no") and np.array_equal(ai, ai_labels == 1)
    result = check_spots(image_of(student, reference), image_of(key, reference), image_of(ai, reference), "yes",
                         positive.key_label, words, views, where, ai_call)
    assert result.dice_student_key == pytest.approx(2 * key[0].sum() / (key[0].sum() + key.sum()), abs=1e-12)
    findings = result.student_spots
    assert {spot.view for spot in findings.found} == {"anterior"} and {s.view for s in findings.missed} == {"posterior"}
    assert findings.false_positives == () and result.call == "right"
    assert all(not spot.where.startswith("x ") for spot in result.key_spots)  # placed at skeletal sites
    assert result.ai_spots is not None and result.ai_call == ai_call and result.ai_call_summary

    masks = {"student": student, "key": key, "ai": ai}
    nodes = show_outlines(scene, flow.primary, masks, flow.drawn_segments[0])
    for node, outline in zip(nodes, OUTLINES, strict=True):  # on both frames: the anterior and the posterior view
        assert np.array_equal(labels_from_segmentation(scene, node, flow.primary, flow.drawn_segments) != 0,
                              masks[outline.name])
    assert _files(cohort) == before

    manifest = cohort / "manifest.csv"
    with open(manifest, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    rows[0]["mask"] = rows[1]["mask"] = ""  # a positive and a negative study without a reference mask
    with open(manifest, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    teaching = TeachingSet(BoneScanFlow(create_headless_scene()), cohort, tmp_path / "scratch2")
    assert [case.key_label for case in teaching.cases] == ["no", "yes"]
    assert teaching.left_out.startswith("Left out: 1 case without a reference outline (the manifest's mask column; "
                                        "a negative study may have none)")
    teaching.open(0)
    assert not teaching.key().any() and teaching.bladder() is None


def test_a_bone_scan_whose_label_and_reference_mask_disagree_is_left_out_saying_why(tmp_path):
    """A study labelled with metastasis whose mask outlines none, and one labelled without whose mask outlines some,
    would be checked as both right and wrong: left out at open, named with the reason, as cases without a key are."""
    from smartimaging.bonescan.flow import BoneScanFlow

    cohort = write_phantom_set(tmp_path / "set", "BoneScanBSTBI", seed=1)
    manifest = cohort / "manifest.csv"
    with open(manifest, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["label"] for row in rows] == ["1", "0", "1"]  # PHANTOM_BONE_SCANS, each with its mask
    rows[1]["label"], rows[2]["label"] = "1", "0"
    with open(manifest, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    teaching = TeachingSet(BoneScanFlow(create_headless_scene()), cohort, tmp_path / "scratch")
    assert [case.case_id for case in teaching.cases] == [rows[0]["patient_id"]]
    assert teaching.left_out == (
        f"Left out: 2 cases whose label and reference mask disagree ({rows[1]['patient_id']}: labelled 'yes' but its "
        f"mask outlines no bone metastasis, {rows[2]['patient_id']}: labelled 'no' but its mask outlines a bone "
        "metastasis). Only cases with an answer key (outline and label) are taught.")


def _volumes(scene):
    nodes = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    return [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())
            if nodes.GetItemAsObject(i).GetClassName() == "vtkMRMLScalarVolumeNode"]
