"""Mammography phantoms and cohort feature extraction (`smartimaging mammo phantoms / extract`)."""

import csv

import numpy as np
import pytest
from scipy import ndimage

from smartimaging.cli import main
from smartimaging.errors import InputError
from smartimaging.mammo.features import load_mask
from smartimaging.mammo.images import load_mammogram
from smartimaging.manifest import write_manifest
from smartimaging.phantoms.mammo import make_mammo_phantom
from smartimaging.radiomics import extract_2d


def test_phantoms_are_deterministic_with_lesion_inside_the_breast():
    a, b = make_mammo_phantom(7), make_mammo_phantom(7)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)
    for seed in range(6):
        case = make_mammo_phantom(seed)
        assert case.mask.sum() > 0
        assert not np.any(case.mask.astype(bool) & ~case.breast)
        assert case.mask[case.centre] or case.kind == "calcification"


def test_malignant_masses_are_less_round_than_benign():
    def sphericity(label):
        values = []
        for seed in range(5):
            case = make_mammo_phantom(100 + seed, "mass", label)
            values.append(extract_2d(case.image, case.mask)["original_shape2D_Sphericity"])
        return np.mean(values)
    assert sphericity(0) > sphericity(1) + 0.05


def test_malignant_calcifications_are_more_numerous_and_smaller():
    def spots(label):
        counts, sizes = [], []
        for seed in range(5):
            labelled, n = ndimage.label(make_mammo_phantom(200 + seed, "calcification", label).mask)
            counts.append(n)
            sizes.append(np.bincount(labelled.ravel())[1:].mean())
        return np.mean(counts), np.mean(sizes)
    (benign_count, benign_size), (malignant_count, malignant_size) = spots(0), spots(1)
    assert malignant_count > benign_count and malignant_size < benign_size


@pytest.fixture(scope="module")
def mammo_cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mammo")
    assert main(["mammo", "phantoms", "--out", str(folder), "--n", "6", "--seed", "4"]) == 0
    return folder / "manifest.csv"


def _read(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_extract_in_parallel_equals_sequential(mammo_cohort, tmp_path):
    assert main(["mammo", "extract", "--manifest", str(mammo_cohort), "--out", str(tmp_path / "p.csv"),
                 "--jobs", "2", "--quiet"]) == 0
    assert main(["mammo", "extract", "--manifest", str(mammo_cohort), "--out", str(tmp_path / "s.csv"),
                 "--jobs", "1", "--quiet"]) == 0
    parallel, sequential = _read(tmp_path / "p.csv"), _read(tmp_path / "s.csv")
    assert parallel == sequential and len(parallel) == 6
    features = [c for c in parallel[0] if c.startswith("original_")]
    assert len(features) == 102
    spacing_mm = float(parallel[0]["pixel_mm"])
    mask = load_mask(mammo_cohort.parent / parallel[0]["mask"],
                     load_mammogram(mammo_cohort.parent / parallel[0]["image"]))
    assert float(parallel[0]["original_shape2D_PixelSurface"]) == pytest.approx(mask.sum() * spacing_mm**2)
    assert not (tmp_path / "p.failures.csv").exists()


def test_failed_rows_are_reported_not_dropped(mammo_cohort, tmp_path, capsys):
    rows = _read(mammo_cohort)
    rows[1]["image"] = "images/missing.png"
    rows[2]["mask"] = rows[3]["mask"].replace(".png", "_absent.png")
    broken = mammo_cohort.parent / "broken.csv"
    write_manifest(broken, rows)
    assert main(["mammo", "extract", "--manifest", str(broken), "--out", str(tmp_path / "f.csv"), "--quiet"]) == 0
    assert len(_read(tmp_path / "f.csv")) == 4
    failures = _read(tmp_path / "f.failures.csv")
    assert [f["row"] for f in failures] == ["3", "4"]
    assert "not found" in failures[0]["error"]
    assert "2 row(s) failed" in capsys.readouterr().err


def test_all_rows_failing_exits_2(mammo_cohort, tmp_path):
    rows = _read(mammo_cohort)
    for row in rows:
        row["mask"] = "masks/none.png"
    broken = mammo_cohort.parent / "allbroken.csv"
    write_manifest(broken, rows)
    assert main(["mammo", "extract", "--manifest", str(broken), "--out", str(tmp_path / "x.csv"), "--quiet"]) == 2
    assert not (tmp_path / "x.csv").exists()


def test_mask_of_another_size_is_refused(tmp_path):
    from PIL import Image

    case = make_mammo_phantom(1)
    Image.fromarray(case.image.astype(np.uint16)).save(tmp_path / "m.png")
    Image.fromarray(case.mask[:-10] * 255).save(tmp_path / "mask.png")
    with pytest.raises(InputError, match="is 480×630 pixels but its mammogram is 480×640"):
        load_mask(tmp_path / "mask.png", load_mammogram(tmp_path / "m.png"))
