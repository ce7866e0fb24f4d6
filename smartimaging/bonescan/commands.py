"""CLI commands of the bone-scan task: `smartimaging bonescan ...`."""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

from ..cli_common import (
    DICOM_HELP,
    add_training_options,
    cohort_size,
    device_name,
    learning_rate,
    model_name,
    positive_int,
    print_progress,
    random_seed,
    train_config,
)
from ..finetune import (
    FINETUNE_EPOCHS,
    add_finetune_options,
    check_finetune_options,
    command_line,
    finetune_progress,
)
from ..privacy import KEEP_IDENTIFIERS_HELP

EPOCHS, LEARNING_RATE = 100, 0.01  # `train` from scratch (the paper's)


def add_commands(tasks) -> None:
    """`smartimaging bonescan` and its sub-commands on the top-level sub-parsers `tasks`."""
    bone = tasks.add_parser("bonescan", help="whole-body bone scans: BSTBI")
    bone_commands = bone.add_subparsers(dest="command", required=True)
    predict = bone_commands.add_parser("predict", help="classify, segment and compute BSTBI")
    predict.add_argument("images", nargs="+", help="NM DICOM, PNG/JPEG or NRRD/NIfTI; one file per view or a "
                                                   "multi-frame file with both views")
    predict.add_argument("--out", required=True, help="output folder")
    predict.add_argument("--views", help="comma-separated view names for the inputs, e.g. anterior,posterior")
    predict.add_argument("--polarity", choices=["auto", "uptake-bright", "uptake-dark"], default="auto")
    predict.add_argument("--exclude", default="", help="comma-separated lesion ids to drop (false positives)")
    predict.add_argument("--device", type=device_name, default="auto")
    predict.add_argument("--models-dir", help="folder with model cards (default: bundled demo models)")
    predict.add_argument("--keep-identifiers", action="store_true",
                         help="write the patient ID and name of the input and its path as given into result.json "
                              "(left out by default, where each input is recorded by its sha256 only: file and "
                              "folder names often hold the patient's name or ID)")
    predict.add_argument("--dicom", action="store_true", help=DICOM_HELP)

    recompute = bone_commands.add_parser("bstbi", help="recompute BSTBI from an edited segmentation, no networks")
    recompute.add_argument("images", nargs="+")
    recompute.add_argument("--mask", nargs="+", required=True, help="label map(s) (.seg.nrrd or NIfTI), one per image")
    recompute.add_argument("--out", required=True)
    recompute.add_argument("--views")
    recompute.add_argument("--polarity", choices=["auto", "uptake-bright", "uptake-dark"], default="auto")
    recompute.add_argument("--exclude", default="")
    recompute.add_argument("--keep-identifiers", action="store_true", help=KEEP_IDENTIFIERS_HELP)
    recompute.add_argument("--dicom", action="store_true", help=DICOM_HELP)

    compare = bone_commands.add_parser("compare", help="BSTBI change between two studies (result folders or images)")
    compare.add_argument("baseline")
    compare.add_argument("followup")
    compare.add_argument("--out", help="write compare.json here")
    compare.add_argument("--device", type=device_name, default="auto")
    compare.add_argument("--models-dir")
    compare.add_argument("--keep-identifiers", action="store_true",
                         help="name the studies by the paths given (else 'baseline' and 'follow-up'): folder "
                              "and file names often hold the patient's name or ID")

    trend = bone_commands.add_parser("trend", help="BSTBI of several studies of one patient: change and trend plot")
    trend.add_argument("results", nargs="+", help="result folders or result.json files of `bonescan predict` / "
                                                  "`bonescan bstbi`, two or more; ordered by study date when every "
                                                  "one records it (--keep-identifiers), else in the order given")
    trend.add_argument("--out", help="write trend.json and trend.svg here")
    trend.add_argument("--keep-identifiers", action="store_true",
                       help="name the studies by the paths given (else 'study 1', 'study 2'... in the order given): "
                            "folder and file names often hold the patient's name or ID")

    train = bone_commands.add_parser("train", help="train the classifier and/or segmenter from a manifest, or "
                                                   "fine-tune the segmenter on corrected masks (--from-model)")
    train.add_argument("--manifest", required=True, help="CSV: patient_id,image,mask,split(train/val/test),...")
    train.add_argument("--out", required=True, help="folder for the new model cards and weights")
    train.add_argument("--which", help="classifier, segmenter or both (default; only segmenter with --from-model)")
    train.add_argument("--name", type=model_name, default="custom",
                       help="suffix of the model ids (bonescan-resnet34-<name>)")
    add_training_options(train, None, 16, None, epochs_help=f"default {EPOCHS} ({FINETUNE_EPOCHS} with --from-model)",
                         batch_help="paper: 16", lr_help=f"Adam learning rate (paper: {LEARNING_RATE:g}; a tenth "
                                                         "with --from-model)")
    add_finetune_options(train)
    train.add_argument("--segmenter-epochs", type=positive_int)
    train.add_argument("--segmenter-batch-size", type=positive_int, default=8)
    train.add_argument("--segmenter-lr", type=learning_rate)

    evaluate = bone_commands.add_parser("evaluate", help="the paper's tables on a manifest's test split")
    evaluate.add_argument("--manifest", required=True)
    evaluate.add_argument("--split", default="test", help="rows to evaluate ('all' for every row)")
    evaluate.add_argument("--out", required=True)
    evaluate.add_argument("--device", type=device_name, default="auto")
    evaluate.add_argument("--models-dir")

    phantoms = bone_commands.add_parser("phantoms", help="write a synthetic phantom cohort with a manifest")
    phantoms.add_argument("--out", required=True)
    phantoms.add_argument("--n", type=cohort_size, default=20)
    phantoms.add_argument("--seed", type=random_seed, default=0)
    phantoms.add_argument("--splits", default="", help="e.g. train=0.8,val=0.2 (grouped by patient)")


def _views(text: str | None) -> list[str] | None:
    return [v.strip() for v in text.split(",")] if text else None


def run(args) -> int:
    return {"predict": predict, "bstbi": recompute, "compare": compare, "trend": trend, "train": train,
            "evaluate": evaluate, "phantoms": phantoms}[args.command](args)


def predict(args) -> int:
    from ..explain import explain_record
    from .outputs import write_result
    from .pipeline import BoneScanModels, analyse, parse_lesion_ids
    from .views import load_bone_scan

    started = time.perf_counter()
    study = load_bone_scan(args.images, _views(args.views), args.polarity)
    load_seconds = time.perf_counter() - started
    models = BoneScanModels.load(directory=args.models_dir, device=args.device)
    result = analyse(study, models, parse_lesion_ids(args.exclude), load_seconds)
    write_result(study, result, args.out, args.keep_identifiers, args.dicom,
                 partial(explain_record, "BoneScanBSTBI", directory=args.models_dir))
    _print_summary(result.as_json(), args.out)
    return 0


def recompute(args) -> int:
    from ..explain import explain_record
    from .cohort import read_masks
    from .outputs import write_result
    from .pipeline import parse_lesion_ids, recompute_from_labelmaps
    from .views import load_bone_scan

    study = load_bone_scan(args.images, _views(args.views), args.polarity)
    labelmaps = read_masks(study, [Path(p) for p in args.mask])
    result = recompute_from_labelmaps(study, labelmaps, parse_lesion_ids(args.exclude))
    write_result(study, result, args.out, args.keep_identifiers, args.dicom, partial(explain_record, "BoneScanBSTBI"))
    _print_summary(result.as_json(), args.out)
    return 0


def _study_of(path: str, args):
    """The StudyPoint of a result folder or result.json (checked), or of an image (the networks run)."""
    from .followup import StudyPoint, acquisition, read_result, record_facts

    candidate = Path(path)
    if candidate.is_dir() or candidate.suffix.lower() == ".json":
        return read_result(candidate)
    from .pipeline import BoneScanModels, analyse
    from .views import load_bone_scan

    study = load_bone_scan([path])
    record = {**analyse(study, BoneScanModels.load(directory=args.models_dir, device=args.device)).as_json(),
              "acquisition": acquisition(study)}
    return StudyPoint(path, record["bstbi"]["mean"], None, *record_facts(record))


def named(points: list, neutral: list[str], keep_identifiers: bool) -> list:
    """The studies labelled by the paths given (`keep_identifiers`: folder names often name the patient) or by the
    `neutral` labels."""
    return points if keep_identifiers else [replace(p, label=label) for p, label in zip(points, neutral, strict=True)]


def _distinct(paths: list[str]) -> None:
    """Refuse a file or folder given twice."""
    from ..errors import InputError

    seen = {}
    for path in paths:
        candidate = Path(path)
        key = (candidate / "result.json" if candidate.is_dir() else candidate).resolve()
        if key in seen:
            raise InputError(f"{path} and {seen[key]} are the same file: give each study once")
        seen[key] = path


def compare(args) -> int:
    from ..io import atomic_output_dir, write_json
    from .bstbi import bstbi_change
    from .followup import check_comparable, reader_note, relative_text

    _distinct([args.baseline, args.followup])
    points = named([_study_of(args.baseline, args), _study_of(args.followup, args)], ["baseline", "follow-up"],
                   args.keep_identifiers)
    check_comparable(points)
    before, after = points[0].bstbi, points[1].bstbi
    change = {**bstbi_change(before, after), "baseline": {"source": points[0].label, "bstbi": before},
              "followup": {"source": points[1].label, "bstbi": after}, "reader_note": reader_note(*points)}
    if args.out:
        with atomic_output_dir(args.out) as scratch:
            write_json(scratch / "compare.json", change)
    print(f"BSTBI baseline {before:.3f} -> follow-up {after:.3f}: change {after - before:+.3f}"
          + relative_text(bstbi_change(before, after))
          + (f"; caution: {change['reader_note']}" if change["reader_note"] else ""))
    return 0


def trend(args) -> int:
    from ..io import atomic_output_dir, write_json
    from .followup import read_result, trend_lines, trend_svg
    from .followup import trend as study_trend

    _distinct(args.results)
    points = [read_result(path) for path in args.results]
    result = study_trend(named(points, [f"study {i}" for i in range(1, len(points) + 1)], args.keep_identifiers))
    if args.out:
        with atomic_output_dir(args.out) as scratch:
            write_json(scratch / "trend.json", result)
            (scratch / "trend.svg").write_text(trend_svg(result), encoding="utf-8")
    print("\n".join(trend_lines(result)))
    return 0


def train(args) -> int:
    check_finetune_options(args)
    if args.from_model:
        return finetune(args)
    from .train import train_bonescan

    config = train_config(args, epochs=args.epochs or EPOCHS, learning_rate=args.lr or LEARNING_RATE)
    segmenter_config = train_config(args, epochs=args.segmenter_epochs or config.epochs,
                                    batch_size=args.segmenter_batch_size,
                                    learning_rate=args.segmenter_lr or config.learning_rate)
    which = "classifier,segmenter" if args.which is None else args.which
    cards = train_bonescan(args.manifest, args.out, tuple(w.strip() for w in which.split(",")), config,
                           segmenter_config, progress=print_progress, model_suffix=args.name)
    for card in cards:
        print(f"wrote {card}")
    return 0


def finetune(args) -> int:
    from ..errors import InputError
    from .train import finetune_segmenter

    if args.which not in (None, "segmenter"):
        raise InputError(f"--from-model fine-tunes the segmenter only; give --which segmenter (got {args.which!r})")
    config = train_config(args, epochs=args.segmenter_epochs or args.epochs, batch_size=args.segmenter_batch_size,
                          learning_rate=args.segmenter_lr or args.lr)
    result = finetune_segmenter(args.manifest, args.from_model, args.out, f"bonescan-unet-{args.name}", config,
                                args.phantom, progress=finetune_progress, command=command_line())
    print(result.summary())
    return 0


def evaluate(args) -> int:
    from .evaluate import evaluate_manifest

    report = evaluate_manifest(args.manifest, args.out, args.split, args.device, args.models_dir)
    print(report)
    return 0


def phantoms(args) -> int:
    from ..manifest import parse_splits
    from .cohort import write_phantom_cohort

    manifest = write_phantom_cohort(args.out, args.n, args.seed, parse_splits(args.splits))
    print(f"wrote {args.n} phantom cases and {manifest}")
    return 0


def _print_summary(result: dict, out: str) -> None:
    from .lesions import counts_text, review

    views = ", ".join(result["views"])
    print(f"views: {views}")
    if result["metastasis_probability"] is not None:
        print(f"metastasis probability {result['metastasis_probability']:.3f} "
              f"({'suspected' if result['metastasis_suspected'] else 'not suspected'} at {result['threshold']:.3f}); "
              f"bladder probability {result['bladder_probability']:.3f}")
        print(f"domain check: {result['domain']['text']}")
    else:
        print("BSTBI recomputed from the given segmentation (networks not run)")
    for name, value in result["bstbi"]["per_subimage"].items():
        print(f"  BSTBI {name}: {value:.3f}")
    print(f"BSTBI (mean of {len(result['bstbi']['per_subimage'])} sub-images): {result['bstbi']['mean']:.3f}")
    for group in review(result)["views"]:
        for lesion in group["lesions"]:
            where = lesion["position"] if lesion["site"] == lesion["position"] else \
                f"{lesion['site']} ({lesion['position']})"  # the skeletal site, where one was estimated
            print(f"  lesion #{lesion['id']} {group['view']}: {where} · {lesion['area']} · "
                  f"{lesion['uptake']} · {lesion['match']}" + (" · rejected" if lesion["rejected"] else ""))
    print(f"lesions: {counts_text(result['lesion_counts'], result['unrecorded_views'])}; results in {out}")
    for warning in result["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
