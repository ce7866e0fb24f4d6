"""CLI commands of the mammography task (parsing lives in smartimaging.cli)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from ..errors import InputError


def run(args) -> int:
    return {"extract": extract, "phantoms": phantoms, "train": train, "evaluate": evaluate,
            "train-segmenter": train_segmenter, "predict": predict, "batch": batch,
            "bin-study": bin_study}[args.command](args)


def predict(args) -> int:
    from .predict import predict_file

    result = predict_file(args.image, args.kind, args.out, args.point, args.box, args.mask, args.pixel_mm,
                          args.models_dir, args.device)
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
    from tqdm import tqdm

    from .batch import predict_folder

    with tqdm(total=1.0, desc="mammograms", bar_format="{l_bar}{bar}| {postfix}") as bar:
        def progress(fraction: float, message: str) -> None:
            bar.n = fraction
            bar.set_postfix_str(message)

        summary = predict_folder(args.folder, args.kind, args.out, args.masks, args.pixel_mm, args.models_dir,
                                 args.device, progress)
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
    from ..bonescan.train import print_progress
    from ..cli import _train_config
    from .segment import train_segmenter as train

    card = train(args.manifest, args.kind, args.out, _train_config(args), args.name, progress=print_progress)
    print(f"wrote {card}")
    return 0


def train(args) -> int:
    from .classify import train_from_features

    card = train_from_features(args.features, args.out, args.name, args.preset, one_standard_error=args.one_se,
                               split=args.split or None, folds=args.folds, seed=args.seed,
                               outer_folds=args.outer_folds)
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
