"""Paired T1WI / DCE phase-1 cohorts: phantom writer and the manifest reader used by train and evaluate.

Manifest columns: `patient_id,t1,dce,split` (+ `mask` for the lesions of phantoms); paths relative to the manifest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..io import write_image
from ..manifest import finish_cohort, prepare_cohort_folder, read_manifest
from ..phantoms.breast_mri import make_breast_mri_phantom, phantom_image
from .volumes import load_mr_volume, normalise, pair_with_t1


def write_dce_phantom_cohort(out_dir: str | os.PathLike, n_cases: int, seed: int = 0,
                             splits: dict[str, float] | None = None) -> Path:
    """Phantom T1 / DCE / lesion-mask NRRD volumes and `manifest.csv`."""
    out_dir = prepare_cohort_folder(out_dir)
    rows = []
    for index in range(n_cases):
        case = make_breast_mri_phantom(seed * 100_000 + index)
        origin = (-128.0 + index % 7, -90.0, -30.0 - index % 5)
        for name, array in (("t1", case.t1), ("dce", case.dce)):
            write_image(phantom_image(array, case.spacing, origin),
                        out_dir / "images" / f"{case.patient_id}_{name}.nrrd")
        write_image(phantom_image(case.lesions, case.spacing, origin),
                    out_dir / "masks" / f"{case.patient_id}_lesions.nrrd")
        rows.append({"patient_id": case.patient_id, "t1": f"images/{case.patient_id}_t1.nrrd",
                     "dce": f"images/{case.patient_id}_dce.nrrd", "mask": f"masks/{case.patient_id}_lesions.nrrd",
                     "lesions": ";".join(case.lesion_kinds), "age": case.age})
    return finish_cohort(out_dir, rows, splits, seed)


@dataclass
class PairedVolume:
    patient_id: str
    t1: np.ndarray  # [-1, 1] (slices, rows, cols)
    dce: np.ndarray  # [-1, 1], on the T1's grid


def read_pairs(manifest_path: str | os.PathLike, split: str | None) -> list[PairedVolume]:
    """Normalised T1 / real-DCE pairs of a manifest split ('' or None = every row)."""
    return list(iter_pairs(manifest_path, split))


def iter_pairs(manifest_path: str | os.PathLike, split: str | None) -> Iterator[PairedVolume]:
    """`read_pairs` one volume at a time (a caller keeping only part of each holds one volume, not the cohort)."""
    manifest = read_manifest(manifest_path, required=("patient_id", "t1", "dce"))
    rows = manifest.subset(split) if split else manifest.rows
    if not rows:
        raise InputError(f"{Path(manifest_path).name} has no rows" + (f" in split '{split}'" if split else ""))
    for row in rows:
        missing = [column for column in ("t1", "dce") if not row[column]]
        if missing:
            raise InputError(f"{manifest.path.name}: patient {row['patient_id']} has no '{missing[0]}' file")
        t1 = load_mr_volume(manifest.resolve(row["t1"]), "T1")
        dce, _ = pair_with_t1(t1, load_mr_volume(manifest.resolve(row["dce"]), "DCE"))
        yield PairedVolume(row["patient_id"], normalise(sitk.GetArrayFromImage(t1)),
                           normalise(sitk.GetArrayFromImage(dce)))
