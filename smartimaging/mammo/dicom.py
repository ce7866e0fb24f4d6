"""A mammography result as DICOM SEG + SR (`smartimaging.dicom_outputs`): the lesion ROI (the AI's proposal, the
reader's ROI, or both when the reader edited the proposal) and the Rad-score with its cutoff and label."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..dicom_outputs import CLASSICAL_ALGORITHM, RATIO, DicomPart, domain_qualitatives, write_dicom
from ..dicom_seg import SegSegment
from ..dicom_sr import Measurement, Qualitative
from ..segments import MAMMO_SEGMENTS
from .segment import CLASSICAL_SOURCE

TITLE = "Mammography Rad-score"


def sr_content(record: dict, roi: int | None) -> tuple[list, list]:
    """(measurements, qualitatives): the Rad-score of segment `roi` and the cutoff it is read at, the label, where
    the ROI came from and the domain check."""
    measurements = [Measurement("Rad-score", float(record["rad_score"]), RATIO, None, roi),
                    Measurement("Rad-score cutoff", float(record["cutoff"]), RATIO, None, None)]
    qualitatives = [Qualitative("Rad-score label", record["label"]), Qualitative("ROI", record["roi_source"])]
    qualitatives += domain_qualitatives(record, [roi, None])
    return measurements, qualitatives


def dicom_part(image: sitk.Image, source: Path | None, record: dict, ai_mask: np.ndarray | None,
               ai_algorithm: tuple[str, str] | None, reader_mask: np.ndarray | None,
               ai_kind: str | None = None) -> DicomPart:
    """The mammogram's part: the AI's ROI (AUTOMATIC, `ai_algorithm`; a lesion of `ai_kind`, the record's kind
    unless the reader changed the kind since) and/or the reader's (MANUAL), (1, rows, cols) masks; the Rad-score
    refers to the reader's ROI when there is one."""
    spec = MAMMO_SEGMENTS[record["kind"]]
    segments = [] if ai_mask is None else [SegSegment((ai_mask > 0).astype(np.uint8),
                                                      MAMMO_SEGMENTS[ai_kind or record["kind"]], ai_algorithm)]
    if reader_mask is not None:
        segments.append(SegSegment((reader_mask > 0).astype(np.uint8), spec, None))
    roi = len(segments) if reader_mask is not None or ai_mask is not None else None  # the last: the result's ROI
    return DicomPart(image, source, "MG", segments, *sr_content(record, roi))


def write_mammo_dicom(folder: str | os.PathLike, part: DicomPart, record: dict) -> dict[str, Path]:
    """SEG and SR of the mammogram into `folder`; the SR's algorithm: the classifier (the record's last model)."""
    classifier = record["models"][-1]
    return write_dicom(folder, [part], TITLE, (classifier["id"], classifier["version"]))


def write_prediction_dicom(folder: str | os.PathLike, mammogram, prediction) -> list[str]:
    """The CLI's SEG and SR of a `predict.MammoPrediction` into `folder` (the names written): the ROI is the reader's
    when given as a mask, else the AI's (the segmenter, the record's first model, or the classical fallback)."""
    record = prediction.as_json()
    manual = prediction.roi_source == "reader mask"
    algorithm = None if manual else CLASSICAL_ALGORITHM if prediction.roi_source == CLASSICAL_SOURCE else \
        (record["models"][0]["id"], record["models"][0]["version"])
    mask = prediction.roi[None]
    part = dicom_part(mammogram.image, mammogram.path, record, None if manual else mask, algorithm,
                      mask if manual else None)
    return [path.name for path in write_mammo_dicom(folder, part, record).values()]
