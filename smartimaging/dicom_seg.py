"""DICOM Segmentation objects (highdicom, BINARY) of a result's regions, on the grid of their source images.

Each region is one segment with the SNOMED CT codes of :mod:`smartimaging.segments`: an AI proposal is AUTOMATIC
with its algorithm identification (model id and version), a region drawn or edited by the reader is MANUAL; both
may sit side by side in one SEG (labels "AI proposal" and "reader-edited"). The SEG belongs to the study of its
source instances and keeps their patient module (highdicom copies it): that is what PACS needs to file it.

Planar images without patient coordinates (NM bone scans, mammograms, secondary captures) are referenced frame by
frame; highdicom makes such a SEG for one frame only, so a two-view bone scan gets one SEG made of the SEGs of its
frames (see :func:`_planar_frames_seg`).
"""

from __future__ import annotations

import copy
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from highdicom.sr import CodedConcept
from pydicom.pixels import pack_bits
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from . import __version__
from .dicom_series import MANUFACTURER, SECONDARY_CAPTURE_STORAGE, with_type2_attributes
from .errors import InputError
from .segments import Code, SegmentSpec

AI_PROPOSAL = "AI proposal"
READER_EDITED = "reader-edited"
SEG_SERIES_NUMBER = 9100
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegSegment:
    """One region: its mask on the source grid ((slices or frames, rows, columns), or (rows, columns) for one
    frame), what it is, and who made it: (model id, model version) of the AI, or None for the reader (MANUAL)."""

    mask: np.ndarray
    spec: SegmentSpec
    algorithm: tuple[str, str] | None = None

    @property
    def label(self) -> str:
        return f"{self.spec.name} ({AI_PROPOSAL if self.algorithm else READER_EDITED})"


ALGORITHM_TEXT = re.compile(r"[^\\\x00-\x1f]{1,64}")  # AlgorithmName and AlgorithmVersion: LO, one value


def check_algorithm(algorithm: tuple[str, str]) -> None:
    """Refuse a model id or version that a DICOM AlgorithmName / AlgorithmVersion (LO: one value of at most 64
    characters, no backslash or control character) cannot hold as it is."""
    for what, text in zip(("id", "version"), algorithm, strict=True):
        if not ALGORITHM_TEXT.fullmatch(str(text)):
            raise InputError(f"The model {what} {str(text)[:80]!r} cannot name the algorithm in a DICOM object (at "
                             "most 64 characters, no backslash or control character): correct the model card")


def highdicom_refusal(exc: Exception, what: str) -> InputError:
    """highdicom's refusal of a source header value (ValueError, TypeError, AttributeError) as our InputError, in
    plain words (highdicom's own text, e.g. an enumeration's name, is logged, not shown)."""
    log.info("highdicom refused the source: %s: %s", type(exc).__name__, exc)
    return InputError(f"The {what} could not be made: a value in the DICOM source's header does not conform to DICOM "
                      "(a patient, study or image attribute); export the images again from the scanner or PACS")


def coded(code: Code) -> CodedConcept:
    return CodedConcept(code.value, code.scheme, code.meaning)


def _description(number: int, segment: SegSegment) -> hd.seg.SegmentDescription:
    algorithm = None
    if segment.algorithm:
        model_id, version = segment.algorithm
        algorithm = hd.AlgorithmIdentificationSequence(model_id, codes.cid7162.ArtificialIntelligence, version)
    description = hd.seg.SegmentDescription(
        number, segment.label[:64], coded(segment.spec.category), coded(segment.spec.type),
        "AUTOMATIC" if algorithm else "MANUAL", algorithm,
        display_color=hd.color.CIELabColor.from_rgb(*(255 * c for c in segment.spec.color)))
    description.SegmentDescription = (f"{AI_PROPOSAL} of {segment.algorithm[0]} {segment.algorithm[1]}"
                                      if segment.algorithm else f"{READER_EDITED}: drawn or edited by the reader")
    return description


def _stacked_masks(sources: list[pydicom.Dataset], segments: list[SegSegment]) -> np.ndarray:
    """(frames, rows, columns, segments) uint8 of the segments' masks, after checking them against the sources."""
    frames = sum(int(ds.get("NumberOfFrames") or 1) for ds in sources)
    shape = (frames, int(sources[0].Rows), int(sources[0].Columns))
    masks = []
    for segment in segments:
        mask = np.asarray(segment.mask)
        mask = mask[None] if mask.ndim == 2 else mask
        if mask.shape != shape:
            raise InputError(f"The {segment.label} mask has {mask.shape} voxels (slices, rows, columns); its DICOM "
                             f"source images have {shape}")
        masks.append(mask != 0)
    return np.stack(masks, axis=-1).astype(np.uint8)


def _planar_pixel_measures(source: pydicom.Dataset) -> hd.PixelMeasuresSequence | None:
    """The pixel spacing of a planar image and a slice thickness (the header's, else 1 mm as in the images that
    SmartImaging reads), which the SEG's Pixel Measures need when the source has a frame of reference."""
    if "PixelSpacing" not in source:
        return None
    return hd.PixelMeasuresSequence(source.PixelSpacing, float(source.get("SliceThickness") or 1.0))


def _segmentation(sources: list[pydicom.Dataset], masks: np.ndarray, descriptions: list, series_uid: str,
                  series_description: str) -> hd.seg.Segmentation:
    planar = hd.spatial.get_image_coordinate_system(sources[0]) is None
    with warnings.catch_warnings():  # the source's patient name as it is (highdicom warns on one-component names)
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
        seg = hd.seg.Segmentation(
            sources, masks, hd.seg.SegmentationTypeValues.BINARY, descriptions, series_uid, SEG_SERIES_NUMBER,
            generate_uid(), 1, MANUFACTURER, "SmartImaging", __version__, device_serial_number="0",
            content_label="ROI", content_description=series_description[:64], series_description=series_description,
            omit_empty_frames=False, pixel_measures=_planar_pixel_measures(sources[0]) if planar else None)
    if planar:  # no patient coordinates: the General Image module's orientation (Type 2C), the source's if valid
        value = sources[0].get("PatientOrientation") or []
        orientation = [value] if isinstance(value, str) else [str(v) for v in value]
        valid = len(orientation) == 2 and all(re.fullmatch("[LRAPHF]+", value) for value in orientation)
        seg.PatientOrientation = orientation if valid else ""
    return seg


def _restore_class(seg: pydicom.Dataset, source: pydicom.Dataset) -> None:
    """The source's own SOP class in every reference of `seg` to it."""
    def restore(dataset: pydicom.Dataset, element: pydicom.DataElement) -> None:
        if element.keyword == "ReferencedSOPInstanceUID" and element.value == source.SOPInstanceUID:
            dataset.ReferencedSOPClassUID = source.SOPClassUID

    seg.walk(restore)


def _planar_frames_seg(sources: list[pydicom.Dataset], masks: np.ndarray, descriptions: list, series_uid: str,
                       series_description: str) -> hd.seg.Segmentation:
    """One SEG of several frames without patient coordinates (two bone-scan views): the SEG of each frame (of a
    multi-frame source: made on a single-frame copy of its header, its SOP class put back in the references),
    merged; each SEG frame refers to its source frame (ReferencedFrameNumber in a multi-frame source) and carries
    the frame's number as its second dimension index (In-Stack Position)."""
    if len(sources) == 1:  # highdicom reads a multi-frame NM as an enhanced image: give it a single-frame one
        one_frame = copy.deepcopy(sources[0])
        del one_frame.NumberOfFrames
        one_frame.SOPClassUID = SECONDARY_CAPTURE_STORAGE
        frame_sources = [[one_frame]] * masks.shape[0]
    else:
        frame_sources = [[ds] for ds in sources]
    parts = [_segmentation(frame_sources[k], masks[k:k + 1], descriptions, series_uid, series_description)
             for k in range(masks.shape[0])]
    seg = parts[0]
    items, planes = [], []
    for k, part in enumerate(parts):
        for item, plane in zip(part.PerFrameFunctionalGroupsSequence, part.pixel_array.reshape(-1, *masks.shape[1:3]),
                               strict=True):
            reference = item.DerivationImageSequence[0].SourceImageSequence[0]
            if len(sources) == 1:
                reference.ReferencedFrameNumber = k + 1
            content = item.FrameContentSequence[0]
            content.DimensionIndexValues = [int(content.DimensionIndexValues), k + 1]
            content.StackID, content.InStackPositionNumber = "1", k + 1
            items.append(item)
            planes.append(plane)
    stack = pydicom.Dataset()
    stack.DimensionOrganizationUID = seg.DimensionIndexSequence[0].DimensionOrganizationUID
    stack.DimensionIndexPointer = pydicom.tag.Tag("InStackPositionNumber")
    stack.FunctionalGroupPointer = pydicom.tag.Tag("FrameContentSequence")
    stack.DimensionDescriptionLabel = "Source frame"
    seg.DimensionIndexSequence.append(stack)
    seg.PerFrameFunctionalGroupsSequence = items
    seg.NumberOfFrames = len(items)
    seg.PixelData = pack_bits(np.stack(planes))
    if len(sources) == 1:
        _restore_class(seg, sources[0])
    else:
        seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence = [
            instance for part in parts for instance in part.ReferencedSeriesSequence[0].ReferencedInstanceSequence]
        seg.SourceImageSequence = [reference for part in parts for reference in part.SourceImageSequence]
    return seg


def seg_dataset(sources: list[pydicom.Dataset], segments: list[SegSegment],
                series_description: str) -> hd.seg.Segmentation:
    """A BINARY DICOM SEG of `segments` (numbered 1, 2, ... in order) on `sources` (their headers suffice:
    :func:`smartimaging.dicom_series.source_datasets` or :func:`~smartimaging.dicom_series.derived_series`), in
    their study, with their patient module. Empty masks are kept (an AI proposal that found nothing)."""
    if not sources:
        raise InputError("A DICOM SEG needs the source images it segments; none were given")
    if not segments:
        raise InputError("A DICOM SEG needs at least one segment")
    if "ImagePositionPatient" in sources[0] and "FrameOfReferenceUID" not in sources[0]:
        raise InputError("The DICOM source images give slice positions but no Frame of Reference UID (which their "
                         "IOD requires), so a DICOM SEG cannot be placed on them: export the series again from the "
                         "scanner or PACS")
    masks = _stacked_masks(sources, segments)
    for segment in segments:
        if segment.algorithm:
            check_algorithm(segment.algorithm)
    sources = with_type2_attributes(sources)
    try:
        descriptions = [_description(number, segment) for number, segment in enumerate(segments, 1)]
        series_uid = generate_uid()
        planar = hd.spatial.get_image_coordinate_system(sources[0]) is None
        if planar and (masks.shape[0] > 1 or ("NumberOfFrames" in sources[0]
                                              and "FrameOfReferenceUID" not in sources[0])):
            # (a one-view NM without a frame of reference: highdicom, reading it as an enhanced image, needs its copy)
            return _planar_frames_seg(sources, masks, descriptions, series_uid, series_description)
        return _segmentation(sources, masks, descriptions, series_uid, series_description)
    except (ValueError, TypeError, AttributeError) as exc:
        raise highdicom_refusal(exc, "DICOM SEG") from exc


def write_seg(sources: list[pydicom.Dataset], segments: list[SegSegment], series_description: str,
              path: str | os.PathLike) -> Path:
    """:func:`seg_dataset` written to `path` (a DICOM Part 10 file)."""
    path = Path(path)
    seg_dataset(sources, segments, series_description).save_as(path, enforce_file_format=True)
    return path
