"""Slicer-free worker for long jobs: one JSON line per event on stdout.

Events: {"event": "progress", "fraction": f, "message": m}, {"event": "result", ...}, {"event": "error", "message": m};
the last two end a job and carry "worker": {"pid", "model_loads", "cache_hits", "retiring"} (models loaded and cache
hits so far in this process; whether it ends after this job; a warm worker adds the job's "seconds",
"cpu_seconds" and torch's "threads": it leaves one core to the GUI it serves). Two ways to run it:

- one job per process: `python -m smartimaging.worker <job> ...`, started by :class:`WorkerProcess`;
- warm: `python -m smartimaging.worker serve` reads one request a line on stdin ({"id": n, "job": j, "arguments":
  [...]}, or {"id": n, "warm_up": j, "arguments": [...]} to load a job's models ahead and run them once on a
  phantom) and runs them one after the other in the same process, so imports and loaded models
  (:class:`ModelCache`) serve the next job of any module; its events carry the request's "id". It exits after a
  cancel, and after a job that left it above `--max-rss-mb` ("retiring": the client,
  :mod:`smartimaging.warm_worker`, starts a fresh one).

Output volumes are written uncompressed: the GUI reads them back at once. Both ways run in their own process group
(POSIX session; Windows process group) so that a cancel stops the whole tree (:func:`kill_process_tree`): inside
Slicer the process started is the `PythonSlicer` launcher, not the python that runs the job.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path

from .errors import DISK_ERRORS, CancelledError, InputError, SmartImagingError

CANCEL_GRACE_S = 5.0  # a cancelled job unwinds (removes its scratch outputs) within this, else it is killed
DEFAULT_CACHE_MB = 1024  # parameters and buffers of the models a warm worker keeps
DEFAULT_MAX_RSS_MB = 4096  # a warm worker above this after a job exits; the next job starts a fresh one

_request: dict = {}  # the warm worker's current request id, added to every event
_held: list[dict] = []  # the warm worker's last result or error, sent once it knows whether it retires


class ModelCache:
    """Models loaded by this process, kept for its next jobs; the least recently used go first once their
    parameters exceed `budget_bytes`. Keyed by what was loaded, the device, and each card's path with the sha256 of
    the card and of the weights it names, so that weights replaced on disk are loaded (and checked) again, never
    served stale."""

    def __init__(self, budget_bytes: int = DEFAULT_CACHE_MB * 2**20):
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[tuple, tuple[object, int]] = OrderedDict()
        self.loads = self.hits = 0

    def get(self, what: str, model_ids: Iterable[str], directory, device: str, load: Callable[[], object]):
        """The cached result of `load()` (which loads `model_ids` from `directory` onto `device`), else `load()`."""
        key = (what, str(device), tuple(_model_files_fingerprint(model_id, directory) for model_id in model_ids))
        if key in self._entries:
            self._entries.move_to_end(key)
            self.hits += 1
            return self._entries[key][0]
        value = load()
        self.loads += 1
        self._entries[key] = (value, _tensor_bytes(value))
        while len(self._entries) > 1 and sum(size for _, size in self._entries.values()) > self.budget_bytes:
            self._entries.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._entries)


def _model_files_fingerprint(model_id: str, directory) -> tuple[str, str, str]:
    """The card's path and the sha256 of the card and of its weights, the weights' size checked first (a hostile
    folder's huge file is refused before it is read)."""
    from .models.registry import check_weights_size, file_in_model_folder, read_card

    card, card_path = read_card(model_id, directory)
    weights = file_in_model_folder(card_path, card.get("weights_file", f"{card['id']}.safetensors"))
    check_weights_size(weights)
    return str(card_path.resolve()), file_digest(card_path), file_digest(weights)


_DIGESTS: dict[str, tuple[tuple, str]] = {}
RACY_S = 2.0  # a file changed this close to its hashing is hashed again next time (coarse file-system clocks)


def file_digest(path: Path) -> str:
    """sha256 of a file, hashed again whenever its size, times, inode or device changed. As git does for its index,
    a digest is only reused when the file was last changed more than RACY_S before it was hashed, so that a rewrite
    within one tick of a coarse file-system clock is never missed."""
    from .models.registry import sha256_of

    stat = path.stat()
    signature = (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev)
    known = _DIGESTS.get(str(path))
    if known is not None and known[0] == signature:
        return known[1]
    digest = sha256_of(path)
    if time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) > RACY_S * 1e9:
        _DIGESTS[str(path)] = (signature, digest)
    return digest


def _tensor_bytes(value) -> int:
    """Bytes of the parameters and buffers of the networks inside a loaded model (or a group of them)."""
    import torch

    if isinstance(value, torch.nn.Module):
        return sum(t.numel() * t.element_size() for t in (*value.parameters(), *value.buffers()))
    if isinstance(value, (list, tuple)):
        return sum(map(_tensor_bytes, value))
    return sum(map(_tensor_bytes, getattr(value, "__dict__", {}).values()))


MODELS = ModelCache()


def emit(event: str, **fields) -> None:
    payload = {"event": event, **_request, **fields}
    if event in ("result", "error"):
        payload["worker"] = {"pid": os.getpid(), "model_loads": MODELS.loads, "cache_hits": MODELS.hits,
                             "retiring": False}
        if _request:
            _held.append(payload)
            return
    _print(payload)


def _print(payload: dict) -> None:
    print(json.dumps(payload), flush=True)


def _bonescan_models(directory, device: str, classifier: str | None = None, segmenter: str | None = None):
    """The bone-scan networks: the demo ones, or the cards `classifier` (a model trained on a cohort) and
    `segmenter` (a fine-tuned U-Net)."""
    from .bonescan.pipeline import CLASSIFIER_ID, SEGMENTER_ID, BoneScanModels

    classifier, segmenter = classifier or CLASSIFIER_ID, segmenter or SEGMENTER_ID
    return MODELS.get("bonescan", (classifier, segmenter), directory, device,
                      lambda: BoneScanModels.load(classifier, segmenter, directory, device))


def _dce_synthesizer(directory, device: str, generator: str | None = None):
    """The DCE generator: the demo one, or the card `generator` (one fine-tuned on a cohort)."""
    from .dce.synthesis import MODEL_ID, DCESynthesizer

    model = generator or MODEL_ID
    return MODELS.get("dce", (model,), directory, device, lambda: DCESynthesizer.load(directory, device, model))


def _lvi_model(model_id: str, directory, device: str):
    from .lvi.predict import load_lvi_model

    return MODELS.get("lvi", (model_id,), directory, device, lambda: load_lvi_model(model_id, directory, device))


def _bonescan_segment(args) -> None:
    from .bonescan.outputs import source_labelmaps
    from .bonescan.pipeline import analyse
    from .bonescan.views import study_from_images
    from .io import atomic_output_dir, read_volume, write_image
    from .segfile import labelmap_image

    emit("progress", fraction=0.0, message="loading images")
    paths = [Path(p) for p in args.input]
    images = [read_volume(p) for p in paths]
    study = study_from_images(images, paths, view_names=args.views.split(",") if args.views else None)
    emit("progress", fraction=0.05, message="loading models")
    models = _bonescan_models(args.models_dir, args.device, args.classifier, args.segmenter)
    result = analyse(study, models, progress=lambda f, m: emit("progress", fraction=0.1 + 0.85 * f, message=m))
    for index, card in enumerate((args.classifier, args.segmenter)):
        if card:  # a card outside the models folder: the result names where it is
            result.models[index] = {**result.models[index], "card": str(Path(card).resolve())}
    names = [f"labels_{index}.nrrd" for index in range(len(study.images))]
    with atomic_output_dir(args.output_dir) as scratch:  # a cancel leaves no partial label files
        for name, image, labels in zip(names, study.images, source_labelmaps(study, result.labelmaps), strict=True):
            write_image(labelmap_image(labels, image), scratch / name, compress=False)  # read back at once
    emit("result", labels=[str(Path(args.output_dir) / name) for name in names], result=result.as_json())


def _mammo_batch(args) -> None:
    from .mammo.batch import predict_folder

    summary = predict_folder(args.input[0], args.kind, args.output_dir, args.masks, args.pixel_mm, args.models_dir,
                             args.device, progress=lambda f, m: emit("progress", fraction=f, message=m))
    emit("result", results=str(summary.out_dir / "results.csv"), images=summary.images, failed=summary.failed)


def _mammo_propose(args) -> None:
    """The lesion U-Net's ROI for every row of a cohort manifest (`mammo.propose`); the result: the new manifest."""
    from .mammo.propose import propose_cohort

    if not args.manifest:
        raise InputError("mammo-propose needs --manifest")
    summary = propose_cohort(args.manifest, args.output_dir, args.kind, args.models_dir, args.device,
                             args.correct_fraction, progress=lambda f, m: emit("progress", fraction=f, message=m))
    emit("result", manifest=str(summary.manifest), rows=summary.rows, ai=summary.ai, classical=summary.classical,
         corrected=summary.corrected, mean_dice=summary.mean_dice)


def _dce_synthesize(args) -> None:
    from .dce.synthesis import synthesize_file

    emit("progress", fraction=0.0, message="loading the T1 volume and the model")
    result = synthesize_file(args.input[0], args.output_dir, args.dce, args.models_dir, args.device,
                             progress=lambda f, m: emit("progress", fraction=0.05 + 0.9 * f, message=m),
                             loader=lambda directory, device: _dce_synthesizer(directory, device, args.generator),
                             compress=False)
    emit("result", output_dir=str(args.output_dir), seconds=result.record["seconds"])


def _lvi_predict(args) -> None:
    from .lvi.predict import DEFAULT_MODELS, predict_files

    emit("progress", fraction=0.0, message="loading the sequences and the models")
    prediction = predict_files({"DCE": args.dce, "T2": args.t2}, args.voi, args.output_dir,
                               args.models or DEFAULT_MODELS, args.models_dir, args.device, loader=_lvi_model,
                               compress=False, progress=lambda f, m: emit("progress", fraction=0.05 + 0.9 * f,
                                                                          message=m))
    emit("progress", fraction=1.0, message="done")
    emit("result", output_dir=str(args.output_dir), fused=prediction.as_json()["fused"])


def _finetune_segmenter(args) -> None:
    """Fine-tune a task's proposal U-Net (`smartimaging.finetune`); the result: the new card and Dice before/after.
    A phantom cohort's manifest (its marker) is labelled phantom without --phantom."""
    import shlex

    from .finetune import BATCH_SIZES
    from .proposal_networks import phantom_manifest
    from .training import TrainConfig

    missing = [option for option, value in (("--task", args.task), ("--manifest", args.manifest),
                                            ("--from-card", args.from_card), ("--name", args.name)) if not value]
    if missing or (args.epochs is not None and args.epochs < 1):
        raise InputError(f"finetune-segmenter needs {', '.join(missing) or '--epochs of at least 1'}")
    if args.task == "mammo":
        from .mammo.segment import finetune_segmenter as finetune
    elif args.task == "lvi":
        from .lvi.segment import finetune_lesion_segmenter as finetune
    else:
        from .bonescan.train import finetune_segmenter as finetune
    phantom = args.phantom or phantom_manifest(args.manifest)
    options = ["--task", args.task, "--manifest", args.manifest, "--from-card", args.from_card, "--output-dir",
               args.output_dir, "--name", args.name, "--seed", str(args.seed), "--device", args.device]
    options += (["--epochs", str(args.epochs)] if args.epochs else []) + (["--phantom"] if phantom else [])
    config = TrainConfig(epochs=args.epochs, batch_size=BATCH_SIZES[args.task], learning_rate=None, seed=args.seed,
                         device=args.device, amp=False, show_progress=False)
    result = finetune(args.manifest, args.from_card, args.output_dir, args.name, config, phantom=phantom,
                      progress=lambda f, m: emit("progress", fraction=f, message=m),
                      command=shlex.join(["python", "-m", "smartimaging.worker", "finetune-segmenter", *options]))
    emit("result", **result.as_json())


def _cohort_train(args) -> None:
    """Train a module's classifier on a worklist's cohort (`--output-dir`: the worklist's folder in the cohort)."""
    from .cohort_training import train_from_worklist

    card = train_from_worklist(args.output_dir, args.module, args.name, args.seed,
                               lambda f, m: emit("progress", fraction=f, message=m), method=args.method,
                               kind=args.kind, epochs=args.epochs, network=args.network, sequence=args.sequence)
    emit("result", card=str(card), model=args.name)


def _cohort_evaluate(args) -> None:
    """The paper's table of a cohort's model on the worklist's held-out test cases."""
    from .cohort_training import evaluate_model

    report = evaluate_model(args.output_dir, args.module, args.name,
                            lambda f, m: emit("progress", fraction=f, message=m))
    emit("result", evaluation=report)


JOBS = {"bonescan-segment": _bonescan_segment, "mammo-batch": _mammo_batch, "mammo-propose": _mammo_propose,
        "dce-synthesize": _dce_synthesize,
        "lvi-predict": _lvi_predict, "finetune-segmenter": _finetune_segmenter,
        "cohort-train": _cohort_train, "cohort-evaluate": _cohort_evaluate}


def _phantom_bone_scan(folder: Path) -> list[str]:
    import numpy as np
    import SimpleITK as sitk

    from .phantoms.bonescan import make_bone_scan_phantom

    phantom = make_bone_scan_phantom(0)
    sitk.WriteImage(sitk.GetImageFromArray(np.stack(list(phantom.views.values()))), str(folder / "scan.nrrd"))
    return ["--input", str(folder / "scan.nrrd"), "--views", ",".join(phantom.views)]


def _phantom_breast_mri(folder: Path, sequences: dict[str, str], lvi: int | None = None, shape=None) -> dict:
    """Phantom volumes as NRRD: `sequences` maps a file stem to the phantom's array attribute; the lesion VOI too."""
    import SimpleITK as sitk

    from .phantoms.breast_mri import SHAPE, make_breast_mri_phantom, phantom_image

    case = make_breast_mri_phantom(0, shape or SHAPE, lvi=lvi)
    arrays = {stem: getattr(case, attribute) for stem, attribute in sequences.items()}
    arrays["voi"] = (case.lesions > 0).astype("uint8")
    paths = {stem: folder / f"{stem}.nrrd" for stem in arrays}
    for stem, array in arrays.items():
        sitk.WriteImage(phantom_image(array, case.spacing, (0.0, 0.0, 0.0)), str(paths[stem]))
    return paths


def _phantom_lvi(folder: Path) -> list[str]:
    from .lvi.cohort import LVI_PHANTOM_SHAPE

    paths = _phantom_breast_mri(folder, {"dce": "dce2", "t2": "t2"}, lvi=1, shape=LVI_PHANTOM_SHAPE)
    return ["--dce", str(paths["dce"]), "--t2", str(paths["t2"]), "--voi", str(paths["voi"])]


def _phantom_dce(folder: Path) -> list[str]:
    paths = _phantom_breast_mri(folder, {"t1": "t1", "dce": "dce"})
    return ["--input", str(paths["t1"]), "--dce", str(paths["dce"])]


# a warm-up runs the job once on a phantom, in a scratch folder: the first run of a job in a process is slower
# (imports, models loaded, kernels chosen, memory allocated); mammo-batch, whose models depend on the folder, is
# only imported
PHANTOM_INPUTS = {"bonescan-segment": _phantom_bone_scan, "lvi-predict": _phantom_lvi, "dce-synthesize": _phantom_dce}


def _warm_up(job: str, arguments: list[str]) -> int:
    if job not in PHANTOM_INPUTS:
        from .mammo import batch  # noqa: F401

        emit("result")
        return 0
    with tempfile.TemporaryDirectory(prefix="smartimaging-warm-up-") as folder:
        inputs = PHANTOM_INPUTS[job](Path(folder))
        return run_job(_run_request, {"job": job, "arguments": [*inputs, "--output-dir", f"{folder}/out", *arguments]})


_TERMINATED = threading.Event()


def _cancel_on_terminate(signum, frame) -> None:
    """SIGTERM: the job unwinds (its scratch outputs are removed), then the process ends."""
    _TERMINATED.set()
    raise CancelledError("cancelled")


class _RequestParser(argparse.ArgumentParser):
    """The warm worker's request arguments: an error is the request's error event, not the process's exit."""

    def error(self, message: str):
        raise InputError(f"The background process could not read the job's arguments: {message}")


def _pixel_mm(text: str) -> float:
    from .mammo.images import pixel_mm_argument  # heavy: imported once a size is given

    return pixel_mm_argument(text)


def _parser(kind: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = kind(prog="python -m smartimaging.worker")
    parser.add_argument("job", choices=sorted(JOBS))
    parser.add_argument("--input", nargs="+")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--views")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models-dir")
    parser.add_argument("--kind", choices=["mass", "calcification"])
    parser.add_argument("--masks")
    parser.add_argument("--correct-fraction", type=float, default=0.0, help="rows a simulated reader corrects "
                        "(mammo-propose)")
    parser.add_argument("--pixel-mm", type=_pixel_mm)
    parser.add_argument("--dce", help="real DCE volume (dce-synthesize) or DCE phase 2 (lvi-predict)")
    parser.add_argument("--t2", help="FS-T2WI volume (lvi-predict)")
    parser.add_argument("--voi", help="lesion VOI (lvi-predict)")
    parser.add_argument("--models", nargs="+", help="model ids (lvi-predict)")
    parser.add_argument("--task", choices=["mammo", "lvi", "bonescan"], help="whose U-Net (finetune-segmenter)")
    parser.add_argument("--manifest", help="corrected ROIs with split train/val/test (finetune-segmenter)")
    parser.add_argument("--from-card", help="the model card to start from (finetune-segmenter)")
    parser.add_argument("--name", help="the new model's id (finetune-segmenter)")
    parser.add_argument("--epochs", type=int, help="default: smartimaging.finetune.FINETUNE_EPOCHS")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--phantom", action="store_true", help="the manifest holds phantoms (finetune-segmenter)")
    parser.add_argument("--module", help="the worklist's module (cohort-train, cohort-evaluate)")
    parser.add_argument("--method", choices=["preset", "search"], default="preset", help="cohort-train")
    parser.add_argument("--network", choices=["resnet10-3d", "resnet10-2d", "vanilla2d"],
                        help="the BreastLVI network (cohort-train; default resnet10-3d)")
    parser.add_argument("--sequence", choices=["DCE", "T2"], help="its sequence (cohort-train; default DCE)")
    parser.add_argument("--classifier", help="a classifier card (.json) instead of the demo one (bonescan-segment)")
    parser.add_argument("--segmenter", help="a U-Net card (.json) instead of the demo one (bonescan-segment)")
    parser.add_argument("--generator", help="a generator card (.json) instead of the demo one (dce-synthesize)")
    return parser


def _run_request(request: dict) -> None:
    """A warm worker's job request ({"job": name, "arguments": [...]}); InputError for one it cannot run."""
    name, arguments = request.get("job"), request.get("arguments", [])
    if name not in JOBS or not isinstance(arguments, list):
        raise InputError(f"The background process has no job {name!r} with arguments {arguments!r}")
    JOBS[name](_parser(_RequestParser).parse_args([name, *map(str, arguments)]))


def run_job(job: Callable, args) -> int:
    """Run one job; 2 with an "error" event for bad input, a cancelled job, a missing model or a full disk."""
    try:
        job(args)
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


def _rss_bytes() -> int | None:
    """This process's resident memory (Linux), its peak elsewhere on POSIX, None on Windows."""
    try:
        with open("/proc/self/statm", encoding="utf-8") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        try:
            import resource
        except ImportError:
            return None
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def _leave_a_core_to_the_gui() -> None:
    """The warm worker serves a GUI that renders while a job runs: with every core, torch's threads stall whenever
    the GUI runs (a bone-scan Segment on 2 cores: 0.43 s and 0.54 CPU s instead of 0.30 and 0.28), so it leaves one
    core free, unless OMP_NUM_THREADS sets the count."""
    if os.environ.get("OMP_NUM_THREADS"):
        return
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(max(1, min(torch.get_num_threads(), cores - 1)))


def _torch_threads() -> int | None:
    """torch's thread count here (None before a job imported torch)."""
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def serve(max_rss_mb: float = DEFAULT_MAX_RSS_MB, cache_mb: float = DEFAULT_CACHE_MB) -> int:
    """The warm worker's loop (see the module docstring); returns when stdin closes, after a cancel, or when the
    process has grown beyond `max_rss_mb`."""
    MODELS.budget_bytes = int(cache_mb * 2**20)
    _leave_a_core_to_the_gui()
    try:
        for line in sys.stdin:
            try:
                request = json.loads(line)
                _request["id"] = request["id"]
            except (ValueError, TypeError, KeyError):
                print(f"smartimaging worker: ignored a request that is not a job: {line[:200]!r}", file=sys.stderr)
                continue
            started, cpu_started = time.perf_counter(), time.process_time()
            if "warm_up" in request:
                code = _warm_up(request["warm_up"], request.get("arguments", []))
            else:
                code = run_job(_run_request, request)
            _request.clear()
            final = _held.pop()
            if "warm_up" in request:
                final = {"event": final["event"], "id": request["id"], "warmed_up": request["warm_up"],
                         **{key: final[key] for key in ("message", "worker") if key in final}}
            final["worker"]["retiring"] = _TERMINATED.is_set() or (_rss_bytes() or 0) > max_rss_mb * 2**20
            final["worker"].update(seconds=round(time.perf_counter() - started, 4),
                                   cpu_seconds=round(time.process_time() - cpu_started, 4),
                                   threads=_torch_threads())
            _print(final)  # the client reads "retiring" before the job is over for it: no request is sent here
            if final["worker"]["retiring"]:
                return code
    except CancelledError:
        return 2  # SIGTERM between jobs
    return 0


def main(argv: list[str] | None = None) -> int:
    """One job (exit 2 with an "error" event for bad input, a cancel, a missing model or a full disk), or `serve`."""
    argv = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGTERM, _cancel_on_terminate)
    if argv[:1] == ["serve"]:
        parser = argparse.ArgumentParser(prog="python -m smartimaging.worker serve")
        parser.add_argument("--max-rss-mb", type=float, default=DEFAULT_MAX_RSS_MB)
        parser.add_argument("--cache-mb", type=float, default=DEFAULT_CACHE_MB)
        options = parser.parse_args(argv[1:])
        return serve(options.max_rss_mb, options.cache_mb)
    args = _parser().parse_args(argv)
    return run_job(JOBS[args.job], args)


def start_worker_process(arguments: list[str], python: str | None = None, stdin=subprocess.DEVNULL
                         ) -> subprocess.Popen:
    """`python -m smartimaging.worker <arguments>` in its own process group, stdout/stderr piped (UTF-8); `python`
    may be a launcher (Slicer's PythonSlicer) that runs python as its child."""
    command = [python or sys.executable, "-m", "smartimaging.worker", *arguments]
    package_root = str(Path(__file__).resolve().parents[1])  # importable from a source checkout too
    environment = {**os.environ, "PYTHONIOENCODING": "utf-8",
                   "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    group = ({"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if os.name == "nt"
             else {"start_new_session": True})
    return subprocess.Popen(command, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            encoding="utf-8", errors="replace", env=environment, **group)


def kill_process_tree(process: subprocess.Popen, grace_s: float = CANCEL_GRACE_S) -> None:
    """Stop `process` and every process it started: SIGTERM to its process group (a job unwinds and removes its
    scratch outputs), SIGKILL to what is left after `grace_s`; on Windows `taskkill /T /F`."""
    if process.poll() is not None:
        return
    if os.name == "nt":
        subprocess.run(["taskkill", "/T", "/F", "/PID", str(process.pid)], capture_output=True, check=False)
        process.wait()
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while _group_alive(process.pid):
            if time.monotonic() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
                break
            process.poll()  # reap the leader: a zombie still belongs to the group
            time.sleep(0.01)
    process.wait()


def _group_alive(group: int) -> bool:
    """Whether a process of `group` is still running (zombies awaiting their parent's wait do not count, on
    Linux, where /proc tells them apart)."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    if not os.path.isdir("/proc/self"):
        return True
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", encoding="utf-8", errors="replace") as f:
                    fields = f.read().rpartition(")")[2].split()
            except OSError:
                continue  # gone meanwhile
            if int(fields[2]) == group and fields[0] != "Z":
                return True
    return False


class EventStream:
    """Events of one job, read by a background thread: `poll()` returns those read so far without blocking,
    `dispatch()` hands them to callbacks. Subclasses say when no more events can come (`_ended`)."""

    def __init__(self):
        self._events: queue.Queue = queue.Queue()
        self.cancelled = False

    def _ended(self) -> bool:
        raise NotImplementedError

    @property
    def stderr(self) -> str:
        raise NotImplementedError

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
        ended = self._ended()  # read before polling: an event read after this poll is still seen next time
        for event in self.poll():
            if event["event"] == "progress":
                on_progress(event["fraction"], event.get("message", ""))
            elif event["event"] == "result":
                on_result(event)
                return True
            elif event["event"] == "error":
                on_error(event["message"], "")
                return True
        if ended and self._events.empty():
            on_error("The background process stopped unexpectedly.", self.stderr[-2000:])
            return True
        return False


class WorkerProcess(EventStream):
    """One job in its own worker process: `poll()` returns the events read so far without blocking; `cancel()`
    stops the process and everything it started, as does this process's exit (its own process group no longer
    receives the terminal's Ctrl+C)."""

    def __init__(self, job: str, arguments: list[str], python: str | None = None):
        super().__init__()
        self.process = start_worker_process([job, *arguments], python)
        _RUNNING.add(self)
        self._stderr: list[str] = []
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        threading.Thread(target=lambda: self._stderr.extend(self.process.stderr), daemon=True).start()

    def _read_stdout(self) -> None:
        for line in self.process.stdout:
            try:
                self._events.put(json.loads(line))
            except json.JSONDecodeError:
                self._stderr.append(line)

    def _ended(self) -> bool:
        return self.finished and not self._reader.is_alive()

    @property
    def finished(self) -> bool:
        return self.process.poll() is not None

    def cancel(self) -> None:
        self.cancelled = True
        kill_process_tree(self.process)

    def wait(self, timeout: float | None = None) -> list[dict]:
        """Block until the worker exits (for scripts and tests); returns all remaining events."""
        self.process.wait(timeout=timeout)
        self._reader.join(timeout=timeout)
        return self.poll()

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)


_RUNNING: weakref.WeakSet[WorkerProcess] = weakref.WeakSet()


@atexit.register
def _stop_running() -> None:
    for worker in list(_RUNNING):
        kill_process_tree(worker.process, grace_s=1.0)


if __name__ == "__main__":
    sys.exit(main())
