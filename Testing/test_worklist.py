"""The worklist over a cohort folder: discovery, status, saving, resume, conflicts, concurrent saves, and the manifest
it writes being the one `mammo extract` reads."""

import csv
import json
import multiprocessing
import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

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
    NEW,
    PROPOSED,
    ConflictError,
    Worklist,
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
    assert [(c.case_id, c.patient_id) for c in worklist.cases] == [
        ("patientA_cc", "patientA"), ("patientA_mlo", "patientA"), ("single_view", "single_view")]
    assert all(c.key_mask is None for c in worklist.cases)
    assert not list((folder / "smartimaging").rglob("*.csv"))


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
            with pytest.raises(InputError, match="cannot be saved"):
                Worklist(cohort, MAMMO, out=out / "work")
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
