"""CLI commands of the BreastLVI task: `smartimaging lvi ...`."""

from __future__ import annotations

import json
import math
import sys
from functools import partial

from ..cli_common import (
    DICOM_HELP,
    add_training_options,
    cohort_size,
    device_name,
    model_name,
    print_progress,
    random_seed,
    train_config,
    width_scale,
)
from ..finetune import (
    FINETUNE_EPOCHS,
    add_finetune_options,
    check_finetune_options,
    command_line,
    finetune_progress,
)
from ..privacy import KEEP_IDENTIFIERS_HELP

SEGMENTER_EPOCHS, SEGMENTER_LR = 40, 3e-3  # `train-segmenter` from scratch


def add_commands(tasks) -> None:
    """`smartimaging lvi` and its sub-commands on the top-level sub-parsers `tasks`."""
    lvi = tasks.add_parser("lvi", help="breast MRI: lymphovascular invasion from DCE / FS-T2WI and the lesion VOI")
    lvi_commands = lvi.add_subparsers(dest="command", required=True)
    lvi_phantoms = lvi_commands.add_parser("phantoms", help="write LVI phantom cancers (DCE, T2, VOI) + manifest")
    lvi_phantoms.add_argument("--out", required=True)
    lvi_phantoms.add_argument("--n", type=cohort_size, default=40)
    lvi_phantoms.add_argument("--seed", type=random_seed, default=0)
    lvi_phantoms.add_argument("--splits", default="", help="e.g. train=0.7,val=0.15,test=0.15")
    lvi_train = lvi_commands.add_parser("train", help="one network on one sequence, the paper's schedule")
    lvi_train.add_argument("--manifest", required=True, help="CSV: patient_id,dce,t2,voi,label,split")
    lvi_train.add_argument("--sequence", choices=["DCE", "T2"], required=True)
    lvi_train.add_argument("--model", choices=["vanilla2d", "resnet10-2d", "resnet10-3d"], required=True)
    lvi_train.add_argument("--out", required=True)
    lvi_train.add_argument("--name", type=model_name, help="model id (default: lvi-<sequence>-<model>-custom)")
    lvi_train.add_argument("--width", type=width_scale, default=1.0,
                           help="scale of the network widths (1 = the paper)")
    add_training_options(lvi_train, 100, None, 1e-3, epochs_help="paper: 100", batch_help="paper: 64 (2D), 8 (3D)",
                         lr_help="Adam, x0.9 every 10 %% of the iterations")
    lvi_predict = lvi_commands.add_parser("predict", help="LVI probability per model and sequence, fused, Grad-CAM")
    lvi_predict.add_argument("--dce", help="DCE 2nd post-contrast phase: DICOM series folder, NRRD or NIfTI")
    lvi_predict.add_argument("--t2", help="fat-suppressed T2WI")
    lvi_predict.add_argument("--voi", required=True, help="lesion VOI (non-zero = lesion), any grid of the study")
    lvi_predict.add_argument("--out", required=True)
    lvi_predict.add_argument("--models", nargs="+", help="model ids or cards (default: the 3D demo models)")
    lvi_predict.add_argument("--models-dir")
    lvi_predict.add_argument("--device", type=device_name, default="cpu")
    lvi_predict.add_argument("--fusion", help="fusion card from `lvi fuse` (default: mean of the models)")
    lvi_predict.add_argument("--covariate", action="append", help="clinical covariate for the fusion, e.g. age=54")
    lvi_predict.add_argument("--keep-identifiers", action="store_true", help=KEEP_IDENTIFIERS_HELP)
    lvi_predict.add_argument("--dicom", action="store_true", help=DICOM_HELP + " (on the DCE, else the T2)")
    lvi_fuse = lvi_commands.add_parser("fuse", help="fit the late fusion of models and clinical covariates")
    lvi_fuse.add_argument("--manifest", required=True)
    lvi_fuse.add_argument("--models", nargs="+", required=True, help="model ids or cards to fuse")
    lvi_fuse.add_argument("--covariates", default="", help="manifest columns, e.g. age,size_mm")
    lvi_fuse.add_argument("--out", required=True)
    lvi_fuse.add_argument("--name", type=model_name, default="lvi-fusion-custom")
    lvi_fuse.add_argument("--models-dir")
    lvi_fuse.add_argument("--seed", type=random_seed, default=0)
    lvi_segment = lvi_commands.add_parser("segment", help="lesion VOI from a click (3D U-Net)")
    lvi_segment.add_argument("volume", help="DCE or FS-T2WI volume: DICOM series folder, NRRD or NIfTI")
    lvi_segment.add_argument("--point", required=True, help="x,y,z in mm (LPS, as in the DICOM header)")
    lvi_segment.add_argument("--out", required=True)
    lvi_segment.add_argument("--models-dir")
    lvi_segment.add_argument("--device", type=device_name, default="cpu")
    lvi_segmenter = lvi_commands.add_parser("train-segmenter", help="train the click-seeded 3D lesion U-Net, or "
                                                                    "fine-tune one on corrected VOIs (--from-model)")
    lvi_segmenter.add_argument("--manifest", required=True)
    lvi_segmenter.add_argument("--out", required=True)
    lvi_segmenter.add_argument("--name", type=model_name, help="model id (default: lvi-lesion-unet-custom; "
                                                               "lvi-lesion-unet-finetuned with --from-model)")
    add_training_options(lvi_segmenter, None, 8, None, epochs_help=f"default {SEGMENTER_EPOCHS} ({FINETUNE_EPOCHS} "
                         "with --from-model)", lr_help=f"default {SEGMENTER_LR:g} (a tenth with --from-model)")
    add_finetune_options(lvi_segmenter)
    lvi_evaluate = lvi_commands.add_parser("evaluate", help="the paper's Table 1 for the given model cards")
    lvi_evaluate.add_argument("--manifest", required=True)
    lvi_evaluate.add_argument("--models", nargs="+", required=True, help="model cards (.json)")
    lvi_evaluate.add_argument("--split", default="test")
    lvi_evaluate.add_argument("--out", required=True)
    lvi_evaluate.add_argument("--device", type=device_name, default="cpu")


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
    check_finetune_options(args)
    if args.from_model:
        from .segment import finetune_lesion_segmenter

        result = finetune_lesion_segmenter(args.manifest, args.from_model, args.out,
                                           args.name or "lvi-lesion-unet-finetuned", train_config(args, amp=False),
                                           args.phantom, progress=finetune_progress, command=command_line())
        print(result.summary())
        return 0
    from .segment import train_lesion_segmenter

    config = train_config(args, amp=False, epochs=args.epochs or SEGMENTER_EPOCHS,
                          learning_rate=args.lr or SEGMENTER_LR)
    card = train_lesion_segmenter(args.manifest, args.out, config, args.name or "lvi-lesion-unet-custom",
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
    from .fusion_training import fit_fusion

    covariates = [name for name in args.covariates.split(",") if name] if args.covariates else []
    card = fit_fusion(args.manifest, args.models, covariates, args.out, args.name, args.models_dir, args.seed)
    validation = json.loads(card.read_text(encoding="utf-8"))["metrics"]["validation"]["auc"]
    print(f"wrote {card}; validation AUC {validation['auc']:.3f}")
    return 0


def predict(args) -> int:
    from ..explain import explain_record
    from .predict import DEFAULT_MODELS, predict_files

    prediction = predict_files({"DCE": args.dce, "T2": args.t2}, args.voi, args.out, args.models or DEFAULT_MODELS,
                               args.models_dir, args.device, args.fusion, _covariates(args.covariate),
                               dicom=args.dicom, report=partial(explain_record, "BreastLVI",
                                                                directory=args.models_dir),
                               keep_identifiers=args.keep_identifiers)
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
    from .train import PAPER_BATCH, dimensions_of, train_lvi

    batch = args.batch_size or PAPER_BATCH[dimensions_of(args.model)]
    card = train_lvi(args.manifest, args.sequence, args.model, args.out, train_config(args, batch_size=batch,
                                                                                      amp=False),
                     args.name, args.width, progress=print_progress, arguments=vars(args))
    print(f"wrote {card}")
    return 0


def evaluate(args) -> int:
    from .evaluate import evaluate_models

    print(evaluate_models(args.manifest, args.models, args.out, args.split or None, args.device))
    return 0
