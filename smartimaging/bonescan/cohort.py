"""Cohort files: phantom cohorts written as NM DICOM + NIfTI masks + manifest, and manifest readers."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..io import describe_geometry, read_volume, same_geometry, write_image
from ..limits import BONE_SCAN
from ..manifest import Manifest, finish_cohort, prepare_cohort_folder
from ..phantoms.bonescan import make_bone_scan_phantom
from ..segments import BONESCAN_SEGMENTS
from .views import BoneScanStudy, load_bone_scan, write_nm_dicom


def write_phantom_cohort(out_dir: str | os.PathLike, n_cases: int, seed: int = 0,
                         splits: dict[str, float] | None = None, phantoms: list | None = None) -> Path:
    """Write `n_cases` phantom studies (2-frame NM DICOM + label NIfTI) and `manifest.csv`; returns its path.
    `phantoms`: the cases to write (`make_bone_scan_phantom`'s) instead of the seed's first `n_cases`."""
    out_dir = prepare_cohort_folder(out_dir)
    rows = []
    for index in range(n_cases):
        case = phantoms[index] if phantoms else make_bone_scan_phantom(seed * 100_000 + index)
        image_path = out_dir / "images" / f"{case.patient_id}.dcm"
        write_nm_dicom(image_path, case.views, case.patient_id, case.age)
        study = load_bone_scan([image_path])
        mask = sitk.GetImageFromArray(np.stack([case.masks[v.name] for v in study.views]))
        mask.CopyInformation(study.images[0])
        write_image(mask, out_dir / "masks" / f"{case.patient_id}.nii.gz")
        rows.append({"patient_id": case.patient_id, "image": f"images/{case.patient_id}.dcm",
                     "mask": f"masks/{case.patient_id}.nii.gz", "label": case.metastasis,
                     "bladder": int(case.bladder_present), "age": case.age, "n_lesions": case.n_lesions,
                     "confounders": ";".join(case.confounders)})
    return finish_cohort(out_dir, rows, splits, seed)


@dataclass
class LabelledStudy:
    row: dict
    study: BoneScanStudy
    labelmaps: dict[str, np.ndarray]  # view name -> uint8 labels on the view's grid


def _bone_scan_labels(array: np.ndarray, name: str) -> np.ndarray:
    """The mask's labels as uint8, refusing values that are not bone-scan segments (which would count as nothing)."""
    if not np.all(np.isfinite(array)):
        raise InputError(f"The mask {name} contains invalid values (NaN)")
    values = np.unique(array)
    allowed = {0, *(spec.label for spec in BONESCAN_SEGMENTS)}
    listing = ", ".join(f"{spec.label} {spec.name.lower()}" for spec in BONESCAN_SEGMENTS)
    unknown = [v for v in values.tolist() if v not in allowed]
    if unknown:
        shown = ", ".join(f"{v:g}" for v in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        what = f"label {shown}, which is not a bone-scan segment" if len(unknown) == 1 else \
            f"labels {shown}, which are not bone-scan segments"
        raise InputError(f"The mask {name} holds {what} (0 background, {listing}); relabel the mask with these "
                         "values")
    return array.astype(np.uint8)


def read_masks(study: BoneScanStudy, mask_paths: list[Path]) -> dict[str, np.ndarray]:
    """Label maps per view from mask files that share the source images' geometry."""
    if len(mask_paths) != len(study.images):
        raise InputError(f"Got {len(mask_paths)} mask file(s) for {len(study.images)} image file(s)")
    arrays = []
    for path, image in zip(mask_paths, study.images, strict=True):
        mask = read_volume(path, BONE_SCAN)
        if not same_geometry(mask, image):
            raise InputError(f"The mask {Path(path).name} does not match its image: mask {describe_geometry(mask)}, "
                             f"image {describe_geometry(image)}")
        arrays.append(_bone_scan_labels(sitk.GetArrayFromImage(mask), Path(path).name))
    return {v.name: arrays[v.source][v.frame] for v in study.views}


def load_labelled(manifest: Manifest, rows: list[dict]) -> list[LabelledStudy]:
    studies = []
    for row in rows:
        study = load_bone_scan(manifest.paths(row, "image"))
        studies.append(LabelledStudy(row, study, read_masks(study, manifest.paths(row, "mask"))))
    return studies
