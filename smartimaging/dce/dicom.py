"""A synthetic DCE as DICOM (`smartimaging.dicom_outputs`): the synthetic first phase as a derived MR series marked
SYNTHETIC (ImageType DERIVED, SeriesDescription, ImageComments), in the T1's study when the T1 came as DICOM (else
in a new study), and an SR of it: the model, and SSIM / PSNR / MAE / Pearson r against the real DCE when given."""

from __future__ import annotations

import math
import os
from pathlib import Path

import SimpleITK as sitk

from ..dicom_outputs import RATIO, domain_qualitatives, save_sr
from ..dicom_series import derived_series, source_datasets, write_series
from ..dicom_sr import Measurement, Qualitative, sr_dataset

TITLE = "Synthetic DCE"
SYNTHETIC_SERIES = "synthetic_dce_dicom"
SR_FILE = "sr.dcm"  # as `dicom_outputs.write_dicom` names the SR of the other modules
METRICS = (("ssim_mean", "SSIM vs real DCE (mean of slices)", RATIO), ("psnr_mean", "PSNR vs real DCE (mean of "
           "slices)", "dB"), ("mae", "MAE vs real DCE (intensities 0-1)", RATIO),
           ("pearson_r", "Pearson r vs real DCE", RATIO))


def sr_content(record: dict) -> tuple[list, list]:
    """(measurements, qualitatives): the similarity to the real DCE when it was given (a PSNR that is undefined,
    identical slices, is left out) and, per enhancing region of the real DCE (lesion-level check), its contrast
    ratio synthetic / real and whether it is faint on the synthetic DCE; what the series is, and the domain check."""
    metrics = record.get("metrics") or {}
    measurements = [Measurement(name, float(metrics[key]), unit, None, None) for key, name, unit in METRICS
                    if metrics.get(key) is not None and math.isfinite(metrics[key])]
    regions = (record.get("lesion_contrast") or {}).get("regions") or []
    measurements += [Measurement(f"Enhancing region {number}: contrast ratio synthetic / real", float(m["ratio"]),
                                 RATIO, None, None) for number, m in enumerate(regions, start=1)
                     if m["ratio"] is not None and math.isfinite(m["ratio"])]
    model = record["model"]
    qualitatives = [Qualitative("Synthetic DCE", f"computed from the T1 by {model['id']} {model['version']}; not "
                                                 "acquired"),
                    Qualitative("Real DCE", "compared" if metrics else "not given: no similarity metrics")]
    qualitatives += [Qualitative(f"Enhancing region {number}: faint on synthetic DCE",
                                 ("yes" if m["faint"] else "no") + f" (real DCE slices {m['slices'][0] + 1}-"
                                 f"{m['slices'][1] + 1}" + ("; no real contrast" if m["ratio"] is None else "") + ")")
                     for number, m in enumerate(regions, start=1)]
    qualitatives += domain_qualitatives(record, [None])
    return measurements, qualitatives


def write_dce_dicom(folder: str | os.PathLike, t1: sitk.Image, t1_source: Path | None, synthetic: sitk.Image,
                    record: dict) -> dict[str, Path]:
    """The synthetic DCE series (synthetic_dce_dicom/) and its SR (sr.dcm) into `folder`; returns them as "series"
    and "sr". InputError when the T1's DICOM source does not describe the T1."""
    folder = Path(folder)
    series = derived_series(synthetic, "MR", f"first-phase DCE from T1 ({record['model']['id']})",
                            like=source_datasets(t1, t1_source), synthetic=True)
    write_series(series, folder / SYNTHETIC_SERIES)
    model = record["model"]
    return {"series": folder / SYNTHETIC_SERIES,
            "sr": save_sr(sr_dataset(series, None, *sr_content(record), TITLE, (model["id"], model["version"])),
                          folder / SR_FILE)}


def write_synthesis_dicom(folder: str | os.PathLike, t1: sitk.Image, t1_path, synthetic: sitk.Image,
                          record: dict) -> list[str]:
    """The CLI's synthetic series and SR into `folder` (the names written)."""
    return [path.name for path in write_dce_dicom(folder, t1, Path(t1_path), synthetic, record).values()]
