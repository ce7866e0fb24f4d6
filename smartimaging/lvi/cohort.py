"""BreastLVI cohorts: the phantom writer and the per-case inputs of a manifest.

Manifest columns: `patient_id,dce,t2,voi,label,split` (+ clinical covariates such as `age`, `size_mm`); `dce` is the
second post-contrast phase, `t2` the fat-suppressed T2WI, `voi` the lesion mask; paths relative to the manifest.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import read_series_or_volume, write_image
from ..manifest import Manifest, binary_label, finish_cohort, prepare_cohort_folder, read_manifest
from ..phantoms.breast_mri import make_breast_mri_phantom, phantom_image
from .preprocess import DEFAULT_PREPROCESSING, Preprocessing, crop_3d, tumour_slices_2d

SEQUENCES = {"DCE": "dce", "T2": "t2"}  # name on the command line -> manifest column
LVI_PHANTOM_SHAPE = (16, 96, 96)


def write_lvi_phantom_cohort(out_dir: str | os.PathLike, n_cases: int, seed: int = 0,
                             splits: dict[str, float] | None = None) -> Path:
    """Phantom cancers (LVI positive and negative alternate) with DCE phase 2, FS-T2WI and VOI as NRRD."""
    out_dir = prepare_cohort_folder(out_dir)
    rows = []
    for index in range(n_cases):
        case = make_breast_mri_phantom(seed * 100_000 + index, LVI_PHANTOM_SHAPE, lvi=index % 2)
        origin = (-96.0 + index % 5, -70.0, -20.0)
        for name, array in (("dce", case.dce2), ("t2", case.t2)):
            write_image(phantom_image(array, case.spacing, origin),
                        out_dir / "images" / f"{case.patient_id}_{name}.nrrd")
        write_image(phantom_image((case.lesions > 0).astype(np.uint8), case.spacing, origin),
                    out_dir / "masks" / f"{case.patient_id}_voi.nrrd")
        rows.append({"patient_id": case.patient_id, "dce": f"images/{case.patient_id}_dce.nrrd",
                     "t2": f"images/{case.patient_id}_t2.nrrd", "voi": f"masks/{case.patient_id}_voi.nrrd",
                     "label": case.lvi, "age": case.age, "size_mm": round(case.lesion_diameter_mm, 1)})
    return finish_cohort(out_dir, rows, splits, seed)


def case_inputs(manifest_path: str | os.PathLike, sequence: str, split: str | None, dimensions: int,
                settings: Preprocessing = DEFAULT_PREPROCESSING) -> list[dict]:
    """Per case: patient id, label and the network input of one sequence (3D box, or the 2D tumour slices); a case
    whose VOI or volume cannot be used is refused naming its patient."""
    if sequence not in SEQUENCES:
        raise InputError(f"Unknown sequence {sequence!r}; choose one of {', '.join(SEQUENCES)}")
    manifest = read_manifest(manifest_path, required=("patient_id", SEQUENCES[sequence], "voi", "label"))
    rows = manifest.subset(split) if split else manifest.rows
    if not rows:
        raise InputError(f"{Path(manifest_path).name} has no rows" + (f" in split '{split}'" if split else ""))
    labels = [binary_label(row, manifest.path.name) for row in rows]  # a bad label is refused before any reading
    cases = []
    for row, label in zip(rows, labels, strict=True):
        volume = read_series_or_volume(manifest_file(manifest, row, SEQUENCES[sequence]))
        voi = read_series_or_volume(manifest_file(manifest, row, "voi"))
        what = f"{sequence} volume"
        try:
            array = crop_3d(volume, voi, settings, what) if dimensions == 3 else \
                tumour_slices_2d(volume, voi, settings, what)
        except InputError as exc:  # an empty or misplaced VOI, a damaged volume: named by its case
            raise InputError(f"Patient {row['patient_id']}: {exc}") from None
        cases.append({"patient_id": row["patient_id"], "label": label, "input": array, "row": row,
                      "dimensions": dimensions})
    return cases


def manifest_file(manifest: Manifest, row: dict, column: str) -> Path:
    """The file (or DICOM folder) of a manifest cell; an empty cell is refused instead of read as the manifest's
    folder."""
    if not row.get(column):
        raise InputError(f"{manifest.path.name}: patient {row.get('patient_id', '?')} has no '{column}' file")
    return manifest.resolve(row[column])


def check_both_classes(cases: list[dict], split: str | None, purpose: str) -> None:
    """Refuse a split whose cases are all LVI positive or all negative: `purpose` needs both."""
    labels = {case["label"] for case in cases}
    if len(labels) < 2:
        rows = f"'{split}' rows" if split else "rows"
        raise InputError(f"Every one of the {len(cases)} {rows} has label {labels.pop()}: {purpose} needs "
                         "LVI-positive (1) and LVI-negative (0) cases")
