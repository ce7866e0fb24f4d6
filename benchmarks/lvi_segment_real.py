"""Click-seeded BreastLVI lesion VOI on the real breast1 MRI (pyradiomics' test case, held out from training) and on
fresh LVI phantoms: Dice per click for one or more lesion U-Net cards.

Clicks on breast1 (LPS mm from breast1_label's own geometry): the label's centroid, the centre of its first and last
slice, and the lesion voxels nearest to the centroid moved 2 mm along x and along y. Phantoms: `lvi phantoms --seed 99`
(never used in training), click at each VOI's centroid, DCE phase 2 and FS-T2WI.

    .venv/bin/python benchmarks/lvi_segment_real.py --cards Resources/Models/lvi-lesion-unet-demo.json \
        --phantoms 24 --out benchmarks/results/lvi_segment_real.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from smartimaging.errors import InputError
from smartimaging.evaluation import dice

BREAST1 = Path(__file__).resolve().parents[1].parent / "shared" / "realdata" / "breast_mri_pyradiomics"


def breast1_clicks(label: sitk.Image) -> dict[str, tuple[float, float, float]]:
    """Named clicks (LPS mm) on breast1's lesion: centroid, first/last slice centres, voxels 2 mm off the centroid."""
    binary = sitk.Cast(label > 0, sitk.sitkUInt8)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(binary)
    centroid = np.array(stats.GetCentroid(1))
    voxels = np.argwhere(sitk.GetArrayViewFromImage(binary) > 0)  # (slice, row, col)
    physical = np.array([label.TransformIndexToPhysicalPoint(tuple(int(v) for v in index[::-1])) for index in voxels])

    def nearest(point, among=None) -> tuple[float, float, float]:
        candidates = physical if among is None else physical[among]
        return tuple(float(v) for v in candidates[np.argmin(np.linalg.norm(candidates - point, axis=1))])

    first, last = voxels[:, 0].min(), voxels[:, 0].max()
    return {"centroid": tuple(float(v) for v in centroid),
            f"slice {first} centre": nearest(physical[voxels[:, 0] == first].mean(axis=0), voxels[:, 0] == first),
            f"slice {last} centre": nearest(physical[voxels[:, 0] == last].mean(axis=0), voxels[:, 0] == last),
            "centroid + 2 mm x": nearest(centroid + [2.0, 0, 0]),
            "centroid - 2 mm y": nearest(centroid - [0, 2.0, 0])}


def dice_at(segmenter, volume: sitk.Image, reference: sitk.Image, point) -> tuple[float, int]:
    """Dice of the VOI from a click against the reference, and the VOI's voxel count (0: nothing found)."""
    try:
        mask = segmenter.segment(volume, point)
    except InputError:
        return 0.0, 0
    array = sitk.GetArrayFromImage(mask) > 0
    return dice(array, sitk.GetArrayFromImage(reference) > 0), int(array.sum())


def main() -> None:
    from smartimaging.lvi.cohort import write_lvi_phantom_cohort
    from smartimaging.lvi.segment import LesionSegmenter
    from smartimaging.manifest import read_manifest

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cards", nargs="+", required=True, help="lesion U-Net card paths")
    parser.add_argument("--phantoms", type=int, default=24)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    volume = sitk.ReadImage(str(BREAST1 / "breast1_image.nrrd"))
    label = sitk.ReadImage(str(BREAST1 / "breast1_label.nrrd"))
    clicks = breast1_clicks(label)
    with tempfile.TemporaryDirectory() as folder:
        manifest_path = write_lvi_phantom_cohort(Path(folder) / "fresh", args.phantoms, 99)
        manifest = read_manifest(manifest_path, required=("patient_id", "voi"))
        phantoms = []
        for row in manifest.rows:
            voi = sitk.ReadImage(str(manifest.resolve(row["voi"])))
            stats = sitk.LabelShapeStatisticsImageFilter()
            stats.Execute(sitk.Cast(voi > 0, sitk.sitkUInt8))
            phantoms += [(sitk.ReadImage(str(manifest.resolve(row[column]))), voi, stats.GetCentroid(1), column)
                         for column in ("dce", "t2")]
        results = {}
        for card in args.cards:
            segmenter = LesionSegmenter.load(Path(card).parent, model_id=Path(card).stem)
            real = {name: dict(zip(("dice", "voxels"), dice_at(segmenter, volume, label, point), strict=True))
                    for name, point in clicks.items()}
            scores = {column: [dice_at(segmenter, v, voi, c)[0] for v, voi, c, col in phantoms if col == column]
                      for column in ("dce", "t2")}
            results[card] = {"model": segmenter.provenance, "breast1 (real, held out)": real,
                             "breast1 mean Dice": float(np.mean([r["dice"] for r in real.values()])),
                             "phantom Dice (fresh LVI phantoms, seed 99, centroid click)": {
                                 column: {"mean": float(np.mean(s)), "median": float(np.median(s)), "n": len(s)}
                                 for column, s in scores.items()}}
    text = json.dumps({"clicks_lps_mm": clicks, "results": results}, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
