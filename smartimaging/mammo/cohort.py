"""Phantom mammography cohorts on disk (16-bit PNG + mask PNG + manifest), with a simulated reader's BI-RADS."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..manifest import finish_cohort, prepare_cohort_folder
from ..phantoms.mammo import PIXEL_MM, MammoPhantom, make_mammo_phantom

# The paper's senior radiologists (BI-RADS 2-4a benign, 4b-5 malignant): sensitivity, specificity.
READER_PERFORMANCE = {"mass": (0.76, 0.88), "calcification": (0.80, 0.86)}
SUSPICIOUS_MORPHOLOGY = ("spiculated", "pleomorphic")
ROUND_MORPHOLOGY = ("round", "oval")


def simulated_birads(case: MammoPhantom, seed: int) -> str:
    """A reader's BI-RADS category for a phantom lesion.

    Whether the reader calls it malignant (4b-5) is drawn with the paper's reader sensitivity and specificity; the
    category within benign or malignant follows the lesion's morphology (spiculated or pleomorphic -> 5, round or
    oval circumscribed -> 2-3, otherwise 4b or 4a).
    """
    rng = np.random.default_rng([seed, 4])
    sensitivity, specificity = READER_PERFORMANCE[case.kind]
    calls_malignant = rng.random() < (sensitivity if case.label else 1 - specificity)
    if calls_malignant:
        if any(word in case.description for word in SUSPICIOUS_MORPHOLOGY):
            return "5"
        return str(rng.choice(["4b", "4c"]))
    if any(word in case.description for word in ROUND_MORPHOLOGY):
        return str(rng.choice(["2", "3"]))
    return str(rng.choice(["3", "4a"]))


def write_mammo_phantom_cohort(out_dir: str | os.PathLike, n_cases: int, seed: int = 0, kind: str | None = None,
                               splits: dict[str, float] | None = None) -> Path:
    """Phantom mammograms (16-bit PNG + mask PNG) and `manifest.csv`; benign and malignant alternate.

    The `birads` column is a simulated reader (see `simulated_birads`), for the model-vs-reader McNemar comparison.
    """
    out_dir = prepare_cohort_folder(out_dir)
    rows = []
    for index in range(n_cases):
        case_seed = seed * 100_000 + index
        case = make_mammo_phantom(case_seed, kind=kind, label=index % 2)
        Image.fromarray(case.image.round().astype(np.uint16)).save(out_dir / "images" / f"{case.patient_id}.png")
        Image.fromarray(case.mask * 255).save(out_dir / "masks" / f"{case.patient_id}.png")
        rows.append({"patient_id": case.patient_id, "image": f"images/{case.patient_id}.png",
                     "mask": f"masks/{case.patient_id}.png", "label": case.label, "kind": case.kind,
                     "age": case.age, "pixel_mm": PIXEL_MM, "description": case.description,
                     "birads": simulated_birads(case, case_seed),
                     "centre_row": case.centre[0], "centre_col": case.centre[1]})
    return finish_cohort(out_dir, rows, splits, seed)
