"""The prompted segmenters' network input: a PATCH×PATCH window, normalised, and a prompt channel (Gaussian spot
for a point, the filled box for a box, zeros for whole-image mode), on the model's pixel grid (`resample`). Only
numpy and scipy here, so that training runs anywhere."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage

from ..errors import InputError

PATCH = 128
POINT_SIGMA = 6.0


def resample(pixels: np.ndarray, pixel_mm, target_mm: float, order: int = 1) -> np.ndarray:
    """`pixels` on a grid of `target_mm` pixels with the same first pixel centre (index i ↦ i·pixel/target), smoothed
    against aliasing when it shrinks."""
    scale = np.broadcast_to(np.asarray(pixel_mm, float), (2,)) / target_mm
    if np.allclose(scale, 1.0):
        return pixels
    shape = np.floor((np.array(pixels.shape) - 1) * scale).astype(int) + 1
    source = pixels.astype(np.float32)
    if order > 0 and np.any(scale < 1):
        source = ndimage.gaussian_filter(source, np.sqrt(np.maximum(1 / scale**2 - 1, 0)) / 2)
    return scaled(source, 1 / scale, tuple(shape), order)


def scaled(pixels: np.ndarray, step: np.ndarray, shape: tuple[int, ...], order: int = 1) -> np.ndarray:
    """`pixels` sampled at index i·step for every index i of `shape` (edge values beyond the border). The diagonal
    matrix is given as a vector, SciPy's fast path (twice as fast as the full matrix); SciPy before 1.16 warns that
    this form changed meaning in 0.18, which does not concern us."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The behavior of affine_transform with a 1-D array", UserWarning)
        return ndimage.affine_transform(pixels, step, output_shape=shape, order=order, mode="nearest")


def normalise(patch: np.ndarray) -> np.ndarray:
    low, high = np.percentile(patch, [1, 99])
    return np.clip((patch - low) / max(high - low, 1e-6), -0.5, 1.5).astype(np.float32)


def prompt_channel(point: tuple[float, float] | None = None, box: tuple[int, int, int, int] | None = None,
                   shape: tuple[int, int] = (PATCH, PATCH)) -> np.ndarray:
    """Prompt encoding in patch coordinates: Gaussian spot (point), filled rectangle (box: r0, c0, r1, c1)."""
    channel = np.zeros(shape, np.float32)
    if point is not None:
        rr, cc = np.mgrid[0:shape[0], 0:shape[1]]
        channel = np.exp(-((rr - point[0]) ** 2 + (cc - point[1]) ** 2) / (2 * POINT_SIGMA**2)).astype(np.float32)
    elif box is not None:
        channel[max(box[0], 0):box[2], max(box[1], 0):box[3]] = 1.0
    return channel


def patch_origin(centre: tuple[float, float], image_shape: tuple[int, int]) -> tuple[int, int]:
    """Top-left corner of the PATCH×PATCH window centred on `centre`, kept inside the image."""
    if image_shape[0] < PATCH or image_shape[1] < PATCH:
        raise InputError(f"The image is {image_shape[1]}×{image_shape[0]} pixels; at least {PATCH}×{PATCH} needed")
    return (int(np.clip(round(centre[0]) - PATCH // 2, 0, image_shape[0] - PATCH)),
            int(np.clip(round(centre[1]) - PATCH // 2, 0, image_shape[1] - PATCH)))


def network_input(image: np.ndarray, origin: tuple[int, int], point=None, box=None) -> np.ndarray:
    """(2, PATCH, PATCH) input: normalised patch and the prompt, both in patch coordinates."""
    r, c = origin
    patch = normalise(image[r:r + PATCH, c:c + PATCH])
    local_point = None if point is None else (point[0] - r, point[1] - c)
    local_box = None if box is None else (box[0] - r, box[1] - c, box[2] - r, box[3] - c)
    return np.stack([patch, prompt_channel(local_point, local_box)])
