"""CLI commands of the DCE-synthesis task: `smartimaging dce ...`."""

from __future__ import annotations

import json
import sys
from functools import partial

from ..cli_common import (
    add_training_options,
    cohort_size,
    device_name,
    model_name,
    positive_float,
    positive_int,
    print_progress,
    progress_bar,
    random_seed,
    train_config,
)
from ..privacy import KEEP_IDENTIFIERS_HELP


def add_commands(tasks) -> None:
    """`smartimaging dce` and its sub-commands on the top-level sub-parsers `tasks`."""
    dce = tasks.add_parser("dce", help="breast MRI: synthetic first-phase DCE from T1WI (Pix2Pix)")
    dce_commands = dce.add_subparsers(dest="command", required=True)
    dce_synthesize = dce_commands.add_parser("synthesize", help="synthetic DCE, subtraction and MIP for a T1 volume")
    dce_synthesize.add_argument("t1", help="T1WI without fat suppression: DICOM series folder, NRRD or NIfTI")
    dce_synthesize.add_argument("--dce", help="the real first DCE phase, for side-by-side display and metrics")
    dce_synthesize.add_argument("--out", required=True)
    dce_synthesize.add_argument("--batch-slices", type=positive_int, default=8, help="slices per batch (bounds memory)")
    dce_synthesize.add_argument("--models-dir")
    dce_synthesize.add_argument("--device", type=device_name, default="auto")
    dce_synthesize.add_argument("--quiet", action="store_true")
    dce_synthesize.add_argument("--keep-identifiers", action="store_true", help=KEEP_IDENTIFIERS_HELP)
    dce_synthesize.add_argument("--dicom", action="store_true",
                                help="also write the synthetic DCE as a DICOM MR series marked SYNTHETIC "
                                     "(synthetic_dce_dicom/: in the T1's study when the T1 is DICOM, else in a new "
                                     "one) and a DICOM SR of it (sr.dcm) with the metrics against the real DCE")
    dce_train = dce_commands.add_parser("train", help="train Pix2Pix on paired T1 / DCE volumes (train + val rows)")
    dce_train.add_argument("--manifest", required=True, help="CSV: patient_id,t1,dce,split (train/val)")
    dce_train.add_argument("--out", required=True, help="folder for the model card and weights")
    dce_train.add_argument("--name", type=model_name, default="dce-pix2pix-custom", help="model id")
    add_training_options(dce_train, 200, 1, 2e-4, epochs_help="reference pix2pix: 200",
                         batch_help="reference pix2pix: 1", lr_help="Adam learning rate of both players (2e-4)")
    dce_train.add_argument("--ngf", type=positive_int, default=64, help="generator width (reference: 64)")
    dce_train.add_argument("--depth", type=positive_int, default=8, help="generator halvings (reference unet_256: 8)")
    dce_train.add_argument("--ndf", type=positive_int, default=64, help="discriminator width (reference: 64)")
    dce_train.add_argument("--l1-weight", type=positive_float, default=100.0, help="λ_L1 (reference: 100)")
    dce_evaluate = dce_commands.add_parser("evaluate", help="the paper's Tables 2 and 3 with baselines")
    dce_evaluate.add_argument("--manifest", required=True)
    dce_evaluate.add_argument("--split", default="test", help="rows evaluated ('' for all)")
    dce_evaluate.add_argument("--out", required=True)
    dce_evaluate.add_argument("--models-dir")
    dce_evaluate.add_argument("--device", type=device_name, default="auto")
    dce_phantoms = dce_commands.add_parser("phantoms", help="write paired T1 / DCE phantom volumes with a manifest")
    dce_phantoms.add_argument("--out", required=True)
    dce_phantoms.add_argument("--n", type=cohort_size, default=20)
    dce_phantoms.add_argument("--seed", type=random_seed, default=0)
    dce_phantoms.add_argument("--splits", default="", help="e.g. train=0.7,val=0.15,test=0.15")


def run(args) -> int:
    return {"synthesize": synthesize, "train": train, "evaluate": evaluate, "phantoms": phantoms}[args.command](args)


def synthesize(args) -> int:
    from ..explain import explain_record
    from .synthesis import synthesize_file

    with progress_bar("synthesis", args.quiet) as progress:
        result = synthesize_file(args.t1, args.out, args.dce, args.models_dir, args.device, args.batch_slices,
                                 progress, dicom=args.dicom, keep_identifiers=args.keep_identifiers,
                                 report=partial(explain_record, "DCESynthesis", directory=args.models_dir))
    print(f"synthetic DCE of {result.record['slices']} slices in {result.record['seconds']:.1f} s "
          f"({result.record['device']}); results in {args.out}")
    print(f"domain check: {result.record['domain']['text']}")
    if "metrics" in result.record:
        metrics = result.record["metrics"]
        print(f"vs the real DCE: SSIM {metrics['ssim_mean']:.3f}, PSNR {metrics['psnr_mean']:.2f} dB, "
              f"MAE {metrics['mae']:.3f}, MSE {metrics['mse']:.4f}, r {metrics['pearson_r']:.3f}")
        print(result.record["lesion_contrast"]["sentence"])
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def train(args) -> int:
    from .train import train_dce

    card = train_dce(args.manifest, args.out, train_config(args, amp=False), args.name, args.ngf, args.depth,
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
