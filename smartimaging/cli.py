"""Command line: `smartimaging <task> <command>` for cohorts, `smartimaging demo` and `smartimaging app`.

Exit codes: 0 success; 2 bad input, a refused file or an unusable output folder (one clear line on stderr); 130
cancelled (Ctrl+C or SIGTERM: children stopped, scratch files removed); 1 only for a bug. Outputs are written
all-or-nothing.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import re
import signal
import sys
import threading
from pathlib import Path

from .errors import CancelledError, InputError, SmartImagingError

EXIT_INPUT_ERROR = 2
EXIT_CANCELLED = 130
DISK_ERRORS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
               errno.EROFS: "the disk is read-only", errno.EACCES: "permission denied",
               errno.EPERM: "permission denied", errno.EFBIG: "the file is too large for the disk"}
# Commands whose --out names a file; every other --out is a folder.
FILE_OUTPUTS = {("mammo", "extract"), ("mammo", "bin-study")}


class Parser(argparse.ArgumentParser):
    """argparse with usage errors as one line (exit 2) instead of the usage block."""

    def error(self, message: str):
        print(f"error: {self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_INPUT_ERROR)


def _number(text: str, kind, minimum: float, what: str, allow: tuple = ()):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if value in allow:
        return value
    if not math.isfinite(value) or value < minimum:
        raise argparse.ArgumentTypeError(f"{text} is not allowed: {what}")
    return value


def positive_int(text: str) -> int:
    return _number(text, int, 1, "give a whole number of at least 1")


def cohort_size(text: str) -> int:
    return _number(text, int, 1, "a cohort needs at least one case")


def jobs(text: str) -> int:
    return _number(text, int, 1, "give the number of processes (at least 1), or -1 for all cores", allow=(-1,))


def positive_float(text: str) -> float:
    value = _number(text, float, 0.0, "give a positive number")
    if value == 0:
        raise argparse.ArgumentTypeError(f"{text} is not allowed: give a positive number")
    return value


PIXEL_MM_RANGE = (0.02, 10.0)  # from high-resolution detectors to downsampled exports


def pixel_mm(text: str) -> float:
    value = positive_float(text)
    if not PIXEL_MM_RANGE[0] <= value <= PIXEL_MM_RANGE[1]:
        raise argparse.ArgumentTypeError(f"{text} mm is not a mammogram pixel size (expected 0.02 to 10 mm)")
    return value


def check_output(path: str, is_file: bool) -> None:
    """Refuse an output that cannot be written before any work starts (an existing file where a folder is
    expected, a read-only or missing parent)."""
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
                   "params", "baseline", "followup", "volume", "model", "fusion", "models", "models_dir")


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
    """Refuse an --out that is an input, or a folder --out that holds an input: the results would replace it."""
    out = Path(args.out).resolve()
    for value in _inputs(args):
        given = Path(value).resolve()
        if given == out:
            raise InputError(f"--out {args.out} is the input {value}: the results would replace it; choose another "
                             "--out")
        if not is_file and out in given.parents:
            raise InputError(f"--out {args.out} holds the input {value}: the results could replace it; give --out "
                             "a folder of its own")


def _cancel_on_terminate(signum, frame) -> None:
    raise CancelledError("cancelled (SIGTERM)")


def _train_config(args, **overrides):
    from .training import TrainConfig

    values = dict(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
                  device=args.device, patience=args.patience, checkpoint_dir=args.checkpoint_dir,
                  resume=args.resume, show_progress=not args.quiet)
    values.update(overrides)
    return TrainConfig(**values)


def _bonescan(args) -> int:
    from .bonescan import commands

    return commands.run(args)


def _dce(args) -> int:
    from .dce import commands

    return commands.run(args)


def _lvi(args) -> int:
    from .lvi import commands

    return commands.run(args)


def _mammo(args) -> int:
    from .mammo import commands

    return commands.run(args)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="smartimaging", description=__doc__.splitlines()[0])
    tasks = parser.add_subparsers(dest="task", required=True)

    demo = tasks.add_parser("demo", help="run every module on the bundled sample cases and write an HTML report")
    demo.add_argument("--out", default="demo-report", help="report folder (default: demo-report)")
    demo.add_argument("--device", default="auto")

    app = tasks.add_parser("app", help="start the browser reading station (trame-slicer) on this machine")
    app.add_argument("--host", default="127.0.0.1",
                     help="address to bind (default 127.0.0.1, this machine only); another host prints a warning")
    app.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    app.add_argument("--timeout", type=int, default=0,
                     help="stop this many seconds after the last browser tab closed; 0 (default) keeps the station "
                          "and its scene running until Ctrl+C")
    app.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    app.add_argument("--device", default="cpu", help="device for the networks (cpu, cuda, auto)")
    app.add_argument("--models-dir", help="folder with model cards (default: bundled demo models)")

    bone = tasks.add_parser("bonescan", help="whole-body bone scans: BSTBI")
    commands = bone.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="classify, segment and compute BSTBI")
    predict.add_argument("images", nargs="+", help="NM DICOM, PNG/JPEG or NRRD/NIfTI; one file per view or a "
                                                   "multi-frame file with both views")
    predict.add_argument("--out", required=True, help="output folder")
    predict.add_argument("--views", help="comma-separated view names for the inputs, e.g. anterior,posterior")
    predict.add_argument("--polarity", choices=["auto", "uptake-bright", "uptake-dark"], default="auto")
    predict.add_argument("--exclude", default="", help="comma-separated lesion ids to drop (false positives)")
    predict.add_argument("--device", default="auto")
    predict.add_argument("--models-dir", help="folder with model cards (default: bundled demo models)")
    predict.add_argument("--keep-identifiers", action="store_true",
                         help="write the patient ID and name of the input into result.json (left out by default)")

    recompute = commands.add_parser("bstbi", help="recompute BSTBI from an edited segmentation, no networks")
    recompute.add_argument("images", nargs="+")
    recompute.add_argument("--mask", nargs="+", required=True, help="label map(s) (.seg.nrrd or NIfTI), one per image")
    recompute.add_argument("--out", required=True)
    recompute.add_argument("--views")
    recompute.add_argument("--polarity", choices=["auto", "uptake-bright", "uptake-dark"], default="auto")
    recompute.add_argument("--exclude", default="")

    compare = commands.add_parser("compare", help="BSTBI change between two studies (result folders or images)")
    compare.add_argument("baseline")
    compare.add_argument("followup")
    compare.add_argument("--out", help="write compare.json here")
    compare.add_argument("--device", default="auto")
    compare.add_argument("--models-dir")

    train = commands.add_parser("train", help="train the classifier and/or segmenter from a manifest")
    train.add_argument("--manifest", required=True, help="CSV: patient_id,image,mask,split(train/val),...")
    train.add_argument("--out", required=True, help="folder for the new model cards and weights")
    train.add_argument("--which", default="classifier,segmenter")
    train.add_argument("--name", default="custom", help="suffix of the model ids (bonescan-resnet34-<name>)")
    train.add_argument("--epochs", type=positive_int, default=100)
    train.add_argument("--batch-size", type=positive_int, default=16, help="paper: 16")
    train.add_argument("--lr", type=positive_float, default=0.01, help="Adam learning rate (paper: 0.01)")
    train.add_argument("--segmenter-epochs", type=positive_int)
    train.add_argument("--segmenter-batch-size", type=positive_int, default=8)
    train.add_argument("--segmenter-lr", type=positive_float)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--patience", type=positive_int,
                           help="early stopping after this many epochs without improvement")
    train.add_argument("--checkpoint-dir")
    train.add_argument("--resume", action="store_true")
    train.add_argument("--device", default="auto")
    train.add_argument("--quiet", action="store_true")

    evaluate = commands.add_parser("evaluate", help="the paper's tables on a manifest's test split")
    evaluate.add_argument("--manifest", required=True)
    evaluate.add_argument("--split", default="test", help="rows to evaluate ('all' for every row)")
    evaluate.add_argument("--out", required=True)
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--models-dir")

    phantoms = commands.add_parser("phantoms", help="write a synthetic phantom cohort with a manifest")
    phantoms.add_argument("--out", required=True)
    phantoms.add_argument("--n", type=cohort_size, default=20)
    phantoms.add_argument("--seed", type=int, default=0)
    phantoms.add_argument("--splits", default="", help="e.g. train=0.8,val=0.2 (grouped by patient)")

    dce = tasks.add_parser("dce", help="breast MRI: synthetic first-phase DCE from T1WI (Pix2Pix)")
    dce_commands = dce.add_subparsers(dest="command", required=True)
    dce_synthesize = dce_commands.add_parser("synthesize", help="synthetic DCE, subtraction and MIP for a T1 volume")
    dce_synthesize.add_argument("t1", help="T1WI without fat suppression: DICOM series folder, NRRD or NIfTI")
    dce_synthesize.add_argument("--dce", help="the real first DCE phase, for side-by-side display and metrics")
    dce_synthesize.add_argument("--out", required=True)
    dce_synthesize.add_argument("--batch-slices", type=positive_int, default=8, help="slices per batch (bounds memory)")
    dce_synthesize.add_argument("--models-dir")
    dce_synthesize.add_argument("--device", default="auto")
    dce_synthesize.add_argument("--quiet", action="store_true")
    dce_train = dce_commands.add_parser("train", help="train Pix2Pix on paired T1 / DCE volumes (train + val rows)")
    dce_train.add_argument("--manifest", required=True, help="CSV: patient_id,t1,dce,split (train/val)")
    dce_train.add_argument("--out", required=True, help="folder for the model card and weights")
    dce_train.add_argument("--name", default="dce-pix2pix-custom", help="model id")
    dce_train.add_argument("--epochs", type=positive_int, default=200, help="reference pix2pix: 200")
    dce_train.add_argument("--batch-size", type=positive_int, default=1, help="reference pix2pix: 1")
    dce_train.add_argument("--lr", type=positive_float, default=2e-4, help="Adam learning rate of both players (2e-4)")
    dce_train.add_argument("--ngf", type=positive_int, default=64, help="generator width (reference: 64)")
    dce_train.add_argument("--depth", type=positive_int, default=8, help="generator halvings (reference unet_256: 8)")
    dce_train.add_argument("--ndf", type=positive_int, default=64, help="discriminator width (reference: 64)")
    dce_train.add_argument("--l1-weight", type=positive_float, default=100.0, help="λ_L1 (reference: 100)")
    dce_train.add_argument("--seed", type=int, default=0)
    dce_train.add_argument("--patience", type=positive_int,
                           help="early stopping after this many epochs without improvement")
    dce_train.add_argument("--checkpoint-dir", help="checkpoint every epoch here (with --resume to continue)")
    dce_train.add_argument("--resume", action="store_true")
    dce_train.add_argument("--device", default="auto")
    dce_train.add_argument("--quiet", action="store_true")
    dce_evaluate = dce_commands.add_parser("evaluate", help="the paper's Tables 2 and 3 with baselines")
    dce_evaluate.add_argument("--manifest", required=True)
    dce_evaluate.add_argument("--split", default="test", help="rows evaluated ('' for all)")
    dce_evaluate.add_argument("--out", required=True)
    dce_evaluate.add_argument("--models-dir")
    dce_evaluate.add_argument("--device", default="auto")
    dce_phantoms = dce_commands.add_parser("phantoms", help="write paired T1 / DCE phantom volumes with a manifest")
    dce_phantoms.add_argument("--out", required=True)
    dce_phantoms.add_argument("--n", type=cohort_size, default=20)
    dce_phantoms.add_argument("--seed", type=int, default=0)
    dce_phantoms.add_argument("--splits", default="", help="e.g. train=0.7,val=0.15,test=0.15")

    lvi = tasks.add_parser("lvi", help="breast MRI: lymphovascular invasion from DCE / FS-T2WI and the lesion VOI")
    lvi_commands = lvi.add_subparsers(dest="command", required=True)
    lvi_phantoms = lvi_commands.add_parser("phantoms", help="write LVI phantom cancers (DCE, T2, VOI) + manifest")
    lvi_phantoms.add_argument("--out", required=True)
    lvi_phantoms.add_argument("--n", type=cohort_size, default=40)
    lvi_phantoms.add_argument("--seed", type=int, default=0)
    lvi_phantoms.add_argument("--splits", default="", help="e.g. train=0.7,val=0.15,test=0.15")
    lvi_train = lvi_commands.add_parser("train", help="one network on one sequence, the paper's schedule")
    lvi_train.add_argument("--manifest", required=True, help="CSV: patient_id,dce,t2,voi,label,split")
    lvi_train.add_argument("--sequence", choices=["DCE", "T2"], required=True)
    lvi_train.add_argument("--model", choices=["vanilla2d", "resnet10-2d", "resnet10-3d"], required=True)
    lvi_train.add_argument("--out", required=True)
    lvi_train.add_argument("--name", help="model id (default: lvi-<sequence>-<model>-custom)")
    lvi_train.add_argument("--width", type=positive_float, default=1.0,
                           help="scale of the network widths (1 = the paper)")
    lvi_train.add_argument("--epochs", type=positive_int, default=100, help="paper: 100")
    lvi_train.add_argument("--batch-size", type=positive_int, help="paper: 64 (2D), 8 (3D)")
    lvi_train.add_argument("--lr", type=positive_float, default=1e-3, help="Adam, x0.9 every 10 %% of the iterations")
    lvi_train.add_argument("--seed", type=int, default=0)
    lvi_train.add_argument("--patience", type=positive_int)
    lvi_train.add_argument("--checkpoint-dir")
    lvi_train.add_argument("--resume", action="store_true")
    lvi_train.add_argument("--device", default="auto")
    lvi_train.add_argument("--quiet", action="store_true")
    lvi_predict = lvi_commands.add_parser("predict", help="LVI probability per model and sequence, fused, Grad-CAM")
    lvi_predict.add_argument("--dce", help="DCE 2nd post-contrast phase: DICOM series folder, NRRD or NIfTI")
    lvi_predict.add_argument("--t2", help="fat-suppressed T2WI")
    lvi_predict.add_argument("--voi", required=True, help="lesion VOI (non-zero = lesion), any grid of the study")
    lvi_predict.add_argument("--out", required=True)
    lvi_predict.add_argument("--models", nargs="+", help="model ids or cards (default: the 3D demo models)")
    lvi_predict.add_argument("--models-dir")
    lvi_predict.add_argument("--device", default="cpu")
    lvi_predict.add_argument("--fusion", help="fusion card from `lvi fuse` (default: mean of the models)")
    lvi_predict.add_argument("--covariate", action="append", help="clinical covariate for the fusion, e.g. age=54")
    lvi_fuse = lvi_commands.add_parser("fuse", help="fit the late fusion of models and clinical covariates")
    lvi_fuse.add_argument("--manifest", required=True)
    lvi_fuse.add_argument("--models", nargs="+", required=True, help="model ids or cards to fuse")
    lvi_fuse.add_argument("--covariates", default="", help="manifest columns, e.g. age,size_mm")
    lvi_fuse.add_argument("--out", required=True)
    lvi_fuse.add_argument("--name", default="lvi-fusion-custom")
    lvi_fuse.add_argument("--models-dir")
    lvi_fuse.add_argument("--seed", type=int, default=0)
    lvi_segment = lvi_commands.add_parser("segment", help="lesion VOI from a click (3D U-Net)")
    lvi_segment.add_argument("volume", help="DCE or FS-T2WI volume: DICOM series folder, NRRD or NIfTI")
    lvi_segment.add_argument("--point", required=True, help="x,y,z in mm (LPS, as in the DICOM header)")
    lvi_segment.add_argument("--out", required=True)
    lvi_segment.add_argument("--models-dir")
    lvi_segment.add_argument("--device", default="cpu")
    lvi_segmenter = lvi_commands.add_parser("train-segmenter", help="train the click-seeded 3D lesion U-Net")
    lvi_segmenter.add_argument("--manifest", required=True)
    lvi_segmenter.add_argument("--out", required=True)
    lvi_segmenter.add_argument("--name", default="lvi-lesion-unet-custom")
    lvi_segmenter.add_argument("--epochs", type=positive_int, default=40)
    lvi_segmenter.add_argument("--batch-size", type=positive_int, default=8)
    lvi_segmenter.add_argument("--lr", type=positive_float, default=3e-3)
    lvi_segmenter.add_argument("--seed", type=int, default=0)
    lvi_segmenter.add_argument("--patience", type=positive_int)
    lvi_segmenter.add_argument("--checkpoint-dir")
    lvi_segmenter.add_argument("--resume", action="store_true")
    lvi_segmenter.add_argument("--device", default="auto")
    lvi_segmenter.add_argument("--quiet", action="store_true")
    lvi_evaluate = lvi_commands.add_parser("evaluate", help="the paper's Table 1 for the given model cards")
    lvi_evaluate.add_argument("--manifest", required=True)
    lvi_evaluate.add_argument("--models", nargs="+", required=True, help="model cards (.json)")
    lvi_evaluate.add_argument("--split", default="test")
    lvi_evaluate.add_argument("--out", required=True)
    lvi_evaluate.add_argument("--device", default="cpu")

    mammo = tasks.add_parser("mammo", help="mammograms: radiomics of masses and calcifications")
    mammo_commands = mammo.add_subparsers(dest="command", required=True)
    extract = mammo_commands.add_parser("extract", help="102 pyradiomics 2D features per manifest row")
    extract.add_argument("--manifest", required=True, help="CSV: patient_id,image,mask,label,...")
    extract.add_argument("--out", required=True, help="features CSV (failures go to <out>.failures.csv)")
    extract.add_argument("--jobs", type=jobs, default=-1, help="parallel processes (-1: all cores)")
    extract.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786) to run on a cluster")
    extract.add_argument("--params", help="pyradiomics parameter file (default: Resources/Radiomics/mammo_2d.yaml)")
    extract.add_argument("--quiet", action="store_true")
    mammo_train = mammo_commands.add_parser("train", help="FAE-style model search (or a paper preset) on features")
    mammo_train.add_argument("--features", required=True, help="features CSV from `mammo extract`")
    mammo_train.add_argument("--out", required=True, help="folder for the model card and files")
    mammo_train.add_argument("--name", required=True, help="model id, e.g. mammo-mass-mine")
    choice = mammo_train.add_mutually_exclusive_group(required=True)
    choice.add_argument("--preset", choices=["mass", "calcification"], help="the paper's pipeline")
    choice.add_argument("--search", action="store_true", help="search normalisers, reducers, selectors, classifiers")
    mammo_train.add_argument("--one-se", action="store_true", help="one-standard-error rule (fewer features)")
    mammo_train.add_argument("--split", default="train", help="rows used for training ('' for all)")
    mammo_train.add_argument("--folds", type=positive_int, default=5)
    mammo_train.add_argument("--outer-folds", type=positive_int, default=5,
                             help="outer folds of the nested CV around --search (the honest AUC estimate)")
    mammo_train.add_argument("--seed", type=int, default=0)
    segmenter = mammo_commands.add_parser("train-segmenter", help="train the point/box-prompted lesion U-Net")
    segmenter.add_argument("--manifest", required=True, help="CSV with image, mask, split (train/val), kind")
    segmenter.add_argument("--kind", choices=["mass", "calcification"], required=True)
    segmenter.add_argument("--out", required=True)
    segmenter.add_argument("--name", help="model id (default: mammo-<kind>-unet-demo)")
    segmenter.add_argument("--epochs", type=positive_int, default=30)
    segmenter.add_argument("--batch-size", type=positive_int, default=16)
    segmenter.add_argument("--lr", type=positive_float, default=1e-3)
    segmenter.add_argument("--seed", type=int, default=0)
    segmenter.add_argument("--patience", type=positive_int)
    segmenter.add_argument("--checkpoint-dir")
    segmenter.add_argument("--resume", action="store_true")
    segmenter.add_argument("--device", default="auto")
    segmenter.add_argument("--quiet", action="store_true")
    mammo_predict = mammo_commands.add_parser("predict", help="ROI, features, Rad-score and label for one lesion")
    mammo_predict.add_argument("image", help="DICOM MG, PNG, PGM or NRRD")
    mammo_predict.add_argument("--kind", choices=["mass", "calcification"], required=True)
    where = mammo_predict.add_mutually_exclusive_group()
    where.add_argument("--point", help="x,y of the lesion in pixels (the model segments it)")
    where.add_argument("--box", help="x0,y0,x1,y1 around the lesion in pixels")
    where.add_argument("--mask", help="the reader's ROI (PNG or one-slice NRRD/NIfTI); no segmentation model")
    mammo_predict.add_argument("--pixel-mm", type=pixel_mm, help="pixel size for PNG/PGM, which store none")
    mammo_predict.add_argument("--out", required=True)
    mammo_predict.add_argument("--models-dir")
    mammo_predict.add_argument("--device", default="auto")
    bin_study = mammo_commands.add_parser("bin-study", help="bins per ROI for candidate bin widths (choose 30-130)")
    bin_study.add_argument("--manifest", required=True, help="CSV with patient_id, image, mask (and pixel_mm)")
    bin_study.add_argument("--widths", default="1,2,3,4,5,6,8,10,15,20,25", help="comma-separated bin widths")
    bin_study.add_argument("--params", help="pyradiomics parameter file (default: Resources/Radiomics/mammo_2d.yaml)")
    bin_study.add_argument("--out", help="write the study as JSON too")
    mammo_batch = mammo_commands.add_parser("batch", help="Rad-score of every mammogram in a folder (one lesion each)")
    mammo_batch.add_argument("folder", help="folder of DICOM MG / PNG / PGM / NRRD mammograms (searched recursively)")
    mammo_batch.add_argument("--kind", choices=["mass", "calcification"], required=True)
    mammo_batch.add_argument("--masks", help="folder of reader masks named like the images (else the AI ROI of the "
                                             "whole image is used)")
    mammo_batch.add_argument("--pixel-mm", type=pixel_mm, help="pixel size for PNG/PGM, which store none")
    mammo_batch.add_argument("--out", required=True, help="folder for results.csv, features.csv and rois/")
    mammo_batch.add_argument("--models-dir")
    mammo_batch.add_argument("--device", default="auto")
    mammo_evaluate = mammo_commands.add_parser("evaluate", help="AUC with DeLong CI, ACC/SEN/SPE/PPV/NPV, McNemar")
    mammo_evaluate.add_argument("--model", required=True, help="model card (.json)")
    mammo_evaluate.add_argument("--features", required=True)
    mammo_evaluate.add_argument("--split", default="test", help="rows evaluated ('' for all)")
    mammo_evaluate.add_argument("--out", required=True)
    mammo_phantoms = mammo_commands.add_parser("phantoms", help="write synthetic mammograms with masks and labels")
    mammo_phantoms.add_argument("--out", required=True)
    mammo_phantoms.add_argument("--n", type=cohort_size, default=20)
    mammo_phantoms.add_argument("--seed", type=int, default=0)
    mammo_phantoms.add_argument("--kind", choices=["mass", "calcification"])
    mammo_phantoms.add_argument("--splits", default="")
    return parser


def _run(args) -> int:
    if args.task == "bonescan":
        return _bonescan(args)
    if args.task == "mammo":
        return _mammo(args)
    if args.task == "dce":
        return _dce(args)
    if args.task == "lvi":
        return _lvi(args)
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
    try:
        args = build_parser().parse_args(join_coordinates(sys.argv[1:] if argv is None else list(argv)))
    except SystemExit as exc:  # --help (0) or a usage error (2, printed as one line by Parser.error)
        return int(exc.code or 0)
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread:  # SIGTERM unwinds like Ctrl+C: scratch files removed, children stopped
        previous = signal.signal(signal.SIGTERM, _cancel_on_terminate)
    try:
        if getattr(args, "out", None):
            is_file = (args.task, getattr(args, "command", None)) in FILE_OUTPUTS
            check_output(args.out, is_file)
            check_inputs_apart_from_output(args, is_file)
        return _run(args)
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
