"""Faults of the mammography task: SIGTERM to a parallel `mammo extract`, a full disk while its outputs are written,
an unexpected exception in one row; and the mask checks behind the bad-input cases (grid, size, coverage).

SIGTERM is real: sent to a CLI subprocess once its loky workers run; the workers are found through /proc. The disk is
"full" in two ways: a small RLIMIT_FSIZE for one in-process run (real writes fail with EFBIG; Python ignores
SIGXFSZ), and a monkeypatched CSV writer that writes half the file and raises ENOSPC (fault injection).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from badinput import file_size_limit, message_lines

from smartimaging.cli import EXIT_CANCELLED, EXIT_INPUT_ERROR, main
from smartimaging.errors import InputError
from smartimaging.mammo import features
from smartimaging.mammo.features import load_mask
from smartimaging.mammo.images import Mammogram
from smartimaging.mammo.predict import large_roi_warning
from smartimaging.phantoms.mammo import make_mammo_phantom

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """Twelve phantom mammograms (PNG + mask) and their manifest."""
    folder = tmp_path_factory.mktemp("mammo-faults")
    assert main(["mammo", "phantoms", "--out", str(folder), "--n", "12", "--seed", "0"]) == 0
    return folder / "manifest.csv"


@pytest.fixture(scope="module")
def small_cohort(cohort) -> Path:
    """The first three rows of the cohort."""
    lines = cohort.read_text(encoding="utf-8").splitlines(keepends=True)
    path = cohort.with_name("three.csv")
    path.write_text("".join(lines[:4]), encoding="utf-8")
    return path


def _descendants(pid: int) -> set[int]:
    """Every living process below `pid` (children, grandchildren...), read from /proc."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="utf-8").rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def test_sigterm_to_parallel_extract_leaves_no_worker_and_no_output(cohort, tmp_path):
    out = tmp_path / "results" / "features.csv"
    process = subprocess.Popen([sys.executable, "-m", "smartimaging.cli", "mammo", "extract", "--manifest",
                                str(cohort), "--out", str(out), "--jobs", "2", "--quiet"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline, workers = time.monotonic() + 60, set()
    while len(workers) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
        workers = {pid for pid in _descendants(process.pid) if "LokyProcess" in _cmdline(pid)}
    assert len(workers) == 2 and process.poll() is None, f"the workers never ran: {process.communicate()}"
    children = _descendants(process.pid)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == EXIT_CANCELLED, stderr
    lines = message_lines(stderr)
    assert "Traceback" not in stderr and len(lines) == 1 and "cancelled" in lines[0], stderr
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if _alive(pid)], "worker processes outlived the cancelled run"
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def _half_then_disk_full(path, rows):
    Path(path).write_text("patient_id,image\n" + "P0,images/", encoding="utf-8")
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


@pytest.mark.parametrize("fault", ["file size limit (EFBIG)", "ENOSPC while the CSV is written"])
def test_full_disk_during_extract_keeps_the_previous_outputs(small_cohort, tmp_path, capsys, monkeypatch, fault):
    out = tmp_path / "features.csv"
    arguments = ["mammo", "extract", "--manifest", str(small_cohort), "--out", str(out), "--jobs", "1", "--quiet"]
    assert main(arguments) == 0
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert out.stat().st_size > 4000 and len(before) == 2  # features.csv and its settings sidecar
    capsys.readouterr()
    if fault.startswith("ENOSPC"):
        monkeypatch.setattr(features, "write_manifest", _half_then_disk_full)
        code = main(arguments)
    else:
        with file_size_limit(4000):
            code = main(arguments)
    stderr = capsys.readouterr().err
    assert code == EXIT_INPUT_ERROR, stderr
    lines = message_lines(stderr)
    assert "Traceback" not in stderr and len(lines) == 1, stderr
    assert ("disk is full" in lines[0] or "too large" in lines[0]) and "nothing was written" in lines[0]
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before  # no temporary file left


def test_an_unexpected_exception_in_one_row_is_reported_and_the_run_goes_on(small_cohort, tmp_path, capsys,
                                                                            monkeypatch):
    extract_2d = features.extract_2d

    def fails_on_the_second_row(image, mask, parameters):
        if fails_on_the_second_row.calls == 1:
            fails_on_the_second_row.calls += 1
            raise RuntimeError("GLCM matrix is empty")
        fails_on_the_second_row.calls += 1
        return extract_2d(image, mask, parameters)

    fails_on_the_second_row.calls = 0
    monkeypatch.setattr(features, "extract_2d", fails_on_the_second_row)
    out = tmp_path / "features.csv"
    assert main(["mammo", "extract", "--manifest", str(small_cohort), "--out", str(out), "--jobs", "1",
                 "--quiet"]) == 0
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3
    failures = features.failures_file(out).read_text(encoding="utf-8")
    assert "The features could not be computed (RuntimeError: GLCM matrix is empty)" in failures
    assert "warning: row 3 (MG00001): The features could not be computed" in capsys.readouterr().err


def _mammogram(origin=(10.0, -4.0, 0.0), direction=(1, 0, 0, 0, 1, 0, 0, 0, 1), spacing=0.2) -> Mammogram:
    image = sitk.GetImageFromArray(np.random.default_rng(0).uniform(0, 4000, (1, 64, 64)).astype(np.float32))
    image.SetSpacing((spacing, spacing, 1.0))
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return Mammogram(Path("mammogram.nrrd"), image)


def _mask_file(path: Path, mammogram: Mammogram, shift=(0.0, 0.0), direction=None) -> Path:
    mask = np.zeros((1, 64, 64), np.uint8)
    mask[0, 20:30, 20:30] = 1
    image = sitk.GetImageFromArray(mask)
    image.CopyInformation(mammogram.image)
    image.SetOrigin(tuple(np.add(mammogram.image.GetOrigin(), (*shift, 0.0))))
    if direction is not None:
        image.SetDirection(direction)
    sitk.WriteImage(image, str(path))
    return path


def test_a_mask_is_refused_unless_it_lies_on_its_mammograms_grid(tmp_path):
    mammogram = _mammogram()
    assert load_mask(_mask_file(tmp_path / "same.nrrd", mammogram), mammogram).sum() == 100
    assert load_mask(_mask_file(tmp_path / "near.nrrd", mammogram, (0.08, -0.05)), mammogram).sum() == 100
    with pytest.raises(InputError, match="lies 500.0 mm away from its mammogram"):
        load_mask(_mask_file(tmp_path / "far.nrrd", mammogram, (500.0, 0.0)), mammogram)
    with pytest.raises(InputError, match="lies 0.1 mm away"):
        load_mask(_mask_file(tmp_path / "shifted.nrrd", mammogram, (0.0, 0.14)), mammogram)
    with pytest.raises(InputError, match="another origin or orientation"):
        load_mask(_mask_file(tmp_path / "rotated.nrrd", mammogram, direction=(0, 1, 0, -1, 0, 0, 0, 0, 1)),
                  mammogram)
    flipped_image = _mammogram(direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert load_mask(_mask_file(tmp_path / "flipped.nrrd", flipped_image), flipped_image).sum() == 100


def test_an_roi_over_half_the_breast_or_image_is_warned_a_lesion_is_not():
    case = make_mammo_phantom(3, "mass", 1)
    assert large_roi_warning(case.image, case.mask) is None
    assert "the whole image" in large_roi_warning(case.image, np.ones_like(case.mask))
    rows = np.flatnonzero(case.breast.any(axis=1))
    most_of_the_breast = case.breast & (np.arange(case.image.shape[0])[:, None] < rows[int(len(rows) * 0.7)])
    assert "of the breast" in large_roi_warning(case.image, most_of_the_breast.astype(np.uint8))


def test_batch_reports_an_unexpected_exception_as_the_images_error(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from smartimaging.mammo import batch

    folder, masks = tmp_path / "mammograms", tmp_path / "masks"
    folder.mkdir()
    masks.mkdir()
    for name, seed in (("a.png", 5), ("b.png", 6)):
        case = make_mammo_phantom(seed, "mass", 1)
        top, left = (max(centre - 80, 0) for centre in case.centre)
        window = np.s_[top:top + 160, left:left + 160]
        Image.fromarray(case.image[window].round().astype(np.uint16)).save(folder / name)
        Image.fromarray(case.mask[window] * 255).save(masks / name)
    predict = batch.predict_mammogram

    def fails_on_a(mammogram, *args, **kwargs):
        if mammogram.path.name == "a.png":
            raise MemoryError("cannot allocate the texture matrix")
        return predict(mammogram, *args, **kwargs)

    monkeypatch.setattr(batch, "predict_mammogram", fails_on_a)
    out = tmp_path / "out"
    assert main(["mammo", "batch", str(folder), "--kind", "mass", "--masks", str(masks), "--pixel-mm", "0.2",
                 "--device", "cpu", "--out", str(out)]) == 0
    results = (out / "results.csv").read_text(encoding="utf-8")
    assert "The image could not be scored (MemoryError: cannot allocate the texture matrix)" in results
    assert "1 image(s) failed" in capsys.readouterr().err
