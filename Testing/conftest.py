"""Shared fixtures: paths to ../shared, phantom cases on disk, a headless MRML scene."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REALDATA = Path(os.environ.get("SMARTIMAGING_REALDATA", SHARED / "realdata"))  # see ../shared/realdata/README.md
GE_BONE_SCAN = REPO / "Resources" / "SampleData" / "GE_NM_wholebody_bone.dcm"  # shipped copy (MIT)
GE_BONE_SCAN_SHARED = REALDATA / "bone_scan_nm" / "pydicom_NM_wholebody_bone_uncompressed.dcm"


def require_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs {path} (../shared/realdata beside the repository, or $SMARTIMAGING_REALDATA), which is "
                    "absent")
    return path


@pytest.fixture(scope="session")
def ge_bone_scan() -> Path:
    """The real GE whole-body scan as shipped in Resources/SampleData."""
    return GE_BONE_SCAN


@pytest.fixture(scope="session")
def ge_bone_scan_shared() -> Path:
    return require_shared(GE_BONE_SCAN_SHARED)


@pytest.fixture(scope="session")
def phantom_cohort(tmp_path_factory) -> Path:
    """Six phantom studies (2-frame NM DICOM + NIfTI labels) with a manifest."""
    from smartimaging.bonescan.cohort import write_phantom_cohort

    return write_phantom_cohort(tmp_path_factory.mktemp("cohort"), 6, seed=77, splits={"train": 0.5, "test": 0.5})


@pytest.fixture(scope="session")
def metastatic_case(phantom_cohort) -> dict:
    """The first manifest row of a phantom with metastases (images and mask as absolute paths)."""
    from smartimaging.manifest import read_manifest

    manifest = read_manifest(phantom_cohort)
    row = next(r for r in manifest.rows if int(r["n_lesions"]) >= 2 and r["bladder"] == "1")
    return {**row, "image": manifest.resolve(row["image"]), "mask": manifest.resolve(row["mask"])}


@pytest.fixture()
def scene():
    from smartimaging.mrml import create_headless_scene

    return create_headless_scene()


@pytest.fixture(scope="session")
def ibsi_dir() -> Path:
    return require_shared(SHARED / "ibsi")


@pytest.fixture(scope="session")
def breast1_dir() -> Path:
    return require_shared(REALDATA / "breast_mri_pyradiomics")


@pytest.fixture(scope="session")
def nyu_mammogram() -> tuple[Path, Path]:
    """The NYU (GMIC) right CC mammogram and its benign mass mask (AGPL: read from ../shared, never copied)."""
    folder = require_shared(REALDATA / "mammo_gmic_nyu")
    return folder / "0_R-CC_cropped.png", folder / "0_R-CC_benign_mask.png"
