"""The command line's basics: --version, Ctrl+C (exit 130, one line, no traceback), -v logging, rounded numbers."""

import csv
import os
import re
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest

from smartimaging import __version__
from smartimaging.bonescan import commands as bonescan_commands
from smartimaging.cli import EXIT_CANCELLED, main

REPO = Path(__file__).resolve().parents[1]
GE_BONE_SCAN = REPO / "Resources" / "SampleData" / "GE_NM_wholebody_bone.dcm"
SMARTIMAGING = Path(sys.executable).parent / "smartimaging"  # the console script pip installed
CANCELLED = "error: cancelled (Ctrl+C); nothing was written"


def _error_lines(stderr: str) -> list[str]:
    """stderr less tqdm's progress bars (redrawn with carriage returns)."""
    return [line for line in stderr.replace("\r", "\n").splitlines() if line.strip() and "it/s" not in line
            and "%|" not in line]


def test_version_is_the_package_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"smartimaging {__version__}\n"
    assert version("smartimaging") == __version__  # pyproject.toml reads it from smartimaging.__version__


def test_a_keyboard_interrupt_inside_a_command_is_one_line_and_130(monkeypatch, tmp_path, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(bonescan_commands, "run", interrupted)
    assert main(["bonescan", "predict", str(GE_BONE_SCAN), "--out", str(tmp_path / "out")]) == EXIT_CANCELLED
    assert capsys.readouterr().err.splitlines() == [CANCELLED]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("task, delay", [("bonescan", 0.5), ("demo", 4.0)])  # importing torch; running networks
def test_ctrl_c_in_a_terminal_exits_130_with_one_line_and_no_traceback(task, delay, tmp_path):
    """SIGINT to the whole process group, as a terminal's Ctrl+C sends it (the demo runs for 10 s or more)."""
    command = {"bonescan": ["bonescan", "predict", GE_BONE_SCAN, "--device", "cpu"], "demo": ["demo"]}[task]
    # SIGINT handled as in a terminal even when the tests themselves run in the background (a shell starts
    # background jobs with SIGINT ignored, and a child that inherits that never sees Ctrl+C)
    process = subprocess.Popen([SMARTIMAGING, *command, "--out", tmp_path / "out"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, encoding="utf-8", start_new_session=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"},
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(delay)
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=60)
    if "results in" in out or "report:" in out:  # finished first (the signal may then end the interpreter's exit)
        pytest.skip(f"{task} finished within {delay} s, before Ctrl+C")
    assert process.returncode == EXIT_CANCELLED and _error_lines(err) == [CANCELLED], err[-2000:]
    assert not (tmp_path / "out").exists()


def test_verbose_logs_the_run_on_stderr_and_quiet_does_not(tmp_path):
    command = [SMARTIMAGING, "mammo", "phantoms", "--n", "1"]
    quiet = subprocess.run([*command, "--out", tmp_path / "a"], capture_output=True, encoding="utf-8", timeout=60)
    verbose = subprocess.run([SMARTIMAGING, "-v", *command[1:], "--out", tmp_path / "b"], capture_output=True,
                             encoding="utf-8", timeout=60)
    assert quiet.returncode == verbose.returncode == 0 and quiet.stderr == ""
    first, last = verbose.stderr.splitlines()
    assert re.fullmatch(rf"\d\d:\d\d:\d\d INFO smartimaging: smartimaging {re.escape(__version__)}: -v mammo phantoms "
                        r"--n 1 --out \S+ \(Python [\d.]+, torch \S+\)", first)
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO smartimaging: finished in \d+\.\d s", last)
    assert verbose.stdout.replace(str(tmp_path / "b"), "X") == quiet.stdout.replace(str(tmp_path / "a"), "X")


def _significant_digits(number: str) -> int:
    return len(number.replace(".", "").lstrip("0"))


def test_printed_results_are_rounded(tmp_path, capsys):
    """Every decimal number the predict commands print has at most 4 significant digits (a probability, a cutoff,
    BSTBI, a Rad-score, a feature's contribution, a domain-check range)."""
    from smartimaging.lvi.cohort import write_lvi_phantom_cohort
    from smartimaging.mammo.cohort import write_mammo_phantom_cohort

    mri = write_lvi_phantom_cohort(tmp_path / "mr", 1)
    mammo = write_mammo_phantom_cohort(tmp_path / "mg", 1, kind="mass")
    case, row = next(csv.DictReader(mri.open(encoding="utf-8"))), next(csv.DictReader(mammo.open(encoding="utf-8")))
    commands = [["bonescan", "predict", str(GE_BONE_SCAN), "--out", str(tmp_path / "bs"), "--device", "cpu"],
                ["lvi", "predict", "--dce", str(mri.parent / case["dce"]), "--t2", str(mri.parent / case["t2"]),
                 "--voi", str(mri.parent / case["voi"]), "--out", str(tmp_path / "lvi")],
                ["mammo", "predict", str(mammo.parent / row["image"]), "--kind", "mass", "--pixel-mm",
                 row["pixel_mm"], "--point", f"{row['centre_col']},{row['centre_row']}", "--out",
                 str(tmp_path / "mg-out")]]
    for command in commands:
        assert main(command) == 0
        printed = capsys.readouterr().out.replace(str(tmp_path), "")
        numbers = re.findall(r"\d+\.\d+", printed)
        assert numbers and max(map(_significant_digits, numbers)) <= 4, printed
