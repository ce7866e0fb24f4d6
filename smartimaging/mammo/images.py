"""Reading mammograms: DICOM MG (MONOCHROME1/2, rescale, VOI LUT), PNG (8/16 bit), PGM (mini-MIAS), NRRD/NIfTI.

Pixel values are kept as stored (after the modality rescale) so that radiomics sees the detector's grey levels;
MONOCHROME1 images are inverted so that dense tissue is bright everywhere. The VOI LUT or window is kept in the
metadata for display only. Every mammogram comes back as a one-slice SimpleITK image (what Slicer loads) with the
pixel spacing of the file (ImagerPixelSpacing for most MG objects), else the reader's, else 1 mm; `meta` records
which (`pixel_size_source`, with a `pixel_size_note` when the size is unknown) so that results can say so.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

from ..errors import InputError
from ..io import check_finite, check_readable, dicom_pixels, file_suffix, is_dicom, read_raster, read_volume
from ..limits import MAMMOGRAM, check_dicom, check_image_file, read_dicom_header
from ..presentation import MAMMO_VIEWS

PIXEL_SIZE_HINTS = {  # where the reader gives a mammogram's pixel size, by front-end
    "cli": "--pixel-mm",
    "station": "type it in “Pixel size mm (PNG/PGM)” under 1. Case and load the image again",
    "desktop": "type it in the module's “Pixel size (mm)” field and segment again"}

PIXEL_MM_RANGE = (0.02, 10.0)  # mm: a mammogram's pixel size, from high-resolution detectors to downsampled exports

MAMMOGRAPHY_MODALITIES = {"MG"}
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
# where the pixel size of a loaded mammogram came from (Mammogram.meta["pixel_size_source"])
PIXEL_SIZE_FROM_HEADER = "header"
PIXEL_SIZE_GIVEN = "given by the reader"
PIXEL_SIZE_UNKNOWN = "unknown (assumed 1 mm)"


def parse_pixel_mm(text, what: str = "Pixel size") -> float | None:
    """A mammogram's pixel size in mm given as text (the reader's field; a manifest's pixel_mm column, `what` naming
    it in the refusal), None when empty: a plain number (ASCII, no '_' separators) in PIXEL_MM_RANGE, else
    InputError. The one check of every front-end: str() of its value is the number kept."""
    text = str(text if text is not None else "").strip()
    if not text:
        return None
    try:
        if "_" in text or not text.isascii():
            raise ValueError(text)
        value = float(text)
    except ValueError:
        raise InputError(f"{what} '{text}' is not a number; give the pixel size in mm (e.g. 0.1)") from None
    low, high = PIXEL_MM_RANGE
    if not (math.isfinite(value) and low <= value <= high):
        raise InputError(f"{what} {text} is not a mammogram pixel size (expected {low:g} to {high:g} mm)")
    return value


def pixel_mm_argument(text: str) -> float:
    """`--pixel-mm` of a command line (the CLI's, the worker's): `parse_pixel_mm`, refused in argparse's style."""
    try:
        value = parse_pixel_mm(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value is None:
        raise argparse.ArgumentTypeError("give the pixel size in mm (e.g. 0.1)")
    return value


def pixel_size(image: sitk.Image) -> tuple[float, float]:
    """(row, column) pixel size in mm of a mammogram image."""
    spacing = image.GetSpacing()
    return spacing[1], spacing[0]


@dataclass
class Mammogram:
    path: Path
    image: sitk.Image  # one slice, float32, dense tissue bright
    meta: dict = field(default_factory=dict)

    @property
    def pixels(self) -> np.ndarray:
        return sitk.GetArrayFromImage(self.image)[0]

    @property
    def pixel_size_known(self) -> bool:
        """Whether the pixel size was read from the file or given by the reader (not the 1 mm placeholder)."""
        return self.meta.get("pixel_size_source") != PIXEL_SIZE_UNKNOWN


def _dicom_mammogram(path: Path) -> tuple[np.ndarray, tuple[float, float], dict]:
    import pydicom  # ~0.1 s to import: only for DICOM input

    header = read_dicom_header(path)
    ds = header.ds
    modality = str(ds.get("Modality", "")).upper()
    if not modality and header.image is None:
        raise InputError(f"{path.name} is truncated or damaged: the file ends inside its DICOM header, before the "
                         "image; copy or export it again")
    if modality not in MAMMOGRAPHY_MODALITIES:
        kind = f"a {modality} DICOM image" if modality else "a DICOM image without a modality"
        raise InputError(f"{path.name} is {kind}; the mammography module needs a mammogram (Modality MG)")
    if header.image is None:
        raise InputError(f"{path.name} holds no image data (the file is truncated or damaged)")
    check_dicom(header, MAMMOGRAM)
    full, stored = dicom_pixels(path)
    if stored.ndim == 2:
        stored = pydicom.pixels.apply_modality_lut(stored, full)
    if stored.ndim != 2:
        if int(ds.get("SamplesPerPixel", 1)) > 1:
            raise InputError(f"{path.name} is a colour DICOM image; a mammogram is a greyscale image: export the "
                             "original (for processing or for presentation) greyscale mammogram")
        raise InputError(f"{path.name} has {stored.ndim}-dimensional pixel data; a mammogram is one 2D image")
    pixels = stored.astype(np.float32)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "MONOCHROME1":
        pixels = float(pixels.max()) + float(pixels.min()) - pixels
    try:
        stored_spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
        spacing = [float(s) for s in (stored_spacing or [1.0, 1.0])[:2]]
        meta = {"modality": modality, "photometric": photometric,
                "laterality": str(ds.get("ImageLaterality") or ds.get("Laterality") or ""),
                "view": str(ds.get("ViewPosition") or _view_in_orientation(ds.get("PatientOrientation"))),
                "manufacturer": str(ds.get("Manufacturer", "")),
                "presentation_intent": str(ds.get("PresentationIntentType", ""))}
        if "VOILUTSequence" in ds:
            meta["display"] = "VOI LUT sequence"
        elif "WindowCenter" in ds and "WindowWidth" in ds:
            centre, width = ds.WindowCenter, ds.WindowWidth
            meta["display"] = {"window_center": float(centre[0] if isinstance(centre, pydicom.multival.MultiValue)
                                                      else centre),
                               "window_width": float(width[0] if isinstance(width, pydicom.multival.MultiValue)
                                                     else width)}
    except (TypeError, ValueError, IndexError) as exc:
        raise InputError(f"{path.name} has a damaged DICOM header (pixel spacing or window values)") from exc
    if len(spacing) != 2 or not all(math.isfinite(s) and s > 0 for s in spacing):
        raise InputError(f"{path.name} has an invalid pixel spacing ({spacing} mm) in its DICOM header")
    if stored_spacing:
        meta["pixel_size_source"] = PIXEL_SIZE_FROM_HEADER
    elif str(ds.get("SOPClassUID", "")) == SECONDARY_CAPTURE:
        meta["pixel_size_note"] = ("a secondary-capture image (a digitised film or a screen capture, e.g. CBIS-DDSM): "
                                   "its header stores no pixel size")
    return pixels, (spacing[0], spacing[1]), meta


def _view_in_orientation(orientation) -> str:
    """The view a CBIS-DDSM file keeps in PatientOrientation ("CC", "MLO"), as the station's header reads it; ""."""
    values = [orientation] if isinstance(orientation, str) else list(orientation or [])
    return str(values[0]).upper() if len(values) == 1 and str(values[0]).upper() in MAMMO_VIEWS else ""


def _pixel_size_meta(meta: dict, image: sitk.Image, pixel_mm: float | None) -> dict:
    """`meta` with the pixel size (rows, columns in mm) and where it came from: the header, the reader, or unknown."""
    source = meta.get("pixel_size_source") or (PIXEL_SIZE_GIVEN if pixel_mm else PIXEL_SIZE_UNKNOWN)
    meta = {**meta, "pixel_size_mm": [image.GetSpacing()[1], image.GetSpacing()[0]], "pixel_size_source": source}
    if source != PIXEL_SIZE_UNKNOWN:
        meta.pop("pixel_size_note", None)
    else:
        meta.setdefault("pixel_size_note", f"the {meta.get('format', 'DICOM')} file stores no pixel size")
    return meta


def load_mammogram(path: str | os.PathLike, pixel_mm: float | None = None) -> Mammogram:
    """One mammogram as a one-slice float image; `pixel_mm` sets the spacing of files that store none (PNG, PGM,
    JPEG, DICOM without a pixel spacing). `meta["pixel_size_source"]` says where the spacing came from."""
    path = check_readable(path)
    suffix = file_suffix(path)
    if is_dicom(path) or suffix in (".dcm", ".dicom"):
        pixels, (row_mm, col_mm), meta = _dicom_mammogram(path)
        if "pixel_size_source" not in meta and pixel_mm:
            row_mm = col_mm = pixel_mm
        image = sitk.GetImageFromArray(pixels[None])
        image.SetSpacing((col_mm, row_mm, 1.0))
    elif suffix == ".pgm":
        check_image_file(path, MAMMOGRAM)
        try:
            with Image.open(path) as pgm:
                pixels = np.asarray(pgm, dtype=np.float32)
        except (OSError, ValueError) as exc:
            raise InputError(f"{path.name} is not a readable PGM image (corrupt or truncated)") from exc
        image = sitk.GetImageFromArray(pixels[None])
        image.SetSpacing((pixel_mm or 1.0, pixel_mm or 1.0, 1.0))
        meta = {"format": "PGM"}
    else:
        meta = {"format": suffix.lstrip(".").upper()}
        if suffix in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
            image = read_raster(path, pixel_mm or 1.0, MAMMOGRAM)
        else:
            image = read_volume(path, MAMMOGRAM)
            meta["pixel_size_source"] = PIXEL_SIZE_FROM_HEADER
    if image.GetDimension() != 3 or image.GetSize()[2] != 1:
        raise InputError(f"{path.name} has {image.GetSize()[2]} slices; a mammogram is a single 2D image")
    image = sitk.Cast(image, sitk.sitkFloat32)
    pixels = sitk.GetArrayFromImage(image)
    check_finite(pixels, path.name)
    if float(pixels.max()) <= float(pixels.min()):
        raise InputError(f"{path.name} is blank (all pixels have the same value)")
    return Mammogram(path, image, _pixel_size_meta(meta, image, pixel_mm))
