"""MammoRadiomics speed: per-ROI extraction (ours vs pyradiomics' own batch CLI on the same ROIs, in one run),
cohort throughput with 1 and 2 processes, and segmentation time per image.

    .venv/bin/python benchmarks/mammo_benchmark.py --cases 24 --out benchmarks/results/mammo_cpu.json
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from smartimaging.mammo.features import extract_cohort, write_mammo_phantom_cohort
from smartimaging.mammo.segment import MammoSegmenter, prompt_point
from smartimaging.phantoms.mammo import make_mammo_phantom
from smartimaging.radiomics import MAMMO_PARAMS


def pyradiomics_batch(manifest: Path, folder: Path, jobs: int) -> float:
    """Seconds for pyradiomics' own CLI (`pyradiomics cases.csv --param ... --jobs N`) on the same image/mask pairs."""
    cases = folder / "pyradiomics_cases.csv"
    with open(manifest) as f, open(cases, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["Image", "Mask"])
        for row in csv.DictReader(f):
            writer.writerow([manifest.parent / row["image"], manifest.parent / row["mask"]])
    executable = shutil.which("pyradiomics") or str(Path(sys.executable).with_name("pyradiomics"))
    started = time.perf_counter()
    subprocess.run([executable, str(cases), "--param", str(MAMMO_PARAMS), "--jobs", str(jobs), "-o",
                    str(folder / f"pyradiomics_{jobs}.csv"), "-f", "csv", "--setting", "label:255"],
                   check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=24)
    parser.add_argument("--out")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="mammo-bench-"))
    manifest = write_mammo_phantom_cohort(folder, args.cases, seed=77, kind="mass")
    report = {"machine": {"platform": platform.platform(), "cores": __import__("os").cpu_count(),
                          "torch": torch.__version__}, "cases": args.cases, "extraction": {}}
    for jobs in (1, 2):
        started = time.perf_counter()
        extract_cohort(manifest, folder / f"features_{jobs}.csv", n_jobs=jobs, show_progress=False)
        ours = time.perf_counter() - started
        theirs = pyradiomics_batch(manifest, folder, jobs)
        report["extraction"][f"jobs_{jobs}"] = {"smartimaging_s": ours, "pyradiomics_cli_s": theirs,
                                                "smartimaging_rois_per_s": args.cases / ours,
                                                "pyradiomics_rois_per_s": args.cases / theirs}
    report["speedup_2_vs_1_process"] = (report["extraction"]["jobs_1"]["smartimaging_s"]
                                        / report["extraction"]["jobs_2"]["smartimaging_s"])
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
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
