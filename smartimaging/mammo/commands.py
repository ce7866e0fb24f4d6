"""CLI commands of the mammography task: `smartimaging mammo ...`."""

from __future__ import annotations

import argparse
import json
import math
import sys
from functools import partial
from pathlib import Path

from ..cli_common import (
    DICOM_HELP,
    add_training_options,
    cohort_size,
    device_name,
    jobs,
    model_name,
    positive_int,
    print_progress,
    progress_bar,
    random_seed,
    train_config,
)
from ..errors import InputError
from ..finetune import (
    FINETUNE_EPOCHS,
    add_finetune_options,
    check_finetune_options,
    command_line,
    finetune_progress,
)
from ..privacy import KEEP_IDENTIFIERS_HELP

SEGMENTER_EPOCHS, SEGMENTER_LR = 30, 1e-3  # `train-segmenter` from scratch


def pixel_mm(text: str) -> float:
    """`--pixel-mm`: `images.parse_pixel_mm`, the one check of every front-end, refused in argparse's style."""
    from .images import pixel_mm_argument  # mammo.images is heavy: imported once a size is given

    return pixel_mm_argument(text)


def add_commands(tasks) -> None:
    """`smartimaging mammo` and its sub-commands on the top-level sub-parsers `tasks`."""
    mammo = tasks.add_parser("mammo", help="mammograms: radiomics of masses and calcifications")
    mammo_commands = mammo.add_subparsers(dest="command", required=True)
    extract = mammo_commands.add_parser("extract", help="102 pyradiomics 2D features per manifest row")
    extract.add_argument("--manifest", required=True, help="CSV: patient_id,image,mask,label,...")
    extract.add_argument("--out", required=True, help="features CSV (failures go to <out>.failures.csv)")
    extract.add_argument("--jobs", type=jobs, default=-1, help="parallel processes (-1: all cores)")
    extract.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786) to run on a cluster")
    extract.add_argument("--params", help="pyradiomics parameter file (default: Resources/Radiomics/mammo_2d.yaml)")
    extract.add_argument("--quiet", action="store_true")
    extract.set_defaults(out_is_file=True)  # --out names a file (every other --out is a folder)
    mammo_train = mammo_commands.add_parser("train", help="FAE-style model search (or a paper preset) on features")
    mammo_train.add_argument("--features", required=True, help="features CSV from `mammo extract`")
    mammo_train.add_argument("--out", required=True, help="folder for the model card and files")
    mammo_train.add_argument("--name", type=model_name, required=True, help="model id, e.g. mammo-mass-mine")
    choice = mammo_train.add_mutually_exclusive_group(required=True)
    choice.add_argument("--preset", choices=["mass", "calcification"], help="the paper's pipeline")
    choice.add_argument("--search", action="store_true", help="search normalisers, reducers, selectors, classifiers")
    mammo_train.add_argument("--one-se", action="store_true", help="one-standard-error rule (fewer features)")
    mammo_train.add_argument("--split", default="train", help="rows used for training ('' for all)")
    mammo_train.add_argument("--folds", type=positive_int, default=5)
    mammo_train.add_argument("--outer-folds", type=positive_int, default=5,
                             help="outer folds of the nested CV around --search (the honest AUC estimate)")
    mammo_train.add_argument("--seed", type=random_seed, default=0)
    mammo_train.add_argument("--jobs", type=jobs, default=-1,
                             help="parallel processes for --search (-1: all cores); the result does not depend on it")
    segmenter = mammo_commands.add_parser("train-segmenter", help="train the point/box-prompted lesion U-Net, or "
                                                                   "fine-tune one on corrected ROIs (--from-model)")
    segmenter.add_argument("--manifest", required=True, help="CSV with image, mask, split (train/val/test), kind")
    segmenter.add_argument("--kind", choices=["mass", "calcification"], required=True)
    segmenter.add_argument("--out", required=True)
    segmenter.add_argument("--name", type=model_name, help="model id (default: mammo-<kind>-unet-demo; "
                                                           "mammo-<kind>-unet-finetuned with --from-model)")
    add_training_options(segmenter, None, 16, None, epochs_help=f"default {SEGMENTER_EPOCHS} ({FINETUNE_EPOCHS} with "
                         "--from-model)", lr_help=f"default {SEGMENTER_LR:g} (a tenth with --from-model)")
    add_finetune_options(segmenter)
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
    mammo_predict.add_argument("--device", type=device_name, default="auto")
    mammo_predict.add_argument("--keep-identifiers", action="store_true", help=KEEP_IDENTIFIERS_HELP)
    mammo_predict.add_argument("--dicom", action="store_true", help=DICOM_HELP)
    bin_study = mammo_commands.add_parser("bin-study", help="bins per ROI for candidate bin widths (choose 30-130)")
    bin_study.add_argument("--manifest", required=True, help="CSV with patient_id, image, mask (and pixel_mm)")
    bin_study.add_argument("--widths", default="1,2,3,4,5,6,8,10,15,20,25", help="comma-separated bin widths")
    bin_study.add_argument("--params", help="pyradiomics parameter file (default: Resources/Radiomics/mammo_2d.yaml)")
    bin_study.add_argument("--out", help="write the study as JSON too")
    bin_study.set_defaults(out_is_file=True)
    mammo_batch = mammo_commands.add_parser("batch", help="Rad-score of every mammogram in a folder (one lesion each)")
    mammo_batch.add_argument("folder", help="folder of DICOM MG / PNG / PGM / NRRD mammograms (searched recursively)")
    mammo_batch.add_argument("--kind", choices=["mass", "calcification"], required=True)
    mammo_batch.add_argument("--masks", help="folder of reader masks named like the images (else the AI ROI of the "
                                             "whole image is used)")
    mammo_batch.add_argument("--pixel-mm", type=pixel_mm, help="pixel size for PNG/PGM, which store none")
    mammo_batch.add_argument("--out", required=True, help="folder for results.csv, features.csv and rois/")
    mammo_batch.add_argument("--models-dir")
    mammo_batch.add_argument("--device", type=device_name, default="auto")
    mammo_batch.add_argument("--keep-identifiers", action="store_true",
                             help="name each row of results.csv and features.csv by the image's path in the folder "
                                  "(file names often hold the patient's name or ID: by default a row gives only its "
                                  "number and the image's sha256)")
    propose = mammo_commands.add_parser(
        "propose", help="the lesion U-Net proposes the ROI of every manifest row (a cohort for extract/train)",
        description="The seed study's workflow: a network proposes the ROI of every lesion of the cohort, readers "
                    "correct some, and the features are extracted from these ROIs. The click is the row's "
                    "centre_row,centre_col, else a reader's click inside its mask. Writes rois/<row>.seg.nrrd and "
                    "manifest.csv (mask = the ROI to extract; ai_mask, reference_mask = the input mask, "
                    "dice_ai_vs_reference, roi_source).")
    propose.add_argument("--manifest", required=True,
                         help="CSV: patient_id, image, and mask and/or centre_row,centre_col (kind, pixel_mm, ...)")
    propose.add_argument("--out", required=True, help="new folder for manifest.csv and rois/ (images not copied)")
    propose.add_argument("--kind", choices=["mass", "calcification"], help="lesion kind of rows without a 'kind'")
    propose.add_argument("--correct-fraction", type=fraction, default=0.0,
                         help="simulates the study's readers on phantoms (cohorts with reference masks): they "
                              "correct this fraction of the rows, those with the lowest Dice AI-vs-reference, whose "
                              "mask becomes the reference (roi_source 'corrected'); the study corrected about 0.1. "
                              "Default 0")
    propose.add_argument("--models-dir")
    propose.add_argument("--device", type=device_name, default="auto")
    mammo_evaluate = mammo_commands.add_parser("evaluate", help="AUC with DeLong CI, ACC/SEN/SPE/PPV/NPV, McNemar")
    mammo_evaluate.add_argument("--model", required=True, help="model card (.json)")
    mammo_evaluate.add_argument("--features", required=True)
    mammo_evaluate.add_argument("--split", default="test", help="rows evaluated ('' for all)")
    mammo_evaluate.add_argument("--out", required=True)
    mammo_phantoms = mammo_commands.add_parser("phantoms", help="write synthetic mammograms with masks and labels")
    mammo_phantoms.add_argument("--out", required=True)
    mammo_phantoms.add_argument("--n", type=cohort_size, default=20)
    mammo_phantoms.add_argument("--seed", type=random_seed, default=0)
    mammo_phantoms.add_argument("--kind", choices=["mass", "calcification"])
    mammo_phantoms.add_argument("--splits", default="")


def run(args) -> int:
    return {"extract": extract, "phantoms": phantoms, "train": train, "evaluate": evaluate,
            "train-segmenter": train_segmenter, "predict": predict, "batch": batch,
            "bin-study": bin_study, "propose": propose}[args.command](args)


def fraction(text: str) -> float:
    """A fraction from 0 to 1."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction (0 to 1)")
    return value


def propose(args) -> int:
    from .propose import propose_cohort

    with progress_bar("proposals") as progress:
        summary = propose_cohort(args.manifest, args.out, args.kind, args.models_dir, args.device,
                                 args.correct_fraction, progress)
    dice = "" if summary.mean_dice is None else f"; mean Dice AI vs reference {summary.mean_dice:.3f}"
    print(f"{summary.rows} ROIs proposed ({summary.ai} by the network, {summary.classical} by the classical "
          f"fallback){dice}; {summary.corrected} corrected by the simulated reader; wrote {summary.manifest}")
    return 0


def predict(args) -> int:
    from ..explain import explain_record
    from .predict import predict_file

    result = predict_file(args.image, args.kind, args.out, args.point, args.box, args.mask, args.pixel_mm,
                          args.models_dir, args.device, args.dicom,
                          partial(explain_record, "MammoRadiomics", directory=args.models_dir), args.keep_identifiers)
    print(f"{result.kind} ROI ({result.roi_source}, {int(result.roi.sum())} pixels): Rad-score {result.rad_score:.3f}"
          f" -> {result.label} (cutoff {result.cutoff:.3f})")
    print(f"domain check: {result.domain['text']}")
    for item in result.top_features:
        print(f"  {item['feature']}: {item['score_change']:+.3f}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"results in {args.out}")
    return 0


def batch(args) -> int:
    from .batch import predict_folder

    with progress_bar("mammograms") as progress:
        summary = predict_folder(args.folder, args.kind, args.out, args.masks, args.pixel_mm, args.models_dir,
                                 args.device, progress, args.keep_identifiers)
    print(f"{summary.images - summary.failed} of {summary.images} mammograms read; results in "
          f"{summary.out_dir / 'results.csv'}")
    if summary.failed:
        print(f"{summary.failed} image(s) failed; the reason is in the 'error' column of results.csv",
              file=sys.stderr)
    return 0


def parse_widths(text: str) -> list[float]:
    """`--widths 1,2,5` as positive bin widths."""
    try:
        widths = [float(value) for value in text.split(",")]
    except ValueError:
        widths = []
    if not widths or not all(0 < width < math.inf for width in widths):
        raise InputError(f"--widths takes positive bin widths separated by commas, e.g. 1,2,5,10; got {text!r}")
    return widths


def bin_study(args) -> int:
    from ..io import atomic_files
    from ..radiomics import MAMMO_PARAMS
    from .features import bin_width_study

    widths = parse_widths(args.widths)
    study = bin_width_study(args.manifest, widths, args.params or MAMMO_PARAMS)
    print(f"{study['rois']} ROIs; bins per ROI (after the parameter file's normalisation):")
    print(f"{'bin width':>9} {'median':>7} {'5th pct':>8} {'95th pct':>9} {'in 30-130':>10}")
    for row in study["widths"]:
        print(f"{row['bin_width']:>9g} {row['median_bins']:>7.0f} {row['p5_bins']:>8.0f} {row['p95_bins']:>9.0f} "
              f"{row['within_30_130']:>9.0%}")
    print(f"recommended bin width: {study['recommended_bin_width']:g}")
    if args.out:
        with atomic_files(Path(args.out)) as (temporary,):
            temporary.write_text(json.dumps(study, indent=2) + "\n", encoding="utf-8")
    return 0


def train_segmenter(args) -> int:
    check_finetune_options(args)
    if args.from_model:
        from .segment import finetune_segmenter

        result = finetune_segmenter(args.manifest, args.from_model, args.out,
                                    args.name or f"mammo-{args.kind}-unet-finetuned", train_config(args), args.kind,
                                    args.phantom, progress=finetune_progress, command=command_line())
        print(result.summary())
        return 0
    from .segment import train_segmenter as train

    card = train(args.manifest, args.kind, args.out, train_config(args, epochs=args.epochs or SEGMENTER_EPOCHS,
                                                                  learning_rate=args.lr or SEGMENTER_LR),
                 args.name, progress=print_progress)
    print(f"wrote {card}")
    return 0


def train(args) -> int:
    from .classify import train_from_features

    card = train_from_features(args.features, args.out, args.name, args.preset, one_standard_error=args.one_se,
                               split=args.split or None, folds=args.folds, seed=args.seed,
                               outer_folds=args.outer_folds, n_jobs=args.jobs)
    print(f"wrote {card}")
    honest = json.loads(card.read_text(encoding="utf-8"))["metrics"]["honest_auc"]
    print(f"honest AUC estimate {honest['auc']:.3f} ± {honest['sd']:.3f}: {honest['method']}; {honest['why']}")
    return 0


def evaluate(args) -> int:
    from .classify import evaluate_features

    print(evaluate_features(args.model, args.features, args.out, args.split or None))
    return 0


def extract(args) -> int:
    from ..radiomics import MAMMO_PARAMS
    from .features import extract_cohort, failures_file

    done, failures = extract_cohort(args.manifest, args.out, args.jobs, args.params or MAMMO_PARAMS, args.scheduler,
                                    show_progress=not args.quiet)
    print(f"features of {done} row(s) written to {args.out}")
    if failures:
        print(f"warning: {len(failures)} row(s) failed; they are listed with the reason in "
              f"{failures_file(args.out).name}", file=sys.stderr)
        for failure in failures:
            print(f"warning: row {failure['row']} ({failure['patient_id']}): {failure['error']}", file=sys.stderr)
    return 0


def phantoms(args) -> int:
    from ..manifest import parse_splits
    from .cohort import write_mammo_phantom_cohort

    manifest = write_mammo_phantom_cohort(args.out, args.n, args.seed, args.kind, parse_splits(args.splits))
    print(f"wrote {args.n} phantom mammograms and {manifest}")
    return 0
