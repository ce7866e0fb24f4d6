"""The DICOM series behind a result: the source's own headers when the input was DICOM, else a derived series.

A DICOM SEG or SR must reference image instances. When the input was DICOM, :func:`source_datasets` returns its
headers (patient and study modules and SOP instance UIDs as in the files, so that PACS files the results with the
study) after checking that they describe the image's grid. Otherwise :func:`derived_series` writes the image as a new
DICOM series: MR Image Storage for MR volumes (ImagePositionPatient / ImageOrientationPatient from the image: ITK's
LPS is DICOM's patient coordinate system, so the geometry is exact), Secondary Capture for planar images (NM bone
scans, mammograms: pixel grid and spacing kept, no patient position since a projection image has none).
"""

from __future__ import annotations

import copy
import datetime
import os
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from . import __version__
from .errors import InputError
from .io import check_finite, dicom_series_files, is_dicom
from .limits import ANY_IMAGE, read_dicom_header

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
SECONDARY_CAPTURE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
MANUFACTURER = "SmartImaging"
SYNTHETIC = "SYNTHETIC"
# the Patient, Patient Study and General Study modules' attributes a derived series copies from its `like` series
PATIENT_STUDY_KEYWORDS = (
    "SpecificCharacterSet", "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate", "PatientSex",
    "OtherPatientIDsSequence", "PatientAge", "PatientSize", "PatientWeight", "PatientIdentityRemoved",
    "DeidentificationMethod", "DeidentificationMethodCodeSequence", "StudyInstanceUID", "StudyDate", "StudyTime",
    "ReferringPhysicianName", "StudyID", "AccessionNumber", "StudyDescription")
# Type 2 attributes of those modules that highdicom reads from a source header (absent in some files: then empty)
TYPE2_PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                       "ReferringPhysicianName", "StudyID", "AccessionNumber")
POSITION_TOLERANCE_MM = 0.01  # DICOM's decimal strings (16 characters) against ITK's doubles
DIRECTION_TOLERANCE = 1e-4


def _frames(ds: pydicom.Dataset) -> int:
    return int(ds.get("NumberOfFrames") or 1)


def _headers(source: Path) -> list[pydicom.Dataset]:
    """The headers of a DICOM file or of the one series in a folder, in ITK's slice order."""
    files = dicom_series_files(source, ANY_IMAGE) if source.is_dir() else [source]
    return [read_dicom_header(file, force=True).ds for file in files]


def _mismatch(source: Path, what: str) -> InputError:
    return InputError(f"The DICOM source {source.name} does not describe this image ({what}); the DICOM objects "
                      "would misplace the segmentation: give the DICOM file or series the image was read from")


def _frame_planes(ds: pydicom.Dataset) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """(ImagePositionPatient, ImageOrientationPatient) of each frame: from the top level of a single-frame image,
    from the functional groups of an enhanced multi-frame one; None for an image without patient positions."""
    if "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds:
        return [(np.array(ds.ImagePositionPatient, float), np.array(ds.ImageOrientationPatient, float))]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not per_frame:
        return None
    shared = (ds.get("SharedFunctionalGroupsSequence") or [pydicom.Dataset()])[0]
    planes = []
    for item in per_frame:
        position = item.get("PlanePositionSequence") or shared.get("PlanePositionSequence")
        orientation = item.get("PlaneOrientationSequence") or shared.get("PlaneOrientationSequence")
        if not position or not orientation:
            return None
        planes.append((np.array(position[0].ImagePositionPatient, float),
                       np.array(orientation[0].ImageOrientationPatient, float)))
    return planes


def check_source_grid(image: sitk.Image, datasets: list[pydicom.Dataset], source: Path) -> list[pydicom.Dataset]:
    """`datasets` in the image's slice order, after refusing headers whose size, pixel spacing, slice positions or
    orientation differ from the image's."""
    columns, rows, depth = image.GetSize()
    sizes = {(int(ds.Rows), int(ds.Columns)) for ds in datasets}
    if sizes != {(rows, columns)}:
        found = ", ".join(f"{c}×{r}" for r, c in sorted(sizes))
        raise _mismatch(source, f"{found} pixels, the image {columns}×{rows}")
    frames = sum(_frames(ds) for ds in datasets)
    if frames != depth:
        raise _mismatch(source, f"{frames} frames or slices, the image {depth}")
    for ds in datasets:
        stored = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
        if stored and not np.allclose([float(stored[1]), float(stored[0])], image.GetSpacing()[:2],
                                      atol=POSITION_TOLERANCE_MM / 10):
            raise _mismatch(source, f"pixels of {float(stored[0]):g}×{float(stored[1]):g} mm, the image's "
                            f"{image.GetSpacing()[1]:g}×{image.GetSpacing()[0]:g} mm")
    planes = [_frame_planes(ds) for ds in datasets]
    if any(p is None for p in planes):
        return datasets  # planar images (NM, MG, secondary capture): no patient position to compare
    direction = np.array(image.GetDirection()).reshape(3, 3)
    slices = []  # the image slice of each frame, in the datasets' order
    for position, orientation in (plane for frames in planes for plane in frames):
        if not np.allclose(orientation, [*direction[:, 0], *direction[:, 1]], atol=DIRECTION_TOLERANCE):
            raise _mismatch(source, f"its slices are oriented {tuple(np.round(orientation, 4))}, the image's "
                            f"{tuple(np.round([*direction[:, 0], *direction[:, 1]], 4))}")
        k = round(image.TransformPhysicalPointToContinuousIndex(position.tolist())[2])
        expected = np.array(image.TransformIndexToPhysicalPoint((0, 0, min(max(k, 0), depth - 1))))
        if not 0 <= k < depth or not np.allclose(position, expected, atol=POSITION_TOLERANCE_MM):
            raise _mismatch(source, f"a slice lies at {tuple(np.round(position, 3))} mm, off the image's slices")
        slices.append(k)
    if len(set(slices)) != depth:
        raise _mismatch(source, "two of its slices lie at the same position")
    if len(datasets) == 1:
        if slices != list(range(depth)):
            raise _mismatch(source, "its frames are not in the image's slice order")
        return datasets
    return [ds for _, ds in sorted(zip(slices, datasets, strict=True), key=lambda pair: pair[0])]


def source_datasets(image: sitk.Image, source: str | os.PathLike | None) -> list[pydicom.Dataset] | None:
    """The DICOM headers (no pixel data) of the file or series folder `image` was read from, one per instance in the
    image's slice order, checked against the image's grid (InputError when they differ); None when `source` is None
    or not DICOM (NIfTI, NRRD, PNG...): the caller writes a :func:`derived_series` instead. A single file of a
    multi-slice series stands for its folder's series."""
    if source is None:
        return None
    source = Path(source)
    if not source.exists():
        raise InputError(f"The image's source {source} no longer exists; the DICOM objects must refer to it: load "
                         "the image again from where it is now")
    if source.is_dir():
        if not any(f.is_file() and is_dicom(f) for f in source.iterdir()):
            return None
    elif not (source.is_file() and is_dicom(source)):
        return None
    datasets = _headers(source)
    if "Rows" not in datasets[0]:
        raise InputError(f"The DICOM file {source.name} holds no image (a {datasets[0].get('Modality', 'non-image')} "
                         "object); give the DICOM image or series the image was read from")
    if not source.is_dir() and _frames(datasets[0]) == 1 and image.GetDepth() > 1:
        source = source.parent
        datasets = _headers(source)
    return check_source_grid(image, datasets, source)


def _stored_pixels(array: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(stored integers, rescale slope, intercept): the values as they are when they are 16-bit integers, else
    mapped linearly onto 0..65535 (values = stored × slope + intercept)."""
    low, high = float(array.min()), float(array.max())
    if np.array_equal(array, np.round(array)):
        if low >= 0 and high <= 65535:
            return array.astype(np.uint16), 1.0, 0.0
        if low >= -32768 and high <= 32767:
            return array.astype(np.int16), 1.0, 0.0
    slope = (high - low) / 65535 if high > low else 1.0
    return np.round((array - low) / slope).astype(np.uint16), slope, low


def _ds_text(value: float) -> str:
    """A decimal string (at most 16 characters) of `value`."""
    text = f"{value:.10g}"
    return text if len(text) <= 16 else f"{value:.8e}"


def with_type2_attributes(datasets: list[pydicom.Dataset]) -> list[pydicom.Dataset]:
    """Copies of source headers with the patient and study modules' absent Type 2 attributes present and empty
    (what highdicom reads from them); the headers themselves are left as they are."""
    completed = []
    for ds in datasets:
        missing = [keyword for keyword in TYPE2_PATIENT_STUDY if keyword not in ds]
        if missing:
            ds = copy.copy(ds)
            for keyword in missing:
                setattr(ds, keyword, "")
        completed.append(ds)
    return completed


def _patient_and_study(ds: pydicom.Dataset, like: list[pydicom.Dataset] | None, study_uid: str, date: str,
                       time: str) -> None:
    if like:
        for keyword in PATIENT_STUDY_KEYWORDS:
            if keyword in like[0]:
                setattr(ds, keyword, like[0].data_element(keyword).value)
    else:  # no source: an anonymous patient in a new study of today (the Type 2 attributes present, empty)
        ds.StudyInstanceUID = study_uid
        ds.PatientName = ds.PatientID = ds.PatientBirthDate = ds.PatientSex = ""
        ds.StudyDate, ds.StudyTime = date, time
        ds.ReferringPhysicianName = ds.StudyID = ds.AccessionNumber = ""
    if "SpecificCharacterSet" not in ds:
        ds.SpecificCharacterSet = "ISO_IR 192"


def derived_series(image: sitk.Image, modality: str, series_description: str,
                   like: list[pydicom.Dataset] | None = None, synthetic: bool = False) -> list[pydicom.Dataset]:
    """`image` as a new DICOM series (one instance per slice or frame, pixel data included, new series and SOP
    instance UIDs, ImageType DERIVED\\SECONDARY).

    MR: MR Image Storage with the image's exact geometry (a frame of reference: `like`'s when given, else new).
    Other modalities: Secondary Capture, one instance per frame, pixel spacing kept. With `like` (headers of a
    series of the same study) the patient and study modules are copied from it; without, the series gets a new
    study and an anonymous patient module (empty Type 2 attributes: no identifier is invented). `synthetic` marks a
    computed image (e.g. a synthetic DCE phase): SeriesDescription says SYNTHETIC, ImageComments and
    DerivationDescription say how it was made. Float values that are not 16-bit integers are stored with a rescale
    slope and intercept."""
    modality = modality.upper()
    mr = modality == "MR"
    if synthetic and SYNTHETIC not in series_description:
        series_description = f"{SYNTHETIC} {series_description}"
    series_uid, study_uid = generate_uid(), generate_uid()
    frame_of_reference = like[0].get("FrameOfReferenceUID") if like else None
    frame_of_reference = frame_of_reference or generate_uid()
    now = datetime.datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    values = sitk.GetArrayFromImage(image).astype(np.float64)
    check_finite(values, series_description)
    pixels, slope, intercept = _stored_pixels(values)
    spacing = image.GetSpacing()
    direction = np.array(image.GetDirection()).reshape(3, 3)
    datasets = []
    for k, plane in enumerate(pixels):
        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = MR_IMAGE_STORAGE if mr else SECONDARY_CAPTURE_STORAGE
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        _patient_and_study(ds, like, study_uid, date, time)
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = modality, series_uid, 9000 + (1 if synthetic else 0)
        ds.SeriesDescription, ds.SeriesDate, ds.SeriesTime = series_description, date, time
        ds.InstanceNumber, ds.ContentDate, ds.ContentTime = k + 1, date, time
        ds.Manufacturer, ds.SoftwareVersions = MANUFACTURER, __version__
        ds.ImageType = ["DERIVED", "SECONDARY", "OTHER"] if mr else ["DERIVED", "SECONDARY"]
        ds.Laterality = like[0].get("Laterality", "") if like else ""
        ds.DerivationDescription = (f"{SYNTHETIC}: computed by SmartImaging {__version__}, not acquired"
                                    if synthetic else f"Converted to DICOM by SmartImaging {__version__}")
        if synthetic:
            ds.ImageComments = f"{SYNTHETIC} image computed by a model, not acquired by a scanner"
        ds.BurnedInAnnotation = "NO"
        ds.PixelSpacing = [_ds_text(spacing[1]), _ds_text(spacing[0])]
        if mr:
            ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_of_reference, ""
            ds.ImageOrientationPatient = [_ds_text(v) for v in (*direction[:, 0], *direction[:, 1])]
            ds.ImagePositionPatient = [_ds_text(v) for v in image.TransformIndexToPhysicalPoint((0, 0, k))]
            ds.SliceThickness = _ds_text(spacing[2])
            ds.SpacingBetweenSlices = _ds_text(spacing[2])
            ds.PatientPosition = like[0].get("PatientPosition", "") if like else ""
            ds.ScanningSequence, ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType = "RM", "NONE", "", ""
            ds.EchoTime = ds.EchoTrainLength = ds.RepetitionTime = ""
        else:
            ds.ConversionType, ds.PatientOrientation = "WSD", ""
            ds.DateOfSecondaryCapture, ds.TimeOfSecondaryCapture = date, time
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = plane.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
        ds.PixelRepresentation = int(plane.dtype == np.int16)
        if (slope, intercept) != (1.0, 0.0):
            ds.RescaleSlope, ds.RescaleIntercept = _ds_text(slope), _ds_text(intercept)
            if not mr:
                ds.RescaleType = "US"
        ds.PixelData = plane.tobytes()
        datasets.append(ds)
    return datasets


def write_series(datasets: list[pydicom.Dataset], folder: str | os.PathLike) -> list[Path]:
    """Write each dataset as `<InstanceNumber>.dcm` (DICOM Part 10 files) into `folder`; the files' paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = folder / f"{int(ds.InstanceNumber):04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
