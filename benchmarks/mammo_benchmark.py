"""MammoRadiomics speed: per-ROI extraction (ours vs pyradiomics' own batch CLI on the same ROIs, in one run),
cohort throughput on 1 core (pinned) and 2 cores, and segmentation time per image.

Both extractors read the same files: each phantom mammogram and its mask saved as a one-slice NRRD volume (what
Slicer saves). pyradiomics is not given the 2D PNGs because, with `force2Ddimension: 0`, it would take a true 2D
image's rows as the out-of-plane axis and compute cheaper row-wise texture. The benchmark checks that both outputs
hold the same 102 feature values.

    .venv/bin/python benchmarks/mammo_benchmark.py --cases 680 --out benchmarks/results/mammo_cpu.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk
import torch
from threadpoolctl import threadpool_limits

from smartimaging.mammo.cohort import write_mammo_phantom_cohort
from smartimaging.mammo.features import extract_cohort, load_mask
from smartimaging.mammo.images import load_mammogram
from smartimaging.mammo.segment import MammoSegmenter, prompt_point
from smartimaging.manifest import read_manifest, write_manifest
from smartimaging.phantoms.mammo import make_mammo_phantom
from smartimaging.radiomics import MAMMO_PARAMS, as_one_slice_volume


def as_nrrd_cohort(manifest_path: Path) -> Path:
    """The phantom cohort re-saved as one-slice NRRD image/mask volumes, with its manifest."""
    manifest = read_manifest(manifest_path)
    rows = []
    for row in manifest.rows:
        mammogram = load_mammogram(manifest.resolve(row["image"]), float(row["pixel_mm"]))
        mask = as_one_slice_volume(load_mask(manifest.resolve(row["mask"]), mammogram))
        mask.CopyInformation(mammogram.image)
        image_path, mask_path = f"images/{row['patient_id']}.nrrd", f"masks/{row['patient_id']}.nrrd"
        sitk.WriteImage(mammogram.image, str(manifest.root / image_path), useCompression=True)
        sitk.WriteImage(mask, str(manifest.root / mask_path), useCompression=True)
        rows.append({**row, "image": image_path, "mask": mask_path, "pixel_mm": ""})
    nrrd_manifest = manifest.root / "manifest_nrrd.csv"
    write_manifest(nrrd_manifest, rows)
    return nrrd_manifest


def pyradiomics_batch(manifest: Path, folder: Path, jobs: int) -> tuple[float, Path]:
    """Seconds for pyradiomics' own CLI (`pyradiomics cases.csv --param ... --jobs N`) on the same image/mask files."""
    cases = folder / "pyradiomics_cases.csv"
    with open(manifest, encoding="utf-8") as f, open(cases, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["Image", "Mask"])
        for row in csv.DictReader(f):
            writer.writerow([manifest.parent / row["image"], manifest.parent / row["mask"]])
    executable = shutil.which("pyradiomics") or str(Path(sys.executable).with_name("pyradiomics"))
    output = folder / f"pyradiomics_{jobs}.csv"
    started = time.perf_counter()
    subprocess.run([executable, str(cases), "--param", str(MAMMO_PARAMS), "--jobs", str(jobs), "-o", str(output),
                    "-f", "csv"], check=True, capture_output=True)
    return time.perf_counter() - started, output


def largest_relative_difference(ours_csv: Path, theirs_csv: Path) -> tuple[int, float]:
    """Features compared and the largest relative difference between the two outputs, row by row."""
    with open(ours_csv, encoding="utf-8") as f:
        ours = list(csv.DictReader(f))
    with open(theirs_csv, encoding="utf-8") as f:
        theirs = list(csv.DictReader(f))
    names = [name for name in ours[0] if name.startswith("original_")]
    worst = 0.0
    for mine, other in zip(ours, theirs, strict=True):
        for name in names:
            a, b = float(mine[name]), float(other[name])
            worst = max(worst, abs(a - b) / max(abs(a), abs(b), 1e-12))
    return len(names), worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=680, help="680 = the paper's masses + calcifications")
    parser.add_argument("--out")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mammo-bench-"))
    manifest = as_nrrd_cohort(write_mammo_phantom_cohort(folder, args.cases, seed=77))
    report = {"machine": {"platform": platform.platform(), "cores": os.cpu_count(), "torch": torch.__version__},
              "cases": args.cases, "inputs": "one-slice NRRD image + mask volumes", "extraction": {}}
    all_cores = os.sched_getaffinity(0)
    for jobs in (1, 2):
        # "1 core" is one core: the process (and the CLI it starts) is pinned to it, BLAS limited to one thread.
        os.sched_setaffinity(0, {min(all_cores)} if jobs == 1 else all_cores)
        with threadpool_limits(1 if jobs == 1 else None):
            ours_csv = folder / f"features_{jobs}.csv"
            started = time.perf_counter()
            extract_cohort(manifest, ours_csv, n_jobs=jobs, show_progress=False)
            ours = time.perf_counter() - started
            theirs, theirs_csv = pyradiomics_batch(manifest, folder, jobs)
        compared, worst = largest_relative_difference(ours_csv, theirs_csv)
        report["extraction"][f"{jobs}_core" + ("s" if jobs > 1 else "")] = {
            "smartimaging_s": ours, "pyradiomics_cli_s": theirs, "smartimaging_rois_per_s": args.cases / ours,
            "pyradiomics_rois_per_s": args.cases / theirs, "smartimaging_vs_pyradiomics": theirs / ours,
            "features_compared": compared, "largest_relative_difference": worst}
    os.sched_setaffinity(0, all_cores)
    report["speedup_2_cores_vs_1"] = (report["extraction"]["1_core"]["smartimaging_s"]
                                      / report["extraction"]["2_cores"]["smartimaging_s"])
    report["segmentation"] = {}
    for kind in ("mass", "calcification"):
        segmenter = MammoSegmenter.load(kind, device="cpu")
        case = make_mammo_phantom(5, kind, 1)
        segmenter.segment(case.image, point=prompt_point(case.mask))
        times = {}
        for mode, call in (("point", lambda s=segmenter, c=case: s.segment(c.image, point=prompt_point(c.mask))),
                           ("whole_image", lambda s=segmenter, c=case: s.segment(c.image))):
            started = time.perf_counter()
            for _ in range(3):
                call()
            times[f"{mode}_s"] = (time.perf_counter() - started) / 3
        report["segmentation"][kind] = {**times, "image": list(case.image.shape)}
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
