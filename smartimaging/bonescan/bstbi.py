"""Bone Scan Tumour Burden Index (BSTBI) on the four sub-images (2 views × 2 grey-level settings).

Each view is mapped to an 8-bit image in which more MDP uptake = smaller value (the paper's convention):
`pixel = 255 - round(255 · clip(counts / upper, 0, 1))`, with two grey-level settings:
- "standard": upper = the 99.9th percentile of the view's counts (the hottest 0.1 % saturate);
- "high-contrast": upper = half of that (faint uptake doubled in contrast, hot areas saturate).
Then `S(X) = Σ_{pixel∈X} (255 - pixel)` and `BSTBI = K·S(L) / ((K-1)·S(L) + S(R) - S(B))` with K = 5, L the lesion
pixels, R the whole sub-image and B the bladder. Pixels marked both lesion and bladder count as lesion.
BSTBI is 0 without lesions and lies in [0, 1]; the case value is the mean over the sub-images.
"""

from __future__ import annotations

import math

import numpy as np

K_SCALING = 5.0
GREY_LEVEL_SETTINGS = {"standard": 1.0, "high-contrast": 0.5}
UPPER_PERCENTILE = 99.9


def eight_bit_uptake_dark(counts: np.ndarray, upper: float) -> np.ndarray:
    """8-bit image with more uptake = smaller value; counts at or above `upper` become 0."""
    if upper <= 0:
        raise ValueError("upper window limit must be positive")
    scaled = np.clip(np.asarray(counts, dtype=np.float64) / upper, 0.0, 1.0)
    return (255 - np.round(255 * scaled)).astype(np.uint8)


def subimages(counts: np.ndarray) -> dict[str, np.ndarray]:
    """The two grey-level settings of one view as 8-bit uptake-dark images."""
    reference = float(np.percentile(counts, UPPER_PERCENTILE))
    if reference <= 0:
        reference = float(np.max(counts)) or 1.0
    return {name: eight_bit_uptake_dark(counts, reference * factor) for name, factor in GREY_LEVEL_SETTINGS.items()}


def uptake_sum(image8: np.ndarray, region: np.ndarray | None = None) -> float:
    """S(X) = Σ (255 - pixel) over a boolean region (the whole image when None)."""
    values = 255.0 - image8.astype(np.float64)
    return float(values.sum() if region is None else values[np.asarray(region, bool)].sum())


def bstbi(image8: np.ndarray, lesion: np.ndarray, bladder: np.ndarray, k: float = K_SCALING) -> float:
    """BSTBI of one 8-bit sub-image (formula 1); 0 when there is no lesion uptake."""
    lesion = np.asarray(lesion, bool)
    bladder = np.asarray(bladder, bool) & ~lesion
    s_lesion = uptake_sum(image8, lesion)
    if s_lesion <= 0:
        return 0.0
    denominator = (k - 1) * s_lesion + uptake_sum(image8) - uptake_sum(image8, bladder)
    return float(k * s_lesion / denominator)


def study_bstbi(views: dict[str, np.ndarray], lesion_masks: dict[str, np.ndarray],
                bladder_masks: dict[str, np.ndarray], k: float = K_SCALING) -> dict:
    """BSTBI per sub-image ('<view> / <setting>') and their mean."""
    per_subimage = {}
    for view, counts in views.items():
        for setting, image8 in subimages(counts).items():
            per_subimage[f"{view} / {setting}"] = bstbi(image8, lesion_masks[view], bladder_masks[view], k)
    return {"per_subimage": per_subimage, "mean": float(np.mean(list(per_subimage.values()))), "k": k}


def bstbi_change(before: float, after: float) -> dict:
    """Follow-up minus baseline BSTBI, absolute and relative to the baseline (None when the baseline is 0 or so near 0
    that the ratio is not a finite number)."""
    relative = (after - before) / before * 100 if before > 0 else None
    return {"baseline": before, "followup": after, "change": after - before,
            "relative_change_percent": relative if relative is not None and math.isfinite(relative) else None}
