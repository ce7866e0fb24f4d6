"""The desktop modules' worklist (smartimaging.desktop_worklist) on real MRML (slicer-core): the section's logic drives
each module's flow through open -> Segment -> keep the proposal -> save -> reopen, with the module's selectors set as
the widget sets them and read back as each module's Logic.select reads them; the DICOM database's studies become
cases (a test double of ctkDICOMDatabase's five methods over real DICOM files: slicer-core ships no ctk); the core's
explicit cases and series folders; and, from the source, each <Module>.py wires the section and the section uses only
Qt / CTK / Slicer APIs found in Slicer 5.12's own code."""

from __future__ import annotations

import ast
import csv
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_series import write_dicom_series
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from smartimaging.bonescan.cohort import write_phantom_cohort
from smartimaging.bonescan.flow import BoneScanFlow
from smartimaging.bonescan.views import write_nm_dicom
from smartimaging.dce.cohort import write_dce_phantom_cohort
from smartimaging.dce.flow import DCEFlow
from smartimaging.desktop_worklist import (
    ALL,
    SELECTORS,
    WorklistSession,
    cases_from_dicom_database,
    mr_sequence,
    selector_values,
)
from smartimaging.errors import InputError
from smartimaging.lvi.cohort import write_lvi_phantom_cohort
from smartimaging.lvi.flow import LVIFlow
from smartimaging.mammo.cohort import write_mammo_phantom_cohort
from smartimaging.mammo.flow import MammoFlow
from smartimaging.mrml import create_headless_scene, ijk_to_ras_matrix
from smartimaging.phantoms.bonescan import make_bone_scan_phantom
from smartimaging.phantoms.breast_mri import make_breast_mri_phantom, phantom_image
from smartimaging.phantoms.mammo import PIXEL_MM, make_mammo_phantom
from smartimaging.segmentation_nodes import labels_from_segmentation
from smartimaging.worklist import (
    DONE,
    NEW,
    PROPOSED,
    Case,
    ConflictError,
    PixelSizeNeededError,
    Worklist,
    _pseudonym,
    series_folder,
)
from smartimaging.worklist_scene import set_segments

REPO = Path(__file__).resolve().parents[1]
MODULES = ("MammoRadiomics", "BreastLVI", "BoneScanBSTBI", "DCESynthesis")


def module_select(flow, p) -> None:
    """What each <Module>Logic.select does with its parameter node (the same expressions; checked against the
    modules' source in test_each_module_reads_its_selectors_back_as_the_section_sets_them)."""
    if flow.module == "MammoRadiomics":
        flow.set_kind(p.lesionKind)
        flow.set_pixel_size(p.pixelSize)
        flow.select({"mammogram": p.inputVolume}, p.lesionPoint, p.editedSegmentation or p.aiSegmentation,
                    p.resultTable)
    elif flow.module == "BreastLVI":
        flow.select({"DCE": p.dceVolume, "T2": p.t2Volume}, p.lesionPoint, p.voiSegmentation, p.resultTable)
    elif flow.module == "BoneScanBSTBI":
        flow.select({"scan": p.anteriorVolume, "posterior": p.posteriorVolume}, None,
                    p.editedSegmentation or p.aiSegmentation, p.resultTable)
    else:
        flow.select({"T1": p.t1Volume, "DCE": p.realDceVolume}, table_node=p.metricsTable)


SELECT_SOURCE = {  # the expressions of module_select, as each module's Logic.select writes them
    "MammoRadiomics": ["self.flow.set_kind(p.lesionKind)", "self.flow.set_pixel_size(p.pixelSize)",
                       "self.flow.select({'mammogram': p.inputVolume}, p.lesionPoint, p.editedSegmentation or "
                       "p.aiSegmentation, p.resultTable)"],
    "BreastLVI": ["self.flow.select({'DCE': p.dceVolume, 'T2': p.t2Volume}, p.lesionPoint, p.voiSegmentation, "
                  "p.resultTable)"],
    "BoneScanBSTBI": ["self.flow.select({'scan': p.anteriorVolume, 'posterior': p.posteriorVolume}, None, "
                      "p.editedSegmentation or p.aiSegmentation, p.resultTable)"],
    "DCESynthesis": ["self.flow.select({'T1': p.t1Volume, 'DCE': p.realDceVolume}, table_node=p.metricsTable)"],
}


def opened(session) -> SimpleNamespace:
    """The module's parameter node after the section opened a case (its fields as `selector_values` sets them)."""
    return SimpleNamespace(**selector_values(session.flow))


def _labels(flow, node=None):
    return labels_from_segmentation(flow.scene, node or flow.segmentation, flow.primary, flow.drawn_segments)


def _place_on_key(session, p) -> None:
    """The reader's point on the answer key's centre (the lesion), on the module's point node."""
    key = session.reading.answer_key()
    slices, rows, cols = np.nonzero(key)
    centre = ijk_to_ras_matrix(session.flow.primary) @ [cols.mean(), rows.mean(), slices.mean(), 1]
    p.lesionPoint.AddControlPoint(*centre[:3])


# ---- the four modules' flows through the section's logic ----------------------------------------------------------

def test_mammo_open_segment_keep_save_reopen_filter_and_conflict(tmp_path):
    write_mammo_phantom_cohort(tmp_path, 3, seed=21, kind="mass")
    session = WorklistSession(MammoFlow(create_headless_scene()))
    first = session.open_folder(tmp_path)
    assert [f.name for f in session.fields] == ["pathology", "birads", "note"]  # the kind is the module's selector
    p = opened(session)
    assert p.inputVolume is session.flow.primary and p.editedSegmentation is None and p.resultTable is None
    assert p.lesionKind == "mass" and float(p.pixelSize) == PIXEL_MM
    assert p.lesionPoint.GetNumberOfControlPoints() == 0  # an empty point to place on the case's lesion
    _place_on_key(session, p)
    module_select(session.flow, p)  # the module's Segment
    session.flow.run(session.flow.segment())
    record = session.keep_proposal()
    assert record["status"] == PROPOSED and record["model"]["id"] == "mammo-mass-unet-demo"
    assert session.rows()[0][:2] == [first.case_id, PROPOSED]
    proposed = _labels(session.flow)
    edited = proposed.copy()
    rows, cols = np.nonzero(proposed[0])
    edited[0, rows.min():rows.min() + 5, cols.min():cols.max()] = 1  # the reader adds a strip
    set_segments(session.flow.scene, session.flow.segmentation, session.flow.primary, edited,
                 session.flow.drawn_segments)
    saved = session.save({"pathology": "malignant", "birads": "4c", "note": ""}, {"kind": p.lesionKind})
    assert saved["status"] == DONE and saved["labels"] == {"kind": "mass", "pathology": "malignant", "birads": "4c"}
    assert 0 < saved["dice_ai_vs_corrected"] < 1
    assert session.rows()[0] == [first.case_id, DONE, f"{saved['dice_ai_vs_corrected']:.3f}", "mass, malignant, 4c"]
    assert session.columns == ("Case", "Status", "Dice AI vs corrected", "Labels")

    session.set_filter(DONE)
    assert [row[0] for row in session.rows()] == [first.case_id]
    assert session.step(1) is None and session.case_id == first.case_id  # no further done case: nothing moves
    session.set_filter(ALL)
    assert session.step(1).case_id == session.reading.worklist.cases[1].case_id
    assert opened(session).editedSegmentation is None  # the next case has no ROI yet
    with pytest.raises(InputError, match="Filter by"):
        session.set_filter("finished")

    reopened = WorklistSession(MammoFlow(create_headless_scene()))
    assert reopened.open_folder(tmp_path).case_id == session.reading.worklist.cases[1].case_id  # where it stopped
    reopened.open(first.case_id)
    p2 = opened(reopened)
    module_select(reopened.flow, p2)  # the selectors hold the restored ROI: the module computes from it
    assert p2.editedSegmentation is reopened.flow.segmentation and p2.aiSegmentation is reopened.flow.ai_segmentation
    assert np.array_equal(_labels(reopened.flow), edited)
    assert np.array_equal(_labels(reopened.flow, reopened.flow.ai_segmentation), proposed)
    assert reopened.labels()["birads"] == "4c"

    session.open(first.case_id)  # a second window on the same case
    reopened.save({"pathology": "benign"}, {"kind": "mass"})
    with pytest.raises(ConflictError):
        session.save({"pathology": "malignant"}, {"kind": "mass"})
    assert session.save({"pathology": "malignant"}, {"kind": "mass"}, force=True)["labels"]["pathology"] == "malignant"


def test_a_volume_selected_in_the_module_is_not_saved_into_the_worklist_case(tmp_path):
    write_mammo_phantom_cohort(tmp_path, 2, seed=22, kind="mass")
    session = WorklistSession(MammoFlow(create_headless_scene()))
    session.open_folder(tmp_path)
    p = opened(session)
    other = session.flow.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "another mammogram")
    other.SetAndObserveImageData(session.flow.primary.GetImageData())
    p.inputVolume = other
    module_select(session.flow, p)
    session.flow.draw_by_hand()
    assert session.keep_proposal() is None
    with pytest.raises(InputError, match="not the worklist's open case"):
        session.save({"pathology": "benign"}, {"kind": "mass"})
    assert session.reading.worklist.status(session.case_id) == NEW
    session.open(session.case_id)  # the worklist's case again: the reader's own volume stays in the scene
    assert session.flow.scene.IsNodePresent(other) and session.flow.primary is not other
    assert opened(session).inputVolume is session.flow.primary


def test_bone_scan_open_segment_keep_save_reopen(tmp_path):
    write_phantom_cohort(tmp_path, 2, seed=23)
    session = WorklistSession(BoneScanFlow(create_headless_scene()))
    session.open_folder(tmp_path)
    p = opened(session)
    assert p.anteriorVolume is session.flow.primary and p.posteriorVolume is None
    module_select(session.flow, p)
    session.flow.run(session.flow.segment())  # the widget's WidgetSteps, then _onSegmented keeps the proposal
    assert session.keep_proposal()["status"] == PROPOSED
    proposed = _labels(session.flow)
    saved = session.save({"metastasis": "yes", "note": "rib"})  # Save and next: save, then the next case
    assert saved["status"] == DONE and saved["dice_ai_vs_corrected"] == 1.0
    assert session.step(1).case_id == session.reading.worklist.cases[1].case_id

    reopened = WorklistSession(BoneScanFlow(create_headless_scene()))
    reopened.open_folder(tmp_path)
    reopened.open(saved["case_id"])
    module_select(reopened.flow, opened(reopened))
    assert np.array_equal(_labels(reopened.flow), proposed)
    assert reopened.reading.worklist.manifest_rows()[0]["label"] == 1


def test_lvi_open_segment_keep_save_reopen(tmp_path):
    write_lvi_phantom_cohort(tmp_path, 2, seed=24)
    session = WorklistSession(LVIFlow(create_headless_scene()))
    case = session.open_folder(tmp_path)
    p = opened(session)
    assert p.dceVolume is session.flow.volumes["DCE"] and p.t2Volume is session.flow.volumes["T2"]
    _place_on_key(session, p)
    module_select(session.flow, p)
    session.flow.run(session.flow.segment())
    assert session.keep_proposal()["model"]["id"]
    proposed = _labels(session.flow)
    assert proposed.any()
    saved = session.save({"lvi": case.key_label})
    assert saved["status"] == DONE and saved["roi_source"] == "AI"

    reopened = WorklistSession(LVIFlow(create_headless_scene()))
    assert reopened.open_folder(tmp_path).case_id == case.case_id
    p2 = opened(reopened)
    module_select(reopened.flow, p2)
    assert p2.voiSegmentation is reopened.flow.segmentation
    assert np.array_equal(_labels(reopened.flow), proposed)
    assert reopened.labels() == {"lvi": case.key_label}


def test_dce_synthesis_open_save_reopen(tmp_path):
    write_dce_phantom_cohort(tmp_path, 2, seed=25)
    session = WorklistSession(DCEFlow(create_headless_scene()))
    case = session.open_folder(tmp_path)
    p = opened(session)
    assert p.t1Volume is session.flow.volumes["T1"] and p.realDceVolume is session.flow.volumes["DCE"]
    assert p.syntheticVolume is None and p.metricsTable is None
    module_select(session.flow, p)
    assert session.keep_proposal() is None  # no ROI in this module: nothing is proposed
    assert session.save({"note": "enhancing lesion upper outer"})["status"] == DONE
    assert session.columns == ("Case", "Status", "Labels")  # no ROI: no Dice column
    assert session.rows()[0] == [case.case_id, DONE, ""]

    reopened = WorklistSession(DCEFlow(create_headless_scene()))
    assert reopened.open_folder(tmp_path).case_id == case.case_id
    assert reopened.labels() == {"note": "enhancing lesion upper outer"}
    assert reopened.counts_line() == "new: 1 · AI proposed: 0 · corrected: 0 · done: 1"


def test_opening_without_a_folder_says_what_to_choose(tmp_path):
    session = WorklistSession(MammoFlow(create_headless_scene()))
    with pytest.raises(InputError, match="Choose the worklist's folder"):
        session.open_folder("")
    with pytest.raises(InputError, match="Open a worklist first"):
        session.step(1)
    assert session.rows() == [] and session.keep_proposal() is None


# ---- Slicer's DICOM database --------------------------------------------------------------------------------------

TAGS = {"0008,0060": "Modality", "0008,103E": "SeriesDescription", "0010,0020": "PatientID",
        "0008,0018": "SOPInstanceUID"}


class FileDatabase:
    """A test double of ctkDICOMDatabase's interface only (slicer-core has no ctk): the five methods
    cases_from_dicom_database calls, over real DICOM files, with CTK's semantics (patients() gives database patient
    keys, not PatientIDs; studies and series by their instance UIDs; fileValue(file, "gggg,eeee") a tag's text)."""

    def __init__(self, files: list[Path]):
        self.tree: dict[str, dict[str, dict[str, list[str]]]] = {}
        keys: dict[str, str] = {}
        for file in files:
            ds = pydicom.dcmread(file, stop_before_pixels=True)
            patient = keys.setdefault(str(ds.PatientID), str(len(keys) + 1))
            self.tree.setdefault(patient, {}).setdefault(ds.StudyInstanceUID, {}).setdefault(
                ds.SeriesInstanceUID, []).append(str(file))

    def patients(self):
        return list(self.tree)

    def studiesForPatient(self, patient):  # noqa: N802 (CTK's name)
        return list(self.tree[patient])

    def seriesForStudy(self, study):  # noqa: N802
        return next(list(studies[study]) for studies in self.tree.values() if study in studies)

    def filesForSeries(self, series):  # noqa: N802
        return next(files[series] for studies in self.tree.values() for files in studies.values() if series in files)

    def fileValue(self, file, tag):  # noqa: N802
        value = pydicom.dcmread(file, stop_before_pixels=True).get(TAGS[tag], "")
        return str(value)


def _mg(path: Path, seed: int, patient: str, study: str, series: str) -> None:
    image = make_mammo_phantom(seed, "mass", 1).image
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1.2", generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PhotometricInterpretation, ds.PatientID = "MG", "MONOCHROME2", patient
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SeriesDescription = study, series, "R CC"
    ds.Rows, ds.Columns = image.shape
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 16, 16, 15, 0
    ds.ImagerPixelSpacing = [PIXEL_MM, PIXEL_MM]
    ds.PixelData = image.round().astype(np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(str(path), enforce_file_format=True)


def _mr(folder: Path, array, spacing, patient: str, study: str, description: str, name: str) -> list[Path]:
    """An MR series written slice by slice (Testing/dicom_series), then given its patient, study and description;
    files named `name`_NNN.dcm so that two series can share a folder."""
    series = generate_uid()
    scratch = folder / f".{name}"
    write_dicom_series(phantom_image(array, spacing, (-96.0, -70.0, -20.0)), scratch, series)
    files = []
    for index, file in enumerate(sorted(scratch.iterdir())):
        ds = pydicom.dcmread(file)
        ds.PatientID, ds.StudyInstanceUID, ds.SeriesDescription = patient, study, description
        files.append(folder / f"{name}_{index:03d}.dcm")
        ds.save_as(str(files[-1]))
        file.unlink()
    scratch.rmdir()
    return files


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    """Three patients: A (two MG images, one NM bone scan), B (an MR study: a DCE series alone in its folder, a T2
    and a subtraction sharing one), C (an MR study with two series that could be the DCE)."""
    root = tmp_path_factory.mktemp("dicom-db")
    study_a, mg_series = generate_uid(), generate_uid()
    _mg(root / "a" / "mg1.dcm", 31, "PAT-A-123", study_a, mg_series)
    _mg(root / "a" / "mg2.dcm", 32, "PAT-A-123", study_a, mg_series)
    scan = make_bone_scan_phantom(33)
    (root / "a-nm").mkdir()
    write_nm_dicom(root / "a-nm" / "scan.dcm", scan.views, "PAT-A-123", scan.age)
    mri = make_breast_mri_phantom(34, (8, 48, 48), lvi=1)
    study_b = generate_uid()
    dce = _mr(root / "b" / "dce", mri.dce2, mri.spacing, "PAT-B-456", study_b, "Ax DYN phase 2", "dce")
    t2 = _mr(root / "b" / "mixed", mri.t2, mri.spacing, "PAT-B-456", study_b, "Ax T2 FS", "t2")
    sub = _mr(root / "b" / "mixed", mri.dce2 - mri.t1, mri.spacing, "PAT-B-456", study_b, "DYN SUB", "sub")
    study_c = generate_uid()
    dyn = [_mr(root / "c" / f"dyn{i}", mri.dce2, mri.spacing, "PAT-C-789", study_c, f"dyn {i}", f"dyn{i}")
           for i in (1, 2)]
    files = [root / "a" / "mg1.dcm", root / "a" / "mg2.dcm", root / "a-nm" / "scan.dcm", *dce, *t2, *sub,
             *dyn[0], *dyn[1]]
    return FileDatabase(files), root, mri


def test_mr_series_are_told_apart_by_their_description():
    assert [mr_sequence(d) for d in ("Ax DYN phase 2", "T1_VIBE_DYN", "ax t1 +c", "DCE 2nd post", "Ax T2 FS",
                                     "STIR", "T1 TSE", "t1_fl3d_tra_fs_pre", "DYN SUB", "MIP dyn", "ADC map",
                                     "DWI b800", "localizer")] == [
        "DCE", "DCE", "DCE", "DCE", "T2", "T2", "T1", None, None, None, None, None, None]


KEY = bytes(range(32))  # a cohort's pseudonym key


def test_the_dicom_databases_studies_become_each_modules_cases(database):
    db, root, _ = database
    mammo = cases_from_dicom_database(db, "MammoRadiomics", KEY)
    assert sorted(c.inputs["mammogram"].name for c in mammo.cases) == ["mg1.dcm", "mg2.dcm"]
    assert {c.patient_id for c in mammo.cases} == {_pseudonym("PAT-A-123", KEY)}  # as a folder's DICOM files
    assert len({c.case_id for c in mammo.cases}) == 2 and all("PAT" not in c.case_id for c in mammo.cases)
    assert sorted(s.split(": ", 1)[1] for s in mammo.skipped) == [
        "no MG series (it has MR)", "no MG series (it has MR)", "no MG series (it has NM)"]

    bone = cases_from_dicom_database(db, "BoneScanBSTBI", KEY)
    assert [c.inputs["scan"] for c in bone.cases] == [root / "a-nm" / "scan.dcm"]

    lvi = cases_from_dicom_database(db, "BreastLVI", KEY)
    (case,) = lvi.cases
    assert case.patient_id == _pseudonym("PAT-B-456", KEY)
    assert sorted(Path(f).name for f in case.inputs["T2"]) == [f"t2_{i:03d}.dcm" for i in range(8)]  # not the SUB
    (ambiguous,) = [s for s in lvi.skipped if "could be the DCE" in s]
    assert "2 series could be the DCE ('dyn 1', 'dyn 2'); load it by hand" in ambiguous
    assert _pseudonym("PAT-C-789", KEY) in ambiguous and "PAT-C" not in " ".join(lvi.skipped)

    synthesis = cases_from_dicom_database(db, "DCESynthesis", KEY)
    assert synthesis.cases == []
    assert any("no T1 series among its MR series ('Ax DYN phase 2', 'Ax T2 FS', 'DYN SUB')" in s
               for s in synthesis.skipped)


def test_the_dicom_databases_mri_study_is_read_and_saved_as_a_worklist_case(database, tmp_path):
    db, root, mri = database
    session = WorklistSession(LVIFlow(create_headless_scene()))
    case = session.open_database(db, tmp_path)
    worklist = session.reading.worklist
    assert worklist.out == tmp_path / "smartimaging" / "BreastLVI"
    assert case.inputs["DCE"] == root / "b" / "dce"  # the series alone in its folder
    links = worklist.out / "series" / case.case_id / "T2"  # the T2 shares its folder with the subtraction
    assert case.inputs["T2"] == links and len(list(links.iterdir())) == 8
    assert any("could be the DCE" in s for s in session.skipped)
    p = opened(session)
    for node, folder, name in ((p.dceVolume, root / "b" / "dce", "dce"), (p.t2Volume, root / "b" / "mixed", "t2")):
        files = sorted(str(f) for f in folder.glob(f"{name}_*.dcm"))
        assert np.array_equal(_volume_array(node), sitk.GetArrayFromImage(sitk.ReadImage(files)))  # the series' own
    module_select(session.flow, p)
    session.flow.draw_by_hand()
    set_segments(session.flow.scene, session.flow.segmentation, session.flow.primary,
                 (mri.lesions > 0).astype(np.uint8), session.flow.drawn_segments)
    assert session.save({"lvi": "positive"})["status"] == DONE
    with open(worklist.manifest_path, encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))
    assert (worklist.out / row["dce"]).resolve() == (root / "b" / "dce").resolve()
    assert (worklist.out / row["t2"]).resolve() == links.resolve() and row["label"] == "1"
    assert "PAT-B" not in worklist.manifest_path.read_text(encoding="utf-8")

    again = WorklistSession(LVIFlow(create_headless_scene()))  # the database again: the same case, resumed
    assert again.open_database(db, tmp_path).case_id == case.case_id
    assert again.reading.worklist.status(case.case_id) == DONE


def _volume_array(node):
    import slicer

    return slicer.util.arrayFromVolume(node)


def test_the_dicom_databases_mammograms_open_in_the_mammo_flow(database, tmp_path):
    db, _, _ = database
    session = WorklistSession(MammoFlow(create_headless_scene()))
    session.open_database(db, tmp_path)
    p = opened(session)
    assert p.inputVolume.GetSpacing()[:2] == pytest.approx((PIXEL_MM, PIXEL_MM)) and p.pixelSize == ""
    assert [row[1] for row in session.rows()] == [NEW, NEW]
    with pytest.raises(InputError, match="Choose the folder"):
        session.open_database(db, tmp_path / "missing")


# ---- the core: explicit cases -------------------------------------------------------------------------------------

def test_a_worklist_of_given_cases_checks_them_and_makes_series_folders(tmp_path, monkeypatch):
    folder = tmp_path / "series"
    folder.mkdir()
    files = []
    for index in range(3):
        files.append(folder / f"{index}.dcm")
        files[-1].write_bytes(b"\0" * 128 + b"DICM")
    (folder / "other.dcm").write_bytes(b"\0" * 128 + b"DICM")  # another series' file: the folder is not the series
    out = tmp_path / "out"
    out.mkdir()
    worklist = Worklist(out, "BreastLVI", cases=[Case("one", "P1", {"DCE": files}),
                                                 Case("two", "P2", {"DCE": files[:1]})])
    linked = worklist.case("one").inputs["DCE"]
    assert linked == out / "smartimaging" / "BreastLVI" / "series" / "one" / "DCE"
    assert sorted(p.resolve() for p in linked.iterdir()) == sorted(f.resolve() for f in files)
    assert worklist.case("two").inputs["DCE"] == files[0]  # one file is itself
    assert series_folder(files[:2] + [files[2]], linked) == linked  # made once, kept
    def no_symlinks(*_args):
        raise OSError("symbolic links need a privilege on Windows")

    monkeypatch.setattr("os.symlink", no_symlinks)
    hard = series_folder(files, tmp_path / "hard")  # hard links instead
    assert sorted(p.stat().st_ino for p in hard.iterdir()) == sorted(f.stat().st_ino for f in files)
    (folder / "other.dcm").unlink()
    assert series_folder(files, tmp_path / "unused") == folder  # alone in their folder: the folder
    with pytest.raises(InputError, match="not unique"):
        Worklist(out, "BreastLVI", cases=[Case("one", "P1", {"DCE": files}), Case("ONE", "P2", {"DCE": files})])
    with pytest.raises(InputError, match="DCE needed"):
        Worklist(out, "BreastLVI", cases=[Case("one", "P1", {"T2": files})])
    with pytest.raises(InputError, match="takes DCE, T2"):
        Worklist(out, "BreastLVI", cases=[Case("one", "P1", {"DCE": files, "T1": files})])
    with pytest.raises(InputError, match="No case folders"):
        Worklist(out, "BreastLVI", cases=[])


# ---- the modules' source ------------------------------------------------------------------------------------------

def _tree(name):
    return ast.parse((REPO / name / f"{name}.py").read_text(encoding="utf-8"))


def _method(tree, class_name, method):
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    return next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == method)


@pytest.mark.parametrize("name", MODULES)
def test_each_module_adds_the_worklist_section_over_its_flow(name):
    tree = _tree(name)
    setup = ast.unparse(_method(tree, f"{name}Widget", "setup"))
    shown = "None" if name == "DCESynthesis" else "self._showSegmentation"
    assert (f"self._worklist = WorklistSection(self.layout, self.logic.flow, lambda: self._parameterNode, {shown})"
            in setup)
    assert setup.index("WorklistSection(") < setup.index("self.initializeParameterNode()")


@pytest.mark.parametrize("name, method", [("MammoRadiomics", "onSegmentButton"), ("BreastLVI", "onSegmentButton"),
                                          ("BoneScanBSTBI", "_onSegmented")])
def test_each_module_keeps_the_proposal_after_segment(name, method):
    source = ast.unparse(_method(_tree(name), f"{name}Widget", method))
    assert source.index("self._showSegmentation()") < source.index("self._worklist.keep_proposal()")


@pytest.mark.parametrize("name", MODULES)
def test_each_module_reads_its_selectors_back_as_the_section_sets_them(name):
    tree = _tree(name)
    parameters = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == f"{name}ParameterNode")
    fields = {n.target.id for n in parameters.body if isinstance(n, ast.AnnAssign)}
    selectors = SELECTORS[name]
    named = {*selectors["volumes"].values(), selectors["ai"], selectors["edited"], selectors["point"],
             *selectors["emptied"], *selectors["labels"].values()} - {None}
    assert named <= fields, named - fields
    select = ast.unparse(_method(tree, f"{name}Logic", "select"))
    for expression in SELECT_SOURCE[name]:
        assert expression in select, expression
    ui = ET.parse(REPO / name / "Resources" / "UI" / f"{name}.ui").getroot()
    bound = {p.find("string").text for p in ui.iter("property") if p.get("name") == "SlicerParameterName"}
    assert set(selectors["volumes"].values()) <= bound  # the selectors the reader sees


# The Qt / CTK / Slicer names desktop_worklist.py uses, each where Slicer 5.12's own code uses it.
KNOWN_QT = {
    "ctkPathLineEdit": "Modules/Scripted/DICOMPatcher/DICOMPatcher.py", "Dirs": "DICOMPatcher.py",
    "QComboBox": "Modules/Scripted/DICOMLib/DICOMSendDialog.py", "QLineEdit": "DICOMSendDialog.py",
    "addItems": "DICOMSendDialog.py", "setCurrentText": "DICOMSendDialog.py",
    "QHBoxLayout": "Modules/Scripted/CropVolumeSequence/CropVolumeSequence.py", "addWidget": "CropVolumeSequence.py",
    "addRow": "CropVolumeSequence.py", "QPushButton": "Modules/Scripted/DICOM/DICOM.py",
    "QTableWidget": "Modules/Scripted/DICOMLib/DICOMBrowser.py", "QTableWidgetItem": "DICOMBrowser.py",
    "QTableView": "DICOMBrowser.py (qt.QTableView.SelectRows)", "setSelectionBehavior": "DICOMBrowser.py",
    "setColumnCount": "DICOMBrowser.py", "setHorizontalHeaderLabels": "DICOMBrowser.py",
    "clearContents": "DICOMBrowser.py", "setRowCount": "DICOMBrowser.py", "insertRow": "DICOMBrowser.py",
    "setItem": "DICOMBrowser.py", "item": "DICOMBrowser.py", "setFlags": "DICOMBrowser.py",
    "flags": "DICOMBrowser.py", "Qt": "DICOMBrowser.py (qt.Qt.ItemIsEditable)",
    "selectRow": "Modules/Scripted/DICOMLib/DICOMRecentActivityWidget.py",
    "selectedItems": "Modules/Scripted/ExtensionWizard/ExtensionWizardLib/EditableTreeWidget.py",
    "row": "QTableWidgetItem (Qt)", "text": "QTableWidgetItem (Qt)",
    "QShortcut": "Docs/developer_guide/script_repository/gui.md", "QKeySequence": "gui.md",
    "connect": "every scripted module (signal by its C++ signature)",
    "tryWithErrorDisplay": "Base/Python/slicer/util.py", "confirmYesNoDisplay": "Base/Python/slicer/util.py",
    "showStatusMessage": "Base/Python/slicer/util.py",
}


def test_the_worklist_section_uses_only_qt_ctk_and_slicer_apis_of_slicers_own_code():
    tree = ast.parse((REPO / "smartimaging" / "desktop_worklist.py").read_text(encoding="utf-8"))
    section = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "WorklistSection")
    qt_names = {node.attr for node in ast.walk(section) if isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name) and node.value.id in ("qt", "ctk")}
    calls = {node.func.attr for node in ast.walk(section) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and not (isinstance(node.func.value, ast.Name)
                                                               and node.func.value.id in ("qt", "ctk", "self"))}
    own = {"open_folder", "open_database", "open", "step", "give_pixel_size", "set_filter", "save", "keep_proposal",
           "items", "append",
           "join", "get", "labels", "rows", "shown_ids", "case", "counts_line", "status", "values",
           "_parameter_node", "_on_opened", "util"}
    slicer_util = {node.attr for node in ast.walk(section) if isinstance(node, ast.Attribute)
                   and isinstance(node.value, ast.Attribute) and node.value.attr == "util"}
    assert qt_names - {"ItemIsEditable", "SelectRows"} <= set(KNOWN_QT), qt_names - set(KNOWN_QT)
    assert calls - own - slicer_util <= set(KNOWN_QT), calls - own - slicer_util - set(KNOWN_QT)
    assert slicer_util <= set(KNOWN_QT), slicer_util - set(KNOWN_QT)
    assert "currentIndexChanged" in ast.unparse(section) and "currentPath" in ast.unparse(section)


def test_the_table_names_a_scanned_study_by_its_path_and_a_loose_png_waits_for_its_pixel_size(tmp_path):
    """A scanned study's id is neutral (`c` + hex): the table shows its path (on the reader's screen only) and the
    row still opens the right case."""
    cohort = tmp_path / "cohort"
    write_mammo_phantom_cohort(cohort, 2, seed=3, kind="mass")
    folder = tmp_path / "studies"
    (folder / "patient one").mkdir(parents=True)
    for index, image in enumerate(sorted((cohort / "images").iterdir())):
        shutil.copy(image, folder / "patient one" / f"view{index}.png")
    session = WorklistSession(MammoFlow(create_headless_scene()))
    with pytest.raises(PixelSizeNeededError, match="its PNG file stores no pixel size"):  # not read at 1 mm
        session.open_folder(folder)
    assert [row[0] for row in session.rows()] == ["patient one/view0.png", "patient one/view1.png"]
    ids = session.shown_ids()
    assert all(case_id.startswith("c") and "patient" not in case_id for case_id in ids)
    assert session.waiting.case_id == ids[0] and session.flow.primary is None and session.case_id is None
    with pytest.raises(InputError, match="Pixel size 'a' is not a number"):
        session.give_pixel_size("a")
    with pytest.raises(InputError, match="is not the worklist's open case"):  # no case is read at 1 mm
        session.save({"pathology": "benign"}, {"kind": "mass"})
    assert session.give_pixel_size("0.2").case_id == ids[0] and session.waiting is None
    assert session.flow.primary.GetSpacing()[:2] == (0.2, 0.2) and float(opened(session).pixelSize) == 0.2
    with pytest.raises(PixelSizeNeededError):
        session.step(1)
    assert session.step(-1).case_id == ids[0]  # from the waiting case
    with pytest.raises(InputError, match="No worklist case waits for a pixel size"):
        session.give_pixel_size("0.1")
    with pytest.raises(PixelSizeNeededError):
        session.open(ids[1])
    assert session.give_pixel_size("0.1").name == "patient one/view1.png"
    again = WorklistSession(MammoFlow(create_headless_scene()))  # asked once: kept with the case
    assert again.open_folder(folder).case_id == ids[1] and again.flow.primary.GetSpacing()[:2] == (0.1, 0.1)
