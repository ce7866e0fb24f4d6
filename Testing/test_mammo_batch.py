"""`mammo batch` and the `mammo-batch` worker job behind the module's "Batch a folder": per-image rows with errors,
reader masks used when present, no partial outputs on failure or cancel."""

import csv
import hashlib
import json
import shutil
import time

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from smartimaging.cli import main
from smartimaging.mammo.scene import batch_table
from smartimaging.phantoms.mammo import PIXEL_MM, make_mammo_phantom
from smartimaging.worker import WorkerProcess


def _write_png(path, case):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(case.image.round().astype(np.uint16)).save(path)


@pytest.fixture(scope="module")
def reading_folder(tmp_path_factory, ge_bone_scan):
    """Three phantom masses (one in a subfolder, one with a reader mask), a corrupt PNG and a bone scan."""
    root = tmp_path_factory.mktemp("batch")
    folder, masks = root / "mammograms", root / "masks"
    cases = {name: make_mammo_phantom(930_000 + i, "mass", i % 2) for i, name in enumerate(["a", "b", "c"])}
    _write_png(folder / "a.png", cases["a"])
    _write_png(folder / "right" / "b.png", cases["b"])
    _write_png(folder / "c.png", cases["c"])
    (masks / "right").mkdir(parents=True)
    Image.fromarray(cases["b"].mask * 255).save(masks / "right" / "b.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    shutil.copy(ge_bone_scan, folder / "bone_scan.dcm")
    return folder, masks, cases


def _rows(path, key="image"):
    with open(path, encoding="utf-8") as f:
        return {row[key]: row for row in csv.DictReader(f)}


def test_batch_reads_every_image_and_reports_failures_per_row(reading_folder, tmp_path, capsys):
    folder, masks, cases = reading_folder
    out = tmp_path / "out"
    assert main(["mammo", "batch", str(folder), "--kind", "mass", "--masks", str(masks), "--pixel-mm",
                 str(PIXEL_MM), "--out", str(out), "--device", "cpu", "--keep-identifiers"]) == 0
    assert "2 image(s) failed" in capsys.readouterr().err
    rows = _rows(out / "results.csv")
    assert list(rows) == ["a.png", "bone_scan.dcm", "broken.png", "c.png", "right/b.png"]  # in path order
    for number, (name, row) in enumerate(rows.items(), start=1):
        assert row["row"] == str(number) and row["sha256"] == hashlib.sha256((folder / name).read_bytes()).hexdigest()
    assert "damaged or not a valid image file" in rows["broken.png"]["error"]
    assert "needs a mammogram" in rows["bone_scan.dcm"]["error"]
    assert rows["right/b.png"]["roi_source"] == "reader mask"
    assert rows["right/b.png"]["roi_pixels"] == str(int(cases["b"].mask.sum()))
    assert rows["a.png"]["roi_source"] == "AI (whole image)"
    for name in ("a.png", "right/b.png", "c.png"):
        assert rows[name]["error"] == ""
        assert 0.0 <= float(rows[name]["rad_score"]) <= 1.0
        assert rows[name]["label"] == ("malignant" if float(rows[name]["rad_score"]) >= float(rows[name]["cutoff"])
                                       else "benign")
        assert rows[name]["roi"] == f"rois/{rows[name]['row']}.seg.nrrd"  # neutral file names
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / rows[name]["roi"])))
        assert np.count_nonzero(labels) == int(rows[name]["roi_pixels"])
    with open(out / "features.csv", encoding="utf-8") as f:
        features = list(csv.DictReader(f))
    assert len(features) == 3 and len([c for c in features[0] if c.startswith("original_")]) == 102
    assert [row["image"] for row in features] == ["a.png", "c.png", "right/b.png"]


def test_batch_score_equals_single_image_predict(reading_folder, tmp_path):
    folder, masks, _ = reading_folder
    assert main(["mammo", "batch", str(folder / "right"), "--kind", "mass", "--masks", str(masks / "right"),
                 "--pixel-mm", str(PIXEL_MM), "--out", str(tmp_path / "batch"), "--device", "cpu"]) == 0
    assert main(["mammo", "predict", str(folder / "right" / "b.png"), "--kind", "mass", "--mask",
                 str(masks / "right" / "b.png"), "--pixel-mm", str(PIXEL_MM), "--out", str(tmp_path / "one"),
                 "--device", "cpu"]) == 0
    single = json.loads((tmp_path / "one" / "result.json").read_text(encoding="utf-8"))
    assert float(_rows(tmp_path / "batch" / "results.csv", "row")["1"]["rad_score"]) == pytest.approx(
        single["rad_score"], abs=1e-4)


def test_a_folder_without_any_readable_mammogram_is_refused(reading_folder, tmp_path, capsys):
    folder, _, _ = reading_folder
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    shutil.copy(folder / "broken.png", only_bad / "broken.png")
    assert main(["mammo", "batch", str(only_bad), "--kind", "mass", "--out", str(tmp_path / "out")]) == 2
    assert "None of the 1 images" in capsys.readouterr().err
    assert main(["mammo", "batch", str(tmp_path / "empty"), "--kind", "mass", "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()


def test_worker_batch_reports_progress_and_cancel_leaves_nothing(reading_folder, tmp_path, scene):
    folder, masks, _ = reading_folder
    out = tmp_path / "done"
    worker = WorkerProcess("mammo-batch", ["--input", str(folder), "--output-dir", str(out), "--kind", "mass",
                                           "--masks", str(masks), "--pixel-mm", str(PIXEL_MM), "--device", "cpu"])
    events = worker.wait(timeout=300)
    assert worker.process.returncode == 0, worker.stderr
    fractions = [e["fraction"] for e in events if e["event"] == "progress"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) == 6
    result = next(e for e in events if e["event"] == "result")
    assert (result["images"], result["failed"]) == (5, 2)
    table = batch_table(scene, result["results"])
    assert table.GetNumberOfRows() == 5
    columns = [table.GetColumnName(i) for i in range(table.GetNumberOfColumns())]
    assert columns[:5] == ["row", "sha256", "roi", "kind", "roi_source"]  # no file names: they may name patients
    errors = [table.GetCellText(row, columns.index("error")) for row in range(5)]
    assert sum(bool(text) for text in errors) == 2

    many = tmp_path / "many"
    many.mkdir()
    for index in range(40):
        shutil.copy(folder / "a.png", many / f"{index:02d}.png")
    cancelled = tmp_path / "cancelled"
    worker = WorkerProcess("mammo-batch", ["--input", str(many), "--output-dir", str(cancelled), "--kind", "mass",
                                           "--device", "cpu"])
    deadline = time.monotonic() + 120
    while not any(e["event"] == "progress" and e["fraction"] > 0 for e in worker.poll()):
        assert time.monotonic() < deadline and not worker.finished, worker.stderr
        time.sleep(0.05)
    worker.cancel()
    assert worker.finished and worker.process.returncode != 0
    assert not cancelled.exists()
    assert not list(tmp_path.glob(".smartimaging-*"))
