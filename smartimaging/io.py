"""Image reading and writing with geometry: DICOM, NRRD, NIfTI, PNG/PGM/JPEG -> SimpleITK.Image.

Compressed DICOM is decoded by pydicom's plugins (:func:`dicom_pixels`: RLE, JPEG baseline/extended/lossless,
JPEG-LS, JPEG 2000, HTJ2K through pylibjpeg) or by GDCM inside SimpleITK (volumes and series).

Every reader returns a 3D SimpleITK image (2D images get one slice) in ITK's LPS convention with spacing, origin
and direction kept exactly. Unreadable or suspicious files raise :class:`InputError` with a reader-friendly message.
Each reader checks the file's header first against a size limit (:mod:`smartimaging.limits`) and refuses truncated
files and DICOM series with missing or truncated slices before any pixel is decoded.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator, MutableSequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .limits import (
    ANY_IMAGE,
    MR_VOLUME,
    DicomHeader,
    ImageHeader,
    SizeLimit,
    check_dicom,
    check_image_file,
    check_size,
    file_suffix,
    is_dicom,
    read_dicom_header,
)

if TYPE_CHECKING:
    import pydicom

RASTER_SUFFIXES = {".png", ".jpg", ".jpeg", ".pgm", ".tif", ".tiff"}


def check_readable(path: str | os.PathLike) -> Path:
    """Return the path if it is a non-empty regular file, else raise InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"File not found: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give the image file itself")
    if path.stat().st_size == 0:
        raise InputError(f"{path.name} is empty (0 bytes)")
    return path


# pip packages whose pydicom plugin decodes each compressed transfer syntax (pydicom's name of the syntax → packages)
DECODER_PACKAGES = {"RLE": "pylibjpeg pylibjpeg-rle", "JPEG-LS": "pylibjpeg pylibjpeg-libjpeg",
                    "JPEG 2000": "pylibjpeg pylibjpeg-openjpeg", "High-Throughput JPEG 2000": "pylibjpeg "
                    "pylibjpeg-openjpeg", "JPEG": "pylibjpeg pylibjpeg-libjpeg"}


def dicom_pixels(path: Path) -> tuple[pydicom.Dataset, np.ndarray]:
    """The dataset and its stored pixel values (as in the file, before any rescale), whatever the transfer syntax;
    a compression without an installed decoder or undecodable pixel data raise InputError (one line)."""
    import pydicom  # ~0.1 s to import: only when a DICOM file is read
    from pydicom.pixels import get_decoder

    try:
        ds = pydicom.dcmread(str(path))
        syntax = ds.file_meta.get("TransferSyntaxUID") or pydicom.uid.ImplicitVRLittleEndian
    except Exception as exc:  # pydicom raises many types on damaged files
        raise InputError(f"{path.name} is not a readable DICOM file (damaged); copy or export it again") from exc
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        raise InputError(f"{path.name} is stored with a compression SmartImaging cannot decode "
                         f"({syntax.name or syntax}); export it uncompressed or with JPEG 2000, JPEG or RLE "
                         "compression") from exc
    if not decoder.is_available:
        packages = next((p for name, p in DECODER_PACKAGES.items() if syntax.name.startswith(name)), "pylibjpeg")
        raise InputError(f"{path.name} is compressed as {syntax.name}; no decoder for it is installed: "
                         f"pip install {packages}")
    try:
        return ds, ds.pixel_array
    except Exception as exc:  # decoders raise many types on truncated or damaged pixel data
        raise InputError(f"The pixel data of {path.name} cannot be decoded ({syntax.name}: the file is truncated or "
                         "damaged); copy or export it again") from exc


def read_raster(path: str | os.PathLike, spacing_mm: float = 1.0, limit: SizeLimit = ANY_IMAGE) -> sitk.Image:
    """PNG / PGM / JPEG / TIFF (8 or 16 bit, grey or RGB) as a one-slice float image; RGB is averaged to grey."""
    path = check_readable(path)
    check_image_file(path, limit)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"{path.name} is not a readable image file (corrupt, truncated, or a variant such as 16-bit "
                         "grey with transparency that cannot be read: save it as a plain greyscale image)") from exc
    if image.GetNumberOfComponentsPerPixel() > 1:  # grey + alpha: the grey; colour: the mean of red, green, blue
        array = sitk.GetArrayFromImage(image).astype(np.float32)
        grey = array[..., 0] if array.shape[-1] == 2 else array[..., :3].mean(axis=-1)
        image = sitk.GetImageFromArray(grey)
    image = sitk.Cast(image, sitk.sitkFloat32)
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    image.SetSpacing((spacing_mm, spacing_mm, 1.0))
    image.SetOrigin((0.0, 0.0, 0.0))
    return image


def read_volume(path: str | os.PathLike, limit: SizeLimit = ANY_IMAGE) -> sitk.Image:
    """NRRD / NIfTI / MetaImage (or one DICOM file) as read by SimpleITK; 2D files get one slice."""
    path = check_readable(path)
    check_image_file(path, limit)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(f"{path.name} could not be read as an image volume (corrupt or unsupported)") from exc
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    if image.GetDimension() != 3:
        raise InputError(f"{path.name} has {image.GetDimension()} dimensions; expected a 2D image or 3D volume")
    check_grid(image, path.name)
    return image


def check_grid(image: sitk.Image, name: str) -> None:
    """Refuse a sheared grid (axes not at right angles) and zero, negative or non-finite spacing: every
    millimetre measured on it would be wrong."""
    direction = np.array(image.GetDirection()).reshape(image.GetDimension(), image.GetDimension())
    spacing = np.array(image.GetSpacing())
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise InputError(f"{name} has a voxel spacing of {' x '.join(f'{v:g}' for v in spacing)} mm; the header is "
                         "damaged: export the image again")
    if not np.all(np.isfinite(direction)) or not np.allclose(direction.T @ direction, np.eye(len(spacing)),
                                                             atol=1e-3):
        raise InputError(f"{name} has a sheared grid (its axes are not at right angles); SmartImaging measures in "
                         "millimetres on right-angled grids: resample it (e.g. in 3D Slicer) or export it again")


def read_series_or_volume(path: str | os.PathLike, limit: SizeLimit = MR_VOLUME) -> sitk.Image:
    """A DICOM series (its folder) or a volume file (NRRD, NIfTI, MetaImage, one DICOM file) with its geometry; the
    size limit is that of an MRI volume unless `limit` says otherwise."""
    path = Path(path)
    if not path.is_dir():
        if limit is MR_VOLUME and path.is_file() and is_dicom(path):
            require_mr(read_dicom_header(path, force=True).ds, path.name)
        return read_volume(path, limit)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(f) for f in dicom_series_files(path, limit)])
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"The DICOM series in {path} could not be read (corrupt or incomplete files)") from exc
    check_grid(image, f"The DICOM series in {path.name}")
    return image


DICOM_SUFFIXES = {".dcm", ".dicom", ".ima"}


def require_mr(ds, name: str) -> None:
    """Refuse a DICOM object of another modality where an MR volume is expected (no Modality: accepted)."""
    modality = str(ds.get("Modality", "")).upper()
    if modality and modality != "MR":
        raise InputError(f"{name} is a {modality} DICOM image; an MR volume (Modality MR) is needed here")
SLICE_STEP_TOLERANCE = 0.1  # a step between neighbouring slices may differ from the usual one by 10 % (+ 0.01 mm)


def dicom_series_files(folder: Path, limit: SizeLimit = MR_VOLUME) -> list[Path]:
    """The files of the one DICOM series in `folder`, in ITK's (GDCM's) slice order, after refusing a damaged,
    truncated or empty file, a series beyond `limit`, and a missing slice (uneven steps of ImagePositionPatient
    along the slice normal). Every header is read with pydicom first: GDCM's own scan of a damaged file can take
    gigabytes."""
    series: dict[str, list[tuple[Path, DicomHeader]]] = {}
    for file in sorted(folder.iterdir()):
        if not file.is_file() or file.name.startswith(".") or not (is_dicom(file) or
                                                                   file.suffix.lower() in DICOM_SUFFIXES):
            continue
        try:
            header = read_dicom_header(file, force=True)
            check_dicom(header, limit)
        except InputError as exc:
            raise InputError(f"In the DICOM series {folder}: {exc}") from exc
        if limit is MR_VOLUME:
            require_mr(header.ds, f"{folder.name}/{file.name}")
        series.setdefault(str(header.ds.get("SeriesInstanceUID", "")), []).append((file, header))
    images = {uid: members for uid, members in series.items() if any(h.image for _, h in members)}
    if not images:
        raise InputError(f"The folder {folder} holds no readable DICOM series")
    if len(images) > 1:
        raise InputError(f"The folder {folder} holds {len(images)} DICOM series; give the folder of one series")
    members = next(iter(images.values()))
    for file, header in members:
        if header.image is None:
            raise InputError(f"In the DICOM series {folder}: {file.name} holds no image data (the file is truncated "
                             "or damaged); copy or export the series again")
    files, headers = [f for f, _ in members], [h.ds for _, h in members]
    _check_geometry_tags(folder, files, headers)
    first = members[0][1].image
    frames = sum(h.image.depth for _, h in members)
    check_size(ImageHeader(f"The DICOM series in {folder}", (*first.sizes[:2], frames), first.voxel_bytes), limit)
    positions = _slice_positions(headers)
    if positions is None:  # GDCM's next orderings: by InstanceNumber, else by file name
        try:
            order = np.argsort([int(h.InstanceNumber) for h in headers], kind="stable")
        except (AttributeError, TypeError, ValueError):
            order = np.arange(len(files))
        return [files[i] for i in order]
    order = np.argsort(positions, kind="stable")
    _check_slice_steps(folder, [files[i].name for i in order], np.diff(np.asarray(positions)[order]))
    return [files[i] for i in order]


def _check_geometry_tags(folder: Path, files: list[Path], headers: list) -> None:
    """Refuse slices that give their position or orientation in some files only, or a PixelSpacing that is not two
    positive numbers: ITK would read another grid than the files describe (after pages of warnings)."""
    for keyword in ("ImagePositionPatient", "ImageOrientationPatient"):
        present = [keyword in ds for ds in headers]
        if any(present) and not all(present):
            raise InputError(f"In the DICOM series {folder}: {files[present.index(False)].name} lacks the {keyword} "
                             "that the other slices have (the header is damaged); copy or export the series again")
    for file, ds in zip(files, headers, strict=True):
        spacing = ds.get("PixelSpacing")
        values = [] if spacing is None else list(spacing) if isinstance(spacing, MutableSequence) else [spacing]
        try:
            good = len(values) == 2 and all(np.isfinite(float(v)) and float(v) > 0 for v in values)
        except (TypeError, ValueError):
            good = False
        if spacing is not None and not good:
            raise InputError(f"In the DICOM series {folder}: the PixelSpacing of {file.name} is "
                             f"{chr(92).join(map(str, values)) or 'empty'}; DICOM gives two positive numbers (row "
                             "and column spacing in mm): the header is damaged, copy or export the series again")


def _check_slice_steps(folder: Path, names: list[str], steps: np.ndarray) -> None:
    """Refuse two slices at one position, or a step between neighbours unlike the others (a missing slice)."""
    if not steps.size:
        return
    same = np.flatnonzero(steps < 1e-3)
    if same.size:
        i = same[0]
        raise InputError(f"The DICOM series in {folder} has two slices at the same position ({names[i]} and "
                         f"{names[i + 1]}): it mixes several acquisitions (phases, echoes or time points); export "
                         "each one as its own series")
    step = float(np.median(steps))
    uneven = np.flatnonzero(np.abs(steps - step) > SLICE_STEP_TOLERANCE * step + 0.01)
    if uneven.size:
        i = uneven[0]
        missing = round(steps[i] / step) - 1
        what = f"{missing} slice{'s' if missing > 1 else ''} missing" if missing >= 1 else "uneven slice spacing"
        raise InputError(f"The DICOM series in {folder} has a gap between {names[i]} and {names[i + 1]}: its slices "
                         f"are {step:.3g} mm apart but these two are {steps[i]:.3g} mm apart ({what}); copy or "
                         "export the complete series again")


def _slice_positions(headers: list) -> list[float] | None:
    """Position of each slice along the normal of the first slice's orientation; None if a file has none."""
    try:
        orientation = np.array([float(v) for v in headers[0].ImageOrientationPatient])
        normal = np.cross(orientation[:3], orientation[3:6])
        positions = [float(normal @ np.array([float(v) for v in ds.ImagePositionPatient])) for ds in headers]
    except (AttributeError, TypeError, ValueError, IndexError):
        return None
    return positions if np.all(np.isfinite(positions)) and np.linalg.norm(normal) > 0.5 else None


def check_finite(array: np.ndarray, what: str) -> None:
    """Raise InputError if the array holds NaN or infinite values."""
    if not np.all(np.isfinite(array)):
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise InputError(f"{what} contains {bad} invalid pixel values (NaN or infinity); the file is damaged")


def same_geometry(a: sitk.Image, b: sitk.Image, tolerance: float = 1e-4) -> bool:
    """True when two images share size, spacing, origin and direction (within tolerance, in mm)."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), atol=tolerance)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), atol=tolerance)
        and np.allclose(a.GetDirection(), b.GetDirection(), atol=tolerance)
    )


def describe_geometry(image: sitk.Image) -> str:
    """Short human description of an image's grid, for error messages."""
    size = "×".join(str(s) for s in image.GetSize())
    spacing = "×".join(f"{s:g}" for s in image.GetSpacing())
    origin = ", ".join(f"{o:g}" for o in image.GetOrigin())
    return f"{size} voxels of {spacing} mm at ({origin})"


RUN_RECORD = ".smartimaging-run.json"  # in a result folder: the files its last run wrote, with their signatures


def _signature(path: Path) -> list[int]:
    """What tells that a file is unchanged since it was written: its size and modification time (ns)."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _last_run_outputs(out_dir: Path) -> dict[str, list[int]]:
    """{plain file name: signature} that a previous run recorded in `out_dir` (a damaged record names nothing)."""
    record = out_dir / RUN_RECORD
    try:
        if not record.is_file() or record.stat().st_size > 2**20:
            return {}
        names = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(names, dict):
        return {}
    return {name: signature for name, signature in names.items() if isinstance(signature, list)
            and name not in ("", ".", "..", RUN_RECORD) and Path(name).name == name}


STALE_SCRATCH_S = 24 * 3600  # a dead process's scratch is removed once untouched this long


def _scratch_beside(parent: Path, prefix: str) -> Path:
    """A new hidden scratch folder in `parent` named `prefix`<host>-<pid>-<random>; first removes the scratch
    folders of that prefix that processes of this host which are gone (a killed training or run) left untouched for
    STALE_SCRATCH_S. <host>: a hash of the full host name (two machines writing to a shared folder never match)."""
    host = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:12]
    left = re.compile(re.escape(f"{prefix}{host}-") + r"([0-9]{1,10})-[a-z0-9_]{8}")
    for stale in parent.glob(f"{prefix}{host}-*"):
        found = left.fullmatch(stale.name)
        try:
            if (found and stale.is_dir() and not stale.is_symlink() and not _process_alive(int(found[1]))
                    and time.time() - stale.lstat().st_mtime > STALE_SCRATCH_S):
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:  # gone meanwhile, or unreadable: left alone
            continue
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{host}-{os.getpid()}-", dir=parent))


def _process_alive(pid: int) -> bool:
    """Whether process `pid` runs (always True on Windows, where signal 0 is not a probe: nothing is removed)."""
    if os.name == "nt" or pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):  # another user's process; a pid beyond the system's range
        return True
    return True


@contextmanager
def new_model_folder(target: Path) -> Iterator[Path]:
    """Yield a hidden scratch folder beside `target` (a model folder of a cohort); when the block succeeds it becomes
    `target` by one rename, refused when a model of that name appeared meanwhile. An error or a cancel leaves no
    model folder and no scratch."""
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = _scratch_beside(target.parent, f".{target.name}.partial-")
    try:
        yield scratch
        try:
            os.rename(scratch, target)
        except OSError as exc:
            raise InputError(f"A model named {target.name} appeared in this cohort meanwhile; choose another "
                             "name") from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def atomic_output_dir(out_dir: str | os.PathLike, one_result: bool = True) -> Iterator[Path]:
    """Yield a scratch folder beside `out_dir`; its files move into `out_dir` only if the block succeeds (no partial
    outputs). A disk error names `out_dir`, not the hidden scratch folder. With `one_result` (a result folder, not a
    folder of models that accumulates) the files the previous run wrote there, unchanged since (same size and
    modification time), and not written again are removed, so two patients' outputs never sit side by side; any
    other file is never touched."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = None
    try:
        scratch = _scratch_beside(out_dir.parent, ".smartimaging-")
        yield scratch
        out_dir.mkdir(parents=True, exist_ok=True)
        names = [item.name for item in scratch.iterdir()]
        for item in scratch.iterdir():
            target = out_dir / item.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(item, target)
        if one_result:
            for name, signature in _last_run_outputs(out_dir).items():
                stale = out_dir / name
                if name not in names and stale.is_file() and not stale.is_symlink() and _signature(stale) == signature:
                    stale.unlink()  # written by the last run and unchanged since: not this run's result
            written = {name: _signature(out_dir / name) for name in names if (out_dir / name).is_file()}
            (out_dir / RUN_RECORD).write_text(json.dumps(written), encoding="utf-8")
    except OSError as exc:
        if scratch is not None and exc.filename and str(scratch) in str(exc.filename):
            exc.filename = str(exc.filename).replace(str(scratch), str(out_dir))
        raise
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def atomic_files(*paths: Path) -> Iterator[list[Path]]:
    """Temporary files beside `paths` (same folder, so the move is atomic) that replace them when the block
    succeeds; a full disk or a cancel never leaves a truncated file, and the temporary files are always removed.
    The temporary names keep the suffix (some writers choose the format by it)."""
    temporary = [path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}") for path in paths]
    try:
        yield temporary
        for temp, path in zip(temporary, paths, strict=True):
            os.replace(temp, path)
    finally:
        for temp in temporary:
            temp.unlink(missing_ok=True)


def _disk_error(path: Path) -> OSError:
    """The error the disk gives now when writing to `path` (disk full, quota, file too large, read-only)."""
    try:
        with open(path, "ab") as f:
            f.write(bytes(1 << 20))
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        exc.filename = exc.filename or str(path)
        return exc
    return OSError(errno.EIO, "the image could not be written", str(path))


@contextmanager
def disk_errors(path: str | os.PathLike) -> Iterator[None]:
    """SimpleITK reports a failed write as a RuntimeError: raise the disk's OSError instead (one line in the CLI)."""
    try:
        yield
    except RuntimeError as exc:
        raise _disk_error(Path(path)) from exc


def free_path(folder: str | os.PathLike, stem: str, suffix: str) -> Path:
    """`folder/<stem><suffix>`, or the first `<stem> (n)<suffix>` (n = 2, 3, ...) where nothing is, not even a
    dangling link (a write would follow it)."""
    path, number = Path(folder) / f"{stem}{suffix}", 1
    while path.exists() or path.is_symlink():
        number += 1
        path = Path(folder) / f"{stem} ({number}){suffix}"
    return path


def write_image(image: sitk.Image, path: str | os.PathLike, compress: bool = True) -> None:
    """sitk.WriteImage with disk errors as OSError. ITK's NIfTI writer does not report a short write (it prints a
    line and returns), so NIfTI files are checked for their full pixel data."""
    with disk_errors(path):
        sitk.WriteImage(image, str(path), compress)
    suffix = file_suffix(path)
    if suffix in (".nii", ".nii.gz"):
        length = 0
        try:
            with gzip.open(path) if suffix == ".nii.gz" else open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    length += len(block)
        except (EOFError, gzip.BadGzipFile) as exc:
            raise _disk_error(Path(path)) from exc
        pixels = image.GetNumberOfPixels() * image.GetNumberOfComponentsPerPixel()
        if length < pixels * image.GetSizeOfPixelComponent():
            raise _disk_error(Path(path))


def write_json(path: str | os.PathLike, record: dict, undefined_as_null: bool = False) -> None:
    """A result as JSON; NaN or infinity is a bug (ValueError, exit 1) unless `undefined_as_null` (metrics that can
    be undefined, e.g. a PPV without positive predictions or the PSNR of identical slices): then it is null."""
    if undefined_as_null:
        record = json.loads(json.dumps(record), parse_constant=lambda name: None)
    Path(path).write_text(json.dumps(record, indent=2, allow_nan=False) + "\n", encoding="utf-8")
