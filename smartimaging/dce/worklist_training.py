"""The DCESynthesis Pix2Pix fine-tuned and evaluated on a worklist's cohort: the station's and the desktop's Model
section through `cohort_training` (worker jobs cohort-train / cohort-evaluate), GUI-free.

Cases: the worklist's done cases with a T1 and a real DCE (`<cohort>/smartimaging/DCESynthesis/manifest.csv`), split
by patient (`worklist.stable_split`, 70 / 15 / 15 %: a patient never changes split as cases are added); a case
saved without its real DCE is left out and counted.

Train fine-tunes a start generator, the demo Pix2Pix by default: a site's few cases cannot train a Pix2Pix from
scratch (the demo took 28 phantom volumes and 40 epochs; the paper's, hundreds of patients). It runs `dce train`'s
step (BCE GAN loss + 100 × L1, Adam with β1 0.5, the same augmentation) against a fresh PatchGAN discriminator, at a
tenth of the training learning rate (`finetune.LEARNING_RATE_DIVISOR`), with the generator's batch norms at the
start model's statistics (as `finetune`); DEFAULT_EPOCHS epochs, at most MAX_EPOCHS (a GUI run: about 3 s an epoch
for 14 phantom volumes on two CPU cores). The train and val volumes are held in memory (about 8 bytes a voxel: T1
and real DCE as float32; only the train volumes' body slices are kept, one volume read at a time): at most
MAX_FINE_TUNE_VOXELS voxels together (about 4.3 GB, e.g. 20 volumes of 512 × 512 × 100), a larger cohort is refused
before more is read. Volumes of different in-plane sizes train together (`train.SlicePairs`). The train rows train,
the val rows choose the epoch (validation SSIM); the card records the start model, the cohort, the command, the seed
and the validation SSIM / PSNR before and after.

Evaluate runs the demo generator and the new one on the test rows: `dce evaluate`'s tables (SSIM / PSNR per slice,
MAE / MSE / Pearson r per volume, mean ± SD) and the lesion-level contrast of the real DCE's most enhancing regions,
before → after, the paired per-volume SSIM change with its 95 % CI, and one slice (T1 | real DCE | demo | new).
A refusal, an error or a cancel leaves no model folder (training) and the previous evaluation (evaluating).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelError
from ..io import atomic_files, atomic_output_dir, new_model_folder, write_json
from ..manifest import is_phantom_cohort, read_manifest, write_manifest
from ..models.nets import section_number
from ..models.registry import MAX_CARD_BYTES, read_json_limited
from ..models.registry import models_dir as default_models_dir
from ..wording import counted

MODULE = "DCESynthesis"
DEFAULT_EPOCHS = 10
MAX_EPOCHS = 50
BATCH_SIZE = 8  # the demo's
TRAIN_LEARNING_RATE = 2e-4  # `dce train`'s (the reference Pix2Pix's); fine-tuning takes a tenth of it
MIN_TRAIN_CASES = 3
MAX_FINE_TUNE_VOXELS = 2**29  # the train and val volumes' voxels held while fine-tuning (8 bytes each: ~4.3 GB)
WHY_FINE_TUNED = ("fine-tuned from the demo generator: a site's few cases cannot train a Pix2Pix from scratch (the "
                  "demo took 28 volumes and 40 epochs, the paper's hundreds of patients)")
TRAIN_HELP = (f"Train fine-tunes the demo Pix2Pix ({DEFAULT_EPOCHS} epochs) on the open worklist's cases saved as done "
              "with a real DCE (train split; the val split chooses the epoch): a site's few cases cannot train one "
              "from scratch. Evaluate shows the demo and the new generator side by side on the held-out test cases.")
FIGURE = "comparison.png"
PATH_COLUMNS = ("t1", "dce")

Progress = Callable[[float, str], None]


def demo_card(directory: str | os.PathLike | None = None) -> Path:
    """The demo generator's card (in `directory`, default the models folder)."""
    from .synthesis import MODEL_ID

    return Path(directory or default_models_dir()) / f"{MODEL_ID}.json"


# ---- the cohort's rows ------------------------------------------------------------------------------------------

def _cohort_rows(out_folder: Path) -> tuple[object, list[dict], int]:
    """The worklist manifest, its rows with a T1 and a real DCE, and how many done cases lack the real DCE."""
    path = out_folder / "manifest.csv"
    if not path.is_file():
        raise InputError("No case of this worklist is done yet: open each case's T1 and real DCE and save it; "
                         "training reads the cases saved as done")
    manifest = read_manifest(path, required=("patient_id", "t1", "dce", "split"))
    rows = [row for row in manifest.rows if row["t1"] and row["dce"]]
    return manifest, rows, len(manifest.rows) - len(rows)


def _relative_rows(manifest, rows: list[dict], folder: Path) -> list[dict]:
    """`rows` with their T1 / DCE paths relative to `folder` (a manifest written there reads the same files)."""
    return [{key: os.path.relpath(manifest.resolve(value), folder) if key in PATH_COLUMNS and value else value
             for key, value in row.items()} for row in rows]


def _patients(rows: list[dict]) -> int:
    return len({row["patient_id"] for row in rows})


def _without_dce(skipped: int) -> str:
    return f" ({counted(skipped, 'done case')} without a real DCE left out)" if skipped else ""


# ---- training ---------------------------------------------------------------------------------------------------

def _frozen_norm_step(learning_rate: float, l1_weight: float):
    """`fit`'s step factory: `dce train`'s Pix2Pix step with the generator's batch norms in eval mode (they keep the
    start model's running statistics, as `finetune.frozen_norm_steps` does for the U-Nets)."""
    from torch import nn

    from .train import Pix2PixStep

    class FrozenNormPix2PixStep(Pix2PixStep):
        def __call__(self, t1, dce):
            for module in self.model.generator.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
            return super().__call__(t1, dce)

    return lambda model, device: FrozenNormPix2PixStep(model, learning_rate, l1_weight)


def check_can_fine_tune(rows: list[dict], skipped: int = 0) -> None:
    """Refuse (InputError) a worklist cohort's done rows with a T1 and a real DCE (`skipped`: the done cases without
    one) too few to fine-tune the generator: MIN_TRAIN_CASES in the train split and one in the val split."""
    train, val = ([row for row in rows if row["split"] == split] for split in ("train", "val"))
    if len(train) < MIN_TRAIN_CASES or not val:
        raise InputError(
            f"Too few cases to fine-tune the DCE generator: it needs at least {counted(MIN_TRAIN_CASES, 'case')} with "
            "a T1 and a real DCE in the train split and 1 in the val split (splits by patient: about 70 % and 15 % of "
            f"the patients); this cohort has {len(train)} and {len(val)}{_without_dce(skipped)}. Save more cases as "
            "done, then train again.")


def train_generator(out_folder: str | os.PathLike, target: Path, seed: int, epochs: int | None,
                    progress: Progress, check: Callable[[], None], device: str = "auto") -> Path:
    """Fine-tune the demo generator on the worklist's train rows, the val rows choosing the epoch, into the model
    folder `target` (`<out_folder>/models/<name>`, which must not exist); its card. `check()` raises to cancel;
    nothing is left behind then."""
    from ..finetune import LEARNING_RATE_DIVISOR, start_model
    from ..models.nets import pick_device
    from ..models.pix2pix import PatchDiscriminator, init_weights
    from ..models.registry import save_model
    from ..training import TrainConfig, fit
    from .cohort import iter_pairs
    from .synthesis import check_dce_card
    from .train import MIN_BODY_FRACTION, Pix2Pix, SlicePairs, validation_metrics

    out_folder, name = Path(out_folder), target.name
    epochs = DEFAULT_EPOCHS if epochs is None else epochs
    if not 1 <= epochs <= MAX_EPOCHS:
        raise InputError(f"Fine-tuning the DCE generator takes 1 to {MAX_EPOCHS} epochs; got {epochs}")
    manifest, rows, skipped = _cohort_rows(out_folder)
    check_can_fine_tune(rows, skipped)
    train = [row for row in rows if row["split"] == "train"]
    val = [row for row in rows if row["split"] == "val"]
    start, _ = start_model(demo_card(), check_dce_card, "a DCE synthesis generator")
    with new_model_folder(target) as scratch:
        write_manifest(scratch / "cases.csv", _relative_rows(manifest, train + val, scratch))
        progress(0.02, f"reading {counted(len(train) + len(val), 'volume')} (T1 and real DCE)")
        val_pairs = list(_within_budget(iter_pairs(scratch / "cases.csv", "val"), 0))
        slices = SlicePairs(_within_budget(iter_pairs(scratch / "cases.csv", "train"),
                                           sum(pair.t1.size for pair in val_pairs)))
        if not len(slices):
            raise InputError(f"No slice of the train cases ({', '.join(row['patient_id'] for row in train)}) shows "
                             f"enough body to fine-tune on (at least {MIN_BODY_FRACTION:.0%} of a T1 slice brighter "
                             "than air): check that their T1 images show the breast, then train again")
        check()
        torch_device = pick_device(device)
        before = validation_metrics(start.network.to(torch_device), val_pairs, torch_device)
        progress(0.1, f"start model {start.card['id']}: validation SSIM {before['ssim']:.3f}; fine-tuning for "
                      f"{counted(epochs, 'epoch', 'epochs')}")
        learning_rate = TRAIN_LEARNING_RATE / LEARNING_RATE_DIVISOR
        config = TrainConfig(epochs=epochs, batch_size=BATCH_SIZE, learning_rate=learning_rate, seed=seed,
                             device=device, amp=False, show_progress=False)
        import torch

        torch.manual_seed(seed)
        ndf = int(((start.card.get("training") or {}).get("discriminator") or {}).get("ndf", 64))
        model = Pix2Pix(start.network, init_weights(PatchDiscriminator(2, ndf, 3)))

        def on_epoch(record: dict) -> None:
            check()
            progress(0.1 + 0.85 * record["fraction"], f"epoch {record['epoch']} of {epochs}: validation SSIM "
                                                      f"{record['ssim']:.3f} (start {before['ssim']:.3f})")

        result = fit(model, slices, None, lambda m, d: validation_metrics(m.generator, val_pairs, d), config,
                     on_epoch, should_cancel=lambda: check() or False,
                     step_factory=_frozen_norm_step(learning_rate, l1_weight=100.0))
        best = next(r for r in result.history if r["epoch"] == result.best_epoch)
        check()
        progress(0.97, "writing the model card")
        card = _card(start, out_folder, manifest, name, seed, config, result, best, before,
                     len(train), len(val), len(slices), ndf, skipped, device)
        save_model(model.generator, card, scratch)
        check()
    progress(1.0, f"model {name} trained")
    return target / f"{name}.json"


def _within_budget(pairs, held: int):
    """`pairs` passed on while the volumes read (with `held` voxels already held) stay within
    MAX_FINE_TUNE_VOXELS; an InputError, before another volume is read, once they exceed it."""
    for pair in pairs:
        held += pair.t1.size
        if held > MAX_FINE_TUNE_VOXELS:
            raise InputError(f"The cohort's train and val volumes are too large to fine-tune on in memory: those read "
                             f"so far hold {held / 1e6:.0f} million voxels; fine-tuning holds at most "
                             f"{MAX_FINE_TUNE_VOXELS / 1e6:.0f} million (8 bytes each, about "
                             f"{MAX_FINE_TUNE_VOXELS * 8 / 1e9:.1f} GB). Fine-tune on fewer or smaller volumes, or "
                             "train with `dce train` on a machine with more memory")
        yield pair


def _card(start, out_folder: Path, manifest, name: str, seed: int, config, result, best,
          before: dict, n_train: int, n_val: int, n_slices: int, ndf: int, skipped: int, device: str) -> dict:
    """The fine-tuned generator's card: the start card's network and input spec, what it was fine-tuned on (this
    cohort's manifest and the sha256 of the bytes its rows were read from), how (command, seed, epochs), the
    validation SSIM / PSNR before and after."""
    from dataclasses import asdict

    cohort = out_folder.parent.parent
    phantom = is_phantom_cohort(cohort)
    command = shlex.join(["python", "-m", "smartimaging.worker", "cohort-train", "--output-dir", str(out_folder),
                          "--module", MODULE, "--name", name, "--epochs", str(config.epochs), "--seed", str(seed)])
    kept = ("task", "architecture", "inputs", "outputs", "training_domain")
    data = f"every slice of the {counted(n_val, 'val volume')} of this cohort, intensities in [0, 1]"
    return {
        "id": name, "version": "1.0.0", **{key: start.card[key] for key in kept if key in start.card},
        "module": MODULE,
        "training": {
            "method": "fine-tuning", "fine_tuned_from": start.provenance, "why": WHY_FINE_TUNED,
            "command": command, "seed": seed, "epochs": config.epochs, "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch, "selection": "best validation SSIM (the val rows)",
            "learning_rate": config.learning_rate, "batch_size": config.batch_size, "l1_weight": 100.0,
            "discriminator": {"name": "patchgan", "ndf": ndf, "n_layers": 3, "receptive_field_px": 70,
                              "start": "fresh (a generator card holds no discriminator)"},
            "batch_norms": "generator: frozen at the start model's running statistics",
            "augmentation": "rotation ±10°, shift ±8 px, mirroring", "config": asdict(config), "device": device,
            "seconds": round(result.seconds, 1), "history": result.history,
            "training_domain": "the start model's (the fine-tuning rows are not added)",
            "data": {"description": (f"the T1 / real DCE pairs of the {'synthetic phantom ' if phantom else ''}cohort "
                                     f"{cohort.name} (train split; the val split chose the epoch)"),
                     "phantom": phantom, "cohort": cohort.name,
                     "manifest": manifest.path.relative_to(cohort).as_posix(), "manifest_sha256": manifest.sha256,
                     "train_cases": n_train, "val_cases": n_val, "train_slices": n_slices,
                     "cases_without_real_dce": skipped}},
        "metrics": {"validation": {"data": data, "phantom": phantom, "ssim": best["ssim"], "psnr": best["psnr"],
                                   "slices": best["slices"], "ssim_before": before["ssim"],
                                   "psnr_before": before["psnr"]}},
        "intended_use": (f"Demo: fine-tuned on synthetic phantoms (the cohort {cohort.name}) from "
                         f"{start.card['id']}; its numbers are phantom numbers. Not for clinical use." if phantom else
                         f"Research use: fine-tuned on the cohort {cohort.name} from {start.card['id']}; check its "
                         "held-out numbers (Evaluate) before relying on it. Not for clinical use."),
        "weights_sha256": ""}


# ---- evaluation -------------------------------------------------------------------------------------------------

def check_can_evaluate(rows: list[dict], skipped: int = 0) -> None:
    """Refuse (InputError) a worklist cohort's done rows with a T1 and a real DCE (`skipped`: the done cases without
    one) that hold no test case."""
    if not any(row["split"] == "test" for row in rows):
        raise InputError(f"Too few cases to evaluate: it needs at least 1 case with a T1 and a real DCE among the "
                         f"held-out test cases (about 15 % of the patients, chosen by patient); this cohort has "
                         f"none{_without_dce(skipped)}. Save more cases as done, then evaluate again.")


def evaluate_generator(out_folder: str | os.PathLike, card_path: Path, progress: Progress, check: Callable[[], None],
                       directory: str | os.PathLike | None = None, device: str = "auto") -> dict:
    """The demo generator (in `directory`) and the cohort's generator `card_path` on the worklist's test rows: the
    report (its "table" of [measure, "demo → new"] rows), written to `<model folder>/evaluation/` (evaluation.json,
    volumes.csv, comparison.png); the card records the test metrics."""
    from ..evaluation import mean_ci
    from .cohort import iter_pairs
    from .lesion_contrast import lesion_contrast
    from .metrics import slice_metrics, summarise, volume_metrics
    from .synthesis import DCESynthesizer
    from .volumes import to_unit

    out_folder = Path(out_folder)
    card = read_json_limited(card_path, MAX_CARD_BYTES, "Model card")
    validation = _validation(card, card_path)
    manifest, rows, skipped = _cohort_rows(out_folder)
    check_can_evaluate(rows, skipped)
    test = [row for row in rows if row["split"] == "test"]
    trained_on = read_manifest(card_path.parent / "cases.csv", required=("patient_id",)).rows
    shared = {row["patient_id"] for row in trained_on} & {row["patient_id"] for row in test}
    if shared:
        raise InputError(f"{len(shared)} test patient(s) were among the model's training cases (the manifest's split "
                         "column was changed): their numbers would not be held out. Train a new model")
    models = {"before": DCESynthesizer.load(directory, device),
              "after": DCESynthesizer.load(None, device, str(card_path))}
    names = {key: f"{m.model.card['id']} {m.model.card['version']}" for key, m in models.items()}
    per_slice = {key: [] for key in models}
    per_volume = {key: [] for key in models}
    contrast = {key: [] for key in models}
    shown = None  # the volume and slice of the figure: the first test volume through its most enhancing region
    with atomic_output_dir(card_path.parent / "evaluation", one_result=False) as scratch:
        write_manifest(scratch / "cases.csv", _relative_rows(manifest, test, scratch))
        for index, pair in enumerate(iter_pairs(scratch / "cases.csv", "test")):
            check()
            progress(0.05 + 0.85 * index / len(test), f"synthesizing held-out volume {index + 1} of {len(test)} "
                                                       "with both generators")
            t1, real = to_unit(pair.t1), to_unit(pair.dce)
            synthetic = {key: to_unit(m.synthesize_normalised(pair.t1)) for key, m in models.items()}
            for key, image in synthetic.items():
                per_slice[key] += slice_metrics(image, real)
                per_volume[key].append({"patient_id": pair.patient_id, **volume_metrics(image, real)})
                contrast[key].append(lesion_contrast(t1, image, real))
            if shown is None:
                regions = contrast["after"][-1]["regions"]
                middle = sum(regions[0]["slices"]) // 2 if regions else len(t1) // 2
                shown = (pair.patient_id, middle, [t1[middle], real[middle], synthetic["before"][middle],
                                                   synthetic["after"][middle]])
        check()
        progress(0.92, "the tables")
        summary = {key: summarise(per_slice[key], per_volume[key]) for key in models}
        change = mean_ci([a["ssim_mean"] - b["ssim_mean"]
                          for a, b in zip(per_volume["after"], per_volume["before"], strict=True)])
        phantom = is_phantom_cohort(out_folder.parent.parent)
        report = {"model": card["id"], "module": MODULE, "cases": len(test), "slices": len(per_slice["after"]),
                  "data": (f"the {counted(len(test), 'held-out test volume')} ({len(per_slice['after'])} slices) of "
                           f"{manifest.path.name}"), "before": names["before"], "after": names["after"],
                  "summary": summary, "ssim_change_per_volume": change,
                  "lesion_contrast": {key: _contrast_summary(values) for key, values in contrast.items()},
                  "per_volume": per_volume, "manifest_sha256": manifest.sha256,
                  "cases_added_since_training": manifest.sha256 != ((card.get("training") or {}).get(
                      "data") or {}).get("manifest_sha256"), "cases_without_real_dce": skipped, "phantom": phantom,
                  "figure": FIGURE, "figure_case": shown[0], "figure_slice": shown[1] + 1}
        report["table"] = _table(report, validation, _patients(test))
        write_json(scratch / "evaluation.json", report, undefined_as_null=True)
        _write_volumes(scratch / "volumes.csv", per_volume)
        _figure(scratch / FIGURE, shown, names, phantom)
    card["metrics"] = {**card.get("metrics", {}), "test": {
        "data": report["data"], "phantom": phantom, "manifest_sha256": report["manifest_sha256"],
        "before": {"model": names["before"], **_means(summary["before"])},
        "after": {"model": names["after"], **_means(summary["after"])}, "ssim_change_per_volume": change}}
    with atomic_files(card_path) as (temporary,):
        write_json(temporary, card, undefined_as_null=True)
    progress(1.0, f"model {card['id']} evaluated on {counted(len(test), 'held-out volume')}")
    return report


def _validation(card: dict, card_path: Path) -> dict:
    """The card's validation SSIM before and after fine-tuning ({} when it records none), read as untrusted input
    before anything is written: ModelError saying what is damaged."""
    metrics = card.get("metrics", {})
    validation = metrics.get("validation", {}) if isinstance(metrics, dict) else None
    if not isinstance(validation, dict):
        raise ModelError(f"The model card {card_path.name} is damaged (its metrics or their validation is not a set "
                         "of values). Refusing to use it; train the model again")
    if "ssim_before" not in validation:
        return {}
    try:
        return {key: section_number(validation, key, "metrics.validation", -1, 1) for key in ("ssim_before", "ssim")}
    except ValueError as exc:
        raise ModelError(f"The model card {card_path.name} is damaged ({exc}). Refusing to use it; train the model "
                         "again") from None


def _contrast_summary(measures: list[dict]) -> dict:
    """The enhancing regions of the real DCE over the test volumes: how many, how many faint on the synthetic DCE,
    the mean contrast ratio synthetic / real."""
    regions = [region for measure in measures for region in measure["regions"]]
    ratios = [region["ratio"] for region in regions if region["ratio"] is not None]
    return {"regions": len(regions), "faint": sum(region["faint"] for region in regions),
            "mean_ratio": float(np.mean(ratios)) if ratios else None}


def _means(summary: dict) -> dict:
    return {name: stats["mean"] for part in summary.values() for name, stats in part.items()}


def _table(report: dict, validation: dict, patients: int) -> list[list[str]]:
    """The paper's metrics, the demo generator → the cohort's, as [measure, value] rows (`validation`: the card's
    validation SSIM before and after, checked)."""
    before, after = report["summary"]["before"], report["summary"]["after"]

    def row(label: str, part: str, name: str, digits: int) -> list[str]:
        one, two = before[part][name], after[part][name]
        return [label, f"{one['mean']:.{digits}f} ± {one['sd']:.{digits}f} → {two['mean']:.{digits}f} ± "
                       f"{two['sd']:.{digits}f}"]

    change = report["ssim_change_per_volume"]
    interval = (f" (95 % CI {change['ci_low']:+.3f} to {change['ci_high']:+.3f})" if change["n"] > 1 else
                " (one volume: no CI)")
    contrast = report["lesion_contrast"]
    ratio = " → ".join("—" if c["mean_ratio"] is None else f"{c['mean_ratio']:.2f}" for c in contrast.values())
    table = [["Test cases", f"{counted(report['cases'], 'volume')} ({report['slices']} slices) of "
                            f"{counted(patients, 'patient')}, held out, never used in training"
              + ("; SYNTHETIC PHANTOMS: demo numbers" if report["phantom"] else "")],
             ["Generators (before → after)", f"{report['before']} (demo) → {report['after']} (fine-tuned on this "
                                             "cohort)"],
             row("SSIM per slice (mean ± SD)", "per_slice", "ssim", 3),
             row("PSNR per slice (dB)", "per_slice", "psnr", 2),
             row("MAE per volume", "per_volume", "mae", 3),
             row("MSE per volume", "per_volume", "mse", 4),
             row("Pearson r per volume", "per_volume", "pearson_r", 3),
             ["SSIM change per volume (after − before)", f"{change['mean']:+.3f}{interval}"],
             ["Enhancing regions faint on the synthetic DCE", " → ".join(
                 f"{c['faint']} of {c['regions']}" for c in contrast.values())],
             ["Contrast synthetic / real (mean of the regions)", ratio]]
    if "ssim_before" in validation:
        table.append(["Validation SSIM (val split, chose the epoch)",
                      f"{validation['ssim_before']:.3f} → {validation['ssim']:.3f}"])
    table.append(["Paper (patients, its own model)", "SSIM 0.71 ± 0.01, PSNR 23.70 ± 1.41 dB, MAE 0.032 ± 0.004, "
                                                     "r 0.872 ± 0.038"])
    return table


def _write_volumes(path: Path, per_volume: dict) -> None:
    rows = [{"patient_id": b["patient_id"], **{f"{name}_{key}": value for key, one in (("before", b), ("after", a))
                                                for name, value in one.items() if name != "patient_id"}}
            for b, a in zip(per_volume["before"], per_volume["after"], strict=True)]
    write_manifest(path, rows)


def _figure(path: Path, shown: tuple, names: dict, phantom: bool) -> None:
    """One held-out slice: T1 | real DCE | the demo's synthetic DCE | the new generator's, intensities in [0, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    case, index, images = shown
    titles = ("T1", "Real DCE", f"Before: {names['before']}", f"After: {names['after']}")
    fig, axes = plt.subplots(2, 2, figsize=(5.0, 5.4), dpi=100)  # the station's and the desktop's narrow panels
    for ax, image, title in zip(axes.ravel(), images, titles, strict=True):
        ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.suptitle(f"Held-out case {case}, slice {index + 1}" + (" (phantom: demo numbers)" if phantom else ""),
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---- the Model selector -----------------------------------------------------------------------------------------

def card_rows(card: dict) -> list[list[str]]:
    """A DCE generator's card as [what, value] rows for the Model selector (the demo's or a cohort's)."""
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    data = training.get("data") if isinstance(training.get("data"), dict) else {}
    domain = card.get("training_domain") if isinstance(card.get("training_domain"), dict) else {}
    metrics = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
    rows = [["Model", f"{card.get('id')} {card.get('version', '')}".strip()],
            ["Trained on", str(data.get("description") or domain.get("data") or "not recorded")]]
    start = training.get("fine_tuned_from")
    if isinstance(start, dict):
        rows.append(["Fine-tuned from", f"{start.get('id')} {start.get('version')} (SHA-256 "
                                        f"{str(start.get('sha256'))[:12]}…): a site's few cases cannot train a "
                                        "Pix2Pix from scratch"])
    validation, test = metrics.get("validation"), metrics.get("test")
    try:
        if isinstance(validation, dict) and "ssim_before" in validation:
            rows.append(["Validation", f"SSIM {float(validation['ssim_before']):.3f} → {float(validation['ssim']):.3f}"
                                       f" (start → fine-tuned; {validation.get('data', '')})"])
        elif isinstance(validation, dict) and "ssim" in validation:
            rows.append(["Validation", f"SSIM {float(validation['ssim']):.3f}, PSNR {float(validation['psnr']):.2f} "
                                       f"dB ({validation.get('data', '')})"])
        if isinstance(test, dict) and isinstance(test.get("after"), dict):
            before, after = test["before"], test["after"]
            rows.append(["Held-out test", f"SSIM {float(before['ssim']):.3f} → {float(after['ssim']):.3f}, MAE "
                                          f"{float(before['mae']):.3f} → {float(after['mae']):.3f} (demo → this "
                                          f"model) on {test['data']}"])
        elif isinstance(test, dict) and isinstance(test.get("ssim"), dict):
            rows.append(["Held-out test", f"SSIM {float(test['ssim']['mean']):.3f}, MAE "
                                          f"{float(test['mae']['mean']):.3f} ({test.get('data', '')})"])
    except (KeyError, TypeError, ValueError) as exc:
        rows.append(["Metrics", f"damaged card: {exc.__class__.__name__} {exc}"])
    rows.append(["Intended use", str(card.get("intended_use", "not recorded"))])
    return rows
