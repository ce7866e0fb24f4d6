"""Cohort feature extraction for MammoRadiomics: manifest -> features.csv, in parallel, failures reported per row."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import yaml
from joblib import Parallel, delayed, parallel_config
from PIL import Image
from tqdm import tqdm

from ..errors import InputError, SmartImagingError
from ..io import atomic_files, check_readable, file_suffix, read_volume
from ..limits import MAMMOGRAM, check_image_file
from ..manifest import read_manifest, write_manifest
from ..radiomics import MAMMO_PARAMS, RECOMMENDED_BINS, bin_counts, extract_2d, parameter_settings
from .images import Mammogram, load_mammogram, parse_pixel_mm


def load_mask(path: str | os.PathLike, mammogram: Mammogram) -> np.ndarray:
    """Binary lesion mask (rows, cols) for a mammogram: PNG (non-zero = lesion; colour: any channel above half) or a
    volume on the same grid."""
    path = check_readable(path)
    if file_suffix(path) in (".png", ".pgm", ".tif", ".tiff"):
        check_image_file(path, MAMMOGRAM)
        try:
            with Image.open(path) as image:
                mask = np.asarray(image)
        except Exception as exc:  # PIL raises many types for corrupt, truncated or oversized files
            raise InputError(f"The mask {path.name} is not a readable image (corrupt, truncated or not an image); "
                             "export the ROI again") from exc
        if mask.ndim not in (2, 3):
            raise InputError(f"The mask {path.name} is not a 2D image")
        if mask.ndim == 3 and mask.shape[-1] >= 3:  # colour-coded mask (e.g. red malignant, green benign): any
            mask = mask[..., :3].max(axis=-1) > 127  # saturated colour; faint values are compression noise
        elif mask.ndim == 3:
            mask = mask[..., 0]
    else:
        volume = read_volume(path, MAMMOGRAM)
        if volume.GetSize()[2] != 1:
            raise InputError(f"The mask {path.name} has {volume.GetSize()[2]} slices; expected one")
        if not np.allclose(volume.GetSpacing()[:2], mammogram.image.GetSpacing()[:2], atol=1e-6):
            raise InputError(f"The mask {path.name} has another pixel spacing than its mammogram")
        check_same_place(volume, mammogram, path.name)
        mask = sitk.GetArrayFromImage(volume)[0]
    if mask.shape != mammogram.pixels.shape:
        raise InputError(f"The mask {path.name} is {mask.shape[1]}×{mask.shape[0]} pixels but its mammogram is "
                         f"{mammogram.pixels.shape[1]}×{mammogram.pixels.shape[0]}")
    return (mask > 0).astype(np.uint8)


def check_same_place(mask: sitk.Image, mammogram: Mammogram, name: str) -> None:
    """Refuse a mask whose grid lies elsewhere than the mammogram's (origin or direction): its corner pixels must
    fall within half a pixel of the mammogram's."""
    columns, rows = mask.GetSize()[:2]
    for corner in ((0, 0, 0), (columns - 1, 0, 0), (0, rows - 1, 0), (columns - 1, rows - 1, 0)):
        point = mask.TransformContinuousIndexToPhysicalPoint(corner)
        where = mammogram.image.TransformPhysicalPointToContinuousIndex(point)
        if max(abs(where[0] - corner[0]), abs(where[1] - corner[1])) > 0.5:
            shift = np.subtract(point, mammogram.image.TransformContinuousIndexToPhysicalPoint(corner))
            raise InputError(f"The mask {name} lies {np.linalg.norm(shift[:2]):.1f} mm away from its mammogram "
                             "(another origin or orientation): it was drawn on another image. Export the ROI from "
                             "this mammogram again")


def check_parameter_file(parameters: str | os.PathLike) -> None:
    """Refuse a pyradiomics parameter file that cannot be read or that does not compute 2D features."""
    name = Path(parameters).name
    try:
        settings = parameter_settings(parameters)
    except OSError as exc:
        raise InputError(f"The pyradiomics parameter file {parameters} cannot be read ({exc.strerror})") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"The pyradiomics parameter file {name} is not valid YAML; compare it with "
                         f"{MAMMO_PARAMS.name}") from exc
    setting = settings.get("setting") if isinstance(settings, dict) else None
    if not isinstance(setting, dict) or not setting.get("force2D") or "shape" in (settings.get("featureClass") or {}):
        raise InputError(f"The pyradiomics parameter file {name} must set force2D: true and use shape2D (not 3D "
                         f"shape), as {MAMMO_PARAMS.name} does")


def check_roi(mask: np.ndarray, parameters: str | os.PathLike = MAMMO_PARAMS) -> None:
    """Refuse an ROI too small for radiomics (the parameter file's minimumROISize and minimumROIDimensions) before
    pyradiomics refuses it with a developer's message."""
    setting = parameter_settings(parameters).get("setting", {})
    needed = int(setting.get("minimumROISize") or 0) + 1
    count = int(np.count_nonzero(mask))
    if count == 0:
        raise InputError("The ROI is empty; draw it around the lesion")
    if count < needed:
        raise InputError(f"The ROI has {count} pixels; at least {needed} are needed for radiomics. Draw it around "
                         "the whole lesion")
    rows, cols = np.nonzero(mask)
    if int(setting.get("minimumROIDimensions", 2)) >= 2 and (rows.min() == rows.max() or cols.min() == cols.max()):
        raise InputError(f"The ROI is a line one pixel wide ({count} pixels); draw it around the lesion")


def pixel_mm_of_row(row: dict) -> float | None:
    """The row's `pixel_mm` (mm, for formats that store none; `images.parse_pixel_mm`), or None when the column is
    empty or absent."""
    return parse_pixel_mm(row.get("pixel_mm"), "pixel_mm")


def features_of_row(root: Path, row: dict, parameters: str | os.PathLike = MAMMO_PARAMS) -> dict:
    """The row's manifest columns followed by its 102 features (paths relative to the manifest's folder `root`); a
    `pixel_mm` column sets the spacing of formats that store none (PNG, PGM)."""
    mammogram = load_mammogram(root / row["image"], pixel_mm_of_row(row))
    mask = load_mask(root / row["mask"], mammogram)
    check_roi(mask, parameters)
    features = extract_2d(mammogram.image, mask, parameters)
    return {**row, **features}


def _safe_features(root: Path, index: int, row: dict, parameters) -> tuple[int, dict | None, str | None]:
    """One row's features or its error as text, whatever went wrong (a task sends only its own row: the manifest
    would be pickled per task; an error goes back as text, as not every exception survives pickling).

    ITK runs single-threaded meanwhile: on one small 2D ROI its threads cost more than they save, and parallel
    workers each starting one thread per core would oversubscribe the machine (measured in benchmarks/).
    """
    itk_threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        return index, features_of_row(root, row, parameters), None
    except SmartImagingError as exc:
        return index, None, str(exc)
    except Exception as exc:  # pyradiomics, SimpleITK, numpy: any other failure stays this row's
        return index, None, f"The features could not be computed ({exc.__class__.__name__}: {exc})"
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(itk_threads)


def settings_sidecar(features_csv: str | os.PathLike) -> Path:
    """`features.csv` -> `features.radiomics.json`: the pyradiomics settings the features were computed with."""
    return Path(features_csv).with_suffix(".radiomics.json")


def failures_file(features_csv: str | os.PathLike) -> Path:
    """`features.csv` -> `features.failures.csv`: the rows that failed, with the reason."""
    return Path(features_csv).with_suffix(".failures.csv")


def _stop_local_workers() -> None:
    """Kill the loky worker processes now, wherever the interruption landed: cancel means no child left running."""
    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=False, kill_workers=True)


def _run_rows(tasks, total: int, n_jobs: int, scheduler: str | None, show_progress: bool,
              on_row: Callable[[int, int], None] | None = None) -> list[tuple]:
    """Run the row tasks locally (loky processes) or on a Dask cluster, in any order; workers are stopped on
    cancel or error. `on_row(done, total)` after each row (it may raise CancelledError to stop)."""
    client = None
    if scheduler:
        try:
            from dask.distributed import Client
        except ImportError as exc:
            raise InputError("A Dask scheduler was given but dask.distributed is not installed") from exc
        try:
            client = Client(scheduler)
        except OSError as exc:  # distributed raises OSError (a timeout) for an unreachable scheduler
            raise InputError(f"The Dask scheduler {scheduler} cannot be reached ({exc}); check the address or leave "
                             "out --scheduler") from exc
        backend = parallel_config(backend="dask")
    else:
        backend = parallel_config(backend="loky", n_jobs=n_jobs)
    results = []
    try:
        with backend, tqdm(total=total, desc="features", disable=not show_progress) as progress:
            for result in Parallel(return_as="generator_unordered")(tasks):
                results.append(result)
                progress.update()
                if on_row is not None:
                    on_row(len(results), total)
    except BaseException:
        if client is None and n_jobs != 1:
            _stop_local_workers()
        raise
    finally:
        if client is not None:
            client.close()
    return sorted(results, key=lambda r: r[0])


def extract_cohort(manifest_path: str | os.PathLike, out_csv: str | os.PathLike, n_jobs: int = -1,
                   parameters: str | os.PathLike = MAMMO_PARAMS, scheduler: str | None = None,
                   show_progress: bool = True, on_row: Callable[[int, int], None] | None = None
                   ) -> tuple[int, list[dict]]:
    """Features of every manifest row into `out_csv`; failed rows go to `<out>.failures.csv` with the reason;
    `on_row(done, total)` after each row.

    A row that fails, for any reason, never stops the others. The outputs (features, settings sidecar, failures)
    are written together and atomically: a full disk or a cancel leaves the previous files or none.
    `scheduler`: a Dask scheduler address to run on a cluster instead of local processes.
    """
    check_parameter_file(parameters)
    manifest = read_manifest(manifest_path, required=("patient_id", "image", "mask"))
    tasks = (delayed(_safe_features)(manifest.root, i, row, str(parameters)) for i, row in enumerate(manifest.rows))
    results = _run_rows(tasks, len(manifest.rows), n_jobs, scheduler, show_progress, on_row)
    rows = [features for _, features, _ in results if features is not None]
    failures = [{"row": index + 2, "patient_id": manifest.rows[index]["patient_id"],
                 "image": manifest.rows[index]["image"], "error": error}
                for index, features, error in results if features is None]
    if not rows:
        raise InputError(f"No row could be processed; first error (row {failures[0]['row']}): "
                         f"{failures[0]['error']}")
    out_csv = Path(out_csv)
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    outputs = [out_csv, settings_sidecar(out_csv)] + ([failures_file(out_csv)] if failures else [])
    with atomic_files(*outputs) as temporary:
        write_manifest(temporary[0], rows)
        sidecar = {"parameter_file": Path(parameters).name, "settings": parameter_settings(parameters)}
        temporary[1].write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
        if failures:
            with open(temporary[2], "w", encoding="utf-8", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(failures[0]))
                writer.writeheader()
                writer.writerows(failures)
    if not failures:
        failures_file(out_csv).unlink(missing_ok=True)
    return len(rows), failures


def bin_width_study(manifest_path: str | os.PathLike, bin_widths: list[float],
                    parameters: str | os.PathLike = MAMMO_PARAMS) -> dict:
    """Bins per ROI for each candidate bin width over a cohort, and the width that puts most ROIs within pyradiomics'
    recommended 30-130 bins (ties: the one whose median is nearest the middle of that range, geometrically)."""
    check_parameter_file(parameters)
    manifest = read_manifest(manifest_path, required=("patient_id", "image", "mask"))
    counts = {width: [] for width in bin_widths}
    for number, row in enumerate(manifest.rows, start=2):
        try:
            mammogram = load_mammogram(manifest.resolve(row["image"]), pixel_mm_of_row(row))
            mask = load_mask(manifest.resolve(row["mask"]), mammogram)
            check_roi(mask, parameters)
        except InputError as exc:
            raise InputError(f"Row {number} of {manifest.path.name} ({row['patient_id']}): {exc}") from exc
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
