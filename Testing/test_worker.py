"""The background worker: a warm worker keeps its models between jobs of any module, never serves weights replaced
on disk, restarts after a cancel, a crash or too much memory, and a cancel stops the whole process tree (also the
python that a launcher such as Slicer's PythonSlicer started) without leaving partial outputs."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from conftest import GE_BONE_SCAN, REPO

from smartimaging import worker as worker_module
from smartimaging.dce.synthesis import MODEL_ID as DCE_MODEL_ID
from smartimaging.errors import ModelError
from smartimaging.models.nets import build_network
from smartimaging.models.registry import save_model
from smartimaging.warm_worker import WarmPool, WarmWorker
from smartimaging.worker import ModelCache, WorkerProcess, file_digest


def save_dce_model(folder: Path, seed: int, ngf: int = 4, depth: int = 5) -> Path:
    """A DCE generator with random weights (its card and weights written by the project's own save_model)."""
    torch.manual_seed(seed)
    architecture = {"name": "pix2pix_unet", "in_channels": 1, "out_channels": 1, "ngf": ngf, "depth": depth}
    save_model(build_network(architecture), {"id": DCE_MODEL_ID, "version": f"0.0.{seed}", "task": "dce-synthesis",
                                             "architecture": architecture, "inputs": {}, "outputs": {},
                                             "intended_use": "test"}, folder)
    return folder


def write_t1(path: Path, shape=(6, 48, 56)) -> Path:
    image = sitk.GetImageFromArray(np.random.default_rng(0).uniform(10, 1000, shape).astype(np.float32))
    image.SetSpacing((0.7, 0.7, 2.0))
    sitk.WriteImage(image, str(path))
    return path


def dce_arguments(t1: Path, models: Path, out: Path) -> list[str]:
    return ["--input", str(t1), "--output-dir", str(out), "--models-dir", str(models), "--device", "cpu"]


def run(job) -> dict:
    """The job's last event (result or error), polled as a GUI does."""
    events = []
    while not job.dispatch(lambda *_: None, lambda event: events.append(event),
                           lambda message, details: events.append({"event": "error", "message": message,
                                                                   "details": details})):
        time.sleep(0.01)
    return events[-1]


def running(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie awaiting its parent's wait does not count)."""
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rpartition(")")[2].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"


def wait_for(condition, what: str, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def launcher(tmp_path):
    """A launcher like PythonSlicer: a separate program that runs python as its child (and records the child's pid)."""
    path, pid_file = tmp_path / "launcher", tmp_path / "child.pid"
    path.write_text(f"#!{sys.executable}\nimport subprocess, sys\n"
                    "child = subprocess.Popen([sys.executable, *sys.argv[1:]])\n"
                    f"open({str(pid_file)!r}, 'w', encoding='utf-8').write(str(child.pid))\n"
                    "sys.exit(child.wait())\n", encoding="utf-8")
    path.chmod(0o755)
    return path, pid_file


@pytest.mark.skipif(os.name == "nt", reason="POSIX process groups; Windows uses taskkill /T")
def test_cancel_stops_the_python_that_a_launcher_started(launcher, tmp_path):
    path, pid_file = launcher
    worker = WorkerProcess("bonescan-segment", ["--input", str(GE_BONE_SCAN), "--output-dir", str(tmp_path / "out")],
                           python=str(path))
    wait_for(lambda: pid_file.is_file() and pid_file.read_text(encoding="utf-8"), "the launcher's child")
    child = int(pid_file.read_text(encoding="utf-8"))
    assert running(child) and child != worker.process.pid
    worker.cancel()
    assert worker.cancelled and worker.finished
    assert not running(child)  # terminating the launcher alone left it running
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(os.name == "nt", reason="POSIX process groups; Windows uses taskkill /T")
def test_warm_worker_behind_a_launcher_cancels_the_child_and_restarts(launcher, tmp_path):
    path, pid_file = launcher
    models = save_dce_model(tmp_path / "models", 1)
    t1 = write_t1(tmp_path / "t1.nrrd")
    worker = WarmWorker(python=str(path))
    first = worker.submit("dce-synthesize", dce_arguments(t1, models, tmp_path / "cancelled"))
    wait_for(lambda: pid_file.is_file() and pid_file.read_text(encoding="utf-8"), "the launcher's child")
    child = int(pid_file.read_text(encoding="utf-8"))
    first.cancel()
    assert first.cancelled and not running(child)
    assert run(first)["event"] == "error"
    second = run(worker.submit("dce-synthesize", dce_arguments(t1, models, tmp_path / "out")))
    assert second["event"] == "result", second
    assert second["worker"]["pid"] == int(pid_file.read_text(encoding="utf-8")) != child
    assert worker.starts == 2 and (tmp_path / "out" / "synthetic_dce.nrrd").is_file()
    assert not (tmp_path / "cancelled").exists()
    worker.stop()


@pytest.mark.skipif(os.name == "nt", reason="POSIX process groups; Windows uses taskkill /T")
def test_workers_stop_when_the_gui_process_exits(launcher, tmp_path):
    path, pid_file = launcher
    gui = tmp_path / "gui.py"  # starts a one-shot and a warm job behind the launcher, then exits
    gui.write_text(f"""import time
from pathlib import Path
from smartimaging.warm_worker import warm_job
from smartimaging.worker import WorkerProcess
pid_file = Path({str(pid_file)!r})
children = []
for start in (WorkerProcess, warm_job):
    pid_file.unlink(missing_ok=True)
    job = start("bonescan-segment", ["--input", {str(GE_BONE_SCAN)!r}, "--output-dir", {str(tmp_path / "out")!r}],
                python={str(path)!r})
    while not (pid_file.is_file() and pid_file.read_text(encoding="utf-8")):
        time.sleep(0.01)
    children.append(pid_file.read_text(encoding="utf-8"))
print(" ".join(children))
""", encoding="utf-8")
    finished = subprocess.run([sys.executable, str(gui)], capture_output=True, text=True, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    assert finished.returncode == 0, finished.stderr
    children = [int(pid) for pid in finished.stdout.split()]
    assert len(children) == 2 and not any(running(pid) for pid in children)


def test_warm_worker_keeps_models_between_jobs_of_any_module(tmp_path):
    models = save_dce_model(tmp_path / "models", 1)
    t1 = write_t1(tmp_path / "t1.nrrd")
    worker = WarmWorker()
    try:
        first = run(worker.submit("dce-synthesize", dce_arguments(t1, models, tmp_path / "a")))
        second = run(worker.submit("dce-synthesize", dce_arguments(t1, models, tmp_path / "b")))
        assert first["event"] == second["event"] == "result", (first, second)
        assert first["worker"]["pid"] == second["worker"]["pid"]
        assert (first["worker"]["model_loads"], first["worker"]["cache_hits"]) == (1, 0)
        assert (second["worker"]["model_loads"], second["worker"]["cache_hits"]) == (1, 1)  # not loaded again
        import torch  # one core is left to the GUI the worker serves (OMP_NUM_THREADS, when set, decides)
        cores = len(os.sched_getaffinity(0))
        expected = int(os.environ["OMP_NUM_THREADS"]) if os.environ.get("OMP_NUM_THREADS") else max(
            1, min(torch.get_num_threads(), cores - 1))
        assert first["worker"]["threads"] == expected
        same = [sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / out / "synthetic_dce.nrrd"))) for out in "ab"]
        assert np.array_equal(*same)

        # another module's job on the same process, its models loaded ahead ("module opened"), then used
        warm_up = worker.warm_up("bonescan-segment", ["--device", "cpu"])
        warmed = run(warm_up)
        assert warmed["event"] == "result" and warmed["worker"]["model_loads"] == 2
        assert worker.warm_up("bonescan-segment", ["--device", "cpu"]) is warm_up  # the module opened again
        segmented = run(worker.submit("bonescan-segment", ["--input", str(GE_BONE_SCAN), "--output-dir",
                                                           str(tmp_path / "bone"), "--device", "cpu"]))
        assert segmented["event"] == "result", segmented
        assert segmented["worker"]["pid"] == warmed["worker"]["pid"]
        assert (segmented["worker"]["model_loads"], segmented["worker"]["cache_hits"]) == (2, 2)
        assert worker.starts == 1
    finally:
        worker.stop()

    # the cached networks give what a fresh process gives
    fresh = WorkerProcess("bonescan-segment", ["--input", str(GE_BONE_SCAN), "--output-dir", str(tmp_path / "fresh"),
                                               "--device", "cpu"])
    assert fresh.wait(timeout=300)[-1]["event"] == "result", fresh.stderr
    for name in ("labels_0.nrrd",):
        assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "bone" / name))),
                              sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "fresh" / name))))


def test_weights_replaced_on_disk_are_loaded_again_and_damaged_ones_refused(tmp_path):
    models = save_dce_model(tmp_path / "models", 1)
    t1 = write_t1(tmp_path / "t1.nrrd")
    worker = WarmWorker()
    try:
        before = run(worker.submit("dce-synthesize", dce_arguments(t1, models, tmp_path / "before")))
        save_dce_model(models, 2)  # retrained: new weights and card in the same folder
        after = run(worker.submit("dce-synthesize", dce_arguments(t1, models, tmp_path / "after")))
        assert after["event"] == "result" and after["worker"]["pid"] == before["worker"]["pid"]
        assert after["worker"]["model_loads"] == 2 and after["worker"]["cache_hits"] == 0
        synthetic = [sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / out / "synthetic_dce.nrrd")))
                     for out in ("before", "after")]
        assert not np.array_equal(*synthetic)

        weights = models / f"{DCE_MODEL_ID}.safetensors"  # damaged behind the card's back: refused, not cached
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
        damaged = run(worker.submit("dce-synthesize", dce_arguments(t1, models, tmp_path / "damaged")))
        assert damaged["event"] == "error" and "checksum" in damaged["message"]
        assert not (tmp_path / "damaged").exists()
    finally:
        worker.stop()


def test_warm_worker_restarts_after_a_crash(tmp_path):
    models = save_dce_model(tmp_path / "models", 1)
    t1 = write_t1(tmp_path / "t1.nrrd")
    worker = WarmWorker()
    try:
        starting = worker.submit("dce-synthesize", dce_arguments(t1, models, tmp_path / "lost"))
        os.kill(starting.process.pid, signal.SIGKILL)  # still importing: the job dies with it
        lost = run(starting)
        assert lost["event"] == "error" and "stopped unexpectedly" in lost["message"]

        first = run(worker.submit("dce-synthesize", dce_arguments(t1, models, tmp_path / "a")))
        assert first["event"] == "result" and worker.starts == 2
        os.kill(first["worker"]["pid"], signal.SIGKILL)  # kill -9 of an idle warm worker
        worker.process.wait()
        second = run(worker.submit("dce-synthesize", dce_arguments(t1, models, tmp_path / "b")))
        assert second["event"] == "result" and worker.starts == 3
        assert second["worker"]["pid"] != first["worker"]["pid"] and second["worker"]["model_loads"] == 1
        assert not (tmp_path / "lost").exists()
    finally:
        worker.stop()


def test_cancel_mid_job_leaves_no_outputs_and_the_next_job_runs(tmp_path):
    models = save_dce_model(tmp_path / "models", 1, ngf=16, depth=6)
    big = write_t1(tmp_path / "big.nrrd", shape=(200, 256, 256))  # ~25 batches of 8 slices: still running
    worker = WarmWorker()
    try:
        job = worker.submit("dce-synthesize", dce_arguments(big, models, tmp_path / "cancelled"))
        fractions = []

        def synthesizing() -> bool:
            fractions.extend(event["fraction"] for event in job.poll() if event["event"] == "progress")
            return any(fraction > 0.05 for fraction in fractions) or job.finished

        wait_for(synthesizing, "the first synthesized slices")
        assert not job.finished, "the job ended before it could be cancelled"
        pid = job.process.pid
        job.cancel()
        assert job.cancelled and not running(pid)
        assert run(job)["event"] == "error"
        assert not (tmp_path / "cancelled").exists()
        assert not list(tmp_path.glob(".smartimaging-*"))  # no scratch folder left beside the output

        small = write_t1(tmp_path / "t1.nrrd")
        after = run(worker.submit("dce-synthesize", dce_arguments(small, models, tmp_path / "after")))
        assert after["event"] == "result" and after["worker"]["pid"] != pid and worker.starts == 2
    finally:
        worker.stop()


def test_a_worker_over_its_memory_limit_retires_after_the_job(tmp_path):
    models = save_dce_model(tmp_path / "models", 1)
    t1 = write_t1(tmp_path / "t1.nrrd")
    worker = WarmWorker(max_rss_mb=1)  # every process is above 1 MB
    try:
        first = run(worker.submit("dce-synthesize", dce_arguments(t1, models, tmp_path / "a")))
        assert first["event"] == "result" and first["worker"]["retiring"]
        second = run(worker.submit("dce-synthesize", dce_arguments(t1, models, tmp_path / "b")))  # right away
        assert second["event"] == "result" and second["worker"]["pid"] != first["worker"]["pid"]
        assert worker.starts == 2
    finally:
        worker.stop()


def test_models_over_the_budget_go_least_recently_used_first():
    cache = ModelCache(budget_bytes=2 * 4_000_000)  # two of the 1000×1000 float32 layers below
    layer = lambda: torch.nn.Linear(1000, 1000, bias=False)  # noqa: E731
    ids = ["bonescan-unet-demo", "dce-pix2pix-demo", "lvi-lesion-unet-demo"]  # cards read for the key only
    first = cache.get("test", [ids[0]], None, "cpu", layer)
    cache.get("test", [ids[1]], None, "cpu", layer)
    assert cache.get("test", [ids[0]], None, "cpu", layer) is first and cache.hits == 1  # now most recent
    cache.get("test", [ids[2]], None, "cpu", layer)  # over budget: ids[1] goes
    assert len(cache) == 2 and cache.loads == 3
    assert cache.get("test", [ids[0]], None, "cpu", layer) is first
    cache.get("test", [ids[1]], None, "cpu", layer)
    assert cache.loads == 4
    assert cache.get("test", [ids[0]], None, "cuda", layer) is not first  # another device, another entry


def test_a_weights_digest_is_reused_only_while_the_file_is_unchanged(tmp_path, monkeypatch):
    path = tmp_path / "weights.safetensors"
    path.write_bytes(b"a" * 64)
    assert file_digest(path) == hashlib.sha256(b"a" * 64).hexdigest()
    assert str(path) not in worker_module._DIGESTS  # just written: hashed again next time (coarse clocks)

    monkeypatch.setattr(worker_module, "RACY_S", -1.0)  # as if written long ago
    file_digest(path)
    assert str(path) in worker_module._DIGESTS
    before = path.stat()
    path.write_bytes(b"b" * 64)  # same size, and the old modification time put back
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert file_digest(path) == hashlib.sha256(b"b" * 64).hexdigest()  # the change time gave it away


def test_pool_gives_a_busy_session_a_second_worker_and_keeps_one_idle(tmp_path):
    models = save_dce_model(tmp_path / "models", 1)
    t1 = write_t1(tmp_path / "t1.nrrd")
    pool = WarmPool()
    try:
        one = pool.submit("dce-synthesize", dce_arguments(t1, models, tmp_path / "one"))
        two = pool.submit("dce-synthesize", dce_arguments(t1, models, tmp_path / "two"))  # the first still runs
        assert run(one)["event"] == run(two)["event"] == "result"
        assert one.worker is not two.worker and len(pool.workers) == 2
        three = pool.submit("dce-synthesize", dce_arguments(t1, models, tmp_path / "three"))
        assert run(three)["worker"]["cache_hits"] == 1 and len(pool.workers) == 1  # the idle extra was stopped
    finally:
        pool.stop()


def test_a_request_the_worker_cannot_run_is_that_jobs_error_and_the_worker_stays(tmp_path):
    models = save_dce_model(tmp_path / "models", 1)
    t1 = write_t1(tmp_path / "t1.nrrd")
    worker = WarmWorker()
    try:
        first = run(worker.submit("dce-synthesize", dce_arguments(t1, models, tmp_path / "a")))
        worker.process.stdin.write("not a request\n")  # ignored, with a line on stderr
        worker.process.stdin.flush()
        unknown = run(worker.submit("no-such-job", []))
        assert unknown["event"] == "error" and "no job 'no-such-job'" in unknown["message"]
        bad = run(worker.submit("dce-synthesize", [*dce_arguments(t1, models, tmp_path / "b"), "--pixel-mm", "x"]))
        assert bad["event"] == "error" and "could not read the job's arguments" in bad["message"]
        nan = run(worker.submit("dce-synthesize", [*dce_arguments(t1, models, tmp_path / "b"), "--pixel-mm", "nan"]))
        assert nan["event"] == "error" and "nan is not a mammogram pixel size" in nan["message"]
        device = run(worker.submit("dce-synthesize", [*dce_arguments(t1, models, tmp_path / "c"), "--device",
                                                      "banana"]))
        assert device["event"] == "error" and "'banana' is not a device" in device["message"]
        last = run(worker.submit("dce-synthesize", dce_arguments(t1, models, tmp_path / "d")))
        assert last["event"] == "result" and worker.starts == 1
        assert first["worker"]["pid"] == last["worker"]["pid"] == worker.process.pid
        assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()
    finally:
        worker.stop()


def test_huge_weights_in_a_models_folder_are_refused_before_they_are_read(tmp_path, monkeypatch):
    models = save_dce_model(tmp_path / "models", 1)
    weights = models / f"{DCE_MODEL_ID}.safetensors"
    with open(weights, "r+b") as f:
        f.truncate(64 * 2**30)  # sparse: 64 GB that hashing would have to read
    digests = []
    monkeypatch.setattr(worker_module, "file_digest", lambda path: digests.append(path) or "x")
    with pytest.raises(ModelError, match="the limit is 512 MB"):
        worker_module._model_files_fingerprint(DCE_MODEL_ID, models)
    assert weights not in digests
