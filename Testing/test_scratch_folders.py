"""Hidden scratch folders beside outputs and models: a killed process's scratch is removed by the next run on the
same machine, a running process's and anything else is left alone."""

import hashlib
import os
import socket
import subprocess
import sys
import time

import pytest

from smartimaging.errors import InputError
from smartimaging.io import atomic_output_dir, new_model_folder

HOST = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:12]
DAY_AGO = time.time() - 25 * 3600


@pytest.fixture
def pids():
    """(the pid of a process that has exited, the pid of a running one)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield gone.pid, running.pid
    running.kill()
    running.wait()


def _left(folder, prefix, pid, untouched_since=DAY_AGO):
    scratch = folder / f"{prefix}{HOST}-{pid}-abcd_123"
    (scratch / "weights").mkdir(parents=True)
    os.utime(scratch, (untouched_since, untouched_since))
    return scratch


def test_a_killed_training_s_scratch_is_removed_by_the_next_training(tmp_path, pids):
    gone, running = pids
    killed, busy = _left(tmp_path, ".m1.partial-", gone), _left(tmp_path, ".m1.partial-", running)
    recent = _left(tmp_path / "recent", ".m1.partial-", gone, time.time() - 3600)  # killed an hour ago: kept a day
    kept = [busy, recent.parent]
    other_host = HOST[:-1] + ("1" if HOST.endswith("0") else "0")
    for name in (f"{other_host}-{gone}-abcd_123", f"{HOST}-{gone}-notrandom", f"{HOST}-{'9' * 25}-abcd_123",
                 f"{HOST}-9999999999-abcd_123", f"{HOST}-\u0661\u0662-abcd_123"):
        # another host; not a name this code makes; huge pids; pid digits not ASCII
        (tmp_path / f".m1.partial-{name}").mkdir()
        os.utime(tmp_path / f".m1.partial-{name}", (DAY_AGO, DAY_AGO))
        kept.append(tmp_path / f".m1.partial-{name}")
    (tmp_path / "target").mkdir()
    (tmp_path / f".m1.partial-{HOST}-{gone}-abcd_124").symlink_to(tmp_path / "target")  # a link: never followed
    kept += [tmp_path / "target", tmp_path / f".m1.partial-{HOST}-{gone}-abcd_124"]
    with new_model_folder(tmp_path / "m1") as scratch:
        (scratch / "card.json").write_text("{}", encoding="utf-8")
    with new_model_folder(tmp_path / "recent" / "m1"):
        pass
    assert (tmp_path / "m1" / "card.json").is_file()
    assert not killed.exists() and all(path.exists() for path in kept) and recent.exists()


def test_a_failed_training_leaves_no_scratch_and_no_model(tmp_path):
    with pytest.raises(InputError), new_model_folder(tmp_path / "m2"):
        raise InputError("cancelled")
    assert list(tmp_path.iterdir()) == []


def test_a_killed_run_s_output_scratch_is_removed_by_the_next_run(tmp_path, pids):
    gone, running = pids
    killed, busy = _left(tmp_path, ".smartimaging-", gone), _left(tmp_path, ".smartimaging-", running)
    with atomic_output_dir(tmp_path / "out") as scratch:
        (scratch / "result.csv").write_text("x\n", encoding="utf-8")
    assert (tmp_path / "out" / "result.csv").is_file()
    assert not killed.exists() and busy.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", busy.name])
