"""Mammography phantoms and cohort feature extraction (`smartimaging mammo phantoms / extract`)."""

import csv
import dataclasses
import json

import numpy as np
import pytest
from scipy import ndimage

from smartimaging.cli import main
from smartimaging.errors import InputError
from smartimaging.mammo.classify import reader_labels
from smartimaging.mammo.cohort import READER_PERFORMANCE, simulated_birads
from smartimaging.mammo.features import load_mask
from smartimaging.mammo.images import load_mammogram
from smartimaging.manifest import write_manifest
from smartimaging.phantoms.mammo import make_mammo_phantom
from smartimaging.radiomics import bin_counts, extract_2d, parameter_settings


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


@pytest.mark.parametrize("kind", ["mass", "calcification"])
def test_simulated_reader_matches_the_papers_readers_and_the_morphology(kind):
    template = make_mammo_phantom(300, kind, 0)
    benign = {"mass": "round circumscribed mass", "calcification": "coarse round scattered calcifications"}[kind]
    malignant = {"mass": "spiculated mass", "calcification": "fine pleomorphic / linear clustered calcifications"}
    cases = [dataclasses.replace(template, label=i % 2, description=malignant[kind] if i % 2 else benign)
             for i in range(4000)]
    categories = np.array([simulated_birads(case, seed) for seed, case in enumerate(cases)])
    called = reader_labels(list(categories))
    labels = np.array([case.label for case in cases])
    sensitivity, specificity = READER_PERFORMANCE[kind]
    assert called[labels == 1].mean() == pytest.approx(sensitivity, abs=0.03)
    assert 1 - called[labels == 0].mean() == pytest.approx(specificity, abs=0.03)
    assert set(categories[(labels == 1) & (called == 1)]) == {"5"}
    assert set(categories[(labels == 0) & (called == 0)]) <= {"2", "3"}


@pytest.fixture(scope="module")
def mammo_cohort(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mammo")
    assert main(["mammo", "phantoms", "--out", str(folder), "--n", "6", "--seed", "4"]) == 0
    return folder / "manifest.csv"


def _read(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_extract_in_parallel_equals_sequential(mammo_cohort, tmp_path):
    assert main(["mammo", "extract", "--manifest", str(mammo_cohort), "--out", str(tmp_path / "p.csv"),
                 "--jobs", "2", "--quiet"]) == 0
    assert main(["mammo", "extract", "--manifest", str(mammo_cohort), "--out", str(tmp_path / "s.csv"),
                 "--jobs", "1", "--quiet"]) == 0
    parallel, sequential = _read(tmp_path / "p.csv"), _read(tmp_path / "s.csv")
    assert parallel == sequential and len(parallel) == 6
    assert all(row["birads"] in {"2", "3", "4a", "4b", "4c", "5"} for row in parallel)
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


def test_shipped_bin_width_gives_30_to_130_bins_on_phantoms_and_the_real_mammogram(nyu_mammogram, capsys):
    widths = [1, 5, 25]
    counts = [bin_counts(case.image, case.mask, widths)
              for case in (make_mammo_phantom(600 + seed, kind, seed % 2) for seed in range(12)
                           for kind in ("mass", "calcification"))]
    shipped = parameter_settings()["setting"]["binWidth"]
    assert shipped == 5
    assert np.mean([30 <= c[shipped] <= 130 for c in counts]) >= 0.9
    assert np.mean([30 <= c[1] <= 130 for c in counts]) < 0.2  # the study discriminates
    image, mask = nyu_mammogram
    mammogram = load_mammogram(image)
    assert 30 <= bin_counts(mammogram.image, load_mask(mask, mammogram), [shipped])[shipped] <= 130


def test_bin_study_command_recommends_a_width_in_range(mammo_cohort, tmp_path, capsys):
    assert main(["mammo", "bin-study", "--manifest", str(mammo_cohort), "--widths", "1,5,50",
                 "--out", str(tmp_path / "study.json")]) == 0
    assert "recommended bin width: 5" in capsys.readouterr().out
    study = json.loads((tmp_path / "study.json").read_text(encoding="utf-8"))
    assert [row["bin_width"] for row in study["widths"]] == [1, 5, 50] and study["rois"] == 6
