"""The DICOM series behind a result: the source's own headers when the input was DICOM, else a derived series.

A DICOM SEG or SR must reference image instances. When the input was DICOM, :func:`source_datasets` returns its
headers (patient and study modules and SOP instance UIDs as in the files, so that PACS files the results with the
study) after checking that they describe the image's grid. Otherwise :func:`derived_series` writes the image as a new
DICOM series: MR Image Storage for MR volumes (ImagePositionPatient / ImageOrientationPatient from the image: ITK's
LPS is DICOM's patient coordinate system, so the geometry is exact), Secondary Capture for planar images (NM bone
scans, mammograms: pixel grid and spacing kept, no patient position since a projection image has none).

Hostile or careless sources: headers that cannot be referenced (missing or duplicate UIDs, two patients, studies or
series, positions or a Frame of Reference in some slices only, a damaged pixel spacing) are refused
(:func:`check_source_headers`); the values copied into the SEG, SR and derived series are made conformant to their
VR (:func:`conformant_copy`: normalised when harmless, else left out and logged) and the site's institution, station
and device serial number are left out. A loaded volume records its source's :func:`source_identity` (digests only)
so that an export refuses files replaced since (:func:`check_identity`) and a case refuses images of two patients.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import logging
import math
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom import config
from pydicom.charset import python_encoding
from pydicom.datadict import dictionary_VM, keyword_for_tag
from pydicom.dataset import FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import validate_value

from . import __version__
from .errors import InputError
from .io import check_finite, dicom_series_files, is_dicom
from .limits import ANY_IMAGE, is_dicom_source, read_dicom_header

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
# the source's site (hospital, department, station, device serial number): identifies where the patient was seen, so it
# is left out of the copies that the SEG and SR are made from (highdicom would copy it as contributing equipment)
SITE_KEYWORDS = ("InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "InstitutionCodeSequence",
                 "InstitutionalDepartmentTypeCodeSequence", "StationName", "DeviceSerialNumber", "DeviceUID")
REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
ENUMERATED = {"PatientSex": ("M", "F", "O"), "PatientIdentityRemoved": ("YES", "NO")}
SEX_WORDS = {"MALE": "M", "FEMALE": "F", "OTHER": "O"}
UTF8 = "ISO_IR 192"
HIGHDICOM_CHARACTER_SETS = {"ISO_IR 100", "ISO_IR 101", "ISO_IR 109", "ISO_IR 110", "ISO_IR 144", "ISO_IR 127",
                            "ISO_IR 126", "ISO_IR 138", "ISO_IR 148", "ISO_IR 203", "ISO_IR 13", "ISO_IR 166",
                            "ISO_IR 192", "GB18030", "GBK"}
IDENTITY = "SmartImaging.SourceIdentity"  # a volume node's digest of its DICOM source (no identifier in clear)
log = logging.getLogger(__name__)
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


def _name(ds: pydicom.Dataset, index: int) -> str:
    filename = getattr(ds, "filename", None)
    return Path(filename).name if isinstance(filename, str) and filename else f"instance {index + 1}"


def _digest(*values) -> str:
    return hashlib.sha256("\x00".join(map(str, values)).encode()).hexdigest()[:16]


def _patient(ds: pydicom.Dataset) -> tuple[str, str]:
    return str(ds.get("PatientID", "") or "").strip(), str(ds.get("PatientName", "") or "").strip()


def check_one_patient(headers: dict[str, list[pydicom.Dataset]]) -> None:
    """Refuse DICOM headers (by file or series name) of two patients (different PatientID, or PatientName where the
    IDs are absent) or of two studies (different StudyInstanceUID): one result, and the DICOM objects filed with it,
    must belong to one patient's one study. The message names the files, never the patients."""
    seen: dict[str, dict[str, str]] = {"patient ID": {}, "patient name": {}, "study": {}}
    for name, datasets in headers.items():
        for ds in datasets:
            patient_id, patient_name = _patient(ds)
            for what, value in (("patient ID", patient_id), ("patient name", patient_name if not patient_id else ""),
                                ("study", str(ds.get("StudyInstanceUID", "") or ""))):
                if value:
                    seen[what].setdefault(value, name)
    for what, values in seen.items():
        if len(values) > 1:
            names = sorted(set(values.values()))
            where = f"{names[0]} and {names[1]}" if len(names) > 1 else f"the slices of {names[0]}"
            if what == "study":
                raise InputError(f"These images belong to two studies ({where} have different Study Instance UIDs): "
                                 "give the images of one study, or read each study on its own")
            raise InputError(f"These images belong to two patients ({where} name different patients, by {what}): "
                             "give the images of one patient")


def check_source_headers(datasets: list[pydicom.Dataset], source: Path) -> None:
    """Refuse source headers that a SEG or SR cannot reference as they are: an instance without its SOP class, SOP
    instance, study or series UID (or one that is not a UID), two instances with one SOP Instance UID, two patients,
    studies or series, slice positions or a Frame of Reference UID in some slices only or differing between slices,
    a pixel spacing that is not two positive numbers."""
    def refuse(what: str) -> InputError:
        return InputError(f"The DICOM source {source.name} cannot be referenced by a DICOM SEG or SR: {what}; export "
                          "the series again from the scanner or PACS")

    for index, ds in enumerate(datasets):
        for keyword in REQUIRED_UIDS:
            value = ds.get(keyword)
            if not value:
                raise refuse(f"{_name(ds, index)} has no {keyword}")
            try:
                validate_value("UI", str(value), config.RAISE)
            except ValueError:
                raise refuse(f"the {keyword} of {_name(ds, index)} is not a DICOM UID") from None
        spacing = ds.get("PixelSpacing")
        if spacing is not None:
            values = list(spacing) if isinstance(spacing, MultiValue) else [spacing]
            try:
                numbers = [float(v) for v in values]
            except (TypeError, ValueError):
                numbers = []
            if len(numbers) != 2 or not all(math.isfinite(v) and v > 0 for v in numbers):
                raise refuse(f"the PixelSpacing of {_name(ds, index)} is {chr(92).join(map(str, values)) or 'empty'} "
                             "(DICOM: two positive numbers, row and column spacing in mm)")
    uids = [str(ds.SOPInstanceUID) for ds in datasets]
    if len(set(uids)) < len(uids):
        twice = next(index for index, uid in enumerate(uids) if uids.index(uid) != index)
        first = uids.index(uids[twice])
        raise refuse(f"{_name(datasets[twice], twice)} has the SOP Instance UID of {_name(datasets[first], first)} "
                     "(each instance needs its own)")
    check_one_patient({source.name: datasets})
    if len({str(ds.SeriesInstanceUID) for ds in datasets}) > 1:
        raise refuse("its instances belong to two series")
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "FrameOfReferenceUID"):
        present = [keyword in ds for ds in datasets]
        if any(present) and not all(present):
            missing = present.index(False)
            raise refuse(f"{_name(datasets[missing], missing)} lacks the {keyword} that its other slices have")
    if len({str(ds.get("FrameOfReferenceUID", "")) for ds in datasets}) > 1:
        raise refuse("its slices name two Frames of Reference (FrameOfReferenceUID)")


def _conformant(keyword: str, value) -> tuple[object, str | None]:
    """(`value`, None) when it conforms to its VR, VM and enumerated values, or as harmlessly normalised (a date
    written 1960-01-01 or 2004.08.26, a time 18:50:59, a sex FEMALE); (None, why) when it does not."""
    vr = pydicom.datadict.dictionary_VR(keyword)
    values = list(value) if isinstance(value, MultiValue) else [value]
    if dictionary_VM(keyword) == "1" and len(values) > 1:
        return None, f"{len(values)} values, DICOM allows one"
    normalised = []
    for item in values:
        text = str(item)
        if vr == "DA" and re.fullmatch(r"\d{4}[-.]\d{2}[-.]\d{2}", text):
            text = re.sub(r"[-.]", "", text)
        if vr == "TM" and re.fullmatch(r"\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?", text):
            text = text.replace(":", "")
        if keyword == "PatientSex":
            text = SEX_WORDS.get(text.strip().upper(), text)
        if keyword in ENUMERATED and text not in ENUMERATED[keyword]:
            return None, f"not one of {', '.join(ENUMERATED[keyword])}"
        try:
            validate_value(vr, text, config.RAISE)
            if vr == "DA" and text:
                datetime.datetime.strptime(text, "%Y%m%d")
        except ValueError:
            return None, f"not a valid {vr} value"
        normalised.append(text if vr in ("DA", "TM") or keyword in ENUMERATED else item)
    return (normalised if len(normalised) > 1 else normalised[0]), None


def conformant_copy(ds: pydicom.Dataset, notes: set[str] | None = None) -> pydicom.Dataset:
    """A copy of a source header that highdicom and dciodvfy accept: the site attributes (:data:`SITE_KEYWORDS`)
    left out; each text value of the patient, study and equipment modules checked against its VR, VM and
    enumerated values, harmlessly normalised where it can be (dates, times, sex words, a character set highdicom
    does not know: UTF-8, the values being decoded already), else left out (a Type 2 attribute: empty), with its
    keyword added to `notes`. InputError for a PatientID that does not conform (too long, several values): the
    objects would be filed under another patient. Geometry, pixel and UID attributes are left as they are (checked
    by :func:`check_source_headers`)."""
    ds = copy.deepcopy(ds)  # (a shallow copy shares its elements with the source)
    for keyword in SITE_KEYWORDS:
        if keyword in ds:
            delattr(ds, keyword)
    charset = ds.get("SpecificCharacterSet")
    charsets = list(charset) if isinstance(charset, MultiValue) else [charset]
    if charset is not None and not (len(charsets) == 1 and charsets[0] in HIGHDICOM_CHARACTER_SETS):
        with warnings.catch_warnings():  # an unknown character set: pydicom decodes with its default (we say so)
            warnings.simplefilter("ignore")
            for _ in ds:  # decode every value with the source's character set before it is replaced
                pass
        if notes is not None and not set(charsets) <= {"", *python_encoding}:
            notes.add(f"SpecificCharacterSet (unknown: {chr(92).join(map(str, charsets))}; written as UTF-8)")
        ds.SpecificCharacterSet = UTF8
    for element in list(ds):
        keyword = keyword_for_tag(element.tag)
        if (not keyword or element.VR in ("SQ", "UI", "OB", "OW", "OF", "OD", "OL", "OV", "UN", "US", "SS", "UL",
                                          "SL", "FL", "FD", "AT") or element.tag.group in (0x0002, 0x0028)
                or (element.tag.group == 0x0020 and keyword != "StudyID") or keyword == "SpecificCharacterSet"
                or element.value is None or element.value == ""):
            continue
        value, why = _conformant(keyword, element.value)
        if why is None:
            element.value = value
            continue
        if keyword == "PatientID":
            raise InputError(f"The source's PatientID is {why} ({len(str(element.value))} characters): DICOM objects "
                             "made from it could be filed under another patient; correct the source's PatientID")
        if keyword in TYPE2_PATIENT_STUDY:
            element.value = ""
        else:
            delattr(ds, keyword)
        if notes is not None and (element.tag.group in (0x0008, 0x0010, 0x0012, 0x0020, 0x0032, 0x0038)):
            notes.add(f"{keyword} ({why})")
    return ds


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
    image's slice order, checked (:func:`check_source_headers`) and against the image's grid (InputError when they
    differ), as :func:`with_type2_attributes` copies (what was left out logged once); None when `source` is None
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
    check_source_headers(datasets, source)
    return with_type2_attributes(check_source_grid(image, datasets, source))


def dicom_headers(source: str | os.PathLike | None) -> list[pydicom.Dataset] | None:
    """The headers of a DICOM file or series folder (None: not DICOM, or gone)."""
    return _headers(Path(source)) if is_dicom_source(source) else None


def source_identity(source: str | os.PathLike | None) -> str:
    """A digest of who and what a DICOM source is (its patient's ID and name, its study and its SOP instances),
    without any identifier in clear: "patient:study:instances", 16 hex digits each; "" for a source that is not
    DICOM. Recorded when an image is loaded, compared when its result is exported (:func:`check_identity`)."""
    datasets = dicom_headers(source)
    if not datasets:
        return ""
    patient_id, patient_name = _patient(datasets[0])
    return ":".join((_digest(patient_id or patient_name), _digest(datasets[0].get("StudyInstanceUID", "")),
                     _digest(*sorted(str(ds.get("SOPInstanceUID", "")) for ds in datasets))))


def check_identity(source: str | os.PathLike, recorded: str | None) -> None:
    """Refuse a DICOM source whose files changed since the image was loaded (`recorded`: its
    :func:`source_identity` then; None or "": not recorded): the DICOM objects would be filed under whatever patient
    and study lie there now."""
    if recorded and source_identity(source) != recorded:
        raise InputError(f"The DICOM files of {Path(source).name} changed since the image was loaded (other "
                         "instances, another study or another patient lie there now): the DICOM objects would be "
                         "filed under them; load the image again and compute its result again")


def check_loaded_together(identities: dict[str, str]) -> None:
    """Refuse images loaded as one case (`identities`: name -> :func:`source_identity`) whose DICOM sources belong
    to two patients or two studies."""
    recorded = {name: identity.split(":") for name, identity in identities.items() if identity}
    names = list(recorded)
    for other in names[1:]:
        first = names[0]
        if recorded[other][0] != recorded[first][0] and _digest("") not in (recorded[other][0],
                                                                             recorded[first][0]):
            raise InputError(f"These images belong to two patients ({first} and {other} name different patients): "
                             "load the images of one patient")
        if recorded[other][1] != recorded[first][1]:
            raise InputError(f"These images belong to two studies ({first} and {other} have different Study "
                             "Instance UIDs): load the images of one study")


def identity_for_case(source: str | os.PathLike, others) -> str:
    """:func:`source_identity` of `source`, an image joining a case, after refusing it (:func:`check_loaded_together`)
    when it belongs to another patient or study than `others` (the case's volume nodes, their identity recorded in
    their :data:`IDENTITY` attribute)."""
    identity = source_identity(source)
    check_loaded_together({**{node.GetName(): node.GetAttribute(IDENTITY) or "" for node in others},
                           Path(source).name: identity})
    return identity


def check_selected_together(nodes, source_attribute: str) -> None:
    """For volume nodes taken as one case without :meth:`Flow.load` (the desktop's selectors): record the
    :func:`source_identity` of those with a source file (`source_attribute`) but none recorded, then refuse nodes
    whose DICOM sources belong to two patients or two studies."""
    for node in nodes:
        source = node.GetAttribute(source_attribute)
        if source and not node.GetAttribute(IDENTITY) and Path(source).exists():
            node.SetAttribute(IDENTITY, source_identity(source))
    check_loaded_together({node.GetName(): node.GetAttribute(IDENTITY) or "" for node in nodes})


def check_output_apart(folder: str | os.PathLike, sources) -> None:
    """Refuse an export `folder` that is the folder of a DICOM source (its series folder, or the folder holding the
    DICOM file) or lies inside it: the SEG and SR would join the series' files, and the series would no longer read
    as one."""
    folder = Path(folder).resolve()
    for source in filter(None, sources):
        source = Path(source)
        if not is_dicom_source(source):
            continue
        series = (source if source.is_dir() else source.parent).resolve()
        if folder == series or series in folder.parents:
            raise InputError(f"The export folder {folder.name} is {'in ' if folder != series else ''}the folder of the "
                             f"DICOM images {source.name}: the DICOM objects would mix with the source's files; "
                             "choose another folder")


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
    """:func:`conformant_copy` of each source header, with the patient and study modules' absent Type 2 attributes
    present and empty (what highdicom reads from them); the headers themselves are left as they are. What was left
    out is logged once (its keywords, never its values)."""
    notes: set[str] = set()
    completed = [conformant_copy(ds, notes) for ds in datasets]
    for ds in completed:
        for keyword in TYPE2_PATIENT_STUDY:
            if keyword not in ds:
                setattr(ds, keyword, "")
    if notes:
        log.warning("Left out of the DICOM objects, not conforming to DICOM in the source's header: %s",
                    ", ".join(sorted(notes)))
    return completed


def _patient_and_study(ds: pydicom.Dataset, like: list[pydicom.Dataset] | None, study_uid: str, date: str,
                       time: str) -> None:
    if like:
        for keyword in PATIENT_STUDY_KEYWORDS:
            if keyword in like[0]:
                setattr(ds, keyword, like[0][keyword].value)
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
    like = with_type2_attributes(like[:1]) if like else None
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
