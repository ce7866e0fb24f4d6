"""CLI commands of the DCE-synthesis task (parsing lives in smartimaging.cli)."""

from __future__ import annotations

import json
import sys


def run(args) -> int:
    return {"synthesize": synthesize, "train": train, "evaluate": evaluate, "phantoms": phantoms}[args.command](args)


def synthesize(args) -> int:
    from tqdm import tqdm

    from .synthesis import synthesize_file

    with tqdm(total=1.0, desc="synthesis", disable=args.quiet, bar_format="{l_bar}{bar}| {postfix}") as bar:
        def progress(fraction: float, message: str) -> None:
            bar.n = fraction
            bar.set_postfix_str(message)

        result = synthesize_file(args.t1, args.out, args.dce, args.models_dir, args.device, args.batch_slices,
                                 progress)
    print(f"synthetic DCE of {result.record['slices']} slices in {result.record['seconds']:.1f} s "
          f"({result.record['device']}); results in {args.out}")
    print(f"domain check: {result.record['domain']['text']}")
    if "metrics" in result.record:
        metrics = result.record["metrics"]
        print(f"vs the real DCE: SSIM {metrics['ssim_mean']:.3f}, PSNR {metrics['psnr_mean']:.2f} dB, "
              f"MAE {metrics['mae']:.3f}, MSE {metrics['mse']:.4f}, r {metrics['pearson_r']:.3f}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def train(args) -> int:
    from ..bonescan.train import print_progress
    from ..cli import _train_config
    from .train import train_dce

    card = train_dce(args.manifest, args.out, _train_config(args, amp=False), args.name, args.ngf, args.depth,
                     args.ndf, args.l1_weight, progress=print_progress, arguments=vars(args))
    print(f"wrote {card}")
    return 0


def evaluate(args) -> int:
    from .evaluate import evaluate_manifest

    print(evaluate_manifest(args.manifest, args.out, args.split or None, args.models_dir, args.device))
    return 0


def phantoms(args) -> int:
    from ..manifest import parse_splits
    from .cohort import write_dce_phantom_cohort

    manifest = write_dce_phantom_cohort(args.out, args.n, args.seed, parse_splits(args.splits))
    print(json.dumps({"cases": args.n, "manifest": str(manifest)}))
    return 0
