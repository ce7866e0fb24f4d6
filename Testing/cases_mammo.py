"""Bad-input cases of mammography (`mammo ...`): damaged rows in `extract` (the run goes on, the row is reported),
damaged features files and labels in `train` / `evaluate`, masks that are not images, lie elsewhere than their
mammogram or cover it all, and malformed or misplaced --point / --box."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from badinput import BadInput
from PIL import Image

from smartimaging.manifest import write_manifest
from smartimaging.models.registry import models_dir
from smartimaging.phantoms.mammo import PIXEL_MM, make_mammo_phantom

AREA = "Mammography"
DEMO_CARD = models_dir() / "mammo-mass-classifier-demo.json"


def _random_bytes(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(5).bytes(600))
    return path


def _ten_pixels(shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[50:52, 50:55] = 1
    return mask


def _cohort(folder: Path, n: int = 3, mask=None, pixel_mm=None, splits=None) -> Path:
    """`n` phantom mammograms (PNG + mask PNG) and their manifest; row 2 (the first) gets `mask(folder, array)`'s
    file instead of its own and `pixel_mm` in its pixel_mm column; `splits` names each row's split."""
    (folder / "images").mkdir()
    (folder / "masks").mkdir()
    rows = []
    for index in range(n):
        case = make_mammo_phantom(910_000 + index, "mass", index % 2)
        image, mask_file = folder / "images" / f"{case.patient_id}.png", folder / "masks" / f"{case.patient_id}.png"
        Image.fromarray(case.image.round().astype(np.uint16)).save(image)
        Image.fromarray(case.mask * 255).save(mask_file)
        rows.append({"patient_id": case.patient_id, "image": str(image.relative_to(folder)),
                     "mask": str(mask_file.relative_to(folder)), "label": case.label, "kind": "mass",
                     "pixel_mm": PIXEL_MM})
        if splits:
            rows[-1]["split"] = splits[index]
    if mask is not None:
        rows[0]["mask"] = str(mask(folder, case.mask).relative_to(folder))
    if pixel_mm is not None:
        rows[0]["pixel_mm"] = pixel_mm
    manifest = folder / "manifest.csv"
    write_manifest(manifest, rows)
    return manifest


def _extract(folder: Path, **change) -> list[str]:
    return ["mammo", "extract", "--manifest", str(_cohort(folder, **change)), "--jobs", "1", "--quiet",
            "--out", str(folder / "out" / "features.csv")]


def _random_mask(folder: Path, like: np.ndarray) -> Path:
    return _random_bytes(folder / "masks" / "damaged.png")


def _ten_pixel_mask(folder: Path, like: np.ndarray) -> Path:
    path = folder / "masks" / "ten_pixels.png"
    Image.fromarray(_ten_pixels(like.shape) * 255).save(path)
    return path


def _empty_mask(folder: Path, like: np.ndarray) -> Path:
    path = folder / "masks" / "empty.png"
    Image.fromarray(np.zeros_like(like)).save(path)
    return path


def _features(folder: Path, labels: list[str], names: list[str] | None = None) -> Path:
    """A features CSV as `mammo extract` writes it (random values), with the given labels."""
    names = names or [f"original_firstorder_F{i}" for i in range(8)]
    rng = np.random.default_rng(2)
    path = folder / "features.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["patient_id", "label", "split", *names])
        writer.writerows([f"P{i}", label, "test", *(f"{v:.6g}" for v in rng.normal(size=len(names)))]
                         for i, label in enumerate(labels))
    return path


def _train(folder: Path, labels: list[str], *extra: str, name: str = "mine") -> list[str]:
    return ["mammo", "train", "--features", str(_features(folder, labels)), "--split", "", "--name", name,
            "--preset", "mass", *extra, "--out", str(folder / "out")]


def _train_on(path: Path, folder: Path) -> list[str]:
    return ["mammo", "train", "--features", str(path), "--split", "", "--name", "mine", "--preset", "mass",
            "--out", str(folder / "out")]


def _truncated_features(folder: Path) -> Path:
    path = _features(folder, ["0", "1"] * 6)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def _binary_features(folder: Path) -> Path:
    path = _features(folder, ["0", "1"] * 6)
    path.write_bytes(path.read_bytes()[:300] + bytes(range(128, 256)) * 8)
    return path


def _evaluate(folder: Path, labels: list[str]) -> list[str]:
    names = json.loads(DEMO_CARD.read_text(encoding="utf-8"))["features"]
    return ["mammo", "evaluate", "--model", str(DEMO_CARD), "--features", str(_features(folder, labels, names)),
            "--split", "", "--out", str(folder / "out")]


def _segmenter(folder: Path, mask) -> list[str]:
    manifest = _cohort(folder, 2, mask=mask, splits=["train", "val"])
    return ["mammo", "train-segmenter", "--manifest", str(manifest), "--kind", "mass", "--epochs", "1", "--quiet",
            "--device", "cpu", "--out", str(folder / "out")]


def _mammogram(folder: Path, size: int = 160) -> tuple[Path, np.ndarray]:
    """A phantom mass cropped to `size`² pixels around the lesion, as 16-bit PNG (small: fast whole-ROI features)."""
    case = make_mammo_phantom(910_100, "mass", 1)
    row = int(np.clip(case.centre[0] - size // 2, 0, case.image.shape[0] - size))
    col = int(np.clip(case.centre[1] - size // 2, 0, case.image.shape[1] - size))
    crop = case.image[row:row + size, col:col + size]
    path = folder / "mammogram.png"
    Image.fromarray(crop.round().astype(np.uint16)).save(path)
    return path, case.mask[row:row + size, col:col + size]


def _predict(folder: Path, *where: str, image: Path | None = None) -> list[str]:
    image = image or _mammogram(folder)[0]
    return ["mammo", "predict", str(image), "--kind", "mass", *where, "--pixel-mm", str(PIXEL_MM), "--device", "cpu",
            "--out", str(folder / "out")]


def _predict_with_mask(folder: Path, make_mask) -> list[str]:
    image, lesion = _mammogram(folder)
    return _predict(folder, "--mask", str(make_mask(folder, lesion)), image=image)


def _png_mask(array: np.ndarray):
    def write(folder: Path, lesion: np.ndarray) -> Path:
        path = folder / "mask.png"
        Image.fromarray(array.astype(np.uint8) * 255).save(path)
        return path
    return write


def _nrrd_pair(folder: Path, shift_mm: float) -> list[str]:
    """Mammogram and mask as one-slice NRRD volumes on the same grid, the mask's origin moved by `shift_mm`."""
    image, lesion = _mammogram(folder)
    with Image.open(image) as png:
        pixels = np.asarray(png, dtype=np.float32)
    paths = []
    for name, array, shift in (("mammogram.nrrd", pixels, 0.0), ("mask.nrrd", lesion, shift_mm)):
        volume = sitk.GetImageFromArray(array[None])
        volume.SetSpacing((PIXEL_MM, PIXEL_MM, 1.0))
        volume.SetOrigin((-20.0 + shift, 35.0, 0.0))
        sitk.WriteImage(volume, str(folder / name))
        paths.append(folder / name)
    image.unlink()
    return _predict(folder, "--mask", str(paths[1]), image=paths[0])


def _bin_study(folder: Path, *extra: str) -> list[str]:
    return ["mammo", "bin-study", "--manifest", str(_cohort(folder, 2, mask=_ten_pixel_mask)), *extra]


def _parameter_file(folder: Path, text: str) -> list[str]:
    (folder / "params.yaml").write_text(text, encoding="utf-8")
    return _extract(folder, n=1) + ["--params", str(folder / "params.yaml")]


def _propose(folder: Path, *options: str, **cells: str) -> list[str]:
    """`mammo propose` on a two-row cohort whose first row (CSV line 2) has `cells` changed."""
    manifest = _cohort(folder, n=2)
    with open(manifest, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    rows[0].update(cells)
    write_manifest(manifest, rows)
    return ["mammo", "propose", "--manifest", str(manifest), "--device", "cpu", *options, "--out", str(folder / "out")]


CASES = [
    BadInput(AREA, "`extract`: one row's mask is random bytes (the other rows are kept)",
             lambda f: _extract(f, mask=_random_mask), "damaged.png is damaged or not a valid image file", exit_code=0),
    BadInput(AREA, "`extract`: one row's pixel_mm is 'abc'", lambda f: _extract(f, pixel_mm="abc"),
             "pixel_mm 'abc' is not a number", exit_code=0),
    BadInput(AREA, "`extract`: one row's ROI has 10 pixels", lambda f: _extract(f, mask=_ten_pixel_mask),
             "The ROI has 10 pixels; at least 11 are needed", exit_code=0),
    BadInput(AREA, "`extract`: one row's ROI is empty", lambda f: _extract(f, mask=_empty_mask),
             "The ROI is empty", exit_code=0),
    BadInput(AREA, "`extract`: every row's pixel_mm is -1", lambda f: _extract(f, n=1, pixel_mm="-1"),
             "pixel_mm -1 is not a mammogram pixel size"),
    BadInput(AREA, "`train` with a label 'maybe'", lambda f: _train(f, ["0", "1", "maybe"] + ["0", "1"] * 6),
             "The label column must hold 0 (benign) and 1 (malignant); row 4 of features.csv has 'maybe'"),
    BadInput(AREA, "`train` with a label 2", lambda f: _train(f, ["0", "1", "2"] + ["0", "1"] * 6),
             "row 4 of features.csv has '2'"),
    BadInput(AREA, "`train` with a label -1", lambda f: _train(f, ["-1"] + ["0", "1"] * 6),
             "row 2 of features.csv has '-1'"),
    BadInput(AREA, "`train` with benign cases only", lambda f: _train(f, ["0"] * 12),
             "Training needs both classes (0 benign, 1 malignant); all 12 rows are benign"),
    BadInput(AREA, "`train --folds 10` with 6 patients per class", lambda f: _train(f, ["0", "1"] * 6, "--folds", "10"),
             "10-fold cross-validation needs at least 10 patients of each class"),
    BadInput(AREA, "`train --folds 1`", lambda f: _train(f, ["0", "1"] * 6, "--folds", "1"),
             "Cross-validation needs at least 2 folds"),
    BadInput(AREA, "`train` on a truncated features CSV (disk full during `extract`)",
             lambda f: _train_on(_truncated_features(f), f), "the file is truncated or damaged"),
    BadInput(AREA, "`train` on a features CSV with binary garbage", lambda f: _train_on(_binary_features(f), f),
             "is not a readable features CSV"),
    BadInput(AREA, "`evaluate` with malignant cases only", lambda f: _evaluate(f, ["1"] * 8),
             "Evaluation needs both classes (0 benign, 1 malignant); all 8 rows are malignant"),
    BadInput(AREA, "`evaluate` with a label 'yes'", lambda f: _evaluate(f, ["0", "yes", "1"]),
             "row 3 of features.csv has 'yes'"),
    BadInput(AREA, "`train-segmenter` with an empty mask", lambda f: _segmenter(f, _empty_mask),
             "Row 2 of manifest.csv (MG910000): the mask is empty"),
    BadInput(AREA, "`train-segmenter` with a mask of random bytes", lambda f: _segmenter(f, _random_mask),
             "Row 2 of manifest.csv (MG910000): damaged.png is damaged or not a valid image file"),
    BadInput(AREA, "`bin-study` with a 10-pixel ROI", _bin_study,
             "Row 2 of manifest.csv (MG910000): The ROI has 10 pixels"),
    BadInput(AREA, "`bin-study --widths abc`", lambda f: _bin_study(f, "--widths", "abc"),
             "--widths takes positive bin widths separated by commas"),
    BadInput(AREA, "`bin-study --widths 0,5`", lambda f: _bin_study(f, "--widths", "0,5"),
             "--widths takes positive bin widths"),
    BadInput(AREA, "`phantoms --splits train`", lambda f: ["mammo", "phantoms", "--n", "2", "--splits", "train",
                                                           "--out", str(f / "out")],
             "--splits takes name=fraction pairs"),
    BadInput(AREA, "`extract --params` that is not YAML", lambda f: _parameter_file(f, "setting: {force2D: [true"),
             "The pyradiomics parameter file params.yaml is not valid YAML"),
    BadInput(AREA, "`extract --params` computing 3D shape features",
             lambda f: _parameter_file(f, "featureClass: {shape: }\nsetting: {force2D: true}\n"),
             "must set force2D: true and use shape2D"),
    BadInput(AREA, "`train --name ../mine` (a path, not a name)", lambda f: _train(f, ["0", "1"] * 6, name="../mine"),
             "The model name '../mine' must be a plain name"),
    BadInput(AREA, "`predict --mask` with a PNG of random bytes",
             lambda f: _predict(f, "--mask", str(_random_bytes(f / "mask.png"))),
             "mask.png is damaged or not a valid image file"),
    BadInput(AREA, "`predict --mask` NRRD 500 mm away from the NRRD mammogram", lambda f: _nrrd_pair(f, 500.0),
             "The mask mask.nrrd lies 500.0 mm away from its mammogram"),
    BadInput(AREA, "`predict --mask` with 10 pixels",
             lambda f: _predict_with_mask(f, _png_mask(_ten_pixels((160, 160)))),
             "The ROI has 10 pixels; at least 11 are needed"),
    BadInput(AREA, "`predict --mask` that is one row of pixels",
             lambda f: _predict_with_mask(f, _png_mask(np.pad(np.ones((1, 40)), ((80, 79), (60, 60))))),
             "The ROI is a line one pixel wide"),
    BadInput(AREA, "`predict --mask` covering the whole image (a score, with a warning)",
             lambda f: _predict_with_mask(f, _png_mask(np.ones((160, 160)))),
             "The ROI covers the whole image; draw it around the lesion", exit_code=0),
    BadInput(AREA, "`predict --point` with one number", lambda f: _predict(f, "--point", "812"),
             "--point takes x,y in pixels"),
    BadInput(AREA, "`predict --point` nan,5", lambda f: _predict(f, "--point", "nan,5"), "--point takes x,y"),
    BadInput(AREA, "`predict --point` outside the image", lambda f: _predict(f, "--point", "900,40"),
             "The marked point (x 900, y 40) lies outside the image (160×160 pixels)"),
    BadInput(AREA, "`predict --box` with three numbers", lambda f: _predict(f, "--box", "10,10,50"),
             "--box takes x0,y0,x1,y1 in pixels"),
    BadInput(AREA, "`predict --box` with an infinite corner", lambda f: _predict(f, "--box", "10,10,inf,50"),
             "--box takes x0,y0,x1,y1 in pixels"),
    BadInput(AREA, "`predict --box` of zero width", lambda f: _predict(f, "--box", "30,10,30,60"),
             "The marked box lies outside the image (160×160 pixels) or is empty"),
    BadInput(AREA, "`propose`: a row with neither a mask nor centre_row,centre_col", lambda f: _propose(f, mask=""),
             "Row 2: no centre_row,centre_col and no mask: nothing says where the lesion is"),
    BadInput(AREA, "`propose`: a row's centre outside the image",
             lambda f: _propose(f, centre_row="40", centre_col="9000"),
             "The marked point (x 9000, y 40) lies outside the image"),
    BadInput(AREA, "`propose --correct-fraction 1.5`", lambda f: _propose(f, "--correct-fraction", "1.5"),
             "1.5 is not a fraction (0 to 1)"),
]
