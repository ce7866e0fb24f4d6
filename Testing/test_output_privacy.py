"""File and folder names often name the patient: no output of a predict command (`bonescan predict`, `bonescan bstbi`,
`mammo predict`, `lvi predict`, `dce synthesize`) or of `mammo batch` carries them, neither in its file names nor in
its content (result.json, CSVs, report.html, NRRD/NIfTI headers, DICOM SEG/SR/series), unless asked for with
`--keep-identifiers`. result.json records each input by its sha256 (a folder: of its `sha256sum` listing), and its
path as given only with `--keep-identifiers`; a batch row gives its number and sha256, and the image's name only
with `--keep-identifiers`. Output file names are neutral either way."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from smartimaging.cli import main

PATIENT = "Zwicklbauer_Jessamine_PID48213"  # the inputs' file and folder names
FRAGMENTS = ("zwicklbauer", "jessamine", "pid48213")  # long enough never to occur by chance in binary data
DATA_URI = re.compile(rb"data:image/png;base64,[A-Za-z0-9+/=]+")  # report.html's pictures: base64 may spell anything


def _sha256(path: Path) -> str:
    """A file's sha256; a folder's: of the listing `sha256sum` prints for its files (relative paths, byte order)."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    listing = "".join(f"{hashlib.sha256((path / name).read_bytes()).hexdigest()}  {name}\n" for name in files)
    return hashlib.sha256(listing.encode()).hexdigest()


def _recorded(path: Path, keep: bool) -> dict:
    return {"sha256": _sha256(path), **({"path": str(path)} if keep else {})}


def _leaks(out: Path) -> list[str]:
    """Where a name fragment appears under `out`: in a file or folder name, or in a file's content (gzip-compressed
    files decompressed)."""
    found = []
    for path in sorted(out.rglob("*")):
        relative = path.relative_to(out).as_posix()
        found += [f"the name {relative}" for fragment in FRAGMENTS if fragment in relative.lower()]
        if path.is_file():
            data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
            text = DATA_URI.sub(b"", data).lower()
            found += [f"{relative} holds {fragment}" for fragment in FRAGMENTS if fragment.encode() in text]
    return found


@pytest.fixture(scope="module")
def named(tmp_path_factory) -> dict[str, Path]:
    """Inputs of every command in a folder named after the patient, each file or series folder named after them."""
    from smartimaging.bonescan.views import load_bone_scan, write_nm_dicom
    from smartimaging.dicom_series import derived_series, write_series
    from smartimaging.io import write_image
    from smartimaging.phantoms.bonescan import make_bone_scan_phantom
    from smartimaging.phantoms.breast_mri import make_breast_mri_phantom, phantom_image
    from smartimaging.phantoms.mammo import make_mammo_phantom

    root = tmp_path_factory.mktemp("inputs") / PATIENT
    root.mkdir()
    paths = {"bone": root / f"{PATIENT}.dcm", "bone_mask": root / f"{PATIENT}_edited.nii.gz"}
    bone = make_bone_scan_phantom(3)
    write_nm_dicom(paths["bone"], bone.views, "P1", 61)
    study = load_bone_scan([paths["bone"]])
    mask = sitk.GetImageFromArray(np.stack([bone.masks[view.name] for view in study.views]))
    mask.CopyInformation(study.images[0])
    write_image(mask, paths["bone_mask"])

    paths["folder"], paths["masks"] = root / "mammograms", root / "masks"
    paths["folder"].mkdir()
    paths["masks"].mkdir()
    for index, view in enumerate(("L_CC", "R_CC")):
        case = make_mammo_phantom(930_000 + index, "mass", index)
        Image.fromarray(case.image.round().astype(np.uint16)).save(paths["folder"] / f"{PATIENT}_{view}.png")
        mask = case.mask * 255 if view == "L_CC" else case.mask[:100] * 255  # R_CC: not the image's size
        Image.fromarray(mask).save(paths["masks"] / f"{PATIENT}_{view}.png")
    (paths["folder"] / f"{PATIENT}_R_MLO.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)  # damaged
    paths["mammogram"] = paths["folder"] / f"{PATIENT}_L_CC.png"
    paths["mammo_mask"] = paths["masks"] / f"{PATIENT}_L_CC.png"

    mri = make_breast_mri_phantom(990_007, (12, 80, 80), lvi=1)
    images = {name: phantom_image(getattr(mri, name), mri.spacing, (-80.0, -60.0, -15.0))
              for name in ("dce2", "t2", "t1", "dce")}
    paths["dce2"] = root / f"{PATIENT}_DCE"  # a DICOM series folder named after the patient
    stored = sitk.Cast(sitk.Round(sitk.RescaleIntensity(images["dce2"], 0, 1000)), sitk.sitkInt16)
    write_series(derived_series(stored, "MR", "DCE"), paths["dce2"])
    for name in ("t2", "t1", "dce"):
        paths[name] = root / f"{PATIENT}_{name.upper()}.nrrd"
        sitk.WriteImage(images[name], str(paths[name]))
    voi = sitk.GetImageFromArray((mri.lesions > 0).astype(np.uint8))
    voi.CopyInformation(images["dce2"])
    paths["voi"] = root / f"{PATIENT}_VOI.nrrd"
    sitk.WriteImage(voi, str(paths["voi"]))
    return paths


COMMANDS = {  # the arguments, and the inputs result.json records (key: where, value: the input's key in `named`)
    "bonescan predict": (lambda p: ["bonescan", "predict", str(p["bone"]), "--device", "cpu", "--dicom"],
                         {"inputs": ["bone"]}),
    "bonescan bstbi": (lambda p: ["bonescan", "bstbi", str(p["bone"]), "--mask", str(p["bone_mask"]), "--dicom"],
                       {"inputs": ["bone"]}),
    "mammo predict": (lambda p: ["mammo", "predict", str(p["mammogram"]), "--kind", "mass", "--mask",
                                 str(p["mammo_mask"]), "--pixel-mm", "0.2", "--device", "cpu", "--dicom"],
                      {"input": "mammogram"}),
    "lvi predict": (lambda p: ["lvi", "predict", "--dce", str(p["dce2"]), "--t2", str(p["t2"]), "--voi",
                               str(p["voi"]), "--dicom"], {"inputs": {"DCE": "dce2", "T2": "t2"}, "voi": "voi"}),
    "dce synthesize": (lambda p: ["dce", "synthesize", str(p["t1"]), "--dce", str(p["dce"]), "--device", "cpu",
                                  "--quiet", "--dicom"], {"input": "t1", "real_dce": "dce"}),
}


def _expected(where, paths: dict[str, Path], keep: bool):
    if isinstance(where, str):
        return _recorded(paths[where], keep)
    if isinstance(where, list):
        return [_expected(item, paths, keep) for item in where]
    return {key: _expected(item, paths, keep) for key, item in where.items()}


@pytest.mark.parametrize("keep", [False, True], ids=["default", "keep-identifiers"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_predict_outputs_hold_no_name_unless_asked(named, tmp_path, command, keep):
    arguments, recorded = COMMANDS[command]
    out = tmp_path / "out"
    assert main([*arguments(named), "--out", str(out), *(["--keep-identifiers"] if keep else [])]) == 0
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    for key, where in recorded.items():
        assert record[key] == _expected(where, named, keep)  # the sha256 matches a result to its file
    names = [p.relative_to(out).as_posix() for p in out.rglob("*")]
    assert not [name for name in names if any(f in name.lower() for f in FRAGMENTS)]  # neutral either way
    if keep:
        assert all(f in (out / "result.json").read_text(encoding="utf-8").lower() for f in FRAGMENTS)
    else:
        assert _leaks(out) == []


def _csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("keep", [False, True], ids=["default", "keep-identifiers"])
def test_batch_rows_are_numbered_and_hashed_and_named_only_when_asked(named, tmp_path, keep):
    out = tmp_path / "out"
    assert main(["mammo", "batch", str(named["folder"]), "--kind", "mass", "--masks", str(named["masks"]),
                 "--pixel-mm", "0.2", "--device", "cpu", "--out", str(out),
                 *(["--keep-identifiers"] if keep else [])]) == 0
    images = sorted(p for p in named["folder"].iterdir())  # L_CC, R_CC (its mask is cut short), R_MLO (damaged)
    rows = _csv(out / "results.csv")
    assert [row["row"] for row in rows] == ["1", "2", "3"]
    assert [row["sha256"] for row in rows] == [_sha256(path) for path in images]
    assert [row.get("image") for row in rows] == ([path.name for path in images] if keep else [None] * 3)
    assert rows[0]["error"] == "" and rows[0]["roi"] == "rois/1.seg.nrrd" and (out / rows[0]["roi"]).is_file()
    assert rows[1]["error"] and rows[2]["error"]
    features = _csv(out / "features.csv")
    assert [(row["row"], row["sha256"], row.get("image")) for row in features] == \
        [("1", rows[0]["sha256"], rows[0].get("image"))]
    if keep:
        assert PATIENT in (out / "results.csv").read_text(encoding="utf-8")
        return
    assert _leaks(out) == []
    assert rows[1]["error"].startswith("The mask of image 2 is ") and rows[2]["error"].startswith("image 3 "), rows


def test_a_series_folder_is_hashed_as_sha256sum_lists_it(named, tmp_path):
    from smartimaging.privacy import input_sha256

    copy = tmp_path / "renamed"
    shutil.copytree(named["dce2"], copy)
    assert input_sha256(copy) == input_sha256(named["dce2"]) == _sha256(named["dce2"])  # the name plays no part
    next(copy.iterdir()).write_bytes(b"another slice")
    assert input_sha256(copy) != input_sha256(named["dce2"])
