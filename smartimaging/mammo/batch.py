"""Batch reading of a folder of mammograms (`mammo batch`, and the module's "Batch a folder").

One lesion per image. The ROI is the reader's mask when a file with the image's name sits in the masks folder, else
the AI ROI of the whole image (the reader checks it in `rois/`). Outputs, written only when the whole batch has run:
`results.csv` (one row per image, the error for those that failed), `features.csv` (102 features per ROI) and
`rois/<row>.seg.nrrd`. A row names its image by its number (images in path order) and sha256, and by its path in the
folder only when asked (`keep_identifiers`): file names often hold the patient's name or ID, and the errors of the
rows never name the file otherwise.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError, SmartImagingError
from ..io import atomic_output_dir, file_suffix, is_dicom
from ..privacy import input_sha256
from ..segfile import write_seg_nrrd
from ..segments import MAMMO_SEGMENTS
from .features import load_mask
from .images import load_mammogram
from .predict import predict_mammogram

IMAGE_SUFFIXES = {".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".pgm", ".tif", ".tiff", ".nrrd", ".nii", ".nii.gz",
                  ".mha"}
IMAGE_COLUMNS = ("row", "sha256", "image")  # "image" (the path in the folder) with keep_identifiers only
RESULT_COLUMNS = (*IMAGE_COLUMNS, "roi", "kind", "roi_source", "roi_pixels", "rad_score", "cutoff", "label", "domain",
                  "top_feature", "warnings", "error")


@dataclass
class BatchSummary:
    out_dir: Path
    images: int
    failed: int


def find_mammograms(folder: Path, skip: Path | None = None) -> list[Path]:
    """Image files under `folder` (recursively; DICOM files may have no extension), `skip` folder excluded."""
    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith(".") or (skip and skip in path.parents):
            continue
        if file_suffix(path) in IMAGE_SUFFIXES or (not path.suffix and is_dicom(path)):
            found.append(path)
    return found


def matching_mask(image: Path, folder: Path, masks: Path | None) -> Path | None:
    """The mask with the image's relative path and name (any image suffix) in the masks folder, if any."""
    if masks is None:
        return None
    relative = image.relative_to(folder)
    stem = relative.name[: -len(file_suffix(relative))] if file_suffix(relative) else relative.name
    for suffix in sorted(IMAGE_SUFFIXES):
        candidate = masks / relative.parent / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def predict_folder(folder: str | os.PathLike, kind: str, out_dir: str | os.PathLike,
                   masks: str | os.PathLike | None = None, pixel_mm: float | None = None, directory=None,
                   device: str = "auto", progress: Callable[[float, str], None] | None = None,
                   keep_identifiers: bool = False) -> BatchSummary:
    """Rad-score of every mammogram in `folder`; a failed image, whatever went wrong, becomes a row with its error,
    never a silent gap and never the end of the batch. Rows name their image by path only with `keep_identifiers`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    masks_folder = Path(masks) if masks else None
    if masks_folder is not None and not masks_folder.is_dir():
        raise InputError(f"The masks folder {masks_folder} does not exist")
    images = find_mammograms(folder, skip=masks_folder)
    if not images:
        raise InputError(f"No mammogram (DICOM, PNG, JPEG, PGM, TIFF, NRRD, NIfTI) found in {folder}")
    results, feature_rows, failed = [], [], 0
    with atomic_output_dir(out_dir) as scratch:
        for index, path in enumerate(images):
            name = str(path.relative_to(folder))
            if progress:
                progress(index / len(images), f"{name} ({index + 1}/{len(images)})")
            mask_path = matching_mask(path, folder, masks_folder)
            row = {"row": index + 1, **({"image": name} if keep_identifiers else {})}
            try:
                row["sha256"] = input_sha256(path)  # none for a file that cannot be read
                mammogram = load_mammogram(path, pixel_mm)
                mask = load_mask(mask_path, mammogram) if mask_path else None
                prediction = predict_mammogram(mammogram, kind, mask=mask, directory=directory, device=device)
            except Exception as exc:  # one image, whatever its fault, never stops the batch
                failed += 1
                error = str(exc) if isinstance(exc, SmartImagingError) else \
                    f"The image could not be scored ({exc.__class__.__name__}: {exc})"
                error = error if keep_identifiers else _unnamed(error, path, mask_path, index + 1)
                results.append({**row, "kind": kind, "error": error})
                continue
            roi = f"rois/{index + 1}.seg.nrrd"
            (scratch / "rois").mkdir(exist_ok=True)
            write_seg_nrrd(prediction.roi[None], mammogram.image, (MAMMO_SEGMENTS[kind],), scratch / roi)
            top = prediction.top_features[0]["feature"] if prediction.top_features else ""
            results.append({**row, "roi": roi, "kind": kind, "roi_source": prediction.roi_source,
                            "roi_pixels": int(prediction.roi.sum()), "rad_score": f"{prediction.rad_score:.4f}",
                            "cutoff": f"{prediction.cutoff:.4f}", "label": prediction.label,
                            "domain": prediction.domain["text"], "top_feature": top,
                            "warnings": " | ".join(prediction.warnings), "error": ""})
            feature_rows.append({**row, **prediction.features})
        if failed == len(images):
            raise InputError(f"None of the {len(images)} images could be read; first error: {results[0]['error']}")
        with open(scratch / "results.csv", "w", encoding="utf-8", newline="") as f:
            columns = [c for c in RESULT_COLUMNS if keep_identifiers or c != "image"]
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            writer.writerows(results)
        with open(scratch / "features.csv", "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(feature_rows[0]))
            writer.writeheader()
            writer.writerows(feature_rows)
        if progress:
            progress(1.0, f"{len(images) - failed} of {len(images)} images read")
    return BatchSummary(Path(out_dir), len(images), failed)


def _unnamed(error: str, image: Path, mask: Path | None, row: int) -> str:
    """`error` with the paths and file names of the image and its mask (often the same name) replaced by the row's
    number; messages name a file by either."""
    names = [(str(image), f"image {row}")]
    if mask is not None:
        names = [(str(mask), f"the mask of image {row}"), (f"The mask {mask.name}", f"The mask of image {row}"), *names]
    names.append((image.name, f"image {row}"))
    if mask is not None:
        names.append((mask.name, f"the mask of image {row}"))
    for text, neutral in names:
        error = error.replace(text, neutral)
    return error
