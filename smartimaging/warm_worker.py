"""A warm worker per station process / Slicer session: the jobs of every module run in one long-lived
`python -m smartimaging.worker serve` process that keeps its imports and loaded models between jobs.

    job = warm_job("bonescan-segment", [...], python=...)   # same arguments as WorkerProcess
    while not job.dispatch(on_progress, on_result, on_error): ...   # same events, same callbacks
    job.cancel()                                            # kills the warm process tree; the next job restarts it

`warm_up(job, arguments)` starts the process and runs the job once on a phantom ahead (imports, models loaded, first
inference), e.g. when a module opens; once per process. A process runs one job at a time: a job submitted while
another runs gets a second warm process, kept only until it is idle beside another. A cancel, a crash or memory
beyond the limit ends a warm process; the next job starts a fresh one.
"""

from __future__ import annotations

import atexit
import itertools
import json
import subprocess
import threading

from .worker import (
    CANCEL_GRACE_S,
    DEFAULT_CACHE_MB,
    DEFAULT_MAX_RSS_MB,
    EventStream,
    kill_process_tree,
    start_worker_process,
)


class WarmJob(EventStream):
    """One job on a warm worker, with the interface of :class:`smartimaging.worker.WorkerProcess` (poll, dispatch,
    cancel, cancelled, finished, wait, stderr)."""

    def __init__(self, worker: WarmWorker, request_id: int, warm_up: bool):
        super().__init__()
        self.worker, self.request_id, self.warm_up = worker, request_id, warm_up
        self.process, self._stderr = worker.process, worker._stderr
        self.over = threading.Event()  # its result or error was read, or its process ended

    def _ended(self) -> bool:
        return self.over.is_set()

    @property
    def finished(self) -> bool:
        return self.over.is_set()

    def cancel(self) -> None:
        """Stop the job now: its warm process (and what it started) is killed; no outputs are left."""
        self.cancelled = True
        if not self.over.is_set():
            kill_process_tree(self.process)

    def wait(self, timeout: float | None = None) -> list[dict]:
        """Block until the job is over (for scripts and tests); returns its remaining events."""
        if not self.over.wait(timeout):
            raise TimeoutError(f"job {self.request_id} of the warm worker still runs after {timeout} s")
        return self.poll()

    @property
    def stderr(self) -> str:
        """What its process wrote to stderr (a crash's traceback)."""
        return "".join(self._stderr)


class WarmWorker:
    """One warm worker process, started on first use and again after it ended (cancel, crash, memory), and the
    jobs sent to it."""

    def __init__(self, python: str | None = None, max_rss_mb: float = DEFAULT_MAX_RSS_MB,
                 cache_mb: float = DEFAULT_CACHE_MB):
        self.python, self.max_rss_mb, self.cache_mb = python, max_rss_mb, cache_mb
        self.process: subprocess.Popen | None = None
        self.starts = 0  # processes started so far
        self._jobs: dict[int, WarmJob] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._stderr: list[str] = []
        self._usable = False  # the process reads requests: started, not retiring, its output still open
        self._warm_ups: dict[tuple, WarmJob] = {}

    @property
    def busy(self) -> bool:
        """Whether a job (not a warm-up) runs or waits on it."""
        with self._lock:
            return any(not job.warm_up and not job.over.is_set() for job in self._jobs.values())

    def submit(self, job: str, arguments: list[str]) -> WarmJob:
        return self._send({"job": job, "arguments": arguments}, warm_up=False)

    def warm_up(self, job: str, arguments: list[str]) -> WarmJob:
        """Start the process if needed and run `job` once on a phantom (arguments: --device, --models-dir...), once
        per process: a module opened again gets the warm-up already done or running."""
        key = (job, tuple(arguments))
        with self._lock:
            known = self._warm_ups.get(key)
            if known is not None and known.process is self.process and self._usable:
                return known
        self._warm_ups[key] = self._send({"warm_up": job, "arguments": arguments}, warm_up=True)
        return self._warm_ups[key]

    def _send(self, request: dict, warm_up: bool) -> WarmJob:
        with self._lock:
            if not self._usable or self.process.poll() is not None:
                self._start()
            job = WarmJob(self, next(self._ids), warm_up)
            self._jobs = {key: each for key, each in self._jobs.items() if not each.over.is_set()}
            self._jobs[job.request_id] = job
            try:
                self.process.stdin.write(json.dumps({"id": job.request_id, **request}) + "\n")
                self.process.stdin.flush()
            except OSError:
                pass  # it died meanwhile: the end of its output ends the job ("stopped unexpectedly")
            return job

    def _start(self) -> None:
        self.process = start_worker_process(["serve", "--max-rss-mb", str(self.max_rss_mb), "--cache-mb",
                                             str(self.cache_mb)], self.python, stdin=subprocess.PIPE)
        self.starts += 1
        self._usable, self._stderr = True, []  # a list per process: its jobs keep theirs
        threading.Thread(target=self._read_stdout, args=(self.process, self._stderr), daemon=True).start()
        threading.Thread(target=self._stderr.extend, args=(self.process.stderr,), daemon=True).start()

    def _read_stdout(self, process: subprocess.Popen, stderr: list[str]) -> None:
        for line in process.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                stderr.append(line)
                continue
            with self._lock:
                job = self._jobs.get(event.get("id"))
                if event.get("worker", {}).get("retiring") and process is self.process:
                    self._usable = False  # before the job is over for its caller: the next job gets a new process
            if job is not None and job.process is process:
                job._events.put(event)
                if "worker" in event:  # result or error: the job is over
                    job.over.set()
        with self._lock:  # the process ended: its jobs still running never finish
            if process is self.process:
                self._usable = False
            for job in self._jobs.values():
                if job.process is process:
                    job.over.set()

    def stop(self, grace_s: float = CANCEL_GRACE_S) -> None:
        """End the process (a running job is cancelled); the next job starts a fresh one."""
        if self.process is not None:
            kill_process_tree(self.process, grace_s)


class WarmPool:
    """Warm workers of one python (or launcher): a job goes to an idle one, or to a new one when all are busy;
    idle workers beyond the first are stopped when the next job is submitted."""

    def __init__(self, python: str | None = None, **options):
        self.python, self.options = python, options
        self.workers: list[WarmWorker] = []
        self._lock = threading.Lock()

    def _idle_worker(self) -> WarmWorker:
        with self._lock:
            idle = [worker for worker in self.workers if not worker.busy]
            for extra in idle[1:]:
                extra.stop()
                self.workers.remove(extra)
            if idle:
                return idle[0]
            self.workers.append(WarmWorker(self.python, **self.options))
            return self.workers[-1]

    def submit(self, job: str, arguments: list[str]) -> WarmJob:
        return self._idle_worker().submit(job, arguments)

    def warm_up(self, job: str, arguments: list[str]) -> WarmJob:
        """On the first worker, even while it runs a job (the warm-up waits): no process is started for it."""
        with self._lock:
            if not self.workers:
                self.workers.append(WarmWorker(self.python, **self.options))
            worker = self.workers[0]
        return worker.warm_up(job, arguments)

    def stop(self) -> None:
        with self._lock:
            for worker in self.workers:
                worker.stop(grace_s=1.0)


_POOLS: dict[str | None, WarmPool] = {}
_POOLS_LOCK = threading.Lock()


def pool(python: str | None = None) -> WarmPool:
    """The session's warm pool for `python` (None: this interpreter)."""
    with _POOLS_LOCK:
        if python not in _POOLS:
            _POOLS[python] = WarmPool(python)
        return _POOLS[python]


def warm_job(job: str, arguments: list[str], python: str | None = None) -> WarmJob:
    """Run `job` (the arguments of `python -m smartimaging.worker <job>`) on the session's warm worker."""
    return pool(python).submit(job, arguments)


def warm_up(job: str, arguments: list[str], python: str | None = None) -> WarmJob:
    """Start the session's warm worker and run `job` once on a phantom ahead (arguments: --device, --models-dir)."""
    return pool(python).warm_up(job, arguments)


@atexit.register
def _stop_all() -> None:
    for each in list(_POOLS.values()):
        each.stop()
