"""Loading whole-body planar bone scans into views (anterior / posterior) with their source geometry.

Accepted: NM DICOM (single- or multi-frame; frames are views), PNG/JPEG/PGM exports (e.g. 256×1024 as in BS-80K),
NRRD/NIfTI. Each source image keeps its SimpleITK geometry so that segmentations are written on the same grid.
Counts are returned with "more uptake = larger value"; exports saved with uptake dark are detected and inverted.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk

from ..errors import InputError
from ..io import (
    RASTER_SUFFIXES,
    check_finite,
    check_readable,
    dicom_pixels,
    file_suffix,
    is_dicom,
    read_raster,
    read_volume,
)
from ..limits import BONE_SCAN, check_dicom, read_dicom_header

VIEW_NAMES = ("anterior", "posterior")
NM_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.20"
MIN_ASPECT, MAX_ASPECT = 1.8, 8.0  # whole-body views are tall: rows / columns
IDENTIFIERS = "identifiers"  # key of BoneScanStudy.meta with the patient's identifiers: written only when asked
IDENTIFYING_TAGS = {"patient_id": "PatientID", "patient_name": "PatientName", "birth_date": "PatientBirthDate",
                    "accession_number": "AccessionNumber", "study_date": "StudyDate",
                    "study_description": "StudyDescription", "institution": "InstitutionName"}


@dataclass
class BoneScanView:
    name: str
    counts: np.ndarray  # float32 (rows, cols), more uptake = larger value
    source: int  # index of the source image in BoneScanStudy.images
    frame: int  # slice (frame) index inside that source image


@dataclass
class BoneScanStudy:
    paths: list[Path]
    images: list[sitk.Image]  # source images as read (3D, frames along k), geometry kept for outputs
    views: list[BoneScanView]
    meta: dict = field(default_factory=dict)
    unrecorded_views: list[str] = field(default_factory=list)  # views named by default: the file does not record them

    def view(self, name: str) -> BoneScanView:
        return next(v for v in self.views if v.name == name)


def _dicom_view_names(ds: pydicom.Dataset, n_frames: int) -> list[str | None]:
    """View of each frame from the View Code Sequence of each detector, when present."""
    names: list[str | None] = [None] * n_frames
    detectors = list(getattr(ds, "DetectorInformationSequence", []))
    vector = ds.get("DetectorVector", list(range(1, n_frames + 1)))
    vector = [vector] if isinstance(vector, int) else list(vector)
    for frame in range(n_frames):
        index = int(vector[frame]) - 1 if frame < len(vector) else frame
        if 0 <= index < len(detectors) and "ViewCodeSequence" in detectors[index]:
            meaning = str(detectors[index].ViewCodeSequence[0].get("CodeMeaning", "")).lower()
            names[frame] = next((v for v in VIEW_NAMES if v in meaning), None)
    return names


def read_nm_dicom(path: str | os.PathLike) -> tuple[sitk.Image, list[str | None], dict]:
    """NM DICOM -> (image with frames along k, view name per frame or None, metadata)."""
    path = check_readable(path)
    header = read_dicom_header(path)
    ds = header.ds
    modality = str(ds.get("Modality", "")).upper()
    if not modality and header.image is None:
        raise InputError(f"{path.name} is truncated or damaged: the file ends inside its DICOM header, before the "
                         "image; copy or export it again")
    if modality != "NM":
        kind = f"a {modality} DICOM image" if modality else "a DICOM image without a modality"
        raise InputError(f"{path.name} is {kind}; BoneScanBSTBI needs a nuclear-medicine (Modality NM) whole-body "
                         "bone scan")
    if header.image is None:
        raise InputError(f"{path.name} holds no image data (the file is truncated or damaged)")
    check_dicom(header, BONE_SCAN)
    pixels = dicom_pixels(path)[1].astype(np.float32)
    try:
        slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
        spacing = [float(s) for s in ds.get("PixelSpacing", [1.0, 1.0])[:2]]
        thickness = float(ds.get("SliceThickness", 1.0) or 1.0)
    except (TypeError, ValueError, IndexError) as exc:
        raise InputError(f"{path.name} has a damaged DICOM header (rescale or pixel spacing values)") from exc
    if len(spacing) != 2 or not all(math.isfinite(s) and s > 0 for s in [*spacing, thickness]):
        raise InputError(f"{path.name} has an invalid pixel spacing ({spacing} mm) in its DICOM header")
    pixels = pixels * slope + intercept
    if pixels.ndim == 2:
        pixels = pixels[None]
    if pixels.ndim != 3:
        raise InputError(f"{path.name} has pixel data of shape {pixels.shape}; expected planar frames")
    image = sitk.GetImageFromArray(pixels)
    image.SetSpacing((spacing[1], spacing[0], thickness))
    meta = {"modality": modality, "manufacturer": str(ds.get("Manufacturer", "")),
            IDENTIFIERS: {name: str(ds.get(keyword)) for name, keyword in IDENTIFYING_TAGS.items() if ds.get(keyword)}}
    if ds.get("ManufacturerModelName"):
        meta["camera_model"] = str(ds.ManufacturerModelName)
    age = str(ds.get("PatientAge", ""))
    if age[:3].isdigit():
        meta["age"] = int(age[:3])
    return image, _dicom_view_names(ds, pixels.shape[0]), meta


def _looks_uptake_dark(array: np.ndarray) -> bool:
    """Exports with dark uptake on a white background have a bright border."""
    border = np.concatenate([array[:, :4].ravel(), array[:, -4:].ravel(), array[:4].ravel(), array[-4:].ravel()])
    return float(np.median(border)) > 0.5 * float(array.max())


def _check_view(counts: np.ndarray, label: str) -> None:
    check_finite(counts, label)
    rows, cols = counts.shape
    if not MIN_ASPECT <= rows / max(cols, 1) <= MAX_ASPECT:
        raise InputError(f"{label} is {cols}×{rows} pixels; a whole-body bone-scan view is a tall image "
                         "(for example 256×1024). Is this the right image?")
    if float(counts.max()) <= float(counts.min()):
        raise InputError(f"{label} is blank (all pixels have the same value)")


def load_bone_scan(paths: list[str | os.PathLike], view_names: list[str] | None = None,
                   polarity: str = "auto") -> BoneScanStudy:
    """Read one or more files into views; frames of a multi-frame file become separate views.

    `polarity`: "auto" (detect white-background exports), "uptake-bright" or "uptake-dark".
    Negative values (lossy-compression artefacts) are clipped to 0.
    """
    if not paths:
        raise InputError("No image given")
    images, frame_names, invert_flags, meta = [], [], [], {}
    for raw_path in paths:
        path = check_readable(raw_path)
        suffix = file_suffix(path)
        if is_dicom(path) or suffix in (".dcm", ".dicom"):
            image, names, file_meta = read_nm_dicom(path)
            meta = {**file_meta, **meta}
            invert = polarity == "uptake-dark"
        else:
            image = read_raster(path, 1.0, BONE_SCAN) if suffix in RASTER_SUFFIXES else read_volume(path, BONE_SCAN)
            names = [None] * image.GetSize()[2]
            invert = None if polarity == "auto" else polarity == "uptake-dark"
        images.append(image)
        frame_names.append(names)
        invert_flags.append(invert)
    return study_from_images(images, [Path(p) for p in paths], frame_names, invert_flags, view_names, meta)


def study_from_images(images: list[sitk.Image], paths: list[Path], frame_names: list[list[str | None]] | None = None,
                      invert_flags: list[bool | None] | None = None, view_names: list[str] | None = None,
                      meta: dict | None = None) -> BoneScanStudy:
    """Validate images (frames along k) and split them into views; `invert_flags` None means auto-detect."""
    views = []
    for source, (image, path) in enumerate(zip(images, paths, strict=True)):
        frames = sitk.GetArrayFromImage(image).astype(np.float32)
        if frames.shape[0] > 2:
            raise InputError(f"{path.name} has {frames.shape[0]} frames or slices; a whole-body planar scan has "
                             "one or two views (anterior, posterior). SPECT or dynamic studies are not supported.")
        names = frame_names[source] if frame_names else [None] * frames.shape[0]
        invert = invert_flags[source] if invert_flags else None
        for frame, counts in enumerate(frames):
            label = f"{path.name}" + (f" frame {frame + 1}" if frames.shape[0] > 1 else "")
            _check_view(counts, label)
            if invert is None:
                invert = _looks_uptake_dark(counts)
            if invert:
                counts = float(counts.max()) - counts
            views.append(BoneScanView(names[frame] or "", np.clip(counts, 0, None), source, frame))
    if view_names and len(view_names) > len(views):
        raise InputError(f"{len(view_names)} view names were given ({','.join(view_names)!r}) but the image(s) "
                         f"hold {len(views)} view(s); give one name per view, e.g. anterior,posterior")
    names = list(view_names or []) + [v.name for v in views][len(view_names or []):]
    defaults = iter(n for n in VIEW_NAMES if n not in names)
    unrecorded = []
    for view, name in zip(views, names, strict=False):
        view.name = name or next(defaults, f"view {views.index(view) + 1}")
        unrecorded += [] if name else [view.name]
    if len({v.name for v in views}) != len(views):
        raise InputError(f"Views must be distinct; got {[v.name for v in views]}")
    if len(views) > 2:
        raise InputError(f"Got {len(views)} views; give at most one anterior and one posterior view")
    return BoneScanStudy(list(paths), images, views, meta or {}, unrecorded)


def write_nm_dicom(path: str | os.PathLike, frames: dict[str, np.ndarray], patient_id: str, age: int | None = None,
                   pixel_mm: float = 2.26) -> None:
    """Write views as one multi-frame NM DICOM (one detector per view, View Code Sequence set)."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    names = list(frames)
    pixels = np.stack([frames[n] for n in names]).clip(0, 65535).round().astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = NM_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = NM_IMAGE_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    # The name is the ID alone: a "Phantom" name made the manufacturer "SmartImaging phantom" read as naming the
    # patient, so the station withheld it.
    ds.Modality, ds.PatientID, ds.PatientName = "NM", patient_id, patient_id
    ds.Manufacturer, ds.StudyDescription = "SmartImaging phantom", "Whole Body Bone (synthetic phantom)"
    if age is not None:
        ds.PatientAge = f"{age:03d}Y"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "WHOLE BODY", "EMISSION"]
    ds.NumberOfFrames = len(names)
    ds.FrameIncrementPointer = [0x00540010, 0x00540020]
    ds.EnergyWindowVector, ds.NumberOfEnergyWindows = [1] * len(names), 1
    ds.DetectorVector, ds.NumberOfDetectors = list(range(1, len(names) + 1)), len(names)
    detectors = []
    for name in names:
        code = pydicom.Dataset()
        code.CodeValue = {"anterior": "G-A117", "posterior": "G-A118"}.get(name, "")
        code.CodingSchemeDesignator, code.CodeMeaning = "SRT", name
        item = pydicom.Dataset()
        item.ViewCodeSequence = Sequence([code])
        detectors.append(item)
    ds.DetectorInformationSequence = Sequence(detectors)
    ds.Rows, ds.Columns = pixels.shape[1:]
    ds.PixelSpacing = [pixel_mm, pixel_mm]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(str(path), enforce_file_format=True)
