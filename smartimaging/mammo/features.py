"""Cohort feature extraction for MammoRadiomics: manifest -> features.csv, in parallel, failures reported per row."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from joblib import Parallel, delayed, parallel_config
from PIL import Image
from tqdm import tqdm

from ..errors import InputError, SmartImagingError
from ..io import check_readable, file_suffix, read_volume
from ..manifest import Manifest, finish_cohort, prepare_cohort_folder, read_manifest, write_manifest
from ..phantoms.mammo import PIXEL_MM, make_mammo_phantom
from ..radiomics import MAMMO_PARAMS, extract_2d
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


def features_of_row(manifest: Manifest, row: dict, parameters: str | os.PathLike = MAMMO_PARAMS) -> dict:
    """The row's manifest columns followed by its 102 features; a `pixel_mm` column sets the spacing of formats
    that store none (PNG, PGM)."""
    pixel_mm = float(row["pixel_mm"]) if row.get("pixel_mm") else None
    mammogram = load_mammogram(manifest.resolve(row["image"]), pixel_mm)
    mask = load_mask(manifest.resolve(row["mask"]), mammogram)
    features = extract_2d(mammogram.image, mask, parameters)
    return {**row, **features}


def _safe_features(manifest: Manifest, index: int, row: dict, parameters) -> tuple[int, dict | None, str | None]:
    try:
        return index, features_of_row(manifest, row, parameters), None
    except SmartImagingError as exc:
        return index, None, str(exc)


def extract_cohort(manifest_path: str | os.PathLike, out_csv: str | os.PathLike, n_jobs: int = -1,
                   parameters: str | os.PathLike = MAMMO_PARAMS, scheduler: str | None = None,
                   show_progress: bool = True) -> tuple[int, list[dict]]:
    """Features of every manifest row into `out_csv`; failed rows go to `<out>.failures.csv` with the reason.

    `scheduler`: a Dask scheduler address to run on a cluster instead of local processes.
    """
    manifest = read_manifest(manifest_path, required=("patient_id", "image", "mask"))
    tasks = (delayed(_safe_features)(manifest, i, row, str(parameters)) for i, row in enumerate(manifest.rows))
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
    failures_csv = out_csv.with_suffix(".failures.csv")
    if failures:
        with open(failures_csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(failures[0]))
            writer.writeheader()
            writer.writerows(failures)
    elif failures_csv.exists():
        failures_csv.unlink()
    return len(rows), failures


def write_mammo_phantom_cohort(out_dir: str | os.PathLike, n_cases: int, seed: int = 0, kind: str | None = None,
                               splits: dict[str, float] | None = None) -> Path:
    """Phantom mammograms (16-bit PNG + mask PNG) and `manifest.csv`; benign and malignant alternate."""
    out_dir = prepare_cohort_folder(out_dir)
    rows = []
    for index in range(n_cases):
        case = make_mammo_phantom(seed * 100_000 + index, kind=kind, label=index % 2)
        Image.fromarray(case.image.round().astype(np.uint16)).save(out_dir / "images" / f"{case.patient_id}.png")
        Image.fromarray(case.mask * 255).save(out_dir / "masks" / f"{case.patient_id}.png")
        rows.append({"patient_id": case.patient_id, "image": f"images/{case.patient_id}.png",
                     "mask": f"masks/{case.patient_id}.png", "label": case.label, "kind": case.kind,
                     "age": case.age, "pixel_mm": PIXEL_MM, "description": case.description,
                     "centre_row": case.centre[0], "centre_col": case.centre[1]})
    return finish_cohort(out_dir, rows, splits, seed)
