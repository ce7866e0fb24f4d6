"""Slicer-free worker for long jobs: `python -m smartimaging.worker <job> ...` prints one JSON line per event.

Events: {"event": "progress", "fraction": f, "message": m}, {"event": "result", ...}, {"event": "error",
"message": m}. The desktop module and the web station start it with :class:`WorkerProcess`, poll its events
without blocking the GUI, and cancel it by terminating the process.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from .cli import DISK_ERRORS
from .errors import CancelledError, SmartImagingError


def emit(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def _bonescan_segment(args) -> None:
    from .bonescan.outputs import source_labelmaps
    from .bonescan.pipeline import BoneScanModels, analyse
    from .bonescan.views import study_from_images
    from .io import atomic_output_dir, read_volume, write_image
    from .segfile import labelmap_image

    emit("progress", fraction=0.0, message="loading images")
    paths = [Path(p) for p in args.input]
    images = [read_volume(p) for p in paths]
    study = study_from_images(images, paths, view_names=args.views.split(",") if args.views else None)
    emit("progress", fraction=0.05, message="loading models")
    models = BoneScanModels.load(directory=args.models_dir, device=args.device)
    result = analyse(study, models, progress=lambda f, m: emit("progress", fraction=0.1 + 0.85 * f, message=m))
    names = [f"labels_{index}.nrrd" for index in range(len(study.images))]
    with atomic_output_dir(args.output_dir) as scratch:  # a cancel leaves no partial label files
        for name, image, labels in zip(names, study.images, source_labelmaps(study, result.labelmaps), strict=True):
            write_image(labelmap_image(labels, image), scratch / name)
    emit("result", labels=[str(Path(args.output_dir) / name) for name in names], result=result.as_json())


def _mammo_batch(args) -> None:
    from .mammo.batch import predict_folder

    summary = predict_folder(args.input[0], args.kind, args.output_dir, args.masks, args.pixel_mm, args.models_dir,
                             args.device, progress=lambda f, m: emit("progress", fraction=f, message=m))
    emit("result", results=str(summary.out_dir / "results.csv"), images=summary.images, failed=summary.failed)


def _dce_synthesize(args) -> None:
    from .dce.synthesis import synthesize_file

    emit("progress", fraction=0.0, message="loading the T1 volume and the model")
    result = synthesize_file(args.input[0], args.output_dir, args.dce, args.models_dir, args.device,
                             progress=lambda f, m: emit("progress", fraction=0.05 + 0.9 * f, message=m))
    emit("result", output_dir=str(args.output_dir), seconds=result.record["seconds"])


def _lvi_predict(args) -> None:
    from .lvi.predict import DEFAULT_MODELS, predict_files

    emit("progress", fraction=0.0, message="loading the sequences and the models")
    prediction = predict_files({"DCE": args.dce, "T2": args.t2}, args.voi, args.output_dir,
                               args.models or DEFAULT_MODELS, args.models_dir, args.device)
    emit("progress", fraction=1.0, message="done")
    emit("result", output_dir=str(args.output_dir), fused=prediction.as_json()["fused"])


def _cancel_on_terminate(signum, frame) -> None:
    raise CancelledError("cancelled")


JOBS = {"bonescan-segment": _bonescan_segment, "mammo-batch": _mammo_batch, "dce-synthesize": _dce_synthesize,
        "lvi-predict": _lvi_predict}


def main(argv: list[str] | None = None) -> int:
    """Run one job; exit 2 with an "error" event for bad input, a cancelled job, a missing model or a full disk."""
    parser = argparse.ArgumentParser(prog="python -m smartimaging.worker")
    parser.add_argument("job", choices=sorted(JOBS))
    parser.add_argument("--input", nargs="+")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--views")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models-dir")
    parser.add_argument("--kind", choices=["mass", "calcification"])
    parser.add_argument("--masks")
    parser.add_argument("--pixel-mm", type=float)
    parser.add_argument("--dce", help="real DCE volume (dce-synthesize) or DCE phase 2 (lvi-predict)")
    parser.add_argument("--t2", help="FS-T2WI volume (lvi-predict)")
    parser.add_argument("--voi", help="lesion VOI (lvi-predict)")
    parser.add_argument("--models", nargs="+", help="model ids (lvi-predict)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _cancel_on_terminate)  # cancel unwinds: scratch outputs are removed
    try:
        JOBS[args.job](args)
    except (SmartImagingError, CancelledError) as exc:
        emit("error", message=str(exc))
        return 2
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        emit("error", message=f"{DISK_ERRORS[exc.errno]}{where}; nothing was written")
        return 2
    return 0


class WorkerProcess:
    """A running worker: `poll()` returns the events read so far without blocking; `cancel()` stops it."""

    def __init__(self, job: str, arguments: list[str], python: str | None = None):
        command = [python or sys.executable, "-m", "smartimaging.worker", job, *arguments]
        package_root = str(Path(__file__).resolve().parents[1])  # importable from a source checkout too
        environment = {**os.environ,
                       "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=environment)
        self._events: queue.Queue = queue.Queue()
        self._stderr: list[str] = []
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        threading.Thread(target=lambda: self._stderr.extend(self.process.stderr), daemon=True).start()
        self.cancelled = False

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            try:
                self._events.put(json.loads(line))
            except json.JSONDecodeError:
                self._stderr.append(line)

    def poll(self) -> list[dict]:
        events = []
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def dispatch(self, on_progress, on_result, on_error) -> bool:
        """Hand the events read so far to the callbacks (progress: fraction, message; result: event; error: message,
        details); True once the job is over, including a process that died without a word."""
        for event in self.poll():
            if event["event"] == "progress":
                on_progress(event["fraction"], event.get("message", ""))
            elif event["event"] == "result":
                on_result(event)
                return True
            elif event["event"] == "error":
                on_error(event["message"], "")
                return True
        if self.finished and not self._reader.is_alive() and self._events.empty():
            on_error("The background process stopped unexpectedly.", self.stderr[-2000:])
            return True
        return False

    @property
    def finished(self) -> bool:
        return self.process.poll() is not None

    def cancel(self) -> None:
        self.cancelled = True
        if not self.finished:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def wait(self, timeout: float | None = None) -> list[dict]:
        """Block until the worker exits (for scripts and tests); returns all remaining events."""
        self.process.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        return self.poll()

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)


if __name__ == "__main__":
    sys.exit(main())
