"""pyradiomics feature extraction, with 2D images handled as 2D (force2D + shape2D).

`extract` runs pyradiomics with any settings (used for the IBSI and baseline acceptance tests); `extract_2d` is
what the mammography pipeline uses: a 2D array or a one-slice volume gives identical features, and no 3D shape
feature (degenerate on one slice) can reach a model.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import yaml

from .errors import InputError, SmartImagingError
from .io import check_finite
from .resources import resource_dir

MAMMO_PARAMS = resource_dir("Radiomics") / "mammo_2d.yaml"
MIN_ROI_PIXELS = 11  # pyradiomics refuses an ROI of minimumROISize (10 in mammo_2d.yaml) pixels or fewer
RECOMMENDED_BINS = (30, 130)  # pyradiomics' documentation: a bin width giving 30-130 bins in the ROI


MISSING_PYRADIOMICS = ("mammography needs pyradiomics, which is not installed: pip install 'smartimaging[mammo]' "
                       "(inside 3D Slicer: install the SlicerRadiomics extension)")


def pyradiomics_installed() -> bool:
    """pyradiomics is an optional dependency (the `mammo` extra)."""
    try:
        importlib.import_module("radiomics")
    except ModuleNotFoundError as exc:
        if exc.name != "radiomics":
            raise
        return False
    return True


def _pyradiomics(module: str):
    """`radiomics.<module>`, or MISSING_PYRADIOMICS as one line when pyradiomics is not installed."""
    if not pyradiomics_installed():
        raise SmartImagingError(MISSING_PYRADIOMICS)
    return importlib.import_module(f"radiomics.{module}")


def _quiet_pyradiomics() -> None:
    logging.getLogger("radiomics").setLevel(logging.ERROR)


def as_one_slice_volume(image: np.ndarray | sitk.Image, spacing: tuple[float, float] = (1.0, 1.0)) -> sitk.Image:
    """A 2D array (rows, cols) or 2D/3D SimpleITK image as a 3D image with one slice (geometry kept)."""
    if isinstance(image, np.ndarray):
        if image.ndim != 2:
            raise InputError(f"Expected a 2D image, got an array of shape {image.shape}")
        volume = sitk.GetImageFromArray(image[None])
        volume.SetSpacing((spacing[1], spacing[0], 1.0))
        return volume
    if image.GetDimension() == 2:
        volume = sitk.JoinSeries(image)
        volume.SetSpacing((*image.GetSpacing(), 1.0))
        volume.SetOrigin((*image.GetOrigin(), 0.0))
        return volume
    if image.GetSize()[2] != 1:
        raise InputError(f"Expected a 2D image or a one-slice volume, got {image.GetSize()[2]} slices")
    return image


@functools.lru_cache(maxsize=8)
def _extractor(parameters_json: str):
    """One validated extractor per parameter set and process (validation costs as much as a small ROI)."""
    featureextractor = _pyradiomics("featureextractor")
    _quiet_pyradiomics()
    return featureextractor.RadiomicsFeatureExtractor(json.loads(parameters_json))


MAX_PARAMETER_FILE_BYTES = 1 << 20  # a pyradiomics parameter file is a few hundred bytes


@functools.lru_cache(maxsize=8)
def _parameter_file(path: str) -> str:
    """A parameter file's settings as canonical JSON (read once per process); only a small regular file is read."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"The pyradiomics parameter file {path} is not a file (missing, a folder or a device)")
    if file.stat().st_size > MAX_PARAMETER_FILE_BYTES:
        raise InputError(f"The pyradiomics parameter file {file.name} is {file.stat().st_size / 2**20:.0f} MB; a "
                         "parameter file is a few hundred bytes")
    return json.dumps(yaml.safe_load(file.read_text(encoding="utf-8")), sort_keys=True)


def parameter_settings(path: str | os.PathLike = MAMMO_PARAMS) -> dict:
    """A parameter file's settings (what a model card records, to refuse features computed otherwise)."""
    return json.loads(_parameter_file(str(path)))


def extract(image: sitk.Image, mask: sitk.Image, parameters: dict | str | os.PathLike) -> dict[str, float]:
    """pyradiomics features (diagnostics dropped) for an image and a label mask, in pyradiomics' order."""
    key = json.dumps(parameters, sort_keys=True) if isinstance(parameters, dict) else _parameter_file(str(parameters))
    result = _extractor(key).execute(image, mask)
    return {name: float(value) for name, value in result.items() if not name.startswith("diagnostics_")}


def _roi_box(image: sitk.Image, mask: sitk.Image, label: int) -> tuple[slice, slice, slice]:
    """The ROI's bounding box (x, y, z slices), after checking the ROI (size, finite, not constant).

    Features of the original image depend only on the ROI's pixels and their in-ROI neighbours, so cropping to the
    box changes no value (tested); it spares pyradiomics' whole-image mask checks, which cost more than a small ROI's
    texture.
    """
    roi = sitk.GetArrayViewFromImage(mask)[0] == label
    count = int(roi.sum())
    if count == 0:
        raise InputError("The region of interest is empty")
    if count < MIN_ROI_PIXELS:
        raise InputError(f"The region of interest has {count} pixels; at least {MIN_ROI_PIXELS} are needed")
    rows, cols = np.nonzero(roi)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    values = sitk.GetArrayViewFromImage(image)[0, top:bottom, left:right][roi[top:bottom, left:right]]
    if not np.all(np.isfinite(values)):
        raise InputError("The image has invalid values (NaN) inside the region of interest")
    if float(values.max()) == float(values.min()):
        raise InputError("The region of interest has one constant grey level; texture features are undefined")
    return slice(int(left), int(right)), slice(int(top), int(bottom)), slice(0, 1)


def _prepared_roi(image, mask, parameters, spacing) -> tuple[sitk.Image, sitk.Image, dict]:
    """One-slice image and mask cropped to the ROI, normalised first (on the whole image, as pyradiomics does) when
    the parameter file asks; the returned settings no longer normalise."""
    settings = json.loads(_parameter_file(str(parameters)))
    if not settings.get("setting", {}).get("force2D") or "shape" in settings.get("featureClass", {}):
        raise ValueError(f"{parameters} must set force2D and use shape2D, not 3D shape")
    volume = sitk.Cast(as_one_slice_volume(image, spacing), sitk.sitkFloat32)
    label_image = sitk.Cast(as_one_slice_volume(mask, spacing), sitk.sitkUInt8)
    label_image.CopyInformation(volume)
    box = _roi_box(volume, label_image, settings["setting"].get("label", 1))
    if settings["setting"].get("normalize"):
        check_finite(sitk.GetArrayViewFromImage(volume), "The image")
        volume = _pyradiomics("imageoperations").normalizeImage(volume, **settings["setting"])
        settings = {**settings, "setting": {**settings["setting"], "normalize": False}}
    return volume[box], label_image[box], settings


def extract_2d(image: np.ndarray | sitk.Image, mask: np.ndarray | sitk.Image,
               parameters: str | os.PathLike = MAMMO_PARAMS, spacing: tuple[float, float] = (1.0, 1.0)
               ) -> dict[str, float]:
    """2D features of a 2D image (array, 2D image or one-slice volume) and its mask, with the project's parameters.

    Everything goes to pyradiomics as a one-slice volume: given a true 2D image, pyradiomics' `force2Ddimension: 0`
    would take the image rows as the out-of-plane axis and compute 1D (row-wise) texture instead.
    """
    volume, label_image, settings = _prepared_roi(image, mask, parameters, spacing)
    features = extract(volume, label_image, settings)
    degenerate = [name for name in features if "_shape_" in name and "_shape2D_" not in name]
    if degenerate:
        raise ValueError(f"3D shape features must not be computed on 2D images: {degenerate}")
    return features


def bin_counts(image: np.ndarray | sitk.Image, mask: np.ndarray | sitk.Image, bin_widths: list[float],
               parameters: str | os.PathLike = MAMMO_PARAMS, spacing: tuple[float, float] = (1.0, 1.0)
               ) -> dict[float, int]:
    """Number of grey-level bins pyradiomics would use in this ROI for each bin width (after the parameter file's
    normalisation): the data for choosing the bin width."""
    getBinEdges = _pyradiomics("imageoperations").getBinEdges
    volume, label_image, settings = _prepared_roi(image, mask, parameters, spacing)
    values = sitk.GetArrayViewFromImage(volume)[sitk.GetArrayViewFromImage(label_image) ==
                                                settings["setting"].get("label", 1)]
    return {width: len(getBinEdges(values, binWidth=width)) - 1 for width in bin_widths}
