"""`mammo train --search` speed-up: the FAE-style search (144 configurations × 5 patient-grouped folds) in one
process and in `--jobs` processes, on the demo mass classifier's training features (240 phantom masses, seed 21, the
192 training rows), in one run, serial and parallel interleaved `--repeats` times (speed-up of the fastest runs, and
the cores each run obtained on the shared machine); the two tables must be identical.

    .venv/bin/python benchmarks/search_parallel.py --jobs 2 --repeats 2 --out benchmarks/results/search_parallel.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from joblib.externals.loky import get_reusable_executor


def training_features(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The demo card's cohort and features (its `cohort_command` and `features_command`), training rows."""
    from smartimaging.mammo.classify import read_features
    from smartimaging.mammo.cohort import write_mammo_phantom_cohort
    from smartimaging.mammo.features import extract_cohort

    manifest = write_mammo_phantom_cohort(folder / "mass", 240, seed=21, kind="mass",
                                          splits={"train": 0.8, "val": 0.2})
    extract_cohort(manifest, folder / "features.csv", show_progress=False)
    rows, names = read_features(folder / "features.csv", "train")
    return (np.array([[float(row[n]) for n in names] for row in rows]), np.array([int(row["label"]) for row in rows]),
            np.array([row["patient_id"] for row in rows]))


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its exited children (the joblib workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    from smartimaging.mammo.search import search

    warnings.simplefilter("ignore", FutureWarning)  # sklearn's SVC(probability=True) deprecation, once per fit
    with tempfile.TemporaryDirectory() as scratch:
        X, y, groups = training_features(Path(scratch))
    times: dict[int, list[tuple[float, float]]] = {1: [], args.jobs: []}
    results = {}
    for _ in range(args.repeats):  # interleaved: a burst of other work on the machine hits both sides
        for n_jobs in times:
            before, started = _cpu_seconds(), time.perf_counter()
            results[n_jobs] = search(X, y, groups, n_jobs=n_jobs)
            get_reusable_executor().shutdown(wait=True)  # the workers' CPU time is counted once they have exited
            times[n_jobs].append((time.perf_counter() - started, _cpu_seconds() - before))
    serial, parallel = results[1], results[args.jobs]
    sides = (("serial", 1), ("parallel", args.jobs))
    report = {
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "python": platform.python_version()},
        "load_average_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},  # others' work
        "cases": len(y), "configurations": len(serial.table), "folds": 5,
        "jobs": args.jobs,
        # wall seconds, and cores obtained (CPU seconds / wall seconds): near 1 for both when other work holds a core
        **{f"{side}_s": [round(wall, 2) for wall, _ in times[n]] for side, n in sides},
        **{f"{side}_cores": [round(cpu / wall, 2) for wall, cpu in times[n]] for side, n in sides},
        "speed_up_fastest": round(min(w for w, _ in times[1]) / min(w for w, _ in times[args.jobs]), 2),
        "identical_table": parallel.table == serial.table, "identical_choice": parallel.best == serial.best,
        "selected": serial.best,
    }
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
