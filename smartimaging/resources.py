"""Where the project's resources are: Models (cards and weights), Radiomics (pyradiomics parameter files),
SampleData and Terminology.

An installed package (a wheel, a built Slicer extension) carries them as package data in `smartimaging/Resources/`,
the checkout's `Resources/` folder copied beside the code; a checkout has only the `Resources/` folder at the
repository root. The package's copy wins when it has the kind asked for. Resources are read as files (SimpleITK,
pyradiomics and Slicer take paths), so the package must be installed unpacked, as pip and Slicer install it.
`$SMARTIMAGING_MODELS_DIR` replaces the models folder (`smartimaging.models.registry.models_dir`).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

KINDS = ("Models", "Radiomics", "SampleData", "Terminology")
PACKAGE = __package__  # the package whose data is searched first
PACKAGE_FOLDER = "Resources"  # its data folder
CHECKOUT = Path(__file__).resolve().parents[1] / "Resources"


def resource_dir(kind: str) -> Path:
    """The folder of one kind of resource: the package's own copy when it carries one, else the checkout's."""
    if kind not in KINDS:
        raise ValueError(f"unknown resource kind {kind!r}; one of {', '.join(KINDS)}")
    packaged = files(PACKAGE) / PACKAGE_FOLDER / kind
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return CHECKOUT / kind
