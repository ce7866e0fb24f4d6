"""Whole-body 99mTc-MDP planar bone-scan phantoms (anterior + posterior) with ground-truth masks.

Skeleton uptake is drawn from simple primitives (ellipses and rods) on a 1024×256 grid of 2.26 mm pixels, then
kidneys, bladder, focal metastases (spine, ribs, pelvis, femora, skull, humeri, sternum) and confounders that are
NOT metastases (degenerative joints, injection-site contamination, rib fractures). The activity is blurred with a
random camera PSF and sampled with Poisson counting noise. Masks: 0 background, 1 metastasis, 2 bladder.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

ROWS, COLS, PIXEL_MM = 1024, 256, 2.26
LESION, BLADDER = 1, 2


@dataclass
class BoneScanPhantom:
    patient_id: str
    age: int
    views: dict[str, np.ndarray]  # name -> counts (float32, rows × cols), more uptake = larger value
    masks: dict[str, np.ndarray]  # name -> uint8 labels (0 / LESION / BLADDER)
    n_lesions: int
    bladder_present: bool
    confounders: list[str] = field(default_factory=list)

    @property
    def metastasis(self) -> int:
        return int(self.n_lesions > 0)


class _Canvas:
    """Activity drawing in body coordinates: y is the fraction of body height, x is px from the midline."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.top = rng.uniform(40, 90)
        self.height = rng.uniform(700, 800)
        self.width_scale = rng.uniform(0.85, 1.15)
        self.midline = COLS / 2 + rng.uniform(-6, 6)
        self.rr, self.cc = np.mgrid[0:ROWS, 0:COLS].astype(np.float32)

    def point(self, y: float, x: float) -> tuple[float, float]:
        return self.top + y * self.height, self.midline + x * self.width_scale

    def ellipse(self, y, x, ry, rx, angle=0.0) -> np.ndarray:
        """Soft-edged filled ellipse (values 0..1); radii in px."""
        r0, c0 = self.point(y, x)
        rx *= self.width_scale
        ca, sa = np.cos(angle), np.sin(angle)
        dr, dc = self.rr - r0, self.cc - c0
        u, v = (dc * ca + dr * sa) / rx, (-dc * sa + dr * ca) / ry
        return np.clip(1.5 - np.sqrt(u * u + v * v) * 1.5 + 0.5, 0, 1) ** 2

    def rod(self, y0, x0, y1, x1, radius) -> np.ndarray:
        """Capsule between two points with a soft edge."""
        (r0, c0), (r1, c1) = self.point(y0, x0), self.point(y1, x1)
        dr, dc = r1 - r0, c1 - c0
        t = np.clip(((self.rr - r0) * dr + (self.cc - c0) * dc) / max(dr * dr + dc * dc, 1e-6), 0, 1)
        dist = np.hypot(self.rr - (r0 + t * dr), self.cc - (c0 + t * dc))
        return np.clip((radius + 1 - dist) / 2, 0, 1)


def _skeleton(canvas: _Canvas, posterior: bool, soft_tissue: float) -> np.ndarray:
    """Normal bone uptake of one view (anterior unless `posterior`), in body-left-right as seen from the front."""
    e, r = canvas.ellipse, canvas.rod
    spine = 1.2 if posterior else 0.8
    a = 0.6 * e(0.065, 0, 55, 34) + 0.25 * e(0.13, 0, 14, 24)
    a += spine * (0.7 * r(0.13, 0, 0.19, 0, 5) + r(0.19, 0, 0.38, 0, 6) + 1.1 * r(0.38, 0, 0.50, 0, 8))
    a += 1.0 * e(0.535, 0, 22, 15)
    for side in (-1, 1):
        a += 0.75 * e(0.50, side * 42, 32, 24, side * 0.3) + 0.55 * e(0.585, side * 20, 12, 14)
        a += 0.7 * r(0.19, side * 8, 0.18, side * 55, 4) + 0.9 * e(0.205, side * 62, 12, 12)
        a += (0.7 if posterior else 0.3) * e(0.25, side * 45, 28, 18)
        for i in range(10):
            y0 = 0.2 + i * 0.019
            a += 0.45 * r(y0, side * 7, y0 - 0.004, side * (30 + 2 * i), 3)
            a += 0.45 * r(y0 - 0.004, side * (30 + 2 * i), y0 + 0.03, side * (46 + i), 3)
        a += 0.6 * r(0.215, side * 64, 0.37, side * 70, 6) + 0.5 * r(0.37, side * 70, 0.50, side * 75, 5)
        a += 0.6 * e(0.535, side * 77, 14, 9) + 0.9 * e(0.565, side * 30, 10, 10)
        a += 0.7 * r(0.565, side * 32, 0.78, side * 22, 8) + 0.9 * e(0.79, side * 21, 11, 10)
        a += 0.6 * r(0.80, side * 21, 0.96, side * 20, 6) + 0.8 * e(0.98, side * 22, 9, 14)
        a += (0.7 if posterior else 0.3) * e(0.41, side * 28, 22, 12)
    if not posterior:
        a += 0.8 * r(0.21, 0, 0.32, 0, 5)
    soft = e(0.065, 0, 62, 42) + e(0.35, 0, 230, 70) + e(0.75, 0, 200, 52)
    for side in (-1, 1):
        soft += canvas.rod(0.22, side * 66, 0.52, side * 76, 16)
    return a + soft_tissue * np.clip(soft, 0, 1)


LESION_SITES = (  # (y, x, jitter_y, jitter_x, weight)
    (0.28, 0, 0.09, 2, 5), (0.44, 0, 0.05, 3, 4), (0.06, 20, 0.03, 15, 1), (0.25, 35, 0.05, 12, 3),
    (0.50, 42, 0.03, 15, 3), (0.535, 0, 0.02, 8, 2), (0.60, 28, 0.04, 6, 2), (0.25, 0, 0.05, 1, 1),
    (0.24, 64, 0.03, 3, 1),
)


def make_bone_scan_phantom(seed: int, patient_id: str | None = None) -> BoneScanPhantom:
    """One deterministic phantom case (both views) from a seed."""
    rng = np.random.default_rng(seed)
    canvas = _Canvas(rng)
    soft_tissue = rng.uniform(0.05, 0.2)
    bone = {"anterior": _skeleton(canvas, False, soft_tissue), "posterior": _skeleton(canvas, True, soft_tissue)}
    lesion_activity = np.zeros((ROWS, COLS), np.float32)
    lesion_mask = np.zeros((ROWS, COLS), bool)

    kind = rng.choice(["none", "few", "multiple", "extensive"], p=[0.45, 0.25, 0.2, 0.1])
    n_lesions = {"none": 0, "few": int(rng.integers(1, 4)), "multiple": int(rng.integers(4, 13)),
                 "extensive": int(rng.integers(15, 40))}[kind]
    weights = np.array([s[4] for s in LESION_SITES], float)
    for _ in range(n_lesions):
        y, x, jy, jx, _w = LESION_SITES[rng.choice(len(LESION_SITES), p=weights / weights.sum())]
        side = rng.choice([-1, 1])
        shape = canvas.ellipse(y + rng.uniform(-jy, jy), side * (x + rng.uniform(-jx, jx)),
                               rng.uniform(3, 10), rng.uniform(3, 8), rng.uniform(0, np.pi))
        lesion_activity += rng.uniform(1.5, 4.0) * shape
        lesion_mask |= shape > 0.3

    confounder_activity = np.zeros((ROWS, COLS), np.float32)
    confounders = []
    if rng.random() < 0.4:
        confounders.append("degenerative joints")
        site = [(0.79, 21), (0.205, 62), (0.45, 5)][rng.integers(3)]
        for side in (-1, 1):
            confounder_activity += rng.uniform(0.8, 1.6) * canvas.ellipse(site[0], side * site[1], 9, 9)
    if rng.random() < 0.3:
        confounders.append("injection-site contamination")
        confounder_activity += rng.uniform(3, 8) * canvas.ellipse(rng.uniform(0.36, 0.52), rng.choice([-1, 1]) * 74,
                                                                  3, 3)
    if rng.random() < 0.15:
        confounders.append("rib fractures")
        side, x = rng.choice([-1, 1]), rng.uniform(38, 50)
        for i in range(3):
            confounder_activity += 1.2 * canvas.ellipse(0.24 + 0.019 * i + rng.uniform(0, 0.003), side * x, 3, 3)

    bladder_present = bool(rng.random() < 0.85)
    bladder_shape = canvas.ellipse(0.555, rng.uniform(-5, 5), rng.uniform(10, 22), rng.uniform(14, 30))
    bladder_activity = rng.uniform(2.0, 8.0) * bladder_shape if bladder_present else 0 * bladder_shape

    total_counts = rng.uniform(1.5e6, 4e6)
    psf_sigma = rng.uniform(1.0, 5.0)
    views, masks = {}, {}
    for name, skeleton in bone.items():
        posterior = name == "posterior"
        activity = skeleton + lesion_activity + confounder_activity * (0.5 if posterior else 1.0)
        activity = activity + bladder_activity * (0.6 if posterior else 1.0)
        mask = np.where(lesion_mask, LESION, 0).astype(np.uint8)
        if bladder_present:
            mask[(bladder_shape > 0.3) & ~lesion_mask] = BLADDER
        if posterior:  # seen from behind: the patient's left is on the viewer's left
            activity, mask = activity[:, ::-1], mask[:, ::-1]
        blurred = ndimage.gaussian_filter(activity.astype(np.float64), psf_sigma)
        expected = blurred * total_counts / blurred.sum()
        views[name] = rng.poisson(expected).astype(np.float32)
        masks[name] = np.ascontiguousarray(mask)
    return BoneScanPhantom(patient_id or f"BS{seed:05d}", int(rng.integers(35, 86)), views, masks,
                           n_lesions, bladder_present, confounders)
