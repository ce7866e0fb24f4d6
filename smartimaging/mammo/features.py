"""Cohort feature extraction for MammoRadiomics: manifest -> features.csv, in parallel, failures reported per row."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from joblib import Parallel, delayed, parallel_config
from PIL import Image
from tqdm import tqdm

from ..errors import InputError, SmartImagingError
from ..io import check_readable, file_suffix, read_volume
from ..manifest import read_manifest, write_manifest
from ..radiomics import MAMMO_PARAMS, RECOMMENDED_BINS, bin_counts, extract_2d, parameter_settings
from .images import Mammogram, load_mammogram


def load_mask(path: str | os.PathLike, mammogram: Mammogram) -> np.ndarray:
    """Binary lesion mask (rows, cols) for a mammogram: PNG (non-zero = lesion) or a volume on the same grid."""
    path = check_readable(path)
    if file_suffix(path) in (".png", ".pgm", ".tif", ".tiff"):
        with Image.open(path) as image:
            mask = np.asarray(image)
        mask = mask[..., 0] if mask.ndim == 3 else mask
    else:
        volume = read_volume(path)
        if volume.GetSize()[2] != 1:
            raise InputError(f"The mask {path.name} has {volume.GetSize()[2]} slices; expected one")
        if not np.allclose(volume.GetSpacing()[:2], mammogram.image.GetSpacing()[:2], atol=1e-6):
            raise InputError(f"The mask {path.name} has another pixel spacing than its mammogram")
        mask = sitk.GetArrayFromImage(volume)[0]
    if mask.shape != mammogram.pixels.shape:
        raise InputError(f"The mask {path.name} is {mask.shape[1]}×{mask.shape[0]} pixels but its mammogram is "
                         f"{mammogram.pixels.shape[1]}×{mammogram.pixels.shape[0]}")
    return (mask > 0).astype(np.uint8)


def features_of_row(root: Path, row: dict, parameters: str | os.PathLike = MAMMO_PARAMS) -> dict:
    """The row's manifest columns followed by its 102 features (paths relative to the manifest's folder `root`); a
    `pixel_mm` column sets the spacing of formats that store none (PNG, PGM)."""
    pixel_mm = float(row["pixel_mm"]) if row.get("pixel_mm") else None
    mammogram = load_mammogram(root / row["image"], pixel_mm)
    mask = load_mask(root / row["mask"], mammogram)
    features = extract_2d(mammogram.image, mask, parameters)
    return {**row, **features}


def _safe_features(root: Path, index: int, row: dict, parameters) -> tuple[int, dict | None, str | None]:
    """One row's features or its error (a task sends only its own row: the manifest would be pickled per task).

    ITK runs single-threaded meanwhile: on one small 2D ROI its threads cost more than they save, and parallel
    workers each starting one thread per core would oversubscribe the machine (measured in benchmarks/).
    """
    itk_threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        return index, features_of_row(root, row, parameters), None
    except SmartImagingError as exc:
        return index, None, str(exc)
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(itk_threads)


def settings_sidecar(features_csv: str | os.PathLike) -> Path:
    """`features.csv` -> `features.radiomics.json`: the pyradiomics settings the features were computed with."""
    return Path(features_csv).with_suffix(".radiomics.json")


def extract_cohort(manifest_path: str | os.PathLike, out_csv: str | os.PathLike, n_jobs: int = -1,
                   parameters: str | os.PathLike = MAMMO_PARAMS, scheduler: str | None = None,
                   show_progress: bool = True) -> tuple[int, list[dict]]:
    """Features of every manifest row into `out_csv`; failed rows go to `<out>.failures.csv` with the reason.

    `scheduler`: a Dask scheduler address to run on a cluster instead of local processes.
    """
    manifest = read_manifest(manifest_path, required=("patient_id", "image", "mask"))
    tasks = (delayed(_safe_features)(manifest.root, i, row, str(parameters)) for i, row in enumerate(manifest.rows))
    progress = tqdm(total=len(manifest.rows), desc="features", disable=not show_progress)
    if scheduler:
        try:
            from dask.distributed import Client
        except ImportError as exc:
            raise InputError("A Dask scheduler was given but dask.distributed is not installed") from exc
        client = Client(scheduler)
        backend = parallel_config(backend="dask")
    else:
        client, backend = None, parallel_config(backend="loky", n_jobs=n_jobs)
    results = []
    with backend:
        for result in Parallel(return_as="generator_unordered")(tasks):
            results.append(result)
            progress.update()
    progress.close()
    if client is not None:
        client.close()
    results.sort(key=lambda r: r[0])
    rows = [features for _, features, _ in results if features is not None]
    failures = [{"row": index + 2, "patient_id": manifest.rows[index]["patient_id"],
                 "image": manifest.rows[index]["image"], "error": error}
                for index, features, error in results if features is None]
    if not rows:
        raise InputError(f"No row could be processed; first error: {failures[0]['error']}")
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(out_csv, rows)
    settings_file = settings_sidecar(out_csv)
    sidecar = {"parameter_file": Path(parameters).name, "settings": parameter_settings(parameters)}
    settings_file.write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    failures_csv = out_csv.with_suffix(".failures.csv")
    if failures:
        with open(failures_csv, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(failures[0]))
            writer.writeheader()
            writer.writerows(failures)
    elif failures_csv.exists():
        failures_csv.unlink()
    return len(rows), failures


def bin_width_study(manifest_path: str | os.PathLike, bin_widths: list[float],
                    parameters: str | os.PathLike = MAMMO_PARAMS) -> dict:
    """Bins per ROI for each candidate bin width over a cohort, and the width that puts most ROIs within pyradiomics'
    recommended 30-130 bins (ties: the one whose median is nearest the middle of that range, geometrically)."""
    manifest = read_manifest(manifest_path, required=("patient_id", "image", "mask"))
    counts = {width: [] for width in bin_widths}
    for row in manifest.rows:
        pixel_mm = float(row["pixel_mm"]) if row.get("pixel_mm") else None
        mammogram = load_mammogram(manifest.resolve(row["image"]), pixel_mm)
        mask = load_mask(manifest.resolve(row["mask"]), mammogram)
        for width, count in bin_counts(mammogram.image, mask, bin_widths, parameters).items():
            counts[width].append(count)
    low, high = RECOMMENDED_BINS
    summary = []
    for width, values in counts.items():
        values = np.array(values)
        summary.append({"bin_width": width, "median_bins": float(np.median(values)),
                        "p5_bins": float(np.percentile(values, 5)), "p95_bins": float(np.percentile(values, 95)),
                        "within_30_130": float(np.mean((values >= low) & (values <= high)))})
    centre = np.sqrt(low * high)
    best = max(summary, key=lambda row: (row["within_30_130"], -abs(np.log(row["median_bins"] / centre))))
    return {"rois": len(manifest.rows), "parameters": str(parameters), "widths": summary,
            "recommended_bin_width": best["bin_width"]}
