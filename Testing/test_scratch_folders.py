"""Hidden scratch folders beside outputs and models: a killed process's scratch is removed by the next run on the
same machine, a running process's and anything else is left alone."""

import socket
import subprocess
import sys

import pytest

from smartimaging.errors import InputError
from smartimaging.io import atomic_output_dir, new_model_folder

HOST = "".join(char for char in socket.gethostname() if char.isascii() and char.isalnum())[:32] or "host"


@pytest.fixture
def pids():
    """(the pid of a process that has exited, the pid of a running one)."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield gone.pid, running.pid
    running.kill()
    running.wait()


def _left(folder, prefix, pid):
    scratch = folder / f"{prefix}{HOST}-{pid}-abcd_123"
    (scratch / "weights").mkdir(parents=True)
    return scratch


def test_a_killed_training_s_scratch_is_removed_by_the_next_training(tmp_path, pids):
    gone, running = pids
    killed, busy = _left(tmp_path, ".m1.partial-", gone), _left(tmp_path, ".m1.partial-", running)
    other_host = tmp_path / f".m1.partial-otherhost{HOST}-{gone}-abcd_123"
    other_host.mkdir()
    not_scratch = tmp_path / f".m1.partial-{HOST}-{gone}-notrandom"  # not a name this code makes
    not_scratch.mkdir()
    with new_model_folder(tmp_path / "m1") as scratch:
        (scratch / "card.json").write_text("{}", encoding="utf-8")
    assert (tmp_path / "m1" / "card.json").is_file()
    assert not killed.exists() and busy.exists() and other_host.exists() and not_scratch.exists()


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
