"""What every task's commands share: the one-line-error parser, number types, output checks, the training
configuration from the common options and progress printing. Task sub-parsers live in `<task>/commands.py`;
`smartimaging.cli` assembles them."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from .errors import InputError
from .limits import is_dicom_source

EXIT_INPUT_ERROR = 2
DICOM_HELP = ("also write a DICOM SEG of the ROI (seg.dcm) and an SR of the result (sr.dcm) that reference the DICOM "
              "input and keep its patient and study; an input that is not DICOM is written as a derived DICOM series "
              "(image_dicom/) for them to reference")


class Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line (exit 2) instead of the usage block."""

    def error(self, message: str):
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_INPUT_ERROR)


def _number(text: str, kind, minimum: float, what: str, allow: tuple = (), above: bool = False):
    """`text` as a finite number of `kind` from `minimum` (`above`: greater than it), or one of `allow`."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if value in allow:
        return value
    if not math.isfinite(value) or value < minimum or (above and value == minimum):
        raise argparse.ArgumentTypeError(f"{text} is not allowed: {what}")
    return value


def _bounded(text: str, kind, low: float, high: float, what: str, above: bool = False):
    value = _number(text, kind, low, what, above=above)
    if value > high:
        raise argparse.ArgumentTypeError(f"{text} is not allowed: {what}")
    return value


def random_seed(text: str) -> int:
    return _bounded(text, int, 0, 2**32 - 1, "a seed is a whole number from 0 to 4294967295")


def learning_rate(text: str) -> float:
    return _bounded(text, float, 0.0, 1.0, "a learning rate is above 0 and at most 1", above=True)


def width_scale(text: str) -> float:
    return _bounded(text, float, 0.125, 8.0, "the width scale is from 0.125 to 8 (1 = the paper)")


def port_number(text: str) -> int:
    return _bounded(text, int, 0, 65535, "a port is a whole number from 0 to 65535 (0 picks a free one)")


def non_negative_int(text: str) -> int:
    return _number(text, int, 0, "give a whole number of at least 0")


def positive_int(text: str) -> int:
    return _number(text, int, 1, "give a whole number of at least 1")


def cohort_size(text: str) -> int:
    return _number(text, int, 1, "a cohort needs at least one case")


def jobs(text: str) -> int:
    return _number(text, int, 1, "give the number of processes (at least 1), or -1 for all cores", allow=(-1,))


def _checked(check, text: str) -> str:
    """`text` once `check(text)` accepts it; its InputError as argparse's error."""
    try:
        check(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def model_name(text: str) -> str:
    """A model id that is a plain file name (it names the files a training command writes into --out)."""
    from .models.registry import check_model_name

    return _checked(check_model_name, text)


def device_name(text: str) -> str:
    """A torch device that exists on this machine (auto, cpu, cuda, cuda:N, mps)."""
    if text in ("auto", "cpu"):
        return text
    from .models.nets import pick_device

    return _checked(pick_device, text)


def positive_float(text: str) -> float:
    return _number(text, float, 0.0, "give a positive number", above=True)


def check_output(path: str, is_file: bool) -> None:
    """Refuse an output that cannot be written before any work starts (an existing file where a folder is
    expected, a read-only or missing parent)."""
    if not str(path).strip():
        raise InputError("--out is empty; give the output folder (or file) to write")
    out = Path(path)
    if not is_file and out.exists() and not out.is_dir():
        raise InputError(f"The output {out} is an existing file; --out needs a folder")
    if is_file and out.is_dir():
        raise InputError(f"The output {out} is a folder; --out needs a file name")
    existing = out if out.is_dir() else out.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"The output {out} cannot be created: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"The output folder {existing} is not writable (read-only or no permission); "
                         "choose another --out")


INPUT_ARGUMENTS = ("images", "image", "t1", "dce", "t2", "voi", "mask", "manifest", "features", "folder", "masks",
                   "params", "baseline", "followup", "volume", "model", "fusion", "models", "models_dir", "results")


def _inputs(args) -> list[str]:
    """The paths a command reads: its arguments, and the files its manifest lists."""
    from .manifest import CASE_COLUMNS, read_manifest

    paths = []
    for name in INPUT_ARGUMENTS:
        values = getattr(args, name, None)
        paths += [value for value in (values if isinstance(values, list) else [values]) if value]
    if getattr(args, "manifest", None) and Path(args.manifest).is_file():
        manifest = read_manifest(args.manifest, required=())
        paths += [str(path) for row in manifest.rows for column in CASE_COLUMNS for path in manifest.paths(row, column)]
    return paths


def check_inputs_apart_from_output(args, is_file: bool) -> None:
    """Refuse an --out that is an input, a folder --out that holds an input (the results would replace it), or an
    --out inside an input DICOM series folder."""
    out = Path(args.out).resolve()
    for value in _inputs(args):
        given = Path(value).resolve()
        if given == out:
            raise InputError(f"--out {args.out} is the input {value}: the results would replace it; choose another "
                             "--out")
        if not is_file and out in given.parents:
            raise InputError(f"--out {args.out} holds the input {value}: the results could replace it; give --out "
                             "a folder of its own")
        if given.is_dir() and given in out.parents and is_dicom_source(given):
            raise InputError(f"--out {args.out} is inside the DICOM series folder {value}: the results would mix with "
                             "the series' files; give --out a folder outside it")


IMAGE_ARGUMENTS = ("images", "image", "t1", "dce", "t2")  # the images of one case


def check_one_patient_inputs(args) -> None:
    """Refuse a case whose DICOM images (files or series folders) belong to two patients or two studies (also
    within one series), before any work starts. Chosen for every command on DICOM inputs, with or without --dicom:
    a result computed from two patients' images is wrong whether or not it is filed."""
    sources = [value for name in IMAGE_ARGUMENTS for values in [getattr(args, name, None)]
               for value in (values if isinstance(values, list) else [values]) if value and is_dicom_source(value)]
    if not sources:  # no DICOM input: pydicom is not even imported (start-up time)
        return
    from .dicom_series import check_one_patient, dicom_headers

    headers = {}
    for value in sources:
        try:
            headers[Path(value).name] = dicom_headers(value) or []
        except InputError:  # a damaged file: the command's own reading says what is wrong with it
            continue
    check_one_patient(headers)


def add_training_options(parser, epochs: int, batch_size: int | None, lr: float, epochs_help: str | None = None,
                         batch_help: str | None = None, lr_help: str | None = None) -> None:
    """The options every `train` command shares (what `train_config` reads), with the command's defaults."""
    parser.add_argument("--epochs", type=positive_int, default=epochs, help=epochs_help)
    parser.add_argument("--batch-size", type=positive_int, default=batch_size, help=batch_help)
    parser.add_argument("--lr", type=learning_rate, default=lr, help=lr_help)
    parser.add_argument("--seed", type=random_seed, default=0)
    parser.add_argument("--patience", type=positive_int,
                        help="early stopping after this many epochs without improvement")
    parser.add_argument("--checkpoint-dir", help="checkpoint every epoch here (with --resume to continue)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --checkpoint-dir")
    parser.add_argument("--device", type=device_name, default="auto")
    parser.add_argument("--quiet", action="store_true")


def check_training_options(args) -> None:
    """Refuse training options that need another one, before any work."""
    if getattr(args, "resume", False) and not getattr(args, "checkpoint_dir", None):
        raise InputError("--resume needs --checkpoint-dir: the folder whose checkpoint training continues from")


def train_config(args, **overrides):
    """The TrainConfig of a `train` command's common options (--epochs, --batch-size, --lr, --seed, --device,
    --patience, --checkpoint-dir, --resume, --quiet), with `overrides` on top."""
    from .training import TrainConfig

    values = dict(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
                  device=args.device, patience=args.patience, checkpoint_dir=args.checkpoint_dir,
                  resume=args.resume, show_progress=not args.quiet)
    values.update(overrides)
    return TrainConfig(**values)


def print_progress(event: dict) -> None:
    """A training progress event as one JSON line on stdout (floats rounded to 4 decimals)."""
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in event.items()}), flush=True)


@contextmanager
def progress_bar(description: str, quiet: bool = False):
    """A tqdm bar from 0 to 1 driven by the `(fraction, message)` progress callback it yields. It appears with the
    first real progress (above 0), so a run refused while it checks its inputs prints only its one error line."""
    from tqdm import tqdm

    bar = None

    def progress(fraction: float, message: str) -> None:
        nonlocal bar
        if bar is None:
            if quiet or fraction <= 0:
                return
            bar = tqdm(total=1.0, desc=description, bar_format="{l_bar}{bar}| {postfix}")
        bar.n = fraction
        bar.set_postfix_str(message)

    try:
        yield progress
    finally:
        if bar is not None:
            bar.close()
