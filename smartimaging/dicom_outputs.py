"""A result as DICOM objects: a SEG of its ROI and a TID 1500 SR of its numbers on each source image, written
beside the result's other files (`--dicom` in the CLI, `exports.export_dicom` from a scene).

Each source image is a :class:`DicomPart`: its grid, the file or series folder it was read from, the segments on it
(the AI's proposal as AUTOMATIC segments with the model's id and version, the reader's edited or drawn ROI as
MANUAL ones) and the SR's measurements and qualitative results. When the source is DICOM the SEG and SR reference
its instances (its patient and study modules are kept: that is what PACS files them by); otherwise the image is
written as a derived series first (`image_dicom/`, a new study with an anonymous patient) for them to reference.
The task modules (`<task>/dicom.py`) say what each module's parts hold.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import __version__
from .dicom_seg import SegSegment, seg_dataset
from .dicom_series import derived_series, source_datasets, write_series
from .dicom_sr import Measurement, Qualitative, sr_dataset
from .segments import SegmentSpec

IMAGE_SERIES = "image_dicom"  # the derived series of a source that is not DICOM
RATIO = "1"  # UCUM unit of a dimensionless number (index, probability, score)
UTF8 = "ISO_IR 192"
CLASSICAL_ALGORITHM = ("SmartImaging classical fallback", __version__)  # an ROI grown where the network found none
DOMAIN_VERDICTS = {"inside": "inside the model's training data",  # beside each group's numbers (at most 64 chars)
                   "outside": "OUTSIDE the model's training data: do not rely on these numbers",
                   "unknown": "not checked against the model's training data"}


@dataclass
class DicomPart:
    """One source image of a result: its grid (`image`), the DICOM file or series folder it was read from
    (`source`; None or a non-DICOM file: a derived series of `modality` is written), its segments and the SR's
    content (measurements name segments by their number, 1-based, in `segments`)."""
    image: sitk.Image
    source: Path | None
    modality: str
    segments: list[SegSegment]
    measurements: list[Measurement] = field(default_factory=list)
    qualitatives: list[Qualitative] = field(default_factory=list)


def domain_qualitatives(record: dict, groups) -> list[Qualitative]:
    """The record's domain check (its text, on the image) and its verdict beside the numbers of each group in
    `groups` (segment numbers, None: the image's group), so that a reader of any number sees whether to trust it."""
    domain = record.get("domain")
    if not domain:
        return []
    verdict = DOMAIN_VERDICTS.get(domain.get("verdict"), DOMAIN_VERDICTS["unknown"])
    return [Qualitative("Domain check", domain["text"]),
            *(Qualitative("Domain verdict", verdict, group) for group in dict.fromkeys(groups))]


def segments_of(labels: np.ndarray, specs, algorithm: tuple[str, str] | None) -> list[SegSegment]:
    """One segment per spec from a (k, j, i) label array (the spec's label value), AUTOMATIC with `algorithm`
    (model id, version) or MANUAL (None: the reader's)."""
    return [SegSegment((labels == spec.label).astype(np.uint8), spec, algorithm) for spec in specs]


def segment_number(segments: list[SegSegment], spec: SegmentSpec, algorithm_kind: str) -> int | None:
    """The number (1-based) of the segment of `spec` that is the reader's ("manual") or the AI's ("automatic") in
    `segments`, None when there is none."""
    manual = algorithm_kind == "manual"
    return next((number for number, segment in enumerate(segments, start=1)
                 if segment.spec == spec and (segment.algorithm is None) == manual), None)


def write_dicom(folder: str | os.PathLike, parts: list[DicomPart], title: str,
                algorithm: tuple[str, str]) -> dict[str, Path]:
    """Write a SEG and an SR per part into `folder` ("seg.dcm", "sr.dcm", and "image_dicom/" for a source that is
    not DICOM; with several parts the names end in _2, _3...); returns them by kind ("seg", "sr", "series", with the
    same suffixes). InputError when a DICOM source does not describe its part's image."""
    folder = Path(folder)
    written: dict[str, Path] = {}
    for index, part in enumerate(parts):
        suffix = f"_{index + 1}" if index else ""
        sources = source_datasets(part.image, part.source)
        if sources is None:
            sources = derived_series(part.image, part.modality, f"{title}: input image")
            series = folder / f"{IMAGE_SERIES}{suffix}"
            write_series(sources, series)
            written[f"series{suffix}"] = series
        seg = seg_dataset(sources, part.segments, f"{title} segmentation")
        written[f"seg{suffix}"] = folder / f"seg{suffix}.dcm"
        seg.save_as(written[f"seg{suffix}"], enforce_file_format=True)
        written[f"sr{suffix}"] = save_sr(sr_dataset(sources, seg, part.measurements, part.qualitatives, title,
                                                    algorithm), folder / f"sr{suffix}.dcm")
    return written


def save_sr(sr, path: Path) -> Path:
    """Write an SR in UTF-8 (its texts, e.g. the domain check, hold dashes and symbols that a source's character set
    may lack: they would be replaced by '?')."""
    sr.SpecificCharacterSet = UTF8
    sr.save_as(path, enforce_file_format=True)
    return path
