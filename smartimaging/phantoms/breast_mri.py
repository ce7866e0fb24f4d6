"""Axial breast MRI phantoms (prone, both breasts) with several sequences, for DCESynthesis and BreastLVI.

Each case is a 3D volume (slices, rows, cols), anterior at the top rows, LPS geometry:
- anatomy: skin, fat, fibroglandular tissue (FGT) with a power-law texture, vessels running through the breasts,
  pectoralis muscle, thorax with heart and aorta, lung (dark), and 0-2 lesions in the FGT (benign or malignant);
- T1WI without fat suppression: fat bright, FGT darker, lesions homogeneous and darker still, blood intermediate;
- DCE first post-contrast phase with fat suppression: fat dark; heart, aorta and vessels bright; background
  parenchymal enhancement (BPE) of the FGT that varies per woman; malignant lesions enhance strongly and often as a
  rim, benign ones moderately and homogeneously;
- DCE second phase (more BPE) and fat-suppressed T2WI (fat dark, FGT intermediate, peritumoral oedema bright);
- LVI phantoms: one cancer whose LVI status makes oedema, an irregular margin, rim enhancement and size more likely;
- a smooth coil bias field (stronger near the breast coil) and Rician noise, sequence by sequence.
Intensities are scanner-like arbitrary units (0 to about 1000).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .mammo import power_law_texture

SHAPE = (24, 128, 128)  # slices, rows, cols
SPACING_MM = (2.0, 2.0, 2.5)  # x (cols), y (rows), z (slices), SimpleITK order


@dataclass
class BreastMRIPhantom:
    patient_id: str
    t1: np.ndarray  # float32 (slices, rows, cols): T1WI without fat suppression
    dce: np.ndarray  # float32: first DCE phase with fat suppression
    lesions: np.ndarray  # uint8: 0 background, 1..n lesion index
    body: np.ndarray  # bool: inside the body (breasts + thorax)
    lesion_kinds: list[str] = field(default_factory=list)  # "benign" / "malignant" per lesion index
    spacing: tuple[float, float, float] = SPACING_MM
    age: int = 50
    t2: np.ndarray | None = None  # float32: fat-suppressed T2WI (oedema bright)
    dce2: np.ndarray | None = None  # float32: second DCE phase (more background enhancement)
    lvi: int | None = None  # lymphovascular invasion of the single cancer (LVI phantoms only)
    oedema: np.ndarray | None = None  # bool: peritumoral oedema
    lesion_diameter_mm: float | None = None


def _ellipsoid(zz, rr, cc, centre, radii) -> np.ndarray:
    return ((zz - centre[0]) / radii[0]) ** 2 + ((rr - centre[1]) / radii[1]) ** 2 + \
        ((cc - centre[2]) / radii[2]) ** 2


def _smooth_noise(rng, shape, sigma) -> np.ndarray:
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma)
    return field / (np.abs(field).max() + 1e-9)


def _rician(rng, image, sigma) -> np.ndarray:
    return np.hypot(image + rng.normal(0, sigma, image.shape), rng.normal(0, sigma, image.shape))


def _lvi_cancer(rng, zz, rr, cc, centre, lvi: int, breasts) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, float]:
    """One cancer whose look depends on LVI only in probability: LVI+ more often has peritumoral oedema, an
    irregular margin, rim enhancement and a larger size; the ranges overlap."""
    radius = rng.uniform(4.0, 8.0) + (0.8 if lvi else 0.0)
    angle = np.arctan2(rr - centre[1], cc - centre[2])
    amplitude = rng.uniform(0.18, 0.4) if lvi else rng.uniform(0.03, 0.25)
    irregular = 1 + amplitude * np.cos(int(rng.integers(3, 7)) * angle + rng.uniform(0, 6.3))
    distance = np.sqrt(_ellipsoid(zz, rr, cc, centre, (radius * 0.5, radius, radius)))
    lesion = (distance < irregular) & breasts
    rim = lesion & (distance > 0.6 * irregular) if rng.random() < (0.7 if lvi else 0.35) else None
    oedema = np.zeros_like(lesion)
    if rng.random() < (0.7 if lvi else 0.2):
        oedema = (distance >= irregular) & (distance < irregular * rng.uniform(1.3, 1.8)) & breasts
    return lesion, oedema, rim, 2 * radius * SPACING_MM[0]


def make_breast_mri_phantom(seed: int, shape: tuple[int, int, int] = SHAPE, lvi: int | None = None
                            ) -> BreastMRIPhantom:
    """One deterministic case: T1WI, DCE phases 1 and 2, fat-suppressed T2WI. By default 0-2 benign or malignant
    lesions; with `lvi` (0 or 1), exactly one cancer whose appearance follows its LVI status."""
    rng = np.random.default_rng(seed)
    slices, rows, cols = shape
    zz, rr, cc = np.mgrid[0:slices, 0:rows, 0:cols].astype(np.float32)
    z_mid, chest_row = (slices - 1) / 2, rows * rng.uniform(0.5, 0.56)

    # Thorax: an ellipse behind the chest wall, with heart, aorta and lungs.
    thorax = _ellipsoid(zz, rr, cc, (z_mid, chest_row + rows * 0.32, cols / 2),
                        (slices * 3, rows * 0.36, cols * 0.47)) < 1
    thorax &= rr >= chest_row
    muscle = thorax & (rr < chest_row + rows * rng.uniform(0.05, 0.07))
    heart = _ellipsoid(zz, rr, cc, (z_mid, chest_row + rows * 0.25, cols * rng.uniform(0.45, 0.55)),
                       (slices * 1.2, rows * 0.14, cols * 0.16)) < 1
    aorta = _ellipsoid(zz, rr, cc, (z_mid, chest_row + rows * 0.36, cols * 0.58),
                       (slices * 5, rows * 0.035, cols * 0.035)) < 1
    lungs = np.zeros(shape, bool)
    for side in (-1, 1):
        lungs |= _ellipsoid(zz, rr, cc, (z_mid, chest_row + rows * 0.27, cols / 2 + side * cols * 0.26),
                            (slices * 2, rows * 0.17, cols * 0.14)) < 1
    lungs &= thorax & ~muscle & ~heart & ~aorta

    # Breasts: two half-ellipsoids in front of the chest wall.
    breasts = np.zeros(shape, bool)
    depth = np.zeros(shape, np.float32)  # 0 at the chest wall .. 1 at the nipple
    for side in (-1, 1):
        centre_col = cols / 2 + side * cols * rng.uniform(0.22, 0.26)
        radius_rows, radius_cols = chest_row * rng.uniform(0.7, 0.9), cols * rng.uniform(0.17, 0.21)
        inside = _ellipsoid(zz, rr, cc, (z_mid, chest_row, centre_col),
                            (slices * rng.uniform(0.55, 0.7), radius_rows, radius_cols)) < 1
        inside &= rr < chest_row
        breasts |= inside
        depth = np.where(inside, (chest_row - rr) / radius_rows, depth)
    body = breasts | thorax
    skin = body & ~ndimage.binary_erosion(body, iterations=1)

    # Fibroglandular tissue: textured, central, denser near the chest wall in dense breasts.
    density = rng.uniform(0.2, 0.6)
    texture = np.stack([power_law_texture(rng, (rows, cols), 3.0) for _ in range(slices)])
    texture = ndimage.gaussian_filter(texture, (1.0, 0, 0))
    fgt = breasts & (texture + 1.2 * (1 - np.abs(depth - 0.45) * 2) > 1.6 - 2 * density) & (depth > 0.08)

    vessels = np.zeros(shape, bool)
    for _ in range(int(rng.integers(3, 7))):
        start = np.array([rng.uniform(0, slices), chest_row - 2, rng.uniform(cols * 0.15, cols * 0.85)])
        direction = np.array([rng.normal(0, 0.15), -1.0, rng.normal(0, 0.4)])
        direction /= np.linalg.norm(direction)
        for step in np.linspace(0, chest_row * 0.8, 120):
            z, r, c = (start + step * direction).astype(int)
            if 0 <= z < slices and 0 <= r < rows and 0 <= c < cols:
                vessels[z, max(r - 1, 0):r + 1, max(c - 1, 0):c + 1] = True
    vessels &= breasts

    # Lesions in the FGT.
    lesions = np.zeros(shape, np.uint8)
    kinds, rims = [], []
    oedema, diameter = np.zeros(shape, bool), None
    candidates = np.argwhere(fgt & (depth > 0.2) & (depth < 0.8))
    if lvi is not None:
        candidates = np.argwhere(breasts & (depth > 0.3) & (depth < 0.7) & (np.abs(zz - z_mid) < slices * 0.2))
        lesion, oedema, rim, diameter = _lvi_cancer(rng, zz, rr, cc, candidates[rng.integers(len(candidates))], lvi,
                                                    breasts)
        lesions[lesion] = 1
        kinds.append("malignant")
        rims.append(rim)
    for index in range(int(rng.integers(0, 3)) if len(candidates) and lvi is None else 0):
        malignant = bool(rng.random() < 0.5)
        centre = candidates[rng.integers(len(candidates))]
        radius = rng.uniform(3, 7)
        angle = np.arctan2(rr - centre[1], cc - centre[2])
        irregular = 1 + (rng.uniform(0.15, 0.35) if malignant else 0.05) * np.cos(
            int(rng.integers(3, 7)) * angle + rng.uniform(0, 6.3))
        distance = np.sqrt(_ellipsoid(zz, rr, cc, centre, (radius * 0.5, radius, radius)))
        lesion = (distance < irregular) & breasts
        lesions[lesion & (lesions == 0)] = index + 1
        kinds.append("malignant" if malignant else "benign")
        rims.append(lesion & (distance > 0.6 * irregular) if malignant and rng.random() < 0.6 else None)

    # T1WI without fat suppression.
    t1 = np.zeros(shape, np.float32)
    t1[body] = 0.35
    t1[breasts] = 0.9 + 0.04 * texture[breasts]  # fat
    t1[fgt] = 0.42 + 0.06 * texture[fgt]
    t1[muscle] = 0.3
    t1[heart | aorta] = 0.38
    t1[lungs] = 0.05
    t1[vessels] = 0.45
    t1[lesions > 0] = 0.3  # masses: homogeneous, slightly darker than the textured FGT
    t1[skin] = 0.6

    # DCE phase 1 with fat suppression.
    bpe = rng.uniform(0.0, 0.3)
    dce = np.zeros(shape, np.float32)
    dce[body] = 0.3
    dce[breasts] = 0.12 + 0.02 * texture[breasts]  # suppressed fat
    dce[fgt] = 0.3 + bpe * (0.6 + 0.4 * _smooth_noise(rng, shape, 6)[fgt]) + 0.04 * texture[fgt]
    dce[muscle] = 0.35
    dce[heart] = 0.95
    dce[aorta] = 1.0
    dce[lungs] = 0.04
    dce[vessels] = 0.85
    dce[skin] = 0.35
    for index, (kind, rim) in enumerate(zip(kinds, rims, strict=True), start=1):
        lesion = lesions == index
        dce[lesion] = rng.uniform(0.75, 0.95) if kind == "malignant" else rng.uniform(0.45, 0.6)
        if rim is not None:
            dce[lesion & ~rim] *= 0.55

    dce[oedema & (lesions == 0)] = np.minimum(dce[oedema & (lesions == 0)], 0.3)  # oedema does not enhance

    # Second DCE phase (more background enhancement, cancers plateau) and fat-suppressed T2WI (oedema bright),
    # made before the acquisition steps but drawn after every draw of the first two sequences.
    dce2 = dce.copy()
    dce2[fgt & (lesions == 0)] += 0.5 * bpe
    dce2[lesions > 0] *= 0.95
    t2 = np.zeros(shape, np.float32)
    t2[body] = 0.25
    t2[breasts] = 0.15 + 0.02 * texture[breasts]
    t2[fgt] = 0.35 + 0.05 * texture[fgt]
    t2[muscle] = 0.2
    t2[heart | aorta] = 0.22
    t2[lungs] = 0.03
    t2[vessels] = 0.3
    t2[lesions > 0] = 0.45
    t2[oedema & (lesions == 0)] = 0.8
    t2[skin] = 0.3

    # Acquisition: partial-volume blur, coil bias field, Rician noise, scanner units.
    coil = 1 + 0.25 * (1 - rr / rows) + 0.08 * _smooth_noise(rng, shape, 20)
    scale = rng.uniform(700, 900)
    t1 = _rician(rng, ndimage.gaussian_filter(t1, (0.5, 0.7, 0.7)) * coil * scale, 0.015 * scale)
    dce_scale = rng.uniform(700, 900)
    dce = _rician(rng, ndimage.gaussian_filter(dce, (0.5, 0.7, 0.7)) * coil * dce_scale, 0.02 * scale)
    age = int(rng.integers(30, 75))
    dce2 = _rician(rng, ndimage.gaussian_filter(dce2, (0.5, 0.7, 0.7)) * coil * dce_scale, 0.02 * scale)
    t2 = _rician(rng, ndimage.gaussian_filter(t2, (0.5, 0.7, 0.7)) * coil * rng.uniform(500, 700), 0.02 * scale)
    return BreastMRIPhantom(f"BM{seed:05d}", t1.astype(np.float32), dce.astype(np.float32), lesions, body, kinds,
                            age=age, t2=t2.astype(np.float32), dce2=dce2.astype(np.float32), lvi=lvi,
                            oedema=oedema, lesion_diameter_mm=diameter)


def phantom_image(array: np.ndarray, spacing: tuple[float, float, float], origin: tuple[float, float, float]
                  ) -> sitk.Image:
    """One volume of a phantom case (any sequence or its lesion mask) as an image with the case's spacing."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    return image
