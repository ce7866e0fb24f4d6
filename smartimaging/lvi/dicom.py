"""A breast-MRI LVI result as DICOM SEG + SR (`smartimaging.dicom_outputs`) on the sequence the VOI is shown on
(the DCE, else the T2): the lesion VOI (the AI's proposal, the reader's VOI, or both when the reader edited the
proposal) and the LVI probability, cutoff and label of each model and of their fusion."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..dicom_outputs import RATIO, DicomPart, domain_qualitatives, segment_number, write_dicom
from ..dicom_seg import SegSegment
from ..dicom_sr import Measurement, Qualitative
from ..segments import BREAST_MASS
from .preprocess import voi_on_grid
from .report_page import is_fused

TITLE = "Breast MRI LVI"


def sr_content(record: dict, voi: int | None) -> tuple[list, list]:
    """(measurements, qualitatives): each model's LVI probability in segment `voi` and its cutoff, the fused
    probability and cutoff (when models were fused); each label, the fusion method, where the VOI came from and the
    domain check."""
    measurements, qualitatives = [], []
    for model in record["models"]:
        name = f"{model['model']['id']} ({model['sequence']}, {model['network']})"
        measurements += [Measurement(f"LVI probability, {name}", float(model["probability"]), RATIO, None, voi),
                         Measurement(f"LVI cutoff, {name}", float(model["cutoff"]), RATIO, None, None)]
        qualitatives.append(Qualitative(f"LVI label, {name}", model["label"]))
    fused = record["fused"]
    if is_fused(record):  # one network alone (a cohort's model) has no fused result: its own items say it all
        measurements += [Measurement("LVI probability, fused", float(fused["probability"]), RATIO, None, voi),
                         Measurement("LVI cutoff, fused", float(fused["cutoff"]), RATIO, None, None)]
        qualitatives += [Qualitative("LVI label, fused", fused["label"]), Qualitative("Fusion", fused["method"])]
    if record.get("roi_source"):
        qualitatives.append(Qualitative("VOI", record["roi_source"]))
    qualitatives += domain_qualitatives(record, [voi, None])
    return measurements, qualitatives


def dicom_part(image: sitk.Image, source: Path | None, record: dict, ai_voi: np.ndarray | None,
               ai_algorithm: tuple[str, str] | None, reader_voi: np.ndarray | None) -> DicomPart:
    """The VOI's sequence as a part: the AI's VOI (AUTOMATIC, `ai_algorithm`) and/or the reader's (MANUAL), (k, j, i)
    masks on `image`'s grid; the probabilities refer to the reader's VOI when there is one."""
    segments = [] if ai_voi is None else [SegSegment((ai_voi > 0).astype(np.uint8), BREAST_MASS, ai_algorithm)]
    if reader_voi is not None:
        segments.append(SegSegment((reader_voi > 0).astype(np.uint8), BREAST_MASS, None))
    voi = segment_number(segments, BREAST_MASS, "manual" if reader_voi is not None else "automatic")
    return DicomPart(image, source, "MR", segments, *sr_content(record, voi))


def write_lvi_dicom(folder: str | os.PathLike, part: DicomPart) -> dict[str, Path]:
    """SEG and SR of the VOI's sequence into `folder` (the models are named in the SR's measurements)."""
    return write_dicom(folder, [part], TITLE, ("SmartImaging BreastLVI", __version__))


def write_prediction_dicom(folder: str | os.PathLike, volumes: dict[str, sitk.Image], sources: dict, voi: sitk.Image,
                           record: dict) -> list[str]:
    """The CLI's SEG and SR into `folder` (the names written): the VOI given (the reader's) on the DCE's grid, else
    the T2's; `sources`: the sequences' files or series folders by name."""
    name = "DCE" if "DCE" in volumes else "T2"
    reader_voi = sitk.GetArrayFromImage(voi_on_grid(volumes[name], voi, name))
    part = dicom_part(volumes[name], Path(sources[name]), record, None, None, reader_voi)
    return [path.name for path in write_lvi_dicom(folder, part).values()]
