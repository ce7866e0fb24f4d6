"""Image-similarity metrics of synthetic vs real DCE, as the paper reports them.

Every metric is computed on intensities in [0, 1]: each volume normalised from its minimum to its 99.9th percentile
(`volumes.normalise`), the synthetic DCE as the generator outputs it. SSIM and PSNR use data_range 1. Per slice
(Table 2): SSIM (Wang et al., uniform 7×7 window, as scikit-image) and PSNR. Per volume (Table 3): MAE, MSE and
Pearson's r over all voxels. Slices of one volume are correlated, so the per-slice CIs are optimistic.
"""

from __future__ import annotations

import numpy as np

from ..evaluation import mean_ci, psnr, ssim

DATA_RANGE = 1.0


def slice_metrics(synthetic: np.ndarray, real: np.ndarray) -> list[dict]:
    """SSIM and PSNR of every axial slice pair."""
    return [{"slice": index, "ssim": ssim(r, s, DATA_RANGE), "psnr": psnr(r, s, DATA_RANGE)}
            for index, (s, r) in enumerate(zip(synthetic, real, strict=True))]


def volume_metrics(synthetic: np.ndarray, real: np.ndarray) -> dict:
    """MAE, MSE, Pearson r of the volume and the mean SSIM / PSNR of its slices."""
    difference = synthetic.astype(np.float64) - real.astype(np.float64)
    slices = slice_metrics(synthetic, real)
    return {"mae": float(np.abs(difference).mean()), "mse": float((difference**2).mean()),
            "pearson_r": float(np.corrcoef(synthetic.ravel(), real.ravel())[0, 1]),
            "ssim_mean": float(np.mean([s["ssim"] for s in slices])),
            "psnr_mean": float(np.mean([s["psnr"] for s in slices]))}


def linear_baseline(t1: np.ndarray, real: np.ndarray) -> np.ndarray:
    """The per-volume linear intensity map of the T1 that best fits the real DCE (least squares, an oracle)."""
    slope, intercept = np.polyfit(t1.ravel(), real.ravel(), 1)
    return np.clip(slope * t1 + intercept, 0.0, 1.0)


def summarise(per_slice: list[dict], per_volume: list[dict]) -> dict:
    """Mean, SD and 95 % CI of each per-slice and per-volume metric."""
    return {"per_slice": {name: mean_ci([row[name] for row in per_slice]) for name in ("ssim", "psnr")},
            "per_volume": {name: mean_ci([row[name] for row in per_volume]) for name in ("mae", "mse", "pearson_r")}}
