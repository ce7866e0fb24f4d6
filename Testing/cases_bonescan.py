"""Bad-input cases of whole-body bone scans (`bonescan ...`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from badinput import BadInput

from smartimaging.manifest import write_manifest

AREA = "Bone scan"


def _scan(folder: Path, name: str = "scan", label: int = 1) -> tuple[Path, Path]:
    """A tall one-view scan (32×128 pixels) with a hot spot, and its mask marking the spot with `label`."""
    counts = np.random.default_rng(0).poisson(20, (128, 32)).astype(np.float32)
    counts[60:66, 14:20] += 400
    mask = np.zeros(counts.shape, np.float32)
    mask[60:66, 14:20] = label
    paths = []
    for array, suffix in ((counts, ".nrrd"), (mask, "_mask.nrrd")):
        image = sitk.GetImageFromArray(array[None])
        image.SetSpacing((2.26, 2.26, 1.0))
        paths.append(folder / f"{name}{suffix}")
        sitk.WriteImage(image, str(paths[-1]))
    return paths[0], paths[1]


def _bstbi(folder: Path, label: int = 1, extra=()) -> list[str]:
    image, mask = _scan(folder, label=label)
    return ["bonescan", "bstbi", str(image), "--mask", str(mask), *extra, "--out", str(folder / "out")]


def _whole_view_lesion(folder: Path) -> list[str]:
    image, mask = _scan(folder)
    whole = sitk.ReadImage(str(mask))
    whole = sitk.Add(sitk.Multiply(whole, 0), 1)
    sitk.WriteImage(whole, str(mask))
    return ["bonescan", "bstbi", str(image), "--mask", str(mask), "--out", str(folder / "out")]


SOUND_RESULT = {"views": ["anterior"], "models": [{"id": "bonescan-unet-demo"}],
                "bstbi": {"per_subimage": {"anterior / standard": 0.1, "anterior / high-contrast": 0.14}, "mean": 0.12}}


def _compare(folder: Path, content: str, command: str = "compare") -> list[str]:
    """`compare` (or `trend`) of a sound result folder with a forged one whose result.json holds `content`."""
    for name, text in (("baseline", json.dumps(SOUND_RESULT)), ("followup", content)):
        (folder / name).mkdir()
        (folder / name / "result.json").write_text(text, encoding="utf-8")
    return ["bonescan", command, str(folder / "baseline"), str(folder / "followup"), "--out", str(folder / "out")]


def _trend_into(folder: Path, as_file: bool) -> list[str]:
    """`trend --out` the baseline's result folder (given as the folder or as its result.json)."""
    argv = _compare(folder, json.dumps({**SOUND_RESULT, "excluded_lesions": [1]}), "trend")
    given = folder / "baseline" / "result.json" if as_file else folder / "baseline"
    return [*argv[:2], str(given), argv[3], "--out", str(folder / "baseline")]


def _same_twice(folder: Path, copy: bool) -> list[str]:
    """`trend` of one result given twice: the same folder, or a copy of it in another folder."""
    argv = _compare(folder, json.dumps(SOUND_RESULT), "trend")
    return argv if copy else [*argv[:3], str(folder / "baseline" / "result.json"), *argv[4:]]


def _other_pixel_size(folder: Path) -> list[str]:
    """`trend` of two results recording their acquisitions, the second of another pixel size."""
    argv = _compare(folder, json.dumps({**SOUND_RESULT, "acquisition": {"views": 1, "pixel_mm": [4.8, 4.8]}}),
                    "trend")
    (folder / "baseline" / "result.json").write_text(
        json.dumps({**SOUND_RESULT, "acquisition": {"views": 1, "pixel_mm": [2.26, 2.26]}}), encoding="utf-8")
    return argv


def _not_regular(folder: Path) -> list[str]:
    """`trend` with a result.json that is a named pipe (reading it would wait for a writer)."""
    argv = _compare(folder, "{}", "trend")
    (folder / "followup" / "result.json").unlink()
    os.mkfifo(folder / "followup" / "result.json")
    return argv


def _tampered() -> str:
    """A sound result whose mean BSTBI was edited by hand."""
    return json.dumps({**SOUND_RESULT, "bstbi": {**SOUND_RESULT["bstbi"], "mean": 0.02}})


def _forged(mean) -> str:
    return json.dumps({"bstbi": {"mean": mean, "per_subimage": {}}})


def _manifest(folder: Path, labels: list[str], command: str = "train", extra=()) -> list[str]:
    """A manifest of one-view scans (2 train, 2 val) with the given labels."""
    rows = []
    for index, (label, split) in enumerate(zip(labels, ("train", "train", "val", "val"), strict=True)):
        image, mask = _scan(folder, f"p{index}")
        rows.append({"patient_id": f"p{index}", "image": image.name, "mask": mask.name, "label": label,
                     "split": split if command == "train" else "test"})
    write_manifest(folder / "manifest.csv", rows)
    return ["bonescan", command, "--manifest", str(folder / "manifest.csv"), *extra, "--out", str(folder / "out")]


CASES = [
    BadInput(AREA, "`bstbi` with the whole view marked as metastasis (a result, with a warning)", _whole_view_lesion,
             "The metastasis segment covers 100% of the anterior view", exit_code=0),
    BadInput(AREA, "`bstbi` with a mask holding only label 9", lambda f: _bstbi(f, label=9),
             "holds label 9, which is not a bone-scan segment (0 background, 1 bone metastasis, 2 urinary bladder)"),
    BadInput(AREA, "`bstbi --exclude abc`", lambda f: _bstbi(f, extra=["--exclude", "abc"]),
             "Lesions to exclude are numbers separated by commas"),
    BadInput(AREA, "`bstbi --views` naming more views than the image has",
             lambda f: _bstbi(f, extra=["--views", "anterior,posterior"]), "2 view names were given"),
    BadInput(AREA, "`compare` with a result.json that is not JSON", lambda f: _compare(f, "BSTBI 0.3"),
             "is not a bone-scan result (damaged or not JSON)"),
    BadInput(AREA, "`compare` with a result.json without BSTBI", lambda f: _compare(f, '{"views": []}'),
             "holds no BSTBI"),
    BadInput(AREA, "`compare` with BSTBI as text", lambda f: _compare(f, _forged("high")),
             "gives BSTBI 'high', which is not a number between 0 and 1"),
    BadInput(AREA, "`compare` with BSTBI NaN", lambda f: _compare(f, _forged(float("nan"))),
             "gives BSTBI nan, which is not a number between 0 and 1"),
    BadInput(AREA, "`compare` with a negative BSTBI", lambda f: _compare(f, _forged(-0.4)),
             "gives BSTBI -0.4, which is not a number between 0 and 1"),
    BadInput(AREA, "`trend` with a result.json of the mammography module",
             lambda f: _compare(f, json.dumps({"models": [{"id": "mammo-mass-classifier-demo"}], "probability": 0.4}),
                                "trend"),
             "is a result of another SmartImaging module (models mammo-mass-classifier-demo), not of a bone scan"),
    BadInput(AREA, "`trend` with a result.json whose BSTBI was edited by hand",
             lambda f: _compare(f, _tampered(), "trend"),
             "gives BSTBI 0.0200, but its sub-images average 0.1200: the file was changed after it was written"),
    BadInput(AREA, "`trend` with a study date that is not a date",
             lambda f: _compare(f, json.dumps({**SOUND_RESULT, "study": {"study_date": "last spring"}}), "trend"),
             "Study date 'last spring' is not a date"),
    BadInput(AREA, "`trend --out` the result folder of one of its studies", lambda f: _trend_into(f, False),
             "is the input"),
    BadInput(AREA, "`trend --out` the folder of a result.json it reads", lambda f: _trend_into(f, True),
             "holds the input"),
    BadInput(AREA, "`trend` with a result.json of 100 000 nested brackets",
             lambda f: _compare(f, "[" * 100_000, "trend"), "is not a bone-scan result (damaged or not JSON)"),
    BadInput(AREA, "`compare` with a result.json holding a 5000-digit number",
             lambda f: _compare(f, '{"bstbi": {"mean": ' + "1" * 5000 + "}}"),
             "is not a bone-scan result (damaged or not JSON)"),
    BadInput(AREA, "`trend` with a result.json that is a named pipe", _not_regular,
             "is not a regular file"),
    BadInput(AREA, "`trend` with a study date after today",
             lambda f: _compare(f, json.dumps({**SOUND_RESULT, "study": {"study_date": "20990101"}}), "trend"),
             "Study date 2099-01-01 is after today"),
    BadInput(AREA, "`trend` with a study date before 1900",
             lambda f: _compare(f, json.dumps({**SOUND_RESULT, "study": {"study_date": "00010101"}}), "trend"),
             "Study date 0001-01-01 is before 1900"),
    BadInput(AREA, "`trend` with the same result.json twice", lambda f: _same_twice(f, False), "are the same file"),
    BadInput(AREA, "`trend` with the same study twice (a copy)", lambda f: _same_twice(f, True),
             "are the same study (the same result): give each study once"),
    BadInput(AREA, "`trend` of two studies of different pixel sizes", _other_pixel_size,
             "were acquired differently (pixel size (mm) [2.26, 2.26] vs [4.8, 4.8])"),
    BadInput(AREA, "`trend` with one study",
             lambda f: ["bonescan", "trend", _compare(f, json.dumps(SOUND_RESULT))[2]],
             "A trend needs at least two studies"),
    BadInput(AREA, "`train` with a label 'maybe'", lambda f: _manifest(f, ["1", "maybe", "0", "1"]),
             "has label 'maybe'; the label column takes 1 (positive) or 0 (negative)"),
    BadInput(AREA, "`train` with a label 2", lambda f: _manifest(f, ["1", "0", "2", "1"]),
             "has label '2'; the label column takes 1"),
    BadInput(AREA, "`train` with a label -1", lambda f: _manifest(f, ["1", "0", "0", "-1"]),
             "has label '-1'; the label column takes 1"),
    BadInput(AREA, "`train` with one class", lambda f: _manifest(f, ["0", "0", "0", "0"]),
             "training needs cases with (1) and without (0) metastases"),
    BadInput(AREA, "`train --which` an unknown network", lambda f: _manifest(f, ["1", "0", "0", "1"],
                                                                            extra=["--which", "detector"]),
             "--which takes classifier, segmenter or both"),
    BadInput(AREA, "`evaluate` with a label 'yes'", lambda f: _manifest(f, ["1", "yes", "0", "1"], "evaluate"),
             "has label 'yes'; the label column takes 1"),
    BadInput(AREA, "`phantoms --splits` with a word as fraction",
             lambda f: ["bonescan", "phantoms", "--splits", "train=most", "--out", str(f / "out")],
             "--splits takes name=fraction pairs"),
]
