"""Domain check of the mammography models (`smartimaging.domain`): for the radiomics classifiers the 102 features of
the ROI and the pixel size they were computed at; for the segmenters the patch they see around the lesion."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..domain import PIXEL_SIZE_ASSUMED, check_card, feature_profile, image_profile, summarise
from .images import Mammogram, pixel_size


def classifier_profile(features: Mapping[str, object], pixel_mm: float | None, pixel_size_known: bool = True
                       ) -> dict[str, float]:
    """Quantities of one lesion as the classifier sees it: `feature:<name>` per feature, the pixel size, and a flag
    when that size was assumed (not read from the file nor given by the reader)."""
    profile = feature_profile({name: value for name, value in features.items() if name.startswith("original_")})
    if pixel_mm is not None:
        profile["pixel_size_mm"] = float(pixel_mm)
        if not pixel_size_known:
            profile[PIXEL_SIZE_ASSUMED] = 1.0
    return profile


def classifier_training_domain(rows: Sequence[Mapping[str, object]], data: str,
                               pixel_mm: float | None = None) -> dict:
    """`training_domain` of a classifier from the rows of its features CSV (their `pixel_mm` column, else
    `pixel_mm`)."""
    profiles = []
    for row in rows:
        row_mm = str(row.get("pixel_mm") or "").strip()
        profiles.append(classifier_profile(row, float(row_mm) if row_mm else pixel_mm))
    return summarise(profiles, data)


def segmenter_profile(image: np.ndarray, pixel_mm: float | tuple[float, float], roi: np.ndarray, network_mm: float
                      | None, pixel_size_known: bool = True) -> dict[str, float]:
    """Quantities of the segmenter's input around a lesion: the normalised image channel of the patch centred on the
    ROI, on the network's grid (`network_mm`, or the image's own pixels when None), with the image's own pixel
    size as `source_pixel_size_mm`."""
    from .prompts import PATCH, network_input, patch_origin, resample

    source_mm = float(np.mean(pixel_mm))
    grid = resample(np.asarray(image, np.float32), pixel_mm, network_mm) if network_mm else image
    scale = np.broadcast_to(np.asarray(pixel_mm, float), (2,)) / (network_mm or np.asarray(pixel_mm, float))
    centre = np.argwhere(roi).mean(axis=0) * scale
    grid = np.pad(grid, [(0, max(PATCH - n, 0)) for n in grid.shape], constant_values=float(grid.min()))
    patch = network_input(grid, patch_origin(tuple(centre), grid.shape))[0]
    extra = {} if pixel_size_known else {PIXEL_SIZE_ASSUMED: 1.0}
    return image_profile(patch, network_mm or source_mm, source_pixel_size_mm=source_mm, **extra)


def segmenter_check(card: dict, mammogram: Mammogram, roi: np.ndarray) -> dict:
    """The segmenter card's check of its input around the ROI."""
    network_mm = card.get("inputs", {}).get("pixel_mm")
    return check_card(card, segmenter_profile(mammogram.pixels, pixel_size(mammogram.image), roi, network_mm,
                                              mammogram.pixel_size_known))


def classifier_check(card: dict, mammogram: Mammogram, features: Mapping[str, object]) -> dict:
    """The classifier card's check of the ROI's features."""
    return check_card(card, classifier_profile(features, float(np.mean(pixel_size(mammogram.image))),
                                               mammogram.pixel_size_known))
