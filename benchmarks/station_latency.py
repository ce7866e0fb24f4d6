"""Station latency through the warm worker: from a module's click to its result read back, ready to show, beside the
same step called directly in this process with the models in memory, per module, in one run (ratios).

    .venv/bin/python benchmarks/station_latency.py --repeats 10 --threads 1 \
        --out benchmarks/results/station_latency_cpu.json
    .venv/bin/python benchmarks/station_latency.py --repeats 10 --threads 1 --real \
        --out benchmarks/results/station_latency_real_cpu.json

Per module (bone-scan Segment, LVI predict, DCE synthesize, on the station's first sample case, or with --real on
the real cases):
- direct: the algorithm on the images in memory (first call: loads the models; warm: models loaded);
- warm worker: the inputs written as the scene adapters write them (NRRD), the job sent to the session's warm worker,
  its events polled every 10 ms as a GUI timer does, the outputs read back as the scene adapters read them. "first":
  the first click after the module opened (the worker was started then, loaded the module's models and ran them once
  on a phantom); "warm": the next clicks. One warm worker serves all three modules, as in a station or a Slicer
  session;
- one-shot: today's worker process per click (`WorkerProcess`), for reference.
Scene-node creation and rendering are left out of both sides (the same work either way). Direct and worker clicks
alternate, 0.5 s apart; medians and minimums are reported (the machine may be shared: its load average is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from smartimaging.warm_worker import WarmWorker  # noqa: E402
from smartimaging.worker import WorkerProcess  # noqa: E402

POLL_S = 0.01
PAUSE_S = 0.5  # between clicks (a reader's clicks are seconds apart): each call starts on a machine at rest


class BoneScanSegment:
    job, module = "bonescan-segment", "BoneScanBSTBI"

    def __init__(self, files):
        from smartimaging.bonescan.views import load_bone_scan

        study = load_bone_scan([files.volumes["scan"]])
        self.image, self.views = study.images[0], [view.name for view in study.views]

    def load_models(self):
        from smartimaging.bonescan.pipeline import BoneScanModels

        return BoneScanModels.load(device="cpu")

    def direct(self, models):
        from smartimaging.bonescan.outputs import source_labelmaps
        from smartimaging.bonescan.pipeline import analyse
        from smartimaging.bonescan.views import study_from_images

        study = study_from_images([self.image], [Path("scan.nrrd")], view_names=self.views)
        return source_labelmaps(study, analyse(study, models).labelmaps)

    def arguments(self, folder: Path) -> list[str]:
        sitk.WriteImage(self.image, str(folder / "input_0.nrrd"))
        return ["--input", str(folder / "input_0.nrrd"), "--output-dir", str(folder / "out"), "--views",
                ",".join(self.views)]

    @staticmethod
    def read_back(event: dict):
        return [sitk.GetArrayFromImage(sitk.ReadImage(path)) for path in event["labels"]]


class LVIPredict:
    job, module = "lvi-predict", "BreastLVI"

    def __init__(self, files):
        from smartimaging.io import read_series_or_volume

        self.volumes = {role: read_series_or_volume(path) for role, path in files.volumes.items()}
        reference = self.volumes["DCE"]  # a 10 mm ball at the case's lesion point, as a reader's VOI
        centre = np.array(reference.TransformPhysicalPointToContinuousIndex(files.point_lps))
        k, j, i = np.indices(reference.GetSize()[::-1])
        spacing = np.array(reference.GetSpacing())
        distance = np.sqrt(sum(((axis - c) * s) ** 2 for axis, c, s in zip((i, j, k), centre, spacing, strict=True)))
        self.voi = sitk.GetImageFromArray((distance <= 10).astype(np.uint8))
        self.voi.CopyInformation(reference)

    def load_models(self):
        from smartimaging.lvi.predict import DEFAULT_MODELS, load_lvi_model

        return {model_id: load_lvi_model(model_id, device="cpu") for model_id in DEFAULT_MODELS}

    def direct(self, models):
        from smartimaging.lvi.predict import predict_case

        prediction = predict_case(self.volumes, self.voi, list(models), device="cpu",
                                  loader=lambda model_id, directory, device: models[model_id])
        return prediction.as_json(), [model.heat_map for model in prediction.models]

    def arguments(self, folder: Path) -> list[str]:
        arguments = []
        for role, image in self.volumes.items():
            sitk.WriteImage(image, str(folder / f"{role.lower()}.nrrd"))
            arguments += [f"--{role.lower()}", str(folder / f"{role.lower()}.nrrd")]
        sitk.WriteImage(self.voi, str(folder / "voi.nrrd"))
        return [*arguments, "--voi", str(folder / "voi.nrrd"), "--output-dir", str(folder / "out")]

    @staticmethod
    def read_back(event: dict):
        folder = Path(event["output_dir"])
        record = json.loads((folder / "result.json").read_text(encoding="utf-8"))
        return record, [sitk.ReadImage(str(folder / model["heat_map"])) for model in record["models"]]


class DCESynthesize:
    job, module = "dce-synthesize", "DCESynthesis"

    def __init__(self, files):
        from smartimaging.dce.volumes import load_mr_volume

        self.t1 = load_mr_volume(files.volumes["T1"], "T1")
        self.dce = load_mr_volume(files.volumes["DCE"], "DCE") if "DCE" in files.volumes else None

    def load_models(self):
        from smartimaging.dce.synthesis import DCESynthesizer

        return DCESynthesizer.load(device="cpu")

    def direct(self, synthesizer):
        from smartimaging.dce.synthesis import synthesize_volume

        return synthesize_volume(self.t1, synthesizer, self.dce)

    def arguments(self, folder: Path) -> list[str]:
        sitk.WriteImage(self.t1, str(folder / "t1.nrrd"))
        arguments = ["--input", str(folder / "t1.nrrd"), "--output-dir", str(folder / "out")]
        if self.dce is not None:
            sitk.WriteImage(self.dce, str(folder / "dce.nrrd"))
            arguments += ["--dce", str(folder / "dce.nrrd")]
        return arguments

    @staticmethod
    def read_back(event: dict):
        folder = Path(event["output_dir"])
        return ([sitk.ReadImage(str(folder / name)) for name in ("synthetic_dce.nrrd", "subtraction.nrrd",
                                                                  "subtraction_mip.nrrd")],
                json.loads((folder / "result.json").read_text(encoding="utf-8")))


STEPS = (BoneScanSegment, LVIPredict, DCESynthesize)


def load_and_run(step) -> None:
    """The first direct call: load the models (kept on the step), then run."""
    step.models = step.load_models()
    step.direct(step.models)



def timed(function) -> tuple[float, float]:
    """Wall and CPU seconds (this process) of `function()`."""
    started, cpu_started = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - started, time.process_time() - cpu_started


def click(step, start_job) -> tuple[float, float, dict]:
    """Write the inputs, run the job (polled as a GUI timer does), read the outputs back: wall seconds, CPU seconds
    here and in the worker (its job's own count), result event."""
    with tempfile.TemporaryDirectory(prefix="smartimaging-latency-") as folder:
        started, cpu_started = time.perf_counter(), time.process_time()
        job = start_job(step.job, [*step.arguments(Path(folder)), "--device", "cpu"])
        outcome: dict = {}
        while not job.dispatch(lambda *_: None, lambda event: outcome.update(result=event),
                               lambda message, details: outcome.update(error=f"{message} {details}")):
            time.sleep(POLL_S)
        if "error" in outcome:
            raise RuntimeError(f"{step.job}: {outcome['error']}")
        step.read_back(outcome["result"])
        event = outcome["result"]
        return (time.perf_counter() - started,
                time.process_time() - cpu_started + event["worker"].get("cpu_seconds", float("nan")), event)


def station_case(module: str, real: bool):
    """The station's first sample case of `module`, or with `real` its first real case; DCE has none among the
    station's samples: the real breast MRI (pyradiomics breast1) as its T1, without a real DCE."""
    from smartimaging.web.cases import CaseFiles, SampleCase, realdata_folder, sample_cases

    cases = sample_cases()[module]
    if not real:
        return cases[0]
    if module == "DCESynthesis":
        t1 = realdata_folder() / "breast_mri_pyradiomics" / "breast1_image.nrrd"
        return SampleCase(module, "Real breast MRI (pyradiomics breast1) as T1", "",
                          lambda folder: CaseFiles({"T1": t1}))
    return next(case for case in cases if case.name.startswith("Real"))


def measure(repeats: int, real: bool) -> dict:
    results = {}
    worker = WarmWorker()
    with tempfile.TemporaryDirectory(prefix="smartimaging-latency-cases-") as cases_folder:
        for step_class in STEPS:
            case = station_case(step_class.module, real)
            step = step_class(case.write(Path(cases_folder) / step_class.module))
            one_shot = click(step, WorkerProcess)[0]
            # the module opens: the warm worker starts (first module) and loads this module's models meanwhile
            worker.warm_up(step.job, ["--device", "cpu"]).wait(timeout=600)
            first, _, event = click(step, worker.submit)
            loads_after_first = event["worker"]["model_loads"]
            direct_first = timed(lambda s=step: load_and_run(s))[0]
            direct, through = [], []
            for _ in range(repeats):  # interleaved, so that both sides see the same machine load
                time.sleep(PAUSE_S)
                direct.append(timed(lambda s=step: s.direct(s.models)))
                time.sleep(PAUSE_S)
                seconds, cpu_seconds, event = click(step, worker.submit)
                through.append((seconds, cpu_seconds))
            direct_wall, direct_cpu = zip(*direct, strict=True)
            through_wall, through_cpu = zip(*through, strict=True)
            results[step.module] = {
                "job": step.job, "case": case.name,
                "direct_first_s": round(direct_first, 3), "direct_warm_s": _summary(direct_wall),
                "direct_warm_cpu_s": _summary(direct_cpu),
                "worker_first_s": round(first, 3), "worker_warm_s": _summary(through_wall),
                "worker_warm_cpu_s": _summary(through_cpu), "one_shot_s": round(one_shot, 3),
                "ratio_first": round(first / direct_first, 2),
                "ratio_warm_median": round(statistics.median(through_wall) / statistics.median(direct_wall), 2),
                "ratio_warm_min": round(min(through_wall) / min(direct_wall), 2),
                "ratio_warm_cpu_median": round(statistics.median(through_cpu) / statistics.median(direct_cpu), 2),
                "model_loads": {"after_first_click": loads_after_first, "after_all": event["worker"]["model_loads"]},
                "worker_pid": event["worker"]["pid"]}
            print(step.module, json.dumps(results[step.module]), flush=True)
    rss_mib = _rss_mib(worker.process.pid)
    worker.stop()
    return {"modules": results, "warm_worker_processes_started": worker.starts,
            "warm_worker_rss_mib_all_modules": rss_mib}


def _rss_mib(pid: int) -> float | None:
    """Resident memory of a process (Linux /proc; None elsewhere)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    except OSError:
        return None
    return round(int(next(line for line in status.splitlines() if line.startswith("VmRSS")).split()[1]) / 1024, 1)


def _summary(values) -> dict:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "mean": round(statistics.mean(values), 3),
            "sd": round(statistics.stdev(values), 3) if len(values) > 1 else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="warm clicks per module")
    parser.add_argument("--threads", type=int, help="torch threads here and in the workers (default: torch's); 1 "
                        "on a machine shared with other work (2-thread runs stall when a thread is descheduled)")
    parser.add_argument("--real", action="store_true", help="the real cases (GE bone scan; breast1 for LVI, and as "
                        "the T1 of DCE), from Resources/SampleData and ../shared/realdata")
    parser.add_argument("--out", required=True)
    options = parser.parse_args()
    import torch

    if options.threads:
        os.environ["OMP_NUM_THREADS"] = str(options.threads)  # the worker processes' torch reads it
        torch.set_num_threads(options.threads)
    load_before = os.getloadavg()[0]
    results = {"date": time.strftime("%Y-%m-%d"), "machine": {
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "system": platform.platform(),
        "python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
        "poll_s": POLL_S, "pause_s": PAUSE_S, **measure(options.repeats, options.real)}
    results["load_average_1min"] = {"before": load_before, "after": os.getloadavg()[0]}  # other work on the machine
    Path(options.out).parent.mkdir(parents=True, exist_ok=True)
    Path(options.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
