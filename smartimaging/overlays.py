"""Quick-look PNGs of a result: a grey image with coloured outlines and a title line, drawn with Pillow.

Pillow (already loaded by the readers) draws one in ~20 ms; matplotlib's import and first figure cost ~0.5 s of
every predict command.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw, ImageFont

TITLE_PX = 11
DASHED = "dashed"  # an outline's style (third item of an outline): drawn outside its mask, in dashes
DASH_PX = 4


def _shrunk(mask: np.ndarray, times: int) -> np.ndarray:
    """`mask` eroded `times` pixels (4-neighbourhood)."""
    for _ in range(times):
        inner = mask.copy()
        inner[1:] &= mask[:-1]
        inner[:-1] &= mask[1:]
        inner[:, 1:] &= mask[:, :-1]
        inner[:, :-1] &= mask[:, 1:]
        mask = inner
    return mask


def _resized(array: np.ndarray, size: tuple[int, int], resample) -> np.ndarray:
    return np.asarray(Image.fromarray(array).resize(size, resample))


def outlined_rgb(image: np.ndarray, outlines: list[tuple], size: tuple[int, int], window: tuple[float, float],
                 dark_is_high: bool = False, thickness: int = 1) -> np.ndarray:
    """(rows, cols, 3) uint8: `image` (2D) windowed to `window` (low, high) and resized to `size` (width, height),
    with the outline of each (mask, RGB colour[, DASHED]) drawn over it in order, `thickness` pixels wide: inwards,
    or outwards in dashes for a DASHED one (an outline drawn over another that coincides with it leaves both
    visible side by side); `dark_is_high` shows high values dark."""
    low, high = window
    grey = np.clip((np.asarray(image, float) - low) / ((high - low) or 1.0), 0, 1)
    grey = np.round(255 * (1 - grey if dark_is_high else grey)).astype(np.uint8)
    rgb = np.repeat(_resized(grey, size, Image.Resampling.BILINEAR)[..., None], 3, axis=2)
    for mask, colour, *style in outlines:
        inside = _resized(np.asarray(mask, bool).astype(np.uint8) * 255, size, Image.Resampling.NEAREST) > 0
        if style == [DASHED]:
            ring = ~_shrunk(~inside, thickness) & ~inside
            rows, cols = np.indices(ring.shape)
            ring &= (rows + cols) // DASH_PX % 2 == 0
        else:
            ring = inside & ~_shrunk(inside, thickness)
        rgb[ring] = colour
    return rgb


def outline_png(image: np.ndarray, outlines: list[tuple[np.ndarray, tuple[int, int, int]]], path: str | os.PathLike,
                title: str, width: int, window: tuple[float, float], dark_is_high: bool = False) -> None:
    """`image` (2D) windowed to `window` (low, high) and resized to `width` pixels, with the one-pixel outline of each
    (mask, RGB colour) drawn over it and `title` above; `dark_is_high` shows high values dark (bone scans)."""
    size = (width, max(1, round(width * image.shape[0] / image.shape[1])))
    rgb = outlined_rgb(image, outlines, size, window, dark_is_high)
    font = ImageFont.load_default(size=TITLE_PX)
    canvas = Image.new("RGB", (size[0], size[1] + TITLE_PX + 6), "white")
    canvas.paste(Image.fromarray(rgb), (0, TITLE_PX + 6))
    ImageDraw.Draw(canvas).text((size[0] // 2, 2), title, fill="black", font=font, anchor="ma")
    canvas.save(path)
