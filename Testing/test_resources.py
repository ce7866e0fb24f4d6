"""smartimaging.resources: the package's own Resources/ (an installed wheel or Slicer extension) wins, the
checkout's Resources/ is the fallback, and $SMARTIMAGING_MODELS_DIR replaces the models folder."""

import sys
from pathlib import Path

import pytest

from smartimaging import resources
from smartimaging.demo import SAMPLE_DATA
from smartimaging.models.registry import MODELS_DIR, models_dir
from smartimaging.radiomics import MAMMO_PARAMS
from smartimaging.resources import KINDS, resource_dir
from smartimaging.segments import TERMINOLOGY_FILE
from smartimaging.web.cases import GE_BONE_SCAN

CHECKOUT_RESOURCES = Path(__file__).resolve().parents[1] / "Resources"


def test_a_checkout_finds_its_resources_folder():
    for kind in KINDS:
        assert resource_dir(kind) == CHECKOUT_RESOURCES / kind and resource_dir(kind).is_dir()
    assert (MODELS_DIR / "bonescan-unet-demo.json").is_file()
    for path in (MAMMO_PARAMS, TERMINOLOGY_FILE, GE_BONE_SCAN):
        assert path.is_file() and CHECKOUT_RESOURCES in path.parents
    assert SAMPLE_DATA == CHECKOUT_RESOURCES / "SampleData"


@pytest.fixture
def installed_package(tmp_path, monkeypatch):
    """A package on sys.path that carries Models and Terminology as package data, searched first."""
    package = tmp_path / "site" / "installed_smartimaging"
    for kind in ("Models", "Terminology"):
        (package / "Resources" / kind).mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(resources, "PACKAGE", package.name)
    yield package
    sys.modules.pop(package.name, None)


def test_the_package_data_wins_where_it_has_the_kind(installed_package):
    assert resource_dir("Models") == installed_package / "Resources" / "Models"
    assert resource_dir("Terminology") == installed_package / "Resources" / "Terminology"
    assert resource_dir("Radiomics") == CHECKOUT_RESOURCES / "Radiomics"  # not carried: the checkout's


def test_the_models_dir_variable_wins(tmp_path, monkeypatch):
    assert models_dir() == MODELS_DIR
    monkeypatch.setenv("SMARTIMAGING_MODELS_DIR", str(tmp_path))
    assert models_dir() == tmp_path


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown resource kind 'Weights'"):
        resource_dir("Weights")
