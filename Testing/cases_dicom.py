"""Bad-input cases of DICOM sources: images of two patients or studies in one case, series headers a DICOM SEG or SR
cannot reference, damaged pixel spacing, an output inside a series folder, a model version a DICOM object cannot
hold. Each is refused in one line before anything is written (`--dicom` or not, unless the case says `--dicom`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from badinput import BadInput
from cases_cards import _lvi
from cases_mri import LVI_SHAPE
from conftest import GE_BONE_SCAN

from smartimaging.dicom_series import derived_series, write_series
from smartimaging.phantoms.breast_mri import make_breast_mri_phantom

DICOM = "DICOM sources"
CARDS = "Model cards"


def mr_series(folder: Path, name: str, patient=("PID12345", "Doe^Jane"), edit=None, seed: int = 31) -> Path:
    """An LVI phantom's DCE (or T2, `name` "t2") as a DICOM MR series of `patient` (ID, name) in `folder/name`,
    its VOI beside it (`folder/voi.nrrd`); `edit(datasets)` changes the headers before they are written."""
    case = make_breast_mri_phantom(seed, LVI_SHAPE, lvi=seed % 2)
    array = case.t2 if name == "t2" else case.dce2
    image = sitk.GetImageFromArray(np.round(array / max(float(array.max()), 1e-6) * 1000).astype(np.int16))
    image.SetSpacing((1.5, 1.5, 3.0))
    image.SetOrigin((-48.0, -40.0, -24.0))
    datasets = derived_series(image, "MR", name)
    for ds in datasets:
        ds.PatientID, ds.PatientName = patient
    if edit:
        edit(datasets)
    write_series(datasets, folder / name)
    voi = sitk.GetImageFromArray((case.lesions > 0).astype(np.uint8))
    voi.CopyInformation(image)
    sitk.WriteImage(voi, str(folder / "voi.nrrd"))
    return folder / name


def _lvi_predict(series: Path, *extra: str) -> list[str]:
    return ["lvi", "predict", "--dce", str(series), "--voi", str(series.parent / "voi.nrrd"), "--models",
            "lvi-dce-resnet10-3d-demo", *extra, "--out", str(series.parent / "out")]


def _dce_and_t2_of_two_patients(folder: Path) -> list[str]:
    dce = mr_series(folder, "dce")
    t2 = mr_series(folder, "t2", ("OTHER999", "Roe^Richard"))
    return [*_lvi_predict(dce), "--t2", str(t2)]


def _slice_of_another_patient(folder: Path) -> list[str]:
    def edit(datasets):
        datasets[5].PatientID, datasets[5].PatientName = "OTHER999", "Roe^Richard"
    return _lvi_predict(mr_series(folder, "dce", edit=edit))


def _slice_of_another_study(folder: Path) -> list[str]:
    def edit(datasets):
        datasets[5].StudyInstanceUID = pydicom.uid.generate_uid()
    return _lvi_predict(mr_series(folder, "dce", edit=edit), "--dicom")


def _bone_views_of_two_patients(folder: Path) -> list[str]:
    paths = []
    for index, patient in enumerate(("PID12345", "OTHER999")):
        ds = pydicom.dcmread(GE_BONE_SCAN)
        ds.PatientID = patient
        paths.append(folder / f"view{index + 1}.dcm")
        ds.save_as(paths[-1])
    return ["bonescan", "predict", *map(str, paths), "--out", str(folder / "out"), "--dicom"]


def _duplicate_sop_instance_uids(folder: Path) -> list[str]:
    def edit(datasets):
        for ds in datasets:
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = datasets[0].SOPInstanceUID
    return _lvi_predict(mr_series(folder, "dce", edit=edit), "--dicom")


def _pixel_spacing(value, *extra: str):
    def build(folder: Path) -> list[str]:
        def edit(datasets):
            for ds in datasets:
                ds.PixelSpacing = value
        return _lvi_predict(mr_series(folder, "dce", edit=edit), *extra)
    return build


def _slice_without(keyword: str):
    def build(folder: Path) -> list[str]:
        def edit(datasets):
            delattr(datasets[3], keyword)
        return _lvi_predict(mr_series(folder, "dce", edit=edit), "--dicom")
    return build


def _out_inside_the_series(folder: Path) -> list[str]:
    series = mr_series(folder, "dce")
    return [*_lvi_predict(series, "--dicom")[:-2], "--out", str(series / "results")]


def _card_version_multivalued(folder: Path) -> list[str]:
    return _lvi("version", "1.0.0\\2.0" + "v" * 70)(folder)


def _long_patient_id(folder: Path) -> list[str]:
    return _lvi_predict(mr_series(folder, "dce", ("C" * 3000, "Doe^Jane")), "--dicom")


CASES = [
    BadInput(DICOM, "lvi predict --dce of one patient --t2 of another (DICOM series)",
             _dce_and_t2_of_two_patients, "These images belong to two patients (dce and t2 name different patients"),
    BadInput(DICOM, "lvi predict: one slice of the DICOM series names another patient (no --dicom)",
             _slice_of_another_patient, "These images belong to two patients (the slices of dce"),
    BadInput(DICOM, "lvi predict --dicom: one slice of the series belongs to another study",
             _slice_of_another_study, "These images belong to two studies"),
    BadInput(DICOM, "bonescan predict --dicom: two views of two patients", _bone_views_of_two_patients,
             "These images belong to two patients (view1.dcm and view2.dcm"),
    BadInput(DICOM, "lvi predict --dicom: every slice has the same SOP Instance UID", _duplicate_sop_instance_uids,
             "0002.dcm has the SOP Instance UID of 0001.dcm"),
    BadInput(DICOM, "lvi predict: PixelSpacing nan\\nan (no --dicom)", _pixel_spacing(["nan", "nan"]),
             "the PixelSpacing of 0001.dcm is nan\\nan; DICOM gives two positive numbers"),
    BadInput(DICOM, "lvi predict --dicom: PixelSpacing 0\\0", _pixel_spacing(["0", "0"], "--dicom"),
             "the PixelSpacing of 0001.dcm is 0\\0; DICOM gives two positive numbers"),
    BadInput(DICOM, "lvi predict --dicom: PixelSpacing with 3 values", _pixel_spacing(["1.5", "1.5", "3"], "--dicom"),
             "the PixelSpacing of 0001.dcm is 1.5\\1.5\\3"),
    BadInput(DICOM, "lvi predict --dicom: a slice without ImagePositionPatient",
             _slice_without("ImagePositionPatient"), "0004.dcm lacks the ImagePositionPatient"),
    BadInput(DICOM, "lvi predict --dicom: a slice without SOPInstanceUID", _slice_without("SOPInstanceUID"),
             "0004.dcm has no SOPInstanceUID"),
    BadInput(DICOM, "lvi predict --dicom: a slice without FrameOfReferenceUID", _slice_without("FrameOfReferenceUID"),
             "0004.dcm lacks the FrameOfReferenceUID that its other slices have"),
    BadInput(DICOM, "lvi predict --dicom: PatientID of 3000 characters", _long_patient_id,
             "The source's PatientID is not a valid LO value (3000 characters)"),
    BadInput(DICOM, "lvi predict --dicom --out inside the DICOM series folder", _out_inside_the_series,
             "is inside the DICOM series folder"),
    BadInput(CARDS, "lvi predict: card version '1.0.0\\2.0vvv…' (two values, over 64 characters)",
             _card_version_multivalued, "its id and version must each be one value of at most 64 characters"),
]
