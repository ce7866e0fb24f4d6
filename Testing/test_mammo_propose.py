"""`mammo propose` and the `mammo-propose` worker job: the lesion U-Net proposes every row's ROI (rois/ + a manifest
that `extract` reads), Dice against the input mask, the simulated reader corrects the lowest-Dice rows, refusals
leave nothing behind."""

import csv
from pathlib import Path

import numpy as np
import pytest

from smartimaging.cli import main
from smartimaging.errors import InputError
from smartimaging.evaluation import dice
from smartimaging.mammo.cohort import write_mammo_phantom_cohort
from smartimaging.mammo.features import load_mask
from smartimaging.mammo.images import load_mammogram
from smartimaging.mammo.propose import corrected_rows, propose_cohort
from smartimaging.mammo.realistic import reader_click
from smartimaging.manifest import read_manifest, write_manifest
from smartimaging.phantoms.mammo import PIXEL_MM
from smartimaging.worker import WorkerProcess


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Five phantom masses (900_200+); row 4 has no centre_row,centre_col (the click goes inside its mask)."""
    folder = tmp_path_factory.mktemp("propose") / "cohort"
    manifest = write_mammo_phantom_cohort(folder, 5, seed=9002, kind="mass")
    rows = read_manifest(manifest).rows
    rows[2]["centre_row"] = rows[2]["centre_col"] = ""
    write_manifest(manifest, rows)
    return manifest


@pytest.fixture(scope="module")
def proposed(cohort):
    out = cohort.parent.parent / "proposed"
    assert main(["mammo", "propose", "--manifest", str(cohort), "--out", str(out), "--correct-fraction", "0.4",
                 "--device", "cpu"]) == 0
    return out


def _rows(path):
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_every_row_gets_the_ai_roi_its_dice_and_paths_relative_to_the_new_manifest(cohort, proposed):
    given, rows = read_manifest(cohort).rows, _rows(proposed / "manifest.csv")
    assert [row["patient_id"] for row in rows] == [row["patient_id"] for row in given]
    assert sorted(path.name for path in (proposed / "rois").iterdir()) == [f"{i}.seg.nrrd" for i in range(1, 6)]
    assert not (proposed / "images").exists()  # images are referenced, not copied
    for number, (row, source) in enumerate(zip(rows, given, strict=True), start=1):
        assert (proposed / row["image"]).resolve() == (cohort.parent / source["image"]).resolve()
        assert row["image"].startswith("../cohort/images/")
        assert (proposed / row["reference_mask"]).resolve() == (cohort.parent / source["mask"]).resolve()
        assert row["ai_mask"] == f"rois/{number}.seg.nrrd"
        assert row["label"] == source["label"] and row["kind"] == "mass"
        mammogram = load_mammogram(proposed / row["image"], PIXEL_MM)
        roi = load_mask(proposed / row["ai_mask"], mammogram)  # the ROI lies on the mammogram's grid
        reference = load_mask(proposed / row["reference_mask"], mammogram)
        assert float(row["dice_ai_vs_reference"]) == pytest.approx(dice(roi, reference), abs=1e-4)
        assert float(row["dice_ai_vs_reference"]) > 0.7
        assert row["roi_source"] in ("AI", "corrected")


def test_the_click_is_the_centre_else_inside_the_mask(cohort, tmp_path, monkeypatch):
    from smartimaging.mammo import propose

    clicks = []
    real = propose.propose_roi
    monkeypatch.setattr(propose, "propose_roi", lambda *a, **k: clicks.append(a[3]) or real(*a, **k))
    propose_cohort(cohort, tmp_path / "again", device="cpu")
    given = read_manifest(cohort).rows
    centres = [(float(row["centre_row"]), float(row["centre_col"])) for row in given if row["centre_row"]]
    mammogram = load_mammogram(cohort.parent / given[2]["image"], PIXEL_MM)
    inside = reader_click(load_mask(cohort.parent / given[2]["mask"], mammogram) > 0)
    assert clicks == [*centres[:2], inside, *centres[2:]]
    assert _rows(tmp_path / "again" / "manifest.csv")[2]["roi_source"] == "AI"  # fraction 0: none corrected


def test_the_simulated_reader_corrects_the_lowest_dice_rows(proposed):
    rows = _rows(proposed / "manifest.csv")
    dices = [float(row["dice_ai_vs_reference"]) for row in rows]
    corrected = [index for index, row in enumerate(rows) if row["roi_source"] == "corrected"]
    assert len(corrected) == 2 and sorted(dices)[:2] == sorted(dices[i] for i in corrected)
    for index, row in enumerate(rows):
        assert row["mask"] == (row["reference_mask"] if index in corrected else row["ai_mask"])
    assert corrected_rows([0.9, 0.5, 0.5, 0.7], 0.5) == [1, 2]  # ties: the earlier row first
    assert corrected_rows([0.9, 0.5, 0.7], 0.1) == [1]  # a positive fraction corrects at least one row
    assert corrected_rows([0.9, 0.5], 0.0) == []


def test_extract_reads_the_proposed_rois(proposed, tmp_path):
    """The features come from `mask`: the AI ROI of an uncorrected row, the reference of a corrected one."""
    features = tmp_path / "features.csv"
    assert main(["mammo", "extract", "--manifest", str(proposed / "manifest.csv"), "--out", str(features),
                 "--jobs", "1", "--quiet"]) == 0
    for row in _rows(features):
        mammogram = load_mammogram(proposed / row["image"], PIXEL_MM)
        roi = load_mask(proposed / row["mask"], mammogram)
        assert float(row["original_shape2D_PixelSurface"]) == pytest.approx(roi.sum() * PIXEL_MM**2)
        if row["roi_source"] == "AI":
            assert not np.array_equal(roi, load_mask(proposed / row["reference_mask"], mammogram))


def test_worker_job_proposes_with_progress(cohort, tmp_path):
    out = tmp_path / "worklist"
    worker = WorkerProcess("mammo-propose", ["--manifest", str(cohort), "--output-dir", str(out), "--device", "cpu",
                                             "--correct-fraction", "0.2"])
    events = worker.wait(timeout=300)
    assert worker.process.returncode == 0, worker.stderr
    fractions = [e["fraction"] for e in events if e["event"] == "progress"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) == 6
    result = next(e for e in events if e["event"] == "result")
    assert (result["rows"], result["ai"], result["corrected"]) == (5, 5, 1)
    assert result["manifest"] == str(out / "manifest.csv") and 0.7 < result["mean_dice"] <= 1
    assert [row["roi_source"] for row in _rows(out / "manifest.csv")].count("corrected") == 1


def _bad_manifest(cohort, name, **cells):
    """The cohort's manifest beside its images with row 3 (CSV line 4) changed."""
    rows = read_manifest(cohort).rows
    rows[2].update(cells)
    path = cohort.parent / f"{name}.csv"
    write_manifest(path, rows)
    return path


@pytest.mark.parametrize(("cells", "options", "expect"), [
    ({"centre_row": "", "centre_col": "", "mask": ""}, [], "Row 4: no centre_row,centre_col and no mask"),
    ({"centre_row": "40", "centre_col": "9000"}, [], "Row 4 (MG900200002): The marked point (x 9000, y 40) lies "
                                                     "outside the image"),
    ({"centre_row": "40", "centre_col": ""}, [], "Row 4: give both centre_row and centre_col"),
    ({"kind": "lipoma"}, [], "Row 4: its kind is 'lipoma'"),
    ({"mask": ""}, ["--correct-fraction", "0.1"], "--correct-fraction needs every row's reference mask"),
    ({}, ["--correct-fraction", "1.5"], "1.5 is not a fraction (0 to 1)"),
])
def test_bad_input_is_refused_and_leaves_the_previous_output(cohort, proposed, tmp_path, capsys, cells, options,
                                                              expect):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier", encoding="utf-8")
    manifest = _bad_manifest(cohort, tmp_path.name, **cells)
    capsys.readouterr()
    assert main(["mammo", "propose", "--manifest", str(manifest), "--out", str(out), "--device", "cpu",
                 *options]) == 2
    assert expect in capsys.readouterr().err
    assert [path.name for path in out.iterdir()] == ["keep.txt"]
    assert not list(tmp_path.glob(".smartimaging-*"))


def test_the_input_folder_is_never_the_output(cohort, capsys):
    before = cohort.read_bytes()
    assert main(["mammo", "propose", "--manifest", str(cohort), "--out", str(cohort.parent), "--device", "cpu"]) == 2
    assert "holds the input" in capsys.readouterr().err
    with pytest.raises(InputError, match="is the input manifest's folder"):
        propose_cohort(cohort, cohort.parent, device="cpu")  # the worker job's way in
    assert cohort.read_bytes() == before


def test_the_worker_job_never_writes_over_inputs_elsewhere(cohort, tmp_path):
    """An --output-dir that holds the masks the manifest names (absolute paths, the manifest elsewhere): refused,
    the masks untouched (was: the job replaced the rois/ folder the masks were in)."""
    masks = tmp_path / "work" / "rois"
    masks.mkdir(parents=True)
    rows = read_manifest(cohort).rows
    for row in rows:
        copy = masks / Path(row["mask"]).name
        copy.write_bytes((cohort.parent / row["mask"]).read_bytes())
        row["image"], row["mask"] = str((cohort.parent / row["image"]).resolve()), str(copy)
    manifest = tmp_path / "elsewhere" / "manifest.csv"
    manifest.parent.mkdir()
    write_manifest(manifest, rows)
    before = sorted(path.name for path in masks.iterdir())
    worker = WorkerProcess("mammo-propose", ["--manifest", str(manifest), "--output-dir", str(masks.parent),
                                             "--device", "cpu"])
    events = worker.wait(timeout=300)
    assert any(e["event"] == "error" and "holds the input" in e["message"] for e in events), events
    assert sorted(path.name for path in masks.iterdir()) == before
