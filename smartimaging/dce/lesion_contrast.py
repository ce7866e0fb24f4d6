"""Lesion-level enhancement of a synthetic DCE against the real one (beyond the paper, whose metrics are image-level).

SSIM and PSNR average over the whole image, so a lesion that enhances on the real DCE may be faint on the synthetic
one while SSIM stays high. With a real DCE:

- enhancement = the DCE minus the T1 mapped onto it by least squares over the body (`intensity_mapped_subtraction`,
  the subtraction the synthetic MIP is made of), all volumes in [0, 1] as the metrics;
- enhancing regions = 3D connected regions (face neighbours) where the real enhancement exceeds
  `ENHANCEMENT_THRESHOLD` (0.15 of the normalised intensity range); a lesion is such a region of at least
  `MIN_LESION_VOXELS` voxels and at most `MAX_LESION_FRACTION` of the body (the heart, the chest wall and diffuse
  background enhancement are larger); the `MAX_LESIONS` largest are measured, the largest first;
- background = the body voxels of a shell `SHELL_VOXELS` voxels wide around the lesion (in-plane), less any
  enhancing voxel;
- contrast = mean DCE intensity in the lesion minus mean in its background, for the real and the synthetic DCE;
  ratio = synthetic contrast / real contrast (1: the synthetic lesion stands out as much as the real one);
- a lesion is faint on the synthetic DCE when the ratio is below `FAINT_RATIO` (half the real contrast).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .volumes import BODY_THRESHOLD, intensity_mapped_subtraction

ENHANCEMENT_THRESHOLD = 0.15  # real DCE minus mapped T1, in the [0, 1] range of the metrics
MIN_LESION_VOXELS = 20
MAX_LESION_FRACTION = 0.05
MAX_LESIONS = 3
SHELL_VOXELS = 5
FAINT_RATIO = 0.5


def enhancing_lesions(real: np.ndarray, t1: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """(lesion masks, largest first; every enhancing voxel) of the real DCE, as the module defines them."""
    body = t1 > BODY_THRESHOLD
    enhancing = intensity_mapped_subtraction(real, t1) > ENHANCEMENT_THRESHOLD
    labels, count = ndimage.label(enhancing)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    limit = MAX_LESION_FRACTION * max(int(body.sum()), 1)
    kept = [index + 1 for index in np.argsort(-sizes, kind="stable") if MIN_LESION_VOXELS <= sizes[index] <= limit]
    return [labels == label for label in kept[:MAX_LESIONS]], enhancing


def _measure(lesion: np.ndarray, enhancing: np.ndarray, body: np.ndarray, synthetic: np.ndarray,
             real: np.ndarray) -> dict:
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = ndimage.generate_binary_structure(2, 1)  # in-plane only
    shell = ndimage.binary_dilation(lesion, structure, iterations=SHELL_VOXELS) & ~enhancing & body
    if not shell.any():
        shell = ~enhancing & body
    real_contrast = float(real[lesion].mean() - real[shell].mean())
    synthetic_contrast = float(synthetic[lesion].mean() - synthetic[shell].mean())
    ratio = synthetic_contrast / real_contrast if real_contrast > 0 else None
    slices = np.flatnonzero(lesion.any(axis=(1, 2)))
    return {"voxels": int(lesion.sum()), "slices": [int(slices[0]), int(slices[-1])],
            "centre_voxel": [int(round(v)) for v in ndimage.center_of_mass(lesion)[::-1]],  # i, j, k
            "real_contrast": real_contrast, "synthetic_contrast": synthetic_contrast, "ratio": ratio,
            "faint": ratio is None or ratio < FAINT_RATIO}


def lesion_contrast(t1: np.ndarray, synthetic: np.ndarray, real: np.ndarray) -> dict:
    """The lesion-level measure of a synthesis: T1, synthetic and real DCE as (slices, rows, columns) arrays in
    [0, 1] on one grid. "lesions": each measured lesion (voxels, first and last slice, centre voxel i/j/k, real and
    synthetic contrast, ratio, faint), largest first; "faint": whether any is faint; "sentence": for the reader."""
    lesions, enhancing = enhancing_lesions(real, t1)
    body = t1 > BODY_THRESHOLD
    measures = [_measure(lesion, enhancing, body, synthetic, real) for lesion in lesions]
    result = {"threshold": ENHANCEMENT_THRESHOLD, "faint_ratio": FAINT_RATIO, "lesions": measures,
              "faint": any(m["faint"] for m in measures)}
    return {**result, "sentence": contrast_sentence(result)}


def _describe(measure: dict) -> str:
    first, last = (k + 1 for k in measure["slices"])
    where = f"slice {first}" if first == last else f"slices {first}–{last}"
    ratio = f"ratio {measure['ratio']:.2f}" if measure["ratio"] is not None else "no contrast on the real DCE"
    return (f"{measure['voxels']} voxels, {where}: contrast to its surroundings {measure['synthetic_contrast']:.3f} "
            f"synthetic vs {measure['real_contrast']:.3f} real ({ratio})")


def contrast_sentence(result: dict) -> str:
    """One line for the reader (station, desktop and CLI alike)."""
    lesions = result["lesions"]
    if not lesions:
        return (f"Lesion-level check: no focal region enhances by more than {result['threshold']:g} on the real DCE; "
                "nothing to compare beyond the image-level metrics.")
    faint = [m for m in lesions if m["faint"]]
    if faint:
        return (f"{len(faint)} of {len(lesions)} lesion(s) enhancing on the real DCE are faint on the synthetic DCE "
                f"(less than {result['faint_ratio']:.0%} of their real contrast): "
                + "; ".join(_describe(m) for m in faint)
                + ". SSIM averages over the whole image and does not show this: read lesions on the real DCE.")
    return (f"The {len(lesions)} lesion(s) enhancing on the real DCE show on the synthetic DCE too: "
            + "; ".join(_describe(m) for m in lesions) + ".")
