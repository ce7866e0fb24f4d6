"""A bone-scan result as DICOM SEG + SR (`smartimaging.dicom_outputs`), one pair per source image: the metastasis
and bladder segments (the AI's, the reader's, or both when the reader edited the AI's), and BSTBI per sub-image of
the image's views, the mean BSTBI, the lesions per view and the metastasis probability with its cutoff."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..dicom_outputs import RATIO, DicomPart, domain_qualitatives, segment_number, segments_of, write_dicom
from ..dicom_sr import Measurement, Qualitative
from ..segments import BONE_METASTASIS, BONESCAN_SEGMENTS

TITLE = "Bone scan BSTBI"
SEGMENTER = 1  # position in the record's "models" (BoneScanModels.provenance) when the networks ran
LESIONS = "{lesions}"  # UCUM: a count of lesions


def algorithm(record: dict) -> tuple[str, str] | None:
    """(id, version) of the segmentation network the record's AI segments came from, None when none ran."""
    models = record.get("models") or []
    return (models[SEGMENTER]["id"], models[SEGMENTER]["version"]) if len(models) > SEGMENTER else None


def sr_content(record: dict, views: list[str], metastasis: int | None) -> tuple[list, list]:
    """(measurements, qualitatives) of a source image holding `views`: BSTBI of those views' sub-images and the
    study's mean BSTBI (on segment `metastasis`), lesions per view, the metastasis probability, cutoff and verdict
    (when the networks ran), where the ROI came from and the domain check."""
    bstbi = record["bstbi"]
    measurements = [Measurement(f"BSTBI {name}", float(value), RATIO, None, metastasis)
                    for name, value in bstbi["per_subimage"].items() if name.split(" / ")[0] in views]
    measurements.append(Measurement(f"BSTBI (mean of {len(bstbi['per_subimage'])} sub-images)", float(bstbi["mean"]),
                                    RATIO, None, metastasis))
    measurements += [Measurement(f"Lesions, {view}", float(count), LESIONS, None, metastasis)
                     for view, count in record["lesion_counts"]["per_view"].items() if view in views]
    qualitatives = []
    if record.get("metastasis_probability") is not None and record.get("threshold") is not None:
        measurements += [Measurement("Metastasis probability", float(record["metastasis_probability"]), RATIO, None,
                                     None),
                         Measurement("Metastasis probability cutoff", float(record["threshold"]), RATIO, None, None)]
        qualitatives.append(Qualitative("Metastasis", "suspected" if record["metastasis_suspected"]
                                        else "not suspected"))
    rejected = (record.get("lesion_counts") or {}).get("rejected") or []
    if rejected:
        measurements.append(Measurement("Lesions rejected by the reader", float(len(rejected)), LESIONS, None,
                                        metastasis))
        qualitatives.append(Qualitative("Lesions rejected by the reader",
                                        ", ".join(f"#{number}" for number in rejected) + " (not in the reader's "
                                        "segment, BSTBI and counts)", metastasis))
    qualitatives.append(Qualitative("Reader edited", "yes" if record.get("reader_edited") or rejected else "no"))
    if record.get("models"):
        qualitatives.append(Qualitative("Models", ", ".join(f"{m['id']} {m['version']}" for m in record["models"])))
    qualitatives += domain_qualitatives(record, [metastasis, None])
    return measurements, qualitatives


def dicom_parts(images: list[sitk.Image], sources: list[Path | None], views: list[list[str]], record: dict,
                ai_labels: list[np.ndarray] | None, reader_labels: list[np.ndarray] | None) -> list[DicomPart]:
    """One part per source image (its (frames, rows, cols) label arrays: the AI's, whose network the record names,
    the reader's, or both); the SR's BSTBI refers to the reader's metastasis segment when there is one, else to the
    AI's."""
    parts = []
    for index, (image, source) in enumerate(zip(images, sources, strict=True)):
        segments = segments_of(ai_labels[index], BONESCAN_SEGMENTS, algorithm(record)) if ai_labels is not None \
            else []
        if reader_labels is not None:
            segments += segments_of(reader_labels[index], BONESCAN_SEGMENTS, None)
        metastasis = segment_number(segments, BONE_METASTASIS, "manual" if reader_labels is not None else "automatic")
        parts.append(DicomPart(image, source, "NM", segments, *sr_content(record, views[index], metastasis)))
    return parts


def write_bonescan_dicom(folder: str | os.PathLike, parts: list[DicomPart]) -> dict[str, Path]:
    """SEG and SR of each part into `folder` (`dicom_outputs.write_dicom`); the SR's algorithm is SmartImaging's
    BSTBI (the networks it ran are named in the SR's "Models")."""
    return write_dicom(folder, parts, TITLE, ("SmartImaging BSTBI", __version__))
