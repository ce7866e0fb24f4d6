"""CLI start-up: whole `smartimaging bonescan predict` (the real GE scan), `mammo predict` (a phantom mass, point
prompt) and `lvi predict` (a phantom cancer) beside `python -c "import torch"`, interleaved in one run; ratios of the
wall-clock medians (target ≤ 2.0×), of the fastest runs and of the CPU-time medians (steadier on a shared machine).
One extra run per command with `python -X importtime` says where the import time goes.

    .venv/bin/python benchmarks/cli_startup.py --repeats 5 --out benchmarks/results/cli_startup.json
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GE_BONE_SCAN = REPO / "Resources" / "SampleData" / "GE_NM_wholebody_bone.dcm"
CLI = [sys.executable, "-c", "import sys; from smartimaging.cli import main; sys.exit(main())"]


def commands(folder: Path) -> dict[str, list[str]]:
    """The three predict commands on inputs written to `folder` (phantoms: seed 1)."""
    from smartimaging.lvi.cohort import write_lvi_phantom_cohort
    from smartimaging.mammo.cohort import write_mammo_phantom_cohort

    mammo = write_mammo_phantom_cohort(folder / "mammo", 1, seed=1, kind="mass")
    mri = write_lvi_phantom_cohort(folder / "mri", 1, seed=1)
    row, case = next(csv.DictReader(mammo.open())), next(csv.DictReader(mri.open()))
    return {
        "bonescan predict": ["bonescan", "predict", str(GE_BONE_SCAN), "--out", str(folder / "out-bs")],
        "mammo predict": ["mammo", "predict", str(mammo.parent / row["image"]), "--kind", "mass", "--pixel-mm",
                          row["pixel_mm"], "--point", f"{row['centre_col']},{row['centre_row']}", "--out",
                          str(folder / "out-mg")],
        "lvi predict": ["lvi", "predict", "--dce", str(mri.parent / case["dce"]), "--t2", str(mri.parent / case["t2"]),
                        "--voi", str(mri.parent / case["voi"]), "--out", str(folder / "out-lvi")],
    }


ENV = dict(os.environ)


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system, all threads) of one run of `argv`."""
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(argv, check=True, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def import_profile(argv: list[str], top: int = 8) -> dict:
    """Seconds spent importing (sum of self times) and the packages that cost most, from `-X importtime`."""
    result = subprocess.run([sys.executable, "-X", "importtime", *argv[1:]], cwd=REPO, env=ENV, capture_output=True,
                            text=True, check=True)
    per_package: collections.Counter = collections.Counter()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, _, name = line[len("import time:"):].split("|")
            per_package[name.strip().split(".")[0]] += int(self_us)
    return {"imports_s": round(sum(per_package.values()) / 1e6, 3),
            "top_packages_s": {name: round(us / 1e6, 3) for name, us in per_package.most_common(top)},
            "monai_imported": "monai" in per_package}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch threads in the commands (OMP_NUM_THREADS); default: "
                        "torch's own (one per core). On a machine busy with other work, 2 threads on 2 cores stall "
                        "each other and the networks' seconds drown the start-up being measured")
    parser.add_argument("--out")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    if args.threads:
        ENV["OMP_NUM_THREADS"] = str(args.threads)
    torch_import = [sys.executable, "-c", "import torch"]
    with tempfile.TemporaryDirectory() as scratch:
        runs = {name: CLI + argv for name, argv in commands(Path(scratch)).items()}
        for argv in runs.values():  # warm the file cache; every --out is fresh per run below
            timed(argv)
        times: dict[str, list[tuple[float, float]]] = {"import torch": [], **{name: [] for name in runs}}
        for repeat in range(args.repeats):
            times["import torch"].append(timed(torch_import))
            for name, argv in runs.items():
                out = Path(argv[argv.index("--out") + 1])
                argv = [*argv[:-1], f"{out}-{repeat}"]
                times[name].append(timed(argv))
        profiles = {name: import_profile(argv) for name, argv in runs.items()}

    def summary(name: str) -> dict:
        walls, cpus = ([t[i] for t in times[name]] for i in (0, 1))
        return {"wall_median_s": round(statistics.median(walls), 3), "wall_runs_s": [round(t, 3) for t in walls],
                "cpu_median_s": round(statistics.median(cpus), 3)}

    summaries = {name: summary(name) for name in times}
    baseline = summaries["import torch"]
    report = {
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},  # others' work
        "repeats": args.repeats, "threads": args.threads or "torch default",
        "import_torch": baseline,
        "commands": {name: {**summaries[name],
                            "ratio_wall": round(summaries[name]["wall_median_s"] / baseline["wall_median_s"], 2),
                            "ratio_wall_min": round(min(t[0] for t in times[name]) /
                                                    min(t[0] for t in times["import torch"]), 2),
                            "ratio_cpu": round(summaries[name]["cpu_median_s"] / baseline["cpu_median_s"], 2),
                            **profiles[name]} for name in runs},
    }
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
