"""The worklist over a cohort folder: discovery, status, saving, resume, conflicts, concurrent saves, and the manifest
it writes being the one `mammo extract` reads."""

import csv
import hashlib
import json
import multiprocessing
import os
import re
import resource
import shutil
import signal
import stat
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from test_mammo_images import _mg_dicom

from smartimaging.errors import InputError
from smartimaging.io import write_image
from smartimaging.lvi.cohort import write_lvi_phantom_cohort
from smartimaging.mammo.cohort import write_mammo_phantom_cohort
from smartimaging.mammo.features import extract_cohort, load_mask
from smartimaging.mammo.images import load_mammogram
from smartimaging.manifest import read_manifest
from smartimaging.segments import MAMMO_SEGMENTS
from smartimaging.worklist import (
    CORRECTED,
    DONE,
    KEY_FILE,
    NEW,
    PROPOSED,
    ConflictError,
    PixelSizeNeededError,
    Worklist,
    _pseudonym,
    _unique,
    cohort_key,
    stable_split,
)

MAMMO = "MammoRadiomics"


@pytest.fixture(scope="module")
def mammo_cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mammo-cohort")
    write_mammo_phantom_cohort(folder, 5, seed=3, kind="mass")
    return folder


@pytest.fixture
def cohort(mammo_cohort, tmp_path):
    folder = tmp_path / "cohort"
    shutil.copytree(mammo_cohort, folder)
    return folder


def _key(worklist, case_id):
    """The case's mammogram and its answer-key mask as the (1, rows, cols) labels the station saves."""
    case = worklist.case(case_id)
    mammogram = load_mammogram(case.inputs["mammogram"], float(case.given["pixel_mm"]))
    return mammogram.image, load_mask(case.key_mask, mammogram)[None].astype(np.uint8)


def test_cases_and_answer_keys_come_from_the_cohort_manifest(cohort):
    worklist = Worklist(cohort, MAMMO)
    rows = read_manifest(cohort / "manifest.csv").rows
    assert [c.case_id for c in worklist.cases] == [r["patient_id"] for r in rows]
    first = worklist.cases[0]
    assert first.key_mask == (cohort / rows[0]["mask"]).resolve()
    assert first.key_label == ("malignant" if rows[0]["label"] == "1" else "benign")
    assert first.given["kind"] == "mass" and float(first.given["pixel_mm"]) > 0
    assert worklist.counts() == {NEW: 5, PROPOSED: 0, CORRECTED: 0, DONE: 0}
    assert worklist.out == cohort / "smartimaging" / MAMMO


def test_propose_correct_save_writes_the_manifest_extract_reads(cohort, tmp_path):
    worklist = Worklist(cohort, MAMMO)
    segments = (MAMMO_SEGMENTS["mass"],)
    saved = {}
    for case in worklist.cases[:3]:
        image, key = _key(worklist, case.case_id)
        ai = np.zeros_like(key)
        ai[:, :, : key.shape[2] // 2 + 10] = key[:, :, : key.shape[2] // 2 + 10]  # the AI missed part of it
        worklist.save_proposal(case.case_id, ai * segments[0].label, image, segments, {"id": "mammo-mass-unet-demo"})
        assert worklist.status(case.case_id) == PROPOSED
        record = worklist.save(case.case_id, {"kind": "mass", "pathology": case.key_label, "birads": "4a"},
                               key * segments[0].label, image, segments, edit_seconds=12.5)
        expected = 2 * np.sum(ai & key) / (ai.sum() + key.sum())
        assert record["dice_ai_vs_corrected"] == pytest.approx(expected, abs=1e-4)
        assert record["status"] == DONE and record["edit_seconds"] == 12.5
        saved[case.case_id] = key
    worklist.save(worklist.cases[3].case_id, {"kind": "mass"}, _key(worklist, worklist.cases[3].case_id)[1],
                  _key(worklist, worklist.cases[3].case_id)[0], segments)  # no pathology: corrected, not done
    assert worklist.counts() == {NEW: 1, PROPOSED: 0, CORRECTED: 1, DONE: 3}

    manifest = read_manifest(worklist.manifest_path)
    assert [r["case_id"] for r in manifest.rows] == list(saved)
    for row in manifest.rows:
        assert row["split"] == stable_split(row["patient_id"])
        assert row["model"] == "mammo-mass-unet-demo" and row["kind"] == "mass"
        mammogram = load_mammogram(manifest.resolve(row["image"]), float(row["pixel_mm"]))
        assert np.array_equal(load_mask(manifest.resolve(row["mask"]), mammogram), saved[row["case_id"]][0] > 0)
        reread = sitk.ReadImage(str(manifest.resolve(row["mask"])))
        assert reread.GetSpacing() == pytest.approx(mammogram.image.GetSpacing())
        assert reread.GetOrigin() == pytest.approx(mammogram.image.GetOrigin())
    extracted, failures = extract_cohort(worklist.manifest_path, tmp_path / "features.csv", n_jobs=1,
                                         show_progress=False)
    assert extracted == 3 and not failures


def test_reopening_resumes_where_the_reader_stopped(cohort):
    worklist = Worklist(cohort, MAMMO)
    assert worklist.resume_case() == worklist.cases[0].case_id
    third = worklist.cases[2].case_id
    worklist.open(third)
    assert Worklist(cohort, MAMMO).resume_case() == third
    assert worklist.neighbour(third, 1) == worklist.cases[3].case_id
    assert worklist.neighbour(worklist.cases[0].case_id, -1) is None
    image, key = _key(worklist, worklist.cases[4].case_id)
    worklist.save(worklist.cases[4].case_id, {"kind": "mass", "pathology": "benign"}, key, image,
                  (MAMMO_SEGMENTS["mass"],))
    assert worklist.neighbour(worklist.cases[0].case_id, 1, status=DONE) == worklist.cases[4].case_id
    assert [r["case"] for r in worklist.rows(status=DONE)] == [worklist.cases[4].case_id]


def test_the_model_chosen_for_a_kind_is_remembered_for_the_next_opening(cohort):
    """The cohort's own model chosen (per flow attribute and lesion kind) is what a reopened worklist offers as
    chosen, once listed; the demo forgets it; opening a case keeps it; nothing is written until a choice."""
    worklist = Worklist(cohort, MAMMO)
    cards = [worklist.out / "models" / name / f"{name}.json" for name in ("mass-site-1", "mass-site-2")]
    choices = [("demo (demo weights)", cohort / "demo.json", True)] + [(c.parent.name, c, False) for c in cards]
    assert worklist.chosen_card("classifier_card", "mass", choices) is None
    worklist.choose_card("classifier_card", "mass", None)  # the demo, nothing remembered: nothing written
    assert not worklist.out.exists()
    worklist.choose_card("classifier_card", "mass", cards[1])
    worklist.choose_card("segmenter_card", "mass", cards[0])
    worklist.open(worklist.cases[2].case_id)
    reopened = Worklist(cohort, MAMMO)
    assert reopened.resume_case() == worklist.cases[2].case_id
    assert reopened.chosen_card("classifier_card", "mass", choices) == cards[1]
    assert reopened.chosen_card("segmenter_card", "mass", choices) == cards[0]
    assert reopened.chosen_card("classifier_card", "calcification", choices) is None  # another kind
    assert reopened.chosen_card("classifier_card", "mass", choices[:2]) is None  # no longer offered
    reopened.choose_card("classifier_card", "mass", None)
    assert Worklist(cohort, MAMMO).chosen_card("classifier_card", "mass", choices) is None
    assert Worklist(cohort, MAMMO).chosen_card("segmenter_card", "mass", choices) == cards[0]


@pytest.mark.parametrize("state", [{"models": ["mass-site-1"]}, {"models": {"classifier_card:mass": ["x"]}},
                                   {"models": {"classifier_card:mass": "../mass-site-1"}}, {"current": [1]},
                                   {"current": {"a": 1}, "models": None}])
def test_a_damaged_worklist_state_is_read_as_none(cohort, state):
    """worklist.json edited by hand: no model is remembered (a name is only matched against the cards offered) and
    the worklist resumes at its first case."""
    worklist = Worklist(cohort, MAMMO)
    worklist.out.mkdir(parents=True)
    (worklist.out / "worklist.json").write_text(json.dumps(state), encoding="utf-8")
    card = worklist.out / "models" / "mass-site-1" / "mass-site-1.json"
    assert worklist.chosen_card("classifier_card", "mass", [("mass-site-1", card, False)]) is None
    assert worklist.resume_case() == worklist.cases[0].case_id
    worklist.choose_card("classifier_card", "mass", card)
    assert worklist.chosen_card("classifier_card", "mass", [("mass-site-1", card, False)]) == card


def test_a_save_over_another_windows_save_is_refused_unless_forced(cohort):
    worklist = Worklist(cohort, MAMMO)
    case_id = worklist.cases[0].case_id
    image, key = _key(worklist, case_id)
    segments = (MAMMO_SEGMENTS["mass"],)
    opened = worklist.record(case_id).get("revision", 0)
    Worklist(cohort, MAMMO).save(case_id, {"kind": "mass", "pathology": "benign"}, key, image, segments)
    with pytest.raises(ConflictError, match="saved in another window"):
        worklist.save(case_id, {"kind": "mass", "pathology": "malignant"}, key, image, segments,
                      expected_revision=opened)
    assert worklist.record(case_id)["labels"]["pathology"] == "benign"
    worklist.save(case_id, {"kind": "mass", "pathology": "malignant"}, key, image, segments,
                  expected_revision=opened, force=True)
    assert worklist.record(case_id)["labels"]["pathology"] == "malignant"


@pytest.mark.parametrize(("labels", "mask", "message"), [
    ({"pathology": "cancer"}, True, "Pathology takes benign, malignant"),
    ({"lvi": "positive"}, True, "Unknown label"),
    ({"pathology": "benign"}, False, "The ROI is empty"),
])
def test_bad_saves_are_refused_and_leave_nothing(cohort, labels, mask, message):
    worklist = Worklist(cohort, MAMMO)
    case_id = worklist.cases[0].case_id
    image, key = _key(worklist, case_id)
    with pytest.raises(InputError, match=message):
        worklist.save(case_id, labels, key if mask else np.zeros_like(key), image, (MAMMO_SEGMENTS["mass"],))
    assert not worklist.case_folder(case_id).exists() and not worklist.manifest_path.exists()


def _save_many(folder, case_ids, rounds):
    worklist = Worklist(folder, MAMMO)
    for index in range(rounds):
        for case_id in case_ids:
            image, key = _key(worklist, case_id)
            worklist.save(case_id, {"kind": "mass", "pathology": ("benign", "malignant")[index % 2]}, key, image,
                          (MAMMO_SEGMENTS["mass"],))


def test_two_windows_saving_at_once_never_corrupt_the_worklist(cohort):
    ids = [c.case_id for c in Worklist(cohort, MAMMO).cases]
    context = multiprocessing.get_context("spawn")
    windows = [context.Process(target=_save_many, args=(cohort, part, 4)) for part in (ids[:3], ids[2:])]
    for window in windows:
        window.start()
    for window in windows:
        window.join(120)
        assert window.exitcode == 0
    worklist = Worklist(cohort, MAMMO)
    assert worklist.counts()[DONE] == 5
    assert sorted(r["case_id"] for r in read_manifest(worklist.manifest_path).rows) == sorted(ids)
    assert worklist.record(ids[2])["revision"] == 8  # both windows saved the shared case four times each
    leftovers = [p for p in worklist.out.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".seg.")]
    assert not leftovers


def test_a_damaged_record_reads_as_a_new_case(cohort):
    worklist = Worklist(cohort, MAMMO)
    case_id = worklist.cases[1].case_id
    worklist.case_folder(case_id).mkdir(parents=True)
    (worklist.case_folder(case_id) / "case.json").write_text('{"case_id": "other", "status": "done"}')
    assert worklist.status(case_id) == NEW
    (worklist.case_folder(case_id) / "case.json").write_text("{not json")
    assert worklist.status(case_id) == NEW


def test_a_folder_of_studies_without_manifest(tmp_path, mammo_cohort):
    folder = tmp_path / "studies"
    (folder / "patientA").mkdir(parents=True)
    images = sorted((mammo_cohort / "images").iterdir())
    shutil.copy(images[0], folder / "patientA" / "cc.png")
    shutil.copy(images[1], folder / "patientA" / "mlo.png")
    shutil.copy(images[2], folder / "single view.png")
    (folder / "notes.txt").write_text("not an image")
    worklist = Worklist(folder, MAMMO)
    assert [c.display_name for c in worklist.cases] == ["patientA/cc.png", "patientA/mlo.png", "single view.png"]
    assert all(re.fullmatch("c[0-9a-f]{8}", c.case_id) for c in worklist.cases)
    patients = [c.patient_id for c in worklist.cases]
    assert patients[0] == patients[1] != patients[2] and all(re.fullmatch("P[0-9a-f]{10}", p) for p in patients)
    assert all(c.key_mask is None for c in worklist.cases)
    assert not (folder / "smartimaging").exists()  # opening a folder writes nothing


def test_mri_case_folders_are_matched_by_sequence_name(tmp_path):
    cohort = tmp_path / "lvi"
    write_lvi_phantom_cohort(cohort, 2, seed=5)
    folder = tmp_path / "mri"
    for index, row in enumerate(read_manifest(cohort / "manifest.csv", required=("dce",)).rows):
        (folder / f"case{index}").mkdir(parents=True)
        shutil.copy(cohort / row["dce"], folder / f"case{index}" / "DCE_phase2.nrrd")
        if index == 0:
            shutil.copy(cohort / row["t2"], folder / f"case{index}" / "t2.nrrd")
    (folder / "empty").mkdir()
    worklist = Worklist(folder, "BreastLVI")
    assert [sorted(c.inputs) for c in worklist.cases] == [["DCE", "T2"], ["DCE"]]
    assert worklist.skipped and "empty: no DCE" in worklist.skipped[0]


def test_dicom_patient_ids_are_pseudonymised(tmp_path):
    from smartimaging.bonescan.cohort import write_phantom_cohort

    write_phantom_cohort(tmp_path / "cohort", 2, seed=2)
    folder = tmp_path / "scans"
    folder.mkdir()
    for path in (tmp_path / "cohort" / "images").iterdir():
        shutil.copy(path, folder / path.stem)  # DICOM without extension
    worklist = Worklist(folder, "BoneScanBSTBI")
    assert len(worklist.cases) == 2
    assert all(c.patient_id.startswith("P") and len(c.patient_id) == 11 for c in worklist.cases)
    assert not any(c.patient_id in c.case_id for c in worklist.cases)
    import pydicom

    patient = str(pydicom.dcmread(worklist.cases[0].inputs["scan"], stop_before_pixels=True).PatientID)
    worklist.open(worklist.cases[0].case_id)  # the first write stores the key the pseudonyms were made with
    key = cohort_key(worklist.out)
    assert worklist.cases[0].patient_id == _pseudonym(patient, key)
    assert worklist.cases[0].patient_id != "P" + hashlib.sha256(patient.encode()).hexdigest()[:10]  # keyed


def test_refusals(tmp_path, cohort):
    with pytest.raises(InputError, match="does not exist"):
        Worklist(tmp_path / "missing", MAMMO)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="No studies"):
        Worklist(tmp_path / "empty", MAMMO)
    with pytest.raises(InputError, match="No worklist for the module"):
        Worklist(cohort, "Unknown")
    if os.geteuid() != 0:
        out = tmp_path / "read-only"
        out.mkdir()
        out.chmod(0o500)
        try:
            worklist = Worklist(cohort, MAMMO, out=out / "work")  # opening writes nothing: the first write refuses
            with pytest.raises(InputError, match="cannot be saved"):
                worklist.open(worklist.cases[0].case_id)
        finally:
            out.chmod(0o700)


def test_stable_split_is_grouped_and_roughly_proportioned():
    splits = [stable_split(f"patient{i}") for i in range(2000)]
    assert stable_split("MG001") == stable_split("mg001")
    assert 0.65 < splits.count("train") / 2000 < 0.75 and 0.1 < splits.count("test") / 2000 < 0.2


def test_written_files_are_complete_json(cohort):
    worklist = Worklist(cohort, MAMMO)
    case_id = worklist.cases[0].case_id
    image, key = _key(worklist, case_id)
    worklist.save(case_id, {"kind": "mass", "pathology": "benign", "note": "a note, with \"quotes\""}, key, image,
                  (MAMMO_SEGMENTS["mass"],))
    record = json.loads((worklist.case_folder(case_id) / "case.json").read_text())
    assert record["labels"]["note"] == 'a note, with "quotes"'
    with open(worklist.manifest_path, encoding="utf-8", newline="") as f:
        assert "note" not in next(csv.reader(f))  # free text stays in the case record
    written = sitk.ReadImage(str(worklist.case_folder(case_id) / "corrected.seg.nrrd"))
    assert written.GetMetaData("Segment0_Name") == MAMMO_SEGMENTS["mass"].name
    write_image(written, worklist.out / "copy.nrrd")  # a complete, readable file


def test_a_bone_scan_without_lesions_is_saved_with_an_empty_roi_only_when_negative(tmp_path):
    from smartimaging.bonescan.cohort import write_phantom_cohort
    from smartimaging.segments import BONESCAN_SEGMENTS

    write_phantom_cohort(tmp_path, 1, seed=6)
    worklist = Worklist(tmp_path, "BoneScanBSTBI")
    case = worklist.cases[0]
    reference = sitk.ReadImage(str(case.key_mask))
    empty = np.zeros(sitk.GetArrayViewFromImage(reference).shape, np.uint8)
    with pytest.raises(InputError, match="saved with Bone metastasis: no"):
        worklist.save(case.case_id, {"metastasis": "yes"}, empty, reference, BONESCAN_SEGMENTS)
    with pytest.raises(InputError, match="The ROI is empty"):
        worklist.save(case.case_id, {}, empty, reference, BONESCAN_SEGMENTS)
    assert worklist.save(case.case_id, {"metastasis": "no"}, empty, reference, BONESCAN_SEGMENTS)["status"] == DONE
    assert worklist.manifest_rows()[0]["label"] == 0


# ---- a hostile or damaged cohort folder ---------------------------------------------------------------------------

def _save_first(worklist, pathology="benign"):
    case_id = worklist.cases[0].case_id
    image, key = _key(worklist, case_id)
    return worklist.save(case_id, {"kind": "mass", "pathology": pathology}, key, image, (MAMMO_SEGMENTS["mass"],))


def test_links_in_the_output_folder_are_refused(cohort, tmp_path, mammo_cohort):
    outside = tmp_path / "outside"
    outside.mkdir()
    worklist = Worklist(cohort, MAMMO)
    case_id = worklist.cases[0].case_id
    (worklist.out / "cases").mkdir(parents=True)
    (worklist.out / "cases" / case_id).symlink_to(outside)  # a case folder linked elsewhere
    with pytest.raises(InputError, match="is a link"):
        _save_first(worklist)
    assert not list(outside.iterdir()) and worklist.status(case_id) == NEW

    victim = tmp_path / "victim"
    shutil.copytree(mammo_cohort, victim)
    before = (victim / "manifest.csv").read_bytes()
    linked = tmp_path / "linked"
    shutil.copytree(mammo_cohort, linked)
    (linked / "smartimaging").mkdir()
    (linked / "smartimaging" / MAMMO).symlink_to(victim)  # the module's folder is another cohort
    with pytest.raises(InputError, match="is a link"):
        Worklist(linked, MAMMO)
    shutil.rmtree(linked / "smartimaging")
    (linked / "smartimaging").symlink_to(outside)  # smartimaging/ itself
    with pytest.raises(InputError, match="is a link"):
        Worklist(linked, MAMMO)
    with pytest.raises(InputError, match="is a link"):  # the DICOM database's worklist makes its key first
        cohort_key(linked / "smartimaging" / MAMMO)
    assert (victim / "manifest.csv").read_bytes() == before and not list(outside.iterdir())


def test_repeated_patient_ids_get_unique_case_ids(cohort):
    assert _unique(["a", "a-2", "a", "A", "b"]) == ["a", "a-2", "a-3", "A-4", "b"]
    rows = read_manifest(cohort / "manifest.csv").rows
    for row, patient in zip(rows, ("a", "a-2", "a"), strict=False):
        row["patient_id"] = patient
    with open(cohort / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    worklist = Worklist(cohort, MAMMO)
    assert [c.case_id for c in worklist.cases[:3]] == ["a", "a-2", "a-3"]
    assert len({c.inputs["mammogram"] for c in worklist.cases}) == 5
    image, key = _key(worklist, "a-2")
    worklist.save("a-2", {"kind": "mass", "pathology": "benign"}, key, image, (MAMMO_SEGMENTS["mass"],))
    (row,) = read_manifest(worklist.manifest_path, required=("image",)).rows
    assert (row["patient_id"], Path(row["image"]).name) == ("a-2", Path(rows[1]["image"]).name)


@pytest.mark.parametrize("damage", [
    {"status": "done", "labels": {"pathology": "xyz"}},
    {"status": "done", "labels": ["x"]},
    {"status": "done", "labels": {"pathology": "benign", "kind": "mass"}, "model": "a string"},
    {"status": "done", "labels": {"pathology": "benign", "kind": "mass"}, "options": ["x"]},
    {"status": "done", "labels": {"pathology": "benign", "kind": "mass"}, "options": {"pixel_mm": "nan"}},
    {"status": "done", "labels": {"kind": "mass"}},  # done without the required pathology
    {"status": "corrected", "revision": "7"},
    {"status": "corrected", "edit_seconds": "x"},
    {"status": "<b>x</b>"},
])
def test_a_damaged_record_reads_as_new_and_blocks_no_other_case(cohort, damage):
    worklist = Worklist(cohort, MAMMO)
    damaged, other = worklist.cases[0].case_id, worklist.cases[1].case_id
    worklist.case_folder(damaged).mkdir(parents=True)
    (worklist.case_folder(damaged) / "case.json").write_text(json.dumps({"case_id": damaged, **damage}))
    assert worklist.status(damaged) == NEW and worklist.rows()[0]["status"] == NEW
    assert worklist.counts()[NEW] == 5
    image, key = _key(worklist, other)
    assert worklist.save(other, {"kind": "mass", "pathology": "benign"}, key, image,
                         (MAMMO_SEGMENTS["mass"],))["status"] == DONE
    assert [r["case_id"] for r in read_manifest(worklist.manifest_path, required=()).rows] == [other]
    assert _save_first(worklist)["revision"] == 1  # the damaged case is saved as a new one
    assert len(read_manifest(worklist.manifest_path, required=()).rows) == 2


def test_a_save_whose_manifest_cannot_be_made_changes_nothing(cohort, monkeypatch):
    worklist = Worklist(cohort, MAMMO)
    monkeypatch.setattr("smartimaging.worklist.MAX_MANIFEST_BYTES", 10)
    with pytest.raises(InputError, match="manifest size limit"):
        _save_first(worklist)
    assert worklist.status(worklist.cases[0].case_id) == NEW
    assert not (worklist.case_folder(worklist.cases[0].case_id) / "corrected.seg.nrrd").exists()


def _nrrd(path, header: str, data: bytes = b""):
    import gzip

    path.write_bytes(f"NRRD0004\n{header}\nspace: left-posterior-superior\nencoding: gzip\n\n".encode()
                     + gzip.compress(data))


def test_saved_roi_files_are_read_through_the_checked_reader(cohort, tmp_path):
    from smartimaging.teaching_scene import read_proposal

    worklist = Worklist(cohort, MAMMO)
    case_id = worklist.cases[0].case_id
    image, key = _key(worklist, case_id)
    segments = (MAMMO_SEGMENTS["mass"],)
    worklist.save_proposal(case_id, key * segments[0].label, image, segments, {"id": "m"})
    folder = worklist.case_folder(case_id)
    record = worklist.record(case_id)
    ai = folder / "ai.seg.nrrd"
    (tmp_path / "elsewhere").write_text("root:x:0:0")
    vector = sitk.Compose([sitk.Cast(image, sitk.sitkUInt8)] * 3)
    vector.CopyInformation(image)
    size = image.GetSize()
    for damage, message in (
            (lambda: ai.symlink_to(tmp_path / "elsewhere"), "not a plain file"),
            (lambda: sitk.WriteImage(vector, str(ai)), "not a label image"),
            (lambda: ai.write_text("NRRD0004\ngarbage"), "cannot be used"),
            (lambda: _nrrd(ai, f"type: uint8\ndimension: 3\nsizes: {size[0]} {size[1]} {size[2]}\n"
                               "space directions: (1,0,0) (0,1,0) (0,0,1)", b"\0" * 10), "cannot be used")):
        ai.unlink()
        damage()
        with pytest.raises(InputError, match=message):  # one plain message, and nothing written
            worklist.save(case_id, {"kind": "mass", "pathology": "benign"}, key, image, segments)
        assert worklist.record(case_id) == record and not (folder / "corrected.seg.nrrd").exists()
        with pytest.raises(InputError, match=message):
            read_proposal(ai, image)
    ai.unlink()  # 8 GB claimed in a few bytes: refused from its header, nothing decoded
    _nrrd(ai, "type: uint8\ndimension: 3\nsizes: 4096 4096 512\nspace directions: (1,0,0) (0,1,0) (0,0,1)",
          b"\0" * 1000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InputError, match="not on the grid"):
        read_proposal(ai, image)
    assert worklist.save(case_id, {"kind": "mass", "pathology": "benign"}, key, image,
                         segments)["dice_ai_vs_corrected"] is None  # a proposal on another grid is not compared
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 2**20  # kB: under 1 GB more


@pytest.mark.parametrize(("column", "value", "message"), [
    ("pixel_mm", "abc", "pixel_mm 'abc' is not a number"),
    ("pixel_mm", "-1", "not a mammogram pixel size"),
    ("pixel_mm", "nan", "not a mammogram pixel size"),
    ("pixel_mm", "inf", "not a mammogram pixel size"),
    ("pixel_mm", "0", "not a mammogram pixel size"),
    ("kind", "xyz", "lesion kind 'xyz' is not one of mass, calcification"),
])
def test_a_manifest_row_with_a_bad_kind_or_pixel_size_is_skipped(cohort, column, value, message):
    rows = read_manifest(cohort / "manifest.csv").rows
    rows[1][column] = value
    with open(cohort / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    worklist = Worklist(cohort, MAMMO)
    assert len(worklist.cases) == 4 and rows[1]["patient_id"] not in [c.case_id for c in worklist.cases]
    (skipped,) = worklist.skipped
    assert skipped.startswith(rows[1]["patient_id"]) and message in skipped
    with pytest.raises(InputError, match="not a mammogram pixel size"):  # nor can a save record one
        image, key = _key(worklist, worklist.cases[0].case_id)
        worklist.save(worklist.cases[0].case_id, {"kind": "mass"}, key, image, (MAMMO_SEGMENTS["mass"],),
                      options={"pixel_mm": "0"})


def test_scanned_studies_are_named_without_identifiers(tmp_path, mammo_cohort):
    folder = tmp_path / "studies"
    (folder / "Smith_Jane_19500101").mkdir(parents=True)
    images = sorted((mammo_cohort / "images").iterdir())
    shutil.copy(images[0], folder / "Smith_Jane_19500101" / "cc.png")
    shutil.copy(images[1], folder / "DOE_JOHN_MRN998877.png")
    worklist = Worklist(folder, MAMMO)
    names = {c.display_name: c for c in worklist.cases}
    assert set(names) == {"Smith_Jane_19500101/cc.png", "DOE_JOHN_MRN998877.png"}
    assert [r["name"] for r in worklist.rows()] == [c.display_name for c in worklist.cases]
    for case in worklist.cases:
        image = load_mammogram(case.inputs["mammogram"], 0.2).image
        labels = np.zeros(sitk.GetArrayViewFromImage(image).shape, np.uint8)
        labels[0, 10:30, 10:30] = 1
        worklist.save(case.case_id, {"kind": "mass", "pathology": "benign"}, labels, image,
                      (MAMMO_SEGMENTS["mass"],), options={"pixel_mm": "0.2"})
    key_file = worklist.out / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = cohort_key(worklist.out)
    assert names["DOE_JOHN_MRN998877.png"].patient_id == _pseudonym("DOE_JOHN_MRN998877.png", key)
    assert names["Smith_Jane_19500101/cc.png"].patient_id == _pseudonym("Smith_Jane_19500101", key)
    reopened = Worklist(folder, MAMMO)  # the same ids and keys with the stored key
    assert [(c.case_id, c.patient_id) for c in reopened.cases] == [(c.case_id, c.patient_id) for c in worklist.cases]
    assert reopened.counts()[DONE] == 2
    written = [p for p in worklist.out.rglob("*") if p.is_file() and p.name not in (KEY_FILE, ".lock")]
    for path in written + [p for p in worklist.out.rglob("*") if p.is_dir()]:
        text = path.name + (path.read_bytes().decode("latin-1") if path.is_file() else "")
        columns_and_paths = text.replace("Smith_Jane_19500101/cc.png", "").replace("DOE_JOHN_MRN998877.png", "")
        assert "Smith" not in columns_and_paths and "MRN998877" not in columns_and_paths, path  # images' paths only
        assert key.hex() not in text
    manifest = read_manifest(worklist.manifest_path).rows
    assert {r["case_id"] for r in manifest} == {c.case_id for c in worklist.cases}


def test_unreadable_folders_are_refused_plainly(tmp_path, monkeypatch):
    folder = tmp_path / "mri"
    (folder / "case").mkdir(parents=True)

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path / "secret"))

    monkeypatch.setattr("smartimaging.worklist._entries", denied)
    with pytest.raises(InputError, match="^Cannot read secret: permission denied$"):
        Worklist(folder, "BreastLVI")


def _alarm(signum, frame):
    raise TimeoutError("the worklist hung on a pipe")


def test_pipes_named_like_the_worklists_files_read_as_nothing(cohort):
    worklist = Worklist(cohort, MAMMO)
    case_id = worklist.cases[0].case_id
    worklist.case_folder(case_id).mkdir(parents=True)
    os.mkfifo(worklist.case_folder(case_id) / "case.json")
    os.mkfifo(worklist.out / "worklist.json")
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(10)
    try:
        assert worklist.rows()[0]["status"] == NEW and worklist.resume_case() == case_id
        assert Worklist(cohort, MAMMO).counts()[NEW] == 5
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_a_new_proposal_of_a_corrected_case_is_compared_again(cohort):
    worklist = Worklist(cohort, MAMMO)
    case_id = worklist.cases[0].case_id
    image, key = _key(worklist, case_id)
    segments = (MAMMO_SEGMENTS["mass"],)
    half = key.copy()
    half[:, :, : key.shape[2] // 2 + 5] = 0
    worklist.save_proposal(case_id, half, image, segments, {"id": "first"})
    first = worklist.save(case_id, {"kind": "mass", "pathology": "benign"}, key, image, segments)
    first = first["dice_ai_vs_corrected"]
    record = worklist.save_proposal(case_id, key, image, segments, {"id": "second"})  # Segment pressed again
    assert record["status"] == DONE and record["dice_ai_vs_corrected"] == 1.0 != first
    (row,) = read_manifest(worklist.manifest_path).rows
    assert (row["dice_ai_vs_corrected"], row["model"]) == ("1.0", "second")


def test_stale_temporaries_are_removed_and_masks_are_not_studies(cohort, tmp_path, mammo_cohort):
    worklist = Worklist(cohort, MAMMO)
    _save_first(worklist)
    folder = worklist.case_folder(worklist.cases[0].case_id)
    old, fresh = worklist.out / ".manifest.csv.x1.tmp", folder / ".case.json.x2.tmp"
    stale_seg, foreign = folder / ".seg.x3.seg.nrrd", worklist.out / ".notes.tmp"
    for path in (old, fresh, stale_seg, foreign):
        path.write_text("partial")
    an_hour_ago = time.time() - 3600
    for path in (old, stale_seg, foreign):
        os.utime(path, (an_hour_ago, an_hour_ago))
    Worklist(cohort, MAMMO)
    assert not old.exists() and not stale_seg.exists() and fresh.exists() and foreign.exists()

    (cohort / "manifest.csv").write_bytes("patient_id,image,mask\nM\xe9,a.png,b.png\n".encode("latin-1"))
    with pytest.raises(InputError, match="not a UTF-8 text file"):
        Worklist(cohort, MAMMO)
    (cohort / "manifest.csv").write_text("")  # no columns: the folder is scanned, but not its masks/
    assert {c.display_name.split("/")[0] for c in Worklist(cohort, MAMMO).cases} == {"images"}


def test_a_loose_png_needs_its_pixel_size_once_and_files_that_store_one_do_not(tmp_path, mammo_cohort):
    folder = tmp_path / "studies"
    (folder / "patientA").mkdir(parents=True)
    shutil.copy(sorted((mammo_cohort / "images").iterdir())[0], folder / "patientA" / "cc.png")
    reference = load_mammogram(folder / "patientA" / "cc.png", 0.2)
    write_image(reference.image, folder / "mlo.nrrd")  # stores its spacing
    stored = np.random.default_rng(0).integers(100, 16000, (60, 40)).astype(np.uint16)
    _mg_dicom(folder / "digital.dcm", stored)  # ImagerPixelSpacing
    _mg_dicom(folder / "film.dcm", stored)
    film = pydicom.dcmread(folder / "film.dcm")
    del film.ImagerPixelSpacing  # a digitised film: no pixel size
    film.save_as(folder / "film.dcm")
    worklist = Worklist(folder, MAMMO)
    ids = {c.display_name: c.case_id for c in worklist.cases}
    png, nrrd = ids["patientA/cc.png"], ids["mlo.nrrd"]
    worklist.require_pixel_size(nrrd)
    worklist.require_pixel_size(ids["digital.dcm"])
    with pytest.raises(PixelSizeNeededError, match="film.dcm: its DICOM file stores no pixel size"):
        worklist.require_pixel_size(ids["film.dcm"])
    with pytest.raises(PixelSizeNeededError, match="its PNG file stores no pixel size; give the pixel size in mm") as e:
        worklist.require_pixel_size(png)
    assert e.value.case_id == png and "patientA/cc.png" in str(e.value)
    segment = MAMMO_SEGMENTS["mass"]
    roi = np.zeros((1, *reference.pixels.shape), np.uint8)
    roi[0, 100:120, 100:120] = segment.label
    for save in (lambda: worklist.save(png, {"kind": "mass", "pathology": "benign"}, roi, reference.image, (segment,)),
                 lambda: worklist.save_proposal(png, roi, reference.image, (segment,), {"id": "m"})):
        with pytest.raises(PixelSizeNeededError):
            save()
    assert not (folder / "smartimaging").exists()  # refused: nothing written
    for bad, message in (("", "Type the pixel size"), ("abc", "Pixel size 'abc' is not a number"),
                         ("0", "not a mammogram pixel size"), ("1_0", "Pixel size '1_0' is not a number"),
                         ("٠٫١", "is not a number"), ("12", "expected 0.02 to 10 mm")):
        with pytest.raises(InputError, match=message):
            worklist.set_pixel_size(png, bad)
    worklist.set_pixel_size(png, " 2.0e-1 ")  # kept as the number it is, not as typed
    again = Worklist(folder, MAMMO)  # asked once: a reopened worklist has it
    assert again.pixel_size(png) == "0.2" and again.status(png) == NEW
    again.require_pixel_size(png)
    saved = again.save(png, {"kind": "mass", "pathology": "benign"}, roi, reference.image, (segment,))
    assert saved["options"] == {"pixel_mm": "0.2"} and saved["status"] == DONE
    with pytest.raises(InputError, match="its ROIs were saved on that grid"):
        again.set_pixel_size(png, "0.1")
    assert again.set_pixel_size(png, "0.20")["revision"] == saved["revision"]  # the same size: nothing written
    assert read_manifest(again.manifest_path).rows[0]["pixel_mm"] == "0.2"
