"""Domain check: is an input inside what a model learned (issue 12 §3)?

A model card's `training_domain` holds the ranges of a few measurable quantities of the model's training inputs, after
the model's own normalisation (`summarise` of `image_profile`s). At inference the same quantities of the input are
compared with those ranges (`check`), and the checks of the models behind one result are merged (`combine`). Radiomics
classifiers use quantities named `feature:<pyradiomics name>` (`feature_profile`); such a case is outside when more
than a fraction of its features fall outside their training range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from .errors import InputError

MARGIN = 0.1  # each range is widened on both sides by this fraction of its span or by SD_MARGIN standard deviations
SD_MARGIN = 1.0  # (whichever is larger), so that a few dozen training inputs do not give too tight a range
RELATIVE_TOLERANCE = 0.02  # ... and by this fraction of its magnitude (a quantity constant in training is not exact)
FEATURE_FRACTION = 0.1  # a case is outside when more than this fraction of its radiomics features are out of range
FEATURE_PREFIX = "feature:"
PIXEL_SIZE_ASSUMED = "pixel_size_assumed"  # profile flag (1.0): the pixel size was not read from the file
FLAGS = (PIXEL_SIZE_ASSUMED,)
FOREGROUND = 0.05  # pixels above the 1st percentile by this fraction of the 1st-99th percentile range: not background
_LAPLACIAN_NORM = math.sqrt(20.0)  # L2 norm of the 4-neighbour Laplacian kernel: scales its response to noise sigma
_MAX_REASONS_IN_TEXT = 3
NON_NEGATIVE_WORDS = ("size", "spacing", "_mm", "fraction", "noise", "entropy", "std", "lesion_", "counts", "age")

# quantity -> (plain words, unit)
LABELS: dict[str, tuple[str, str]] = {
    "source_pixel_size_mm": ("pixel size of the image", " mm"),
    "source_slice_spacing_mm": ("slice spacing of the image", " mm"),
    "pixel_size_mm": ("pixel size", " mm"),
    "slice_spacing_mm": ("slice spacing", " mm"),
    "rows_mm": ("image height", " mm"),
    "cols_mm": ("image width", " mm"),
    "slices_mm": ("volume depth", " mm"),
    "intensity_q01": ("darkest intensities (1st percentile)", ""),
    "intensity_q50": ("median intensity", ""),
    "intensity_q99": ("brightest intensities (99th percentile)", ""),
    "intensity_std": ("intensity spread", ""),
    "noise_sigma": ("pixel noise", ""),
    "noise_ratio": ("pixel noise relative to contrast", ""),
    "entropy": ("histogram entropy (texture)", " bits"),
    "background_fraction": ("share of empty background", ""),
    "foreground_fraction": ("share of the image above the background", ""),
    "foreground_q10": ("tissue intensities (10th percentile)", ""),
    "foreground_q50": ("tissue intensities (median)", ""),
    "foreground_q90": ("tissue intensities (90th percentile)", ""),
    "saturation_fraction": ("share of saturated pixels", ""),
    "lesion_diameter_mm": ("lesion diameter", " mm"),
    "lesion_fraction": ("lesion share of the image", ""),
    "lesion_contrast": ("lesion contrast", ""),
    "peak_counts": ("peak counts (99.5th percentile)", ""),
    "age": ("age", " years"),
    "size_mm": ("lesion size", " mm"),
}
# The input's own geometry; beside the image's (`source_*`: the model resampled the image) they are named as the
# geometry of the model's input grid, so two slice spacings of one case never read as a contradiction.
INPUT_GEOMETRY = ("pixel_size_mm", "slice_spacing_mm", "rows_mm", "cols_mm", "slices_mm")


def image_profile(
    normalised: np.ndarray,
    pixel_size_mm: float | Sequence[float] | None,
    lesion_mask: np.ndarray | None = None,
    **extra: float,
) -> dict[str, float]:
    """Measurable quantities of one model input after the model's own normalisation.

    `normalised` is 2D (rows, cols) or 3D (slices, rows, cols); `pixel_size_mm` is the spacing of that array, one value
    (isotropic in-plane) or one per array axis in array order, or None when unknown (then no size in mm is measured
    and `check` says so). `lesion_mask` (same shape, nonzero = lesion) adds the lesion's size and contrast. `extra`
    quantities are added as given (e.g. `pixel_size_assumed=1.0`, a model's own summary numbers).
    """
    image = np.asarray(normalised, dtype=np.float64)
    if image.ndim not in (2, 3) or min(image.shape) < 1:
        raise InputError(f"The model input has shape {image.shape}; a 2D image or a 3D volume was expected.")
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        raise InputError("The model input holds no valid pixel values.")
    spacing = _spacing(pixel_size_mm, image.ndim)
    profile: dict[str, float] = {}
    if spacing is not None:
        profile["pixel_size_mm"] = float(np.mean(spacing[-2:]))
        profile["rows_mm"] = image.shape[-2] * spacing[-2]
        profile["cols_mm"] = image.shape[-1] * spacing[-1]
        if image.ndim == 3:
            profile["slice_spacing_mm"] = spacing[0]
            profile["slices_mm"] = image.shape[0] * spacing[0]
    q01, q50, q99 = (float(v) for v in np.quantile(finite, [0.01, 0.5, 0.99]))
    low, high = float(finite.min()), float(finite.max())
    contrast = max(q99 - q01, 1e-12)
    profile.update(
        intensity_q01=q01,
        intensity_q50=q50,
        intensity_q99=q99,
        intensity_std=float(finite.std()),
        background_fraction=float(np.mean(finite <= low + 1e-6 * max(high - low, 1e-12))),
        saturation_fraction=float(np.mean(finite >= high - 1e-6 * max(high - low, 1e-12))),
        entropy=_entropy(finite, q01, q99),
    )
    floor = q01 + FOREGROUND * contrast
    foreground = finite[finite > floor]
    if foreground.size:
        f10, f50, f90 = (float(v) for v in np.quantile(foreground, [0.1, 0.5, 0.9]))
        profile.update(foreground_fraction=foreground.size / finite.size, foreground_q10=f10, foreground_q50=f50,
                       foreground_q90=f90)
    noise = _noise_sigma(np.where(np.isfinite(image), image, q50), floor)
    profile["noise_sigma"] = noise
    profile["noise_ratio"] = noise / contrast
    if lesion_mask is not None:
        profile.update(_lesion_quantities(image, np.asarray(lesion_mask) != 0, spacing, contrast))
    profile.update({name: float(value) for name, value in extra.items()})
    return profile


def feature_profile(features: Mapping[str, object]) -> dict[str, float]:
    """Radiomics features as domain quantities `feature:<name>` (finite numbers only; diagnostics dropped)."""
    profile = {}
    for name, value in features.items():
        if name.startswith("diagnostics") or isinstance(value, (str, bytes, bool)):
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            profile[FEATURE_PREFIX + name] = number
    return profile


def summarise(profiles: list[dict[str, float]], data: str, margin: float = MARGIN) -> dict:
    """The card field `training_domain`: the range of every quantity over the training inputs, widened by `margin` of
    the span or by SD_MARGIN standard deviations, whichever is larger, plus RELATIVE_TOLERANCE of the magnitude."""
    if not profiles:
        raise ValueError("summarise needs at least one profile")
    values: dict[str, list[float]] = {}
    for profile in profiles:
        for name, value in profile.items():
            if name not in FLAGS and value is not None and math.isfinite(float(value)):
                values.setdefault(name, []).append(float(value))
    ranges = {}
    for name in sorted(values):
        low, high = min(values[name]), max(values[name])
        spread = max(margin * (high - low), SD_MARGIN * float(np.std(values[name])))
        pad = spread + RELATIVE_TOLERANCE * max(abs(low), abs(high)) + 1e-9
        lowest = low - pad if low < 0 or not _non_negative(name) else max(low - pad, 0.0)
        ranges[name] = [_round(lowest), _round(high + pad)]
    return {"data": data, "n": len(profiles), "margin": {"span_fraction": margin, "standard_deviations": SD_MARGIN,
                                                         "relative": RELATIVE_TOLERANCE}, "ranges": ranges}


def check(training_domain: dict | None, profile: Mapping[str, float], model: str) -> dict:
    """Compare one input's profile with a card's `training_domain`: verdict, reasons in plain words, one-line text."""
    ranges = (training_domain or {}).get("ranges") if isinstance(training_domain, dict) else None
    if not ranges:
        return _result("unknown", ["its model card does not describe the training data"], model)
    reasons = []
    if "pixel_size_mm" in ranges and profile.get(PIXEL_SIZE_ASSUMED):
        reasons.append("pixel size assumed, not read from the file")
    elif "pixel_size_mm" in ranges and "pixel_size_mm" not in profile:
        reasons.append("pixel size unknown (the file does not give it)")
    outside_features, n_features = [], 0
    resampled = any(name.startswith("source_") for name in profile)
    for name, (low, high) in sorted(ranges.items(), key=lambda item: _rank(item[0])):
        value = profile.get(name)
        if value is None or not math.isfinite(float(value)):
            continue
        inside = low <= float(value) <= high
        if name.startswith(FEATURE_PREFIX):
            n_features += 1
            if not inside:
                outside_features.append(name[len(FEATURE_PREFIX) :])
        elif not inside:
            reasons.append(_describe(name, float(value), low, high, resampled))
    fraction = float(training_domain.get("feature_fraction", FEATURE_FRACTION))
    if n_features and len(outside_features) > fraction * n_features:
        examples = ", ".join(outside_features[:_MAX_REASONS_IN_TEXT])
        more = "…" if len(outside_features) > _MAX_REASONS_IN_TEXT else ""
        reasons.append(
            f"{len(outside_features)} of {n_features} radiomics features outside their training range "
            f"({examples}{more})"
        )
    return _result("outside" if reasons else "inside", reasons, model)


def check_card(card: Mapping, profile: Mapping[str, float]) -> dict:
    """`check` against a model card (its `training_domain` and `id`)."""
    return check(card.get("training_domain"), profile, str(card.get("id", "model")))


def check_parts(card: Mapping, profiles: Mapping[str, Mapping[str, float]]) -> dict:
    """One model's check of an input made of named parts (the views of a bone scan): outside if any part is; each
    reason names its part."""
    parts = {name: check_card(card, profile) for name, profile in profiles.items()}
    verdicts = [c["verdict"] for c in parts.values()]
    verdict = "outside" if "outside" in verdicts else "unknown" if "unknown" in verdicts or not parts else "inside"
    reasons = list(dict.fromkeys(f"{name}: {reason}" if len(parts) > 1 and c["verdict"] == "outside" else reason
                                 for name, c in parts.items() if c["verdict"] == verdict for reason in c["reasons"]))
    return _result(verdict, reasons, str(card.get("id", "model")))


def unknown(model: str, reason: str) -> dict:
    """A check that could not be made (e.g. the model did not run on this input)."""
    return _result("unknown", [reason], model)


def combine(checks: Sequence[dict]) -> dict:
    """One verdict for a result made by several models: outside if any is outside, unknown if any is unknown. The
    reasons name their models; a reason several models share is given once."""
    verdicts = [c["verdict"] for c in checks]
    verdict = "outside" if "outside" in verdicts else "unknown" if ("unknown" in verdicts or not checks) else "inside"
    models_of: dict[str, list[str]] = {}
    for c in checks:
        if c["verdict"] == verdict:
            for reason in c["reasons"]:
                models_of.setdefault(reason, []).append(c["model"])
    reasons = [f"{' and '.join(models)}: {reason}" for reason, models in models_of.items()]
    if not checks:
        reasons = ["no model was checked"]
    combined = _result(verdict, reasons, None)
    combined["models"] = {c["model"]: c["verdict"] for c in checks}
    combined["checks"] = list(checks)
    return combined


def _result(verdict: str, reasons: list[str], model: str | None) -> dict:
    shown = "; ".join(reasons[:_MAX_REASONS_IN_TEXT])
    if len(reasons) > _MAX_REASONS_IN_TEXT:
        shown += f"; and {len(reasons) - _MAX_REASONS_IN_TEXT} more"
    if verdict == "inside":
        text = "inside the model's training data"
    elif verdict == "outside":
        text = f"outside the model's training data ({shown})"
    else:
        text = f"not checked against the model's training data ({shown})"
    result = {"verdict": verdict, "reasons": reasons, "text": text}
    if model is not None:
        result["model"] = model
    return result


def _rank(name: str) -> tuple[int, str]:
    """Reasons in the order a reader cares about: pixel size and geometry first, then intensities, then the rest."""
    order = list(LABELS)
    return (order.index(name) if name in order else len(order), name)


def _non_negative(name: str) -> bool:
    """Quantities that cannot be negative (sizes, fractions, noise...): their ranges never go below zero."""
    return not name.startswith(FEATURE_PREFIX) and any(word in name for word in NON_NEGATIVE_WORDS)


def _describe(name: str, value: float, low: float, high: float, resampled: bool = False) -> str:
    words, unit = LABELS.get(name, (name.replace("_", " "), ""))
    if resampled and name in INPUT_GEOMETRY:
        words += " of the model's input grid"
    if _non_negative(name):
        low = max(low, 0.0)
    trained = f"always {_fmt(low)}{unit} in training" if _fmt(low) == _fmt(high) else \
        f"trained on {_fmt(low)}–{_fmt(high)}{unit}"
    return f"{words} {_fmt(value)}{unit} ({trained})"


def _fmt(value: float) -> str:
    return "0" if abs(value) < 1e-6 else f"{value:.3g}"


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _spacing(pixel_size_mm: float | Sequence[float] | None, ndim: int) -> list[float] | None:
    if pixel_size_mm is None:
        return None
    values = [float(pixel_size_mm)] * ndim if np.isscalar(pixel_size_mm) else [float(v) for v in pixel_size_mm]
    if len(values) == 1:
        values *= ndim
    if len(values) != ndim or not all(math.isfinite(v) and v > 0 for v in values):
        raise InputError(f"The pixel size {pixel_size_mm} mm does not fit a {ndim}D image.")
    return values


def _entropy(values: np.ndarray, low: float, high: float) -> float:
    if high <= low:
        return 0.0
    counts, _ = np.histogram(np.clip(values, low, high), bins=64, range=(low, high))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def _noise_sigma(image: np.ndarray, floor: float) -> float:
    """Robust in-plane noise estimate over the foreground (pixels above `floor`): median absolute Laplacian response,
    scaled to a Gaussian sigma."""
    planes = image if image.ndim == 3 else image[None]
    if planes.shape[-1] < 3 or planes.shape[-2] < 3:
        return 0.0
    centre = planes[:, 1:-1, 1:-1]  # the 4-neighbour Laplacian inside each plane (numpy: scipy costs ~0.2 s to import)
    response = (planes[:, :-2, 1:-1] - 2 * centre + planes[:, 2:, 1:-1]) + \
        (planes[:, 1:-1, :-2] - 2 * centre + planes[:, 1:-1, 2:])
    foreground = planes[:, 1:-1, 1:-1] > floor
    values = response[foreground] if foreground.sum() >= 100 else response.ravel()
    mad = np.median(np.abs(values - np.median(values)))
    return float(1.4826 * mad / _LAPLACIAN_NORM)


def _lesion_quantities(
    image: np.ndarray, mask: np.ndarray, spacing: list[float] | None, contrast: float
) -> dict[str, float]:
    if mask.shape != image.shape:
        raise InputError(f"The lesion mask {mask.shape} does not match the image {image.shape}.")
    count = int(mask.sum())
    quantities = {"lesion_fraction": count / mask.size}
    if count == 0:
        return quantities
    if spacing is not None:
        size = count * float(np.prod(spacing))
        diameter = 2 * math.sqrt(size / math.pi) if image.ndim == 2 else (6 * size / math.pi) ** (1 / 3)
        quantities["lesion_diameter_mm"] = diameter
    if count < mask.size:
        inside = np.nanmedian(image[mask])
        outside = np.nanmedian(image[~mask])
        quantities["lesion_contrast"] = float((inside - outside) / contrast)
    return quantities
