"""Mammography phantoms (2D, one view) with ground truth, for MammoRadiomics.

A breast outline against the chest wall, parenchymal texture with a mammography-like power-law spectrum
(P(f) ∝ f^-β, β ≈ 3) that fades towards the skin line, and one lesion:
- masses: benign = round/oval, circumscribed (a quarter lobulated); malignant = irregular outline, spiculations
  and/or indistinct margin (a quarter almost circumscribed, microlobulated);
- calcifications: benign = coarse, round, few and scattered; malignant = fine pleomorphic/linear, clustered; the
  ranges of count, size and spread overlap, so that neither class is trivially separable.
The mask marks the mass, or every calcification spot. Pixel values are 12-bit detector-like grey levels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

ROWS, COLS, PIXEL_MM = 640, 480, 0.2
MAX_GREY = 4095.0


@dataclass
class MammoPhantom:
    patient_id: str
    kind: str  # "mass" or "calcification"
    label: int  # 1 malignant, 0 benign
    image: np.ndarray  # float32 (rows, cols), dense tissue bright
    mask: np.ndarray  # uint8 (rows, cols), 1 = lesion (mass, or every calcification spot)
    breast: np.ndarray  # bool, breast region
    centre: tuple[int, int]  # lesion centre (row, col), for point prompts
    age: int
    description: str


def power_law_texture(rng: np.random.Generator, shape: tuple[int, int], beta: float) -> np.ndarray:
    """Zero-mean, unit-sd noise whose power spectrum falls as f^-beta."""
    frequencies = np.sqrt(np.fft.fftfreq(shape[0])[:, None] ** 2 + np.fft.rfftfreq(shape[1])[None, :] ** 2)
    frequencies[0, 0] = 1.0
    spectrum = np.fft.rfft2(rng.standard_normal(shape)) * frequencies ** (-beta / 2)
    spectrum[0, 0] = 0.0
    texture = np.fft.irfft2(spectrum, s=shape)
    return (texture - texture.mean()) / texture.std()


def _breast(rng, rr, cc) -> tuple[np.ndarray, np.ndarray]:
    """Breast region (chest wall on the left) and the normalised distance to the skin line (1 at the wall)."""
    centre_row = ROWS / 2 + rng.uniform(-30, 30)
    half_height, depth = rng.uniform(0.40, 0.47) * ROWS, rng.uniform(0.75, 0.92) * COLS
    radius = np.sqrt(((rr - centre_row) / half_height) ** 2 + (cc / depth) ** 2)
    return radius < 1.0, np.clip(1.0 - radius, 0, 1)


def _mass(rng, rr, cc, centre, malignant: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """Mass density (soft) and mask; returns a short description.

    The classes overlap as in practice: a quarter of benign masses are lobulated, a quarter of malignant masses
    look almost circumscribed.
    """
    radius = rng.uniform(12, 30)
    angle = np.arctan2(rr - centre[0], cc - centre[1])
    distance = np.hypot(rr - centre[0], cc - centre[1])
    atypical = rng.random() < 0.25
    if not malignant:
        elongation, tilt = rng.uniform(1.0, 1.6), rng.uniform(0, np.pi)
        local = distance * np.sqrt(np.cos(angle - tilt) ** 2 / elongation**2 + np.sin(angle - tilt) ** 2)
        outline = radius / np.sqrt(elongation)
        if atypical:
            outline = outline * (1 + sum(rng.uniform(0.04, 0.1) * np.cos(k * angle + rng.uniform(0, 2 * np.pi))
                                         for k in (2, 3, 4)))
        mask = local < outline
        density = np.clip((outline - local) / rng.uniform(1.0, 2.5), 0, 1)
        shape = "lobulated" if atypical else ("oval" if elongation > 1.2 else "round")
        return density, mask, f"{shape} circumscribed mass"
    amplitude = (0.02, 0.07) if atypical else (0.08, 0.2)
    harmonics = sum(rng.uniform(*amplitude) * np.cos(k * angle + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5, 7))
    outline = radius * (1 + harmonics)
    mask = distance < outline
    margin = "microlobulated" if atypical else str(rng.choice(["spiculated", "indistinct", "irregular"]))
    edge = 6.0 if margin == "indistinct" else 1.5
    density = np.clip((outline - distance) / edge + 0.5, 0, 1)
    if margin == "spiculated":
        for _ in range(int(rng.integers(8, 16))):
            theta, length = rng.uniform(0, 2 * np.pi), rng.uniform(1.0, 2.2) * radius
            along = (rr - centre[0]) * np.sin(theta) + (cc - centre[1]) * np.cos(theta)
            across = -(rr - centre[0]) * np.cos(theta) + (cc - centre[1]) * np.sin(theta)
            spicule = (along > 0) & (along < length) & (np.abs(across) < 1.2 * (1 - along / length) + 0.3)
            density = np.maximum(density, 0.6 * spicule)
    return density, mask, f"{margin} mass"


def _calcifications(rng, rr, cc, centre, malignant: bool, breast) -> tuple[np.ndarray, np.ndarray, str]:
    """Bright specks and their mask."""
    density = np.zeros((ROWS, COLS))
    if malignant:  # overlapping ranges: small clusters and coarser specks occur in both classes
        count, spread, sizes = int(rng.integers(5, 25)), rng.uniform(8, 40), (0.6, 2.6)
        description = "fine pleomorphic / linear clustered calcifications"
    else:
        count, spread, sizes = int(rng.integers(3, 16)), rng.uniform(15, 90), (0.9, 3.5)
        description = "coarse round scattered calcifications"
    for _ in range(count):
        for _attempt in range(20):
            row, col = centre[0] + rng.normal(0, spread), centre[1] + rng.normal(0, spread)
            if 0 <= row < ROWS and 0 <= col < COLS and breast[int(row), int(col)]:
                break
        size = rng.uniform(*sizes)
        if rng.random() < (0.35 if malignant else 0.15):  # linear / branching segment
            theta, length = rng.uniform(0, np.pi), rng.uniform(3, 8)
            along = (rr - row) * np.sin(theta) + (cc - col) * np.cos(theta)
            across = -(rr - row) * np.cos(theta) + (cc - col) * np.sin(theta)
            speck = (np.abs(along) < length / 2) & (np.abs(across) < size * 0.6)
        else:
            speck = np.hypot((rr - row) / size, (cc - col) / (size * rng.uniform(0.6, 1.4))) < 1
        density = np.maximum(density, speck * rng.uniform(0.8, 1.0))
    return density, density > 0, description


def make_mammo_phantom(seed: int, kind: str | None = None, label: int | None = None) -> MammoPhantom:
    """One deterministic phantom; `kind` and `label` are drawn from the seed unless given."""
    rng = np.random.default_rng(seed)
    kind = kind or str(rng.choice(["mass", "calcification"]))
    label = int(rng.integers(0, 2)) if label is None else int(label)
    rr, cc = np.mgrid[0:ROWS, 0:COLS].astype(np.float32)
    breast, depth = _breast(rng, rr, cc)
    density_level = rng.uniform(0.3, 0.7)
    texture = power_law_texture(rng, (ROWS, COLS), rng.uniform(2.7, 3.3))
    tissue = np.clip(density_level * (0.4 + depth) + 0.18 * texture, 0, None) * breast
    for _attempt in range(50):
        centre = (int(rng.integers(100, ROWS - 100)), int(rng.integers(60, COLS - 120)))
        if depth[centre] > 0.25:
            break
    if kind == "mass":
        lesion, mask, description = _mass(rng, rr, cc, centre, bool(label))
        image = tissue + rng.uniform(0.25, 0.45) * lesion * breast
    else:
        lesion, mask, description = _calcifications(rng, rr, cc, centre, bool(label), breast)
        image = np.maximum(tissue, lesion * (tissue.max() + rng.uniform(0.2, 0.5)))
    mask &= breast
    image = ndimage.gaussian_filter(image, 0.7)
    scale = MAX_GREY * 0.8 / max(float(image.max()), 1e-6)
    grey = image * scale + 150.0 * breast + 40.0
    grey = rng.poisson(np.clip(grey, 0, None)).astype(np.float32)
    return MammoPhantom(f"MG{seed:05d}", kind, label, np.clip(grey, 0, MAX_GREY), mask.astype(np.uint8), breast,
                        centre, int(rng.integers(35, 80)), ("malignant " if label else "benign ") + description)
