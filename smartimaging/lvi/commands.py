"""CLI commands of the BreastLVI task (parsing lives in smartimaging.cli)."""

from __future__ import annotations

import json
import math
import sys


def run(args) -> int:
    return {"phantoms": phantoms, "train": train, "evaluate": evaluate, "predict": predict,
            "fuse": fuse, "segment": segment, "train-segmenter": train_segmenter}[args.command](args)


def segment(args) -> int:
    import SimpleITK as sitk

    from ..errors import InputError
    from ..io import atomic_output_dir, read_series_or_volume, write_image
    from .segment import LesionSegmenter

    try:
        point = [float(v) for v in args.point.split(",")]
    except ValueError as exc:
        raise InputError(f"--point takes x,y,z in mm (LPS), e.g. 12.5,-40,33; got {args.point!r}") from exc
    if len(point) != 3 or not all(math.isfinite(v) for v in point):
        raise InputError(f"--point takes three coordinates x,y,z in mm (LPS), e.g. 12.5,-40,33; got {args.point!r}")
    volume = read_series_or_volume(args.volume)
    segmenter = LesionSegmenter.load(args.models_dir, args.device)
    mask, source = segmenter.propose(volume, point)
    with atomic_output_dir(args.out) as scratch:
        write_image(mask, scratch / "voi.nrrd")
    print(f"lesion VOI of {int(sitk.GetArrayViewFromImage(mask).sum())} voxels ({source}) written to "
          f"{args.out}/voi.nrrd")
    print(f"domain check: {segmenter.domain_check(volume, point, mask)['text']}")
    return 0


def train_segmenter(args) -> int:
    from ..bonescan.train import print_progress
    from ..cli import _train_config
    from .segment import train_lesion_segmenter

    card = train_lesion_segmenter(args.manifest, args.out, _train_config(args, amp=False), args.name,
                                  progress=print_progress)
    print(f"wrote {card}")
    return 0


def _covariates(items: list[str] | None) -> dict[str, float]:
    from ..errors import InputError

    values = {}
    for item in items or []:
        name, _, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not name.strip() or not math.isfinite(number):
            raise InputError(f"--covariate takes name=number, e.g. age=54; got {item!r}")
        values[name.strip()] = number
    return values


def fuse(args) -> int:
    from .fusion import fit_fusion

    covariates = [name for name in args.covariates.split(",") if name] if args.covariates else []
    card = fit_fusion(args.manifest, args.models, covariates, args.out, args.name, args.models_dir, args.seed)
    validation = json.loads(card.read_text(encoding="utf-8"))["metrics"]["validation"]["auc"]
    print(f"wrote {card}; validation AUC {validation['auc']:.3f}")
    return 0


def predict(args) -> int:
    from .predict import DEFAULT_MODELS, predict_files

    prediction = predict_files({"DCE": args.dce, "T2": args.t2}, args.voi, args.out, args.models or DEFAULT_MODELS,
                               args.models_dir, args.device, args.fusion, _covariates(args.covariate))
    for model in prediction.models:
        print(f"{model.sequence:<4} {model.network:<12} LVI probability {model.probability:.3f} "
              f"(cutoff {model.cutoff:.3f}) -> {model.label}")
    fused = prediction.as_json()["fused"]
    print(f"fused ({fused['method']}): {fused['probability']:.3f} -> {fused['label']}; results in {args.out}")
    print(f"domain check: {prediction.domain['text']}")
    for warning in prediction.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def phantoms(args) -> int:
    from ..manifest import parse_splits
    from .cohort import write_lvi_phantom_cohort

    manifest = write_lvi_phantom_cohort(args.out, args.n, args.seed, parse_splits(args.splits))
    print(json.dumps({"cases": args.n, "manifest": str(manifest)}))
    return 0


def train(args) -> int:
    from ..bonescan.train import print_progress
    from ..cli import _train_config
    from .train import PAPER_BATCH, dimensions_of, train_lvi

    batch = args.batch_size or PAPER_BATCH[dimensions_of(args.model)]
    card = train_lvi(args.manifest, args.sequence, args.model, args.out, _train_config(args, batch_size=batch,
                                                                                       amp=False),
                     args.name, args.width, progress=print_progress, arguments=vars(args))
    print(f"wrote {card}")
    return 0


def evaluate(args) -> int:
    from .evaluate import evaluate_models

    print(evaluate_models(args.manifest, args.models, args.out, args.split or None, args.device))
    return 0
