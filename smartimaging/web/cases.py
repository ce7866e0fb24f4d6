"""Sample cases of the reading station, one list per module, written to files on demand.

Phantoms come from the project's deterministic generators; the real GE bone scan ships in Resources/SampleData;
the real breast MRI (pyradiomics breast1) and the NYU mammogram are offered when ../shared/realdata is present (they
are read from there, never copied into the repository).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[2]
GE_BONE_SCAN = REPO / "Resources" / "SampleData" / "GE_NM_wholebody_bone.dcm"


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

    def write(self, folder: Path) -> CaseFiles:
        """Write the case's files into `folder` (created if needed)."""
        Path(folder).mkdir(parents=True, exist_ok=True)
        return self.writer(Path(folder))


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


def _mammo_nyu(folder: Path) -> CaseFiles:
    from PIL import Image

    source = realdata_folder() / "mammo_gmic_nyu"
    with Image.open(source / "0_R-CC_benign_mask.png") as mask:
        rows, cols = np.nonzero(np.asarray(mask))
    return CaseFiles({"mammogram": source / "0_R-CC_cropped.png"}, (float(cols.mean()), float(rows.mean()), 0.0),
                     "mass", None, ["Point placed at the centre of the radiologist's mass mask shipped with the case"])


def _breast_phantom(seed: int, roles: dict[str, str], lvi: int | None = None, shape=None
                    ) -> Callable[[Path], CaseFiles]:
    """A breast MRI phantom; `roles` maps a role to the phantom's array attribute (t1, dce, dce2, t2)."""
    def write(folder: Path) -> CaseFiles:
        from ..dce.cohort import phantom_image
        from ..phantoms.breast_mri import SHAPE, make_breast_mri_phantom

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
    if (realdata / "breast_mri_pyradiomics" / "breast1_image.nrrd").is_file():
        cases["BreastLVI"].append(SampleCase("BreastLVI", "Real breast MRI (pyradiomics breast1)",
                                             "Real lesion crop (BSD-3), one sequence, LVI status unknown", _breast1))
    return cases
