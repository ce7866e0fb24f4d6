"""Command line: `smartimaging <task> <command>` for cohorts, `smartimaging demo` and `smartimaging app`.

Exit codes: 0 success; 2 bad input, a refused file or an unusable output folder (one clear line on stderr); 130
cancelled (Ctrl+C or SIGTERM: children stopped, scratch files removed); 1 only for a bug. Outputs are written
all-or-nothing. Each task's sub-commands come from its `<task>/commands.py`; the shared pieces from `cli_common`.
"""

from __future__ import annotations

import argparse
import logging
import platform
import re
import signal
import sys
import threading
import time
from importlib.metadata import PackageNotFoundError, version

from . import __version__
from .cli_common import (
    EXIT_INPUT_ERROR,
    Parser,
    check_inputs_apart_from_output,
    check_one_patient_inputs,
    check_output,
    check_training_options,
    device_name,
    non_negative_int,
    port_number,
)
from .errors import DISK_ERRORS, CancelledError, SmartImagingError

EXIT_CANCELLED = 130
LOG_LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG)  # no -v, -v, -vv
log = logging.getLogger("smartimaging")
LOG_HANDLER = logging.StreamHandler()  # stderr
LOG_HANDLER.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))


def tasks() -> dict:
    """Each task's commands module, imported when `main` runs (a Ctrl+C while importing is a cancel there too)."""
    from .bonescan import commands as bonescan
    from .dce import commands as dce
    from .lvi import commands as lvi
    from .mammo import commands as mammo

    return {"bonescan": bonescan, "dce": dce, "lvi": lvi, "mammo": mammo}


def _cancel_on_terminate(signum, frame) -> None:
    raise CancelledError("cancelled (SIGTERM)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="smartimaging", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log what runs on stderr: -v the steps (INFO), -vv everything (DEBUG)")
    subparsers = parser.add_subparsers(dest="task", required=True)

    demo = subparsers.add_parser("demo", help="run every module on the bundled sample cases and write an HTML report")
    demo.add_argument("--out", default="demo-report", help="report folder (default: demo-report)")
    demo.add_argument("--device", type=device_name, default="auto")

    app = subparsers.add_parser("app", help="start the browser reading station (trame-slicer) on this machine")
    app.add_argument("--host", default="127.0.0.1",
                     help="address to bind (default 127.0.0.1, this machine only); another host prints a warning")
    app.add_argument("--port", type=port_number, default=8080, help="port (default 8080; 0 picks a free one)")
    app.add_argument("--timeout", type=non_negative_int, default=0,
                     help="stop this many seconds after the last browser tab closed; 0 (default) keeps the station "
                          "and its scene running until Ctrl+C")
    app.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    app.add_argument("--device", type=device_name, default="cpu", help="device for the networks (cpu, cuda, auto)")
    app.add_argument("--models-dir", help="folder with model cards (default: bundled demo models)")

    for task in tasks().values():
        task.add_commands(subparsers)
    return parser


def configure_logging(verbosity: int) -> None:
    """With -v, log records on stderr at the level of the -v count; without, Python's default (warnings and errors
    on stderr)."""
    if not verbosity:
        return
    root = logging.getLogger()
    if LOG_HANDLER not in root.handlers:
        root.addHandler(LOG_HANDLER)
    root.setLevel(LOG_LEVELS[min(verbosity, len(LOG_LEVELS) - 1)])


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _run(args) -> int:
    task_modules = tasks()
    if args.task in task_modules:
        return task_modules[args.task].run(args)
    if args.task == "demo":
        from .demo import run_demo

        return run_demo(args.out, args.device)
    from .web.app import run_app

    return run_app(args.host, args.port, args.timeout, not args.no_browser, args.device, args.models_dir)


COORDINATE_OPTIONS = ("--point", "--box")


def join_coordinates(argv: list[str]) -> list[str]:
    """`--point -100.2,-2.1,28.6` as `--point=-100.2,...`: argparse would read a negative coordinate as an option."""
    joined: list[str] = []
    for arg in argv:
        if joined and joined[-1] in COORDINATE_OPTIONS and re.fullmatch(r"-[\d.][\d.,eE+-]*", arg):
            joined[-1] = f"{joined[-1]}={arg}"
        else:
            joined.append(arg)
    return joined


def main(argv: list[str] | None = None) -> int:
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:  # SIGTERM unwinds like Ctrl+C: scratch files removed, children stopped
        previous = signal.signal(signal.SIGTERM, _cancel_on_terminate)
    try:
        try:
            args = build_parser().parse_args(join_coordinates(sys.argv[1:] if argv is None else list(argv)))
        except SystemExit as exc:  # --help, --version (0) or a usage error (2, printed as one line by Parser.error)
            return int(exc.code or 0)
        configure_logging(args.verbose)
        log.info("smartimaging %s: %s (Python %s, torch %s)", __version__, " ".join(sys.argv[1:] if argv is None
                 else argv), platform.python_version(), _package_version("torch"))
        started = time.perf_counter()
        check_training_options(args)
        if getattr(args, "out", None) is not None:
            is_file = getattr(args, "out_is_file", False)
            check_output(args.out, is_file)
            check_inputs_apart_from_output(args, is_file)
        check_one_patient_inputs(args)
        code = _run(args)
        log.info("finished in %.1f s", time.perf_counter() - started)
        return code
    except SmartImagingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except (CancelledError, KeyboardInterrupt) as exc:
        print(f"error: {str(exc) or 'cancelled (Ctrl+C)'}; nothing was written", file=sys.stderr)
        return EXIT_CANCELLED
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"error: {DISK_ERRORS[exc.errno]}{where}; nothing was written", file=sys.stderr)
        return EXIT_INPUT_ERROR
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
