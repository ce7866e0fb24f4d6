"""Faults and privacy of `dce`, `lvi` and `bonescan`: SIGTERM while results are written, a full disk, and outputs
free of patient identifiers.

Faults are real where the system allows: SIGTERM is sent to a CLI subprocess while it writes (the test waits for
its hidden scratch folder to appear); the disk is "full" through a small RLIMIT_FSIZE for the duration of one run
(real writes by ITK fail with EFBIG, as they would with ENOSPC; Python ignores SIGXFSZ); ENOSPC itself is raised by
a monkeypatched PNG writer.
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from badinput import file_size_limit, message_lines

from smartimaging.bonescan.views import write_nm_dicom
from smartimaging.cli import EXIT_CANCELLED, EXIT_INPUT_ERROR, main
from smartimaging.dce.synthesis import MODEL_ID
from smartimaging.io import write_image, write_json
from smartimaging.models.nets import build_network
from smartimaging.models.registry import save_model
from smartimaging.phantoms.bonescan import make_bone_scan_phantom
from smartimaging.phantoms.breast_mri import make_breast_mri_phantom

REPO = Path(__file__).resolve().parents[1]
PATIENT_ID, PATIENT_NAME = "ID-4711-PRIVATE", "Doe^Jane^Private"


@pytest.fixture(scope="module")
def tiny_dce_model(tmp_path_factory) -> Path:
    """A small random generator under the demo id: the mechanics, not the quality."""
    folder = tmp_path_factory.mktemp("dce-model")
    torch.manual_seed(0)
    architecture = {"name": "pix2pix_unet", "in_channels": 1, "out_channels": 1, "ngf": 4, "depth": 5}
    save_model(build_network(architecture), {"id": MODEL_ID, "version": "0.0.1", "task": "dce-synthesis",
                                             "architecture": architecture, "inputs": {}, "outputs": {},
                                             "intended_use": "test"}, folder)
    return folder


def _write_t1(path: Path, shape: tuple[int, int, int]) -> Path:
    image = sitk.GetImageFromArray(np.random.default_rng(1).uniform(0, 800, shape).astype(np.float32))
    image.SetSpacing((0.8, 0.8, 1.5))
    sitk.WriteImage(image, str(path))
    return path


def _cli(*arguments) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "smartimaging.cli", *map(str, arguments)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environment)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".smartimaging-"))


def test_sigterm_while_dce_writes_leaves_no_scratch_and_no_output(tiny_dce_model, tmp_path):
    t1 = _write_t1(tmp_path / "t1.nrrd", (16, 192, 192))  # 3 volumes of 2.4 MB to compress: ~2 s of writing
    out = tmp_path / "results" / "out"
    out.parent.mkdir()
    process = _cli("dce", "synthesize", t1, "--out", out, "--models-dir", tiny_dce_model, "--device", "cpu",
                   "--quiet")
    deadline = time.monotonic() + 120
    while not _leftovers(out.parent) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _leftovers(out.parent), f"the scratch folder never appeared: {process.communicate()}"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == EXIT_CANCELLED, stderr
    lines = message_lines(stderr)
    assert "Traceback" not in stderr and len(lines) == 1 and "cancelled" in lines[0], stderr
    assert list(out.parent.iterdir()) == []


def test_full_disk_during_dce_synthesis_is_one_line_and_leaves_nothing(tiny_dce_model, tmp_path, capsys):
    t1 = _write_t1(tmp_path / "t1.nrrd", (8, 96, 96))  # outputs of ~300 KB each, over the 64 KB limit
    out = tmp_path / "results" / "out"
    out.parent.mkdir()
    with file_size_limit(64_000):
        code = main(["dce", "synthesize", str(t1), "--out", str(out), "--models-dir", str(tiny_dce_model),
                     "--device", "cpu", "--quiet"])
    stderr = capsys.readouterr().err
    assert code == EXIT_INPUT_ERROR, stderr
    lines = message_lines(stderr)
    assert "Traceback" not in stderr and len(lines) == 1, stderr
    assert lines[0].startswith("error:") and "too large" in lines[0] and "nothing was written" in lines[0]
    assert list(out.parent.iterdir()) == []


def test_nifti_short_write_is_reported(tmp_path):
    """ITK's NIfTI writer prints an error and returns on a short write; `write_image` raises the disk's error."""
    image = sitk.GetImageFromArray(np.random.default_rng(0).random((4, 64, 64)).astype(np.float32))
    with file_size_limit(20_000), pytest.raises(OSError) as error:
        write_image(image, tmp_path / "labels.nii.gz")
    assert error.value.errno == errno.EFBIG


def test_disk_full_while_writing_the_mip_png_unwinds(tiny_dce_model, tmp_path, monkeypatch, capsys):
    from smartimaging.dce import synthesis

    def full_disk(mip, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(synthesis, "_mip_png", full_disk)
    t1 = _write_t1(tmp_path / "t1.nrrd", (4, 48, 48))
    out = tmp_path / "results" / "out"
    out.parent.mkdir()
    assert main(["dce", "synthesize", str(t1), "--out", str(out), "--models-dir", str(tiny_dce_model), "--device",
                 "cpu", "--quiet"]) == EXIT_INPUT_ERROR
    lines = message_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith(f"error: the disk is full writing {out}/")  # not the scratch
    assert list(out.parent.iterdir()) == []


DATA_URI = re.compile(r"data:image/png;base64,[A-Za-z0-9+/=]+")


def _output_text(folder: Path) -> str:
    """Every output file as text (gzip-compressed NIfTI decompressed), to search for identifiers."""
    texts = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
        texts.append(DATA_URI.sub("", data.decode("latin-1")))  # report.html's pictures: base64 may spell anything
    return "\n".join(texts)


def _assert_no_identifiers(folder: Path) -> None:
    text = _output_text(folder)
    for identifier in (PATIENT_ID, "Doe", "Private"):
        assert identifier not in text


@pytest.fixture(scope="module")
def identified_bone_scan(tmp_path_factory) -> Path:
    """A phantom NM DICOM carrying a patient ID, name, birth date and accession number (file name neutral)."""
    import pydicom

    path = tmp_path_factory.mktemp("nm") / "scan.dcm"
    phantom = make_bone_scan_phantom(3)
    write_nm_dicom(path, phantom.views, PATIENT_ID, 61)
    ds = pydicom.dcmread(str(path))
    ds.PatientName, ds.PatientBirthDate, ds.AccessionNumber = PATIENT_NAME, "19640203", "ACC-Private-1"
    ds.save_as(str(path))
    return path


def test_bone_scan_outputs_carry_no_identifiers_unless_asked(identified_bone_scan, tmp_path):
    assert main(["bonescan", "predict", str(identified_bone_scan), "--out", str(tmp_path / "plain"), "--device",
                 "cpu"]) == 0
    _assert_no_identifiers(tmp_path / "plain")
    study = json.loads((tmp_path / "plain" / "result.json").read_text(encoding="utf-8"))["study"]
    assert study == {"modality": "NM", "manufacturer": "SmartImaging phantom", "age": 61}
    assert main(["bonescan", "predict", str(identified_bone_scan), "--out", str(tmp_path / "kept"), "--device",
                 "cpu", "--keep-identifiers"]) == 0
    study = json.loads((tmp_path / "kept" / "result.json").read_text(encoding="utf-8"))["study"]
    assert study["patient_id"] == PATIENT_ID and study["patient_name"] == PATIENT_NAME
    assert study["birth_date"] == "19640203" and study["accession_number"] == "ACC-Private-1"


def _identified(image: sitk.Image) -> sitk.Image:
    """The image with DICOM identifiers in its key/value metadata, as some converters write them into NRRD."""
    for key, value in (("PatientID", PATIENT_ID), ("PatientName", PATIENT_NAME), ("0010|0010", PATIENT_NAME)):
        image.SetMetaData(key, value)
    return image


def test_mri_outputs_carry_no_identifiers_from_nrrd_metadata(tiny_dce_model, tmp_path):
    case = make_breast_mri_phantom(31, (16, 64, 64), lvi=1)
    paths = {}
    for name, array in (("t1", case.t1), ("dce", case.dce2), ("voi", (case.lesions > 0).astype(np.uint8))):
        image = _identified(sitk.GetImageFromArray(array))
        image.SetSpacing((1.5, 1.5, 3.0))
        paths[name] = tmp_path / f"{name}.nrrd"
        sitk.WriteImage(image, str(paths[name]), True)
    assert PATIENT_ID in paths["t1"].read_bytes().decode("latin-1")
    assert main(["dce", "synthesize", str(paths["t1"]), "--out", str(tmp_path / "dce"), "--models-dir",
                 str(tiny_dce_model), "--device", "cpu", "--quiet"]) == 0
    assert main(["lvi", "predict", "--dce", str(paths["dce"]), "--voi", str(paths["voi"]), "--models",
                 "lvi-dce-resnet10-3d-demo", "--out", str(tmp_path / "lvi")]) == 0
    k, j, i = np.argwhere(case.lesions > 0).mean(axis=0)
    point = ",".join(f"{v:.1f}" for v in (1.5 * i, 1.5 * j, 3.0 * k))
    assert main(["lvi", "segment", str(paths["dce"]), "--point", point, "--out", str(tmp_path / "voi")]) == 0
    for folder in ("dce", "lvi", "voi"):
        _assert_no_identifiers(tmp_path / folder)


def test_whole_volume_voi_is_scored_with_a_warning_kept_in_result_json(tmp_path, capsys):
    from cases_mri import _lvi_predict

    assert main(_lvi_predict(tmp_path, voi=np.ones_like)) == 0
    assert any(line.startswith("warning: the VOI covers 100%") for line in message_lines(capsys.readouterr().err))
    record = json.loads((tmp_path / "out" / "result.json").read_text(encoding="utf-8"))
    assert any("trained on VOIs around one lesion" in warning for warning in record["warnings"])


def test_results_never_hold_nan(tmp_path):
    with pytest.raises(ValueError):
        write_json(tmp_path / "result.json", {"probability": float("nan")})
    assert not (tmp_path / "result.json").exists()
    write_json(tmp_path / "evaluation.json", {"ppv_ci": [float("nan"), 1.0]}, undefined_as_null=True)
    assert json.loads((tmp_path / "evaluation.json").read_text(encoding="utf-8")) == {"ppv_ci": [None, 1.0]}
