"""DICOM SR measurement reports (TID 1500, Comprehensive 3D SR through highdicom) of a result.

Measurements of a region go into a TID 1411 group that references its segment of the result's DICOM SEG (and the
SEG's source images); measurements and evaluations of the whole image (a lesion count, a Rad-score, a fused
probability) go into one TID 1501 group that references the source images. The report names the model that made
it (device observer and algorithm identification: model id and version). Concepts without a standard code get a
code of the local scheme 99SMARTIMAGING (declared in the SR), values their UCUM unit. The SR is filed with the study
and the patient module of its source images, like the SEG.
"""

from __future__ import annotations

import math
import os
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import pydicom
from highdicom.sr import CodedConcept
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from . import __version__
from .dicom_seg import check_algorithm, coded, highdicom_refusal
from .dicom_series import MANUFACTURER, with_type2_attributes
from .errors import InputError
from .segments import Code

LOCAL_SCHEME = "99SMARTIMAGING"
SR_SERIES_NUMBER = 9200
IMAGING = Code("SCT", "363679005", "Imaging")  # the procedure reported
UNIT_MEANINGS = {"1": "no units", "%": "percent", "mm": "millimeter", "mm2": "square millimeter",
                 "mm3": "cubic millimeter", "ml": "milliliter", "cm3": "cubic centimeter", "dB": "decibel",
                 "{count}": "count", "{lesions}": "lesions"}


@dataclass(frozen=True)
class Measurement:
    """A number with its UCUM unit ("1" for a probability or a ratio, "mm3", "%", "{lesions}"...); `code` names it
    (a local code from `name` when None); `segment_number` ties it to that segment of the SEG (None: the image)."""

    name: str
    value: float
    unit: str
    code: Code | None = None
    segment_number: int | None = None


@dataclass(frozen=True)
class Qualitative:
    """A named evaluation with a text value: a short one (a label such as "malignant", at most 64 characters) is a
    CODE item of the local scheme, a longer one (a sentence) a TEXT item."""

    name: str
    value_text: str
    segment_number: int | None = None


def local_code(text: str) -> CodedConcept:
    """A stable code of the local scheme for `text` (its CRC-32: SH values hold 16 characters at most)."""
    return CodedConcept(f"SI{zlib.crc32(text.encode()):08X}", LOCAL_SCHEME, text[:64])


def _tid300(measurement: Measurement, algorithm: hd.sr.AlgorithmIdentification) -> hd.sr.Measurement:
    unit = CodedConcept(measurement.unit, "UCUM", UNIT_MEANINGS.get(measurement.unit, measurement.unit))
    name = coded(measurement.code) if measurement.code else local_code(measurement.name)
    return hd.sr.Measurement(name, float(measurement.value), unit, algorithm_id=algorithm)


CODE_MEANING_LENGTH = 64  # LO


def _evaluations(qualitatives: list[Qualitative]) -> list[hd.sr.QualitativeEvaluation] | None:
    return [hd.sr.QualitativeEvaluation(local_code(q.name), local_code(q.value_text)) for q in qualitatives
            if len(q.value_text) <= CODE_MEANING_LENGTH] or None


def _with_texts(group: hd.sr.Template, qualitatives: list[Qualitative]) -> hd.sr.Template:
    """`group` with a TEXT item for each qualitative too long for a code meaning."""
    for qualitative in qualitatives:
        if len(qualitative.value_text) > CODE_MEANING_LENGTH:
            group[0].ContentSequence.append(hd.sr.TextContentItem(
                local_code(qualitative.name), qualitative.value_text, hd.sr.RelationshipTypeValues.CONTAINS))
    return group


def _frame_numbers(ds: pydicom.Dataset) -> list[int] | None:
    """The frames of a multi-frame source (a two-view bone scan); None: the whole instance."""
    frames = int(ds.get("NumberOfFrames") or 1)
    return list(range(1, frames + 1)) if frames > 1 else None


def sr_dataset(sources: list[pydicom.Dataset], seg: pydicom.Dataset | None, measurements: list[Measurement],
               qualitatives: list[Qualitative], title: str, algorithm: tuple[str, str]) -> hd.sr.Comprehensive3DSR:
    """A TID 1500 measurement report (SeriesDescription `title`) of `measurements` and `qualitatives` made by
    `algorithm` (model id, version), referencing `seg`'s segments and the `sources` it segments (no `seg`: a
    report on the images alone, e.g. the synthetic DCE's metrics)."""
    if not sources:
        raise InputError("A DICOM SR needs the source images it reports on; none were given")
    segments = {int(item.SegmentNumber): item for item in seg.SegmentSequence} if seg is not None else {}
    unknown = sorted({m.segment_number for m in [*measurements, *qualitatives]} - {None, *segments})
    if unknown:
        raise InputError(f"The measurements refer to segment(s) {unknown}; the SEG has segments {sorted(segments)}")
    check_algorithm(algorithm)
    for measurement in measurements:
        if not math.isfinite(measurement.value):
            raise ValueError(f"{measurement.name} is {measurement.value}: a DICOM SR holds finite numbers only")
    try:
        return _sr(sources, seg, measurements, qualitatives, title, algorithm, segments)
    except (ValueError, TypeError, AttributeError) as exc:  # a source header value highdicom refuses
        raise highdicom_refusal(exc, "DICOM SR") from exc


def _sr(sources: list[pydicom.Dataset], seg: pydicom.Dataset | None, measurements: list[Measurement],
        qualitatives: list[Qualitative], title: str, algorithm: tuple[str, str],
        segments: dict) -> hd.sr.Comprehensive3DSR:
    model_id, version = algorithm
    algorithm_id = hd.sr.AlgorithmIdentification(model_id, version, family=codes.cid7162.ArtificialIntelligence)
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=generate_uid(entropy_srcs=[model_id, version]), name=model_id, manufacturer_name=MANUFACTURER,
        model_name=f"{model_id} {version}"[:64])
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(codes.DCM.Device, device))
    groups = []
    for number, item in segments.items():
        ours = [m for m in measurements if m.segment_number == number]
        evaluations = [q for q in qualitatives if q.segment_number == number]
        if not ours and not evaluations:
            continue
        referenced = hd.sr.ReferencedSegment(
            seg.SOPClassUID, seg.SOPInstanceUID, number,
            source_images=[hd.sr.SourceImageForSegmentation.from_source_image(ds, _frame_numbers(ds))
                           for ds in sources])
        groups.append(_with_texts(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            hd.sr.TrackingIdentifier(generate_uid(), str(item.SegmentLabel)), referenced_segment=referenced,
            finding_type=CodedConcept.from_dataset(item.SegmentedPropertyTypeCodeSequence[0]),
            algorithm_id=algorithm_id, measurements=[_tid300(m, algorithm_id) for m in ours],
            qualitative_evaluations=_evaluations(evaluations)), evaluations))
    image_measurements = [m for m in measurements if m.segment_number is None]
    image_evaluations = [q for q in qualitatives if q.segment_number is None]
    if image_measurements or image_evaluations:
        groups.append(_with_texts(hd.sr.MeasurementsAndQualitativeEvaluations(
            hd.sr.TrackingIdentifier(generate_uid(), "Image"), algorithm_id=algorithm_id,
            measurements=[_tid300(m, algorithm_id) for m in image_measurements] or None,
            qualitative_evaluations=_evaluations(image_evaluations),
            source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(ds, _frame_numbers(ds))
                           for ds in sources]), image_evaluations))
    report = hd.sr.MeasurementReport(context, coded(IMAGING), groups)
    with warnings.catch_warnings():  # the source's patient name as it is (highdicom warns on one-component names)
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
        sr = hd.sr.Comprehensive3DSR(
            [*with_type2_attributes(sources), *([seg] if seg is not None else [])], report, generate_uid(),
            SR_SERIES_NUMBER, generate_uid(), 1,
            manufacturer=MANUFACTURER, is_complete=True, series_description=title[:64],
            software_versions=__version__)
    scheme = pydicom.Dataset()
    scheme.CodingSchemeDesignator, scheme.CodingSchemeName = LOCAL_SCHEME, "SmartImaging local codes"
    scheme.CodingSchemeResponsibleOrganization = "SmartImaging"
    sr.CodingSchemeIdentificationSequence = [scheme]
    return sr


def write_sr(sources: list[pydicom.Dataset], seg: pydicom.Dataset | None, measurements: list[Measurement],
             qualitatives: list[Qualitative], title: str, algorithm: tuple[str, str],
             path: str | os.PathLike) -> Path:
    """:func:`sr_dataset` written to `path` (a DICOM Part 10 file)."""
    path = Path(path)
    sr_dataset(sources, seg, measurements, qualitatives, title, algorithm).save_as(path, enforce_file_format=True)
    return path
