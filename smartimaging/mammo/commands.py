"""CLI commands of the mammography task (parsing lives in smartimaging.cli)."""

from __future__ import annotations

import sys


def run(args) -> int:
    return {"extract": extract, "phantoms": phantoms, "train": train, "evaluate": evaluate,
            "train-segmenter": train_segmenter, "predict": predict}[args.command](args)


def predict(args) -> int:
    from .predict import predict_file

    result = predict_file(args.image, args.kind, args.out, args.point, args.box, args.mask, args.pixel_mm,
                          args.models_dir, args.device)
    print(f"{result.kind} ROI ({result.roi_source}, {int(result.roi.sum())} pixels): Rad-score {result.rad_score:.3f}"
          f" -> {result.label} (cutoff {result.cutoff:.3f})")
    for item in result.top_features:
        print(f"  {item['feature']}: {item['score_change']:+.3f}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"results in {args.out}")
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
                               split=args.split or None, folds=args.folds, seed=args.seed)
    print(f"wrote {card}")
    return 0


def evaluate(args) -> int:
    from .classify import evaluate_features

    print(evaluate_features(args.model, args.features, args.out, args.split or None))
    return 0


def extract(args) -> int:
    from ..radiomics import MAMMO_PARAMS
    from .features import extract_cohort

    done, failures = extract_cohort(args.manifest, args.out, args.jobs, args.params or MAMMO_PARAMS, args.scheduler,
                                    show_progress=not args.quiet)
    print(f"features of {done} row(s) written to {args.out}")
    if failures:
        print(f"{len(failures)} row(s) failed (listed with the reason in the .failures.csv beside it):",
              file=sys.stderr)
        for failure in failures:
            print(f"  row {failure['row']} ({failure['patient_id']}): {failure['error']}", file=sys.stderr)
    return 0


def phantoms(args) -> int:
    from .features import write_mammo_phantom_cohort

    splits = {k: float(v) for k, v in (p.split("=") for p in args.splits.split(",") if p)} if args.splits else None
    manifest = write_mammo_phantom_cohort(args.out, args.n, args.seed, args.kind, splits)
    print(f"wrote {args.n} phantom mammograms and {manifest}")
    return 0
