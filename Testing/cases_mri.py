"""Bad-input cases of breast MRI: BreastLVI (`lvi ...`) and DCESynthesis (`dce ...`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from badinput import BadInput

from smartimaging.manifest import write_manifest
from smartimaging.phantoms.breast_mri import make_breast_mri_phantom

LVI, DCE = "Breast MRI LVI", "Synthetic DCE"
LVI_SHAPE = (16, 64, 64)


def _volume(array: np.ndarray, path: Path, spacing=(1.5, 1.5, 3.0)) -> Path:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    image.SetOrigin((-48.0, -40.0, -24.0))
    sitk.WriteImage(image, str(path), True)
    return path


def _lvi_case(folder: Path, seed: int = 31, dce=None, voi=None, name: str = "case") -> tuple[Path, Path]:
    """DCE phase 2 and lesion VOI of an LVI phantom as NRRD; `dce` / `voi` change the arrays before writing."""
    case = make_breast_mri_phantom(seed, LVI_SHAPE, lvi=seed % 2)
    array, mask = case.dce2.astype(np.float32), (case.lesions > 0).astype(np.uint8)
    return (_volume(dce(array, mask) if dce else array, folder / f"{name}_dce.nrrd"),
            _volume(voi(mask) if voi else mask, folder / f"{name}_voi.nrrd"))


def _lvi_predict(folder: Path, dce=None, voi=None, extra=()) -> list[str]:
    dce_path, voi_path = _lvi_case(folder, dce=dce, voi=voi)
    return ["lvi", "predict", "--dce", str(dce_path), "--voi", str(voi_path),
            "--models", "lvi-dce-resnet10-3d-demo", *extra, "--out", str(folder / "out")]


def _nan_in_lesion(array: np.ndarray, mask: np.ndarray) -> np.ndarray:
    array = array.copy()
    array[tuple(np.argwhere(mask > 0)[:12].T)] = np.nan
    return array


def _nan_in_a_corner(array: np.ndarray, mask: np.ndarray) -> np.ndarray:
    array = array.copy()
    array[0, 0, 0] = np.nan
    return array


def _nan_voi(mask: np.ndarray) -> np.ndarray:
    voi = mask.astype(np.float32)
    voi[0, 0, 0] = np.nan
    return voi


def _rgb(array: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.repeat(array[..., None], 3, axis=-1)


def _lvi_fusion(folder: Path, text: str) -> list[str]:
    (folder / "fusion.json").write_text(text, encoding="utf-8")
    return _lvi_predict(folder, extra=["--fusion", str(folder / "fusion.json")])


def _lvi_train(folder: Path, labels: list[str], command: str = "train") -> list[str]:
    """A 4-case manifest (2 train, 2 val) with the given labels."""
    rows = []
    for index, (label, split) in enumerate(zip(labels, ("train", "train", "val", "val"), strict=True)):
        dce_path, voi_path = _lvi_case(folder, 40 + index, name=f"p{index}")
        rows.append({"patient_id": f"p{index}", "dce": dce_path.name, "t2": "", "voi": voi_path.name,
                     "label": label, "split": split})
    write_manifest(folder / "manifest.csv", rows)
    options = ["--sequence", "DCE", "--model", "resnet10-3d", "--epochs", "1"] if command == "train" else \
        ["--models", "lvi-dce-resnet10-3d-demo", "--split", "val"]
    return ["lvi", command, "--manifest", str(folder / "manifest.csv"), *options, "--out", str(folder / "out")]


def _lvi_segment(folder: Path, point: str) -> list[str]:
    dce_path, _ = _lvi_case(folder)
    return ["lvi", "segment", str(dce_path), "--point", point, "--out", str(folder / "out")]


def _t1(folder: Path, shape: tuple[int, int, int]) -> list[str]:
    array = np.random.default_rng(0).uniform(0, 500, shape).astype(np.float32)
    path = _volume(array, folder / "t1.nrrd", (0.8, 0.8, 1.5))
    return ["dce", "synthesize", str(path), "--out", str(folder / "out")]


CASES = [
    BadInput(LVI, "DCE volume with NaN voxels inside the lesion VOI", lambda f: _lvi_predict(f, dce=_nan_in_lesion),
             "12 invalid voxels (NaN or infinite) inside the lesion VOI"),
    BadInput(LVI, "DCE volume with one NaN voxel far from the lesion",
             lambda f: _lvi_predict(f, dce=_nan_in_a_corner), "1 invalid voxel (NaN or infinite) outside the lesion"),
    BadInput(LVI, "VOI with NaN values", lambda f: _lvi_predict(f, voi=_nan_voi), "VOI contains invalid values"),
    BadInput(LVI, "empty VOI", lambda f: _lvi_predict(f, voi=np.zeros_like), "The lesion VOI is empty"),
    BadInput(LVI, "the same model named twice (`--models A A`: it would count twice in the fused result)",
             lambda f: _lvi_predict(f, extra=["lvi-dce-resnet10-3d-demo"]),
             "The model lvi-dce-resnet10-3d-demo is named twice"),
    BadInput(LVI, "VOI = the whole volume", lambda f: _lvi_predict(f, voi=np.ones_like),
             "the models were trained on VOIs around one lesion", exit_code=0),
    BadInput(LVI, "colour (RGB) DCE volume", lambda f: _lvi_predict(f, dce=_rgb), "colour or vector image"),
    BadInput(LVI, "`--models` naming the lesion segmenter",
             lambda f: _lvi_predict(f, extra=["--models", "lvi-lesion-unet-demo"]), "is not a BreastLVI classifier"),
    BadInput(LVI, "`--fusion` card that is not JSON", lambda f: _lvi_fusion(f, "age * 0.3"),
             "Fusion card fusion.json is not valid JSON"),
    BadInput(LVI, "`--fusion` card without coefficients",
             lambda f: _lvi_fusion(f, '{"task": "lvi-fusion", "fusion": {"inputs": ["age"]}}'),
             "fusion.json is damaged"),
    BadInput(LVI, "--covariate without a number", lambda f: _lvi_predict(f, extra=["--covariate", "age"]),
             "--covariate takes name=number"),
    BadInput(LVI, "--covariate age=nan", lambda f: _lvi_predict(f, extra=["--covariate", "age=nan"]),
             "--covariate takes name=number"),
    BadInput(LVI, "`segment --point` with two numbers", lambda f: _lvi_segment(f, "12,30"),
             "--point takes three coordinates"),
    BadInput(LVI, "`segment --point` with words", lambda f: _lvi_segment(f, "left,upper,outer"),
             "--point takes x,y,z in mm"),
    BadInput(LVI, "`segment --point` outside the volume", lambda f: _lvi_segment(f, "900,900,900"),
             "outside the volume"),
    BadInput(LVI, "`train` with a label 'maybe'", lambda f: _lvi_train(f, ["1", "maybe", "0", "1"]),
             "takes 1 (positive) or 0 (negative)"),
    BadInput(LVI, "`train` with a label 2", lambda f: _lvi_train(f, ["1", "2", "0", "1"]),
             "has label '2'; the label column takes 1"),
    BadInput(LVI, "`train` with a label -1", lambda f: _lvi_train(f, ["-1", "0", "0", "1"]),
             "has label '-1'; the label column takes 1"),
    BadInput(LVI, "`train` with one class in the training rows", lambda f: _lvi_train(f, ["1", "1", "0", "1"]),
             "needs LVI-positive (1) and LVI-negative (0) cases"),
    BadInput(LVI, "`evaluate` on a split with one class", lambda f: _lvi_train(f, ["1", "0", "0", "0"], "evaluate"),
             "needs LVI-positive (1) and LVI-negative (0) cases"),
    BadInput(LVI, "`phantoms --splits` not as name=fraction", lambda f: ["lvi", "phantoms", "--splits", "train",
                                                                        "--out", str(f / "out")],
             "--splits takes name=fraction pairs"),
    BadInput(DCE, "T1 of 1×1×2 voxels", lambda f: _t1(f, (2, 1, 1)), "too small to be a breast MRI"),
    BadInput(DCE, "T1 of 16×16 pixels per slice", lambda f: _t1(f, (8, 16, 16)), "too small to be a breast MRI"),
    BadInput(DCE, "T1 of two slices", lambda f: _t1(f, (2, 64, 64)), "at least 32×32 pixels and 3 slices"),
    BadInput(DCE, "`phantoms --splits` with a negative fraction", lambda f: ["dce", "phantoms", "--splits",
                                                                            "train=-1", "--out", str(f / "out")],
             "--splits takes name=fraction pairs"),
]
