"""CLI commands of the bone-scan task (parsing lives in smartimaging.cli)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..errors import InputError
from .pipeline import parse_lesion_ids


def _views(text: str | None) -> list[str] | None:
    return [v.strip() for v in text.split(",")] if text else None


def run(args) -> int:
    return {"predict": predict, "bstbi": recompute, "compare": compare, "train": train, "evaluate": evaluate,
            "phantoms": phantoms}[args.command](args)


def predict(args) -> int:
    from .outputs import write_result
    from .pipeline import BoneScanModels, analyse
    from .views import load_bone_scan

    started = time.perf_counter()
    study = load_bone_scan(args.images, _views(args.views), args.polarity)
    load_seconds = time.perf_counter() - started
    models = BoneScanModels.load(directory=args.models_dir, device=args.device)
    result = analyse(study, models, parse_lesion_ids(args.exclude), load_seconds)
    write_result(study, result, args.out, args.keep_identifiers)
    _print_summary(result.as_json(), args.out)
    return 0


def recompute(args) -> int:
    from .cohort import read_masks
    from .outputs import recompute_from_labelmaps, write_result
    from .views import load_bone_scan

    study = load_bone_scan(args.images, _views(args.views), args.polarity)
    labelmaps = read_masks(study, [Path(p) for p in args.mask])
    result = recompute_from_labelmaps(study, labelmaps, parse_lesion_ids(args.exclude))
    write_result(study, result, args.out)
    _print_summary(result.as_json(), args.out)
    return 0


def read_result_bstbi(path: Path) -> float:
    """The mean BSTBI of a result.json written by `bonescan predict` or `bonescan bstbi`, checked."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not a bone-scan result (not a JSON file); give the folder written by "
                         "`bonescan predict` or `bonescan bstbi`") from exc
    bstbi = record.get("bstbi") if isinstance(record, dict) else None
    value = bstbi.get("mean") if isinstance(bstbi, dict) else None
    if value is None:
        raise InputError(f"{path} holds no BSTBI (no 'bstbi' 'mean' entry); give the folder written by "
                         "`bonescan predict` or `bonescan bstbi`")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise InputError(f"{path} gives BSTBI {value!r}, which is not a number between 0 and 1; the file was "
                         "changed or damaged: recompute it with `bonescan bstbi`")
    return float(value)


def _bstbi_of(path: str, args) -> float:
    candidate = Path(path)
    if candidate.is_dir():
        candidate = candidate / "result.json"
        if not candidate.is_file():
            raise InputError(f"{path} has no result.json; give a predict output folder or an image")
    if candidate.suffix.lower() == ".json":
        if not candidate.is_file():
            raise InputError(f"File not found: {candidate}")
        return read_result_bstbi(candidate)
    from .pipeline import BoneScanModels, analyse
    from .views import load_bone_scan

    study = load_bone_scan([path])
    return analyse(study, BoneScanModels.load(directory=args.models_dir, device=args.device)).bstbi["mean"]


def compare(args) -> int:
    from ..io import atomic_output_dir, write_json

    before, after = _bstbi_of(args.baseline, args), _bstbi_of(args.followup, args)
    change = {"baseline": {"source": args.baseline, "bstbi": before},
              "followup": {"source": args.followup, "bstbi": after},
              "change": after - before,
              "relative_change_percent": (after - before) / before * 100 if before > 0 else None}
    relative = change["relative_change_percent"]
    if args.out:
        with atomic_output_dir(args.out) as scratch:
            write_json(scratch / "compare.json", change)
    print(f"BSTBI baseline {before:.3f} -> follow-up {after:.3f}: change {after - before:+.3f}"
          + (f" ({relative:+.1f} %)" if relative is not None else ""))
    return 0


def train(args) -> int:
    from ..cli import _train_config
    from .train import print_progress, train_bonescan

    config = _train_config(args)
    segmenter_config = _train_config(args, epochs=args.segmenter_epochs or args.epochs,
                                     batch_size=args.segmenter_batch_size,
                                     learning_rate=args.segmenter_lr or args.lr)
    cards = train_bonescan(args.manifest, args.out, tuple(w.strip() for w in args.which.split(",")), config,
                           segmenter_config, progress=print_progress, model_suffix=args.name)
    for card in cards:
        print(f"wrote {card}")
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
    views = ", ".join(result["views"])
    print(f"views: {views}")
    if result["metastasis_probability"] is not None:
        print(f"metastasis probability {result['metastasis_probability']:.3f} "
              f"({'suspected' if result['metastasis_suspected'] else 'not suspected'} at {result['threshold']}); "
              f"bladder probability {result['bladder_probability']:.3f}")
        print(f"domain check: {result['domain']['text']}")
    else:
        print("BSTBI recomputed from the given segmentation (networks not run)")
    for name, value in result["bstbi"]["per_subimage"].items():
        print(f"  BSTBI {name}: {value:.3f}")
    print(f"BSTBI (mean of {len(result['bstbi']['per_subimage'])} sub-images): {result['bstbi']['mean']:.3f}")
    print(f"lesions found: {len(result['lesions'])}; results in {out}")
    for warning in result["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
