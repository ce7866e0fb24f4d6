"""The proposal networks a module's Segment can use (issue 16): the module's demo U-Net and the U-Nets fine-tuned on a
worklist's cohort from the reader's corrected ROIs (`smartimaging.finetune`, worker job `finetune-segmenter`).

A fine-tuned network lives in `<cohort>/smartimaging/<Module>/models/_proposal/<name>/<name>.json` (+ weights): no
classifier of the Model selector can be named `_proposal` (model names start with a letter or a digit), so the two
lists never mix. GUI-free; the station's Proposal network section uses it.

Fine-tuning reads the worklist's manifest (the done cases, their corrected ROIs and their split: the worklist puts
each patient in train, val or test by a hash, about 70 / 15 / 15 %). It needs at least MIN_TRAINING done cases in the
train split (to learn from) and MIN_HELD_OUT in the test or val split (Dice before and after is measured there).
"""

from __future__ import annotations

import os
from pathlib import Path

from .cohort_training import models_folder
from .errors import InputError, ModelError
from .manifest import is_phantom_cohort, read_manifest
from .models.registry import MAX_CARD_BYTES, check_model_name, read_json_limited
from .models.registry import models_dir as default_models_dir
from .wording import counted, plural
from .worklist import OUTPUT_FOLDER

PROPOSAL_FOLDER = "_proposal"
MAX_EPOCHS = 200  # the most epochs a fine-tuning from the GUIs (station and desktop) may ask for
TASKS = {"MammoRadiomics": "mammo", "BreastLVI": "lvi", "BoneScanBSTBI": "bonescan"}  # finetune-segmenter --task
UNITS = {"mammo": "mammogram", "lvi": "volume", "bonescan": "study"}  # what Dice is measured on, by card task
MIN_TRAINING = 1
MIN_HELD_OUT = 1


def demo_id(module: str, kind: str | None = None) -> str:
    """The id of the module's demo U-Net (mammography: of the lesion kind)."""
    if module == "MammoRadiomics":
        from .mammo.segment import SEGMENTER_IDS

        return SEGMENTER_IDS[kind or "mass"]
    if module == "BreastLVI":
        from .lvi.segment import SEGMENTER_ID

        return SEGMENTER_ID
    from .bonescan.pipeline import SEGMENTER_ID as BONESCAN_SEGMENTER

    return BONESCAN_SEGMENTER


def card_task(module: str, kind: str | None = None) -> str:
    """The `task` of the module's U-Net cards (mammography: of the lesion kind)."""
    return {"MammoRadiomics": f"mammo-{kind or 'mass'}-segmentation", "BreastLVI": "lvi-lesion-segmentation",
            "BoneScanBSTBI": "bonescan-segmenter"}[module]


def proposal_folder(out_folder: str | os.PathLike) -> Path:
    """Where a worklist's fine-tuned networks live (`out_folder`: the worklist's `<cohort>/smartimaging/<Module>`)."""
    return models_folder(out_folder) / PROPOSAL_FOLDER


def proposal_card_path(out_folder: str | os.PathLike, name: str) -> Path:
    check_model_name(name)
    return proposal_folder(out_folder) / name / f"{name}.json"


def proposal_choices(module: str, out_folder: str | os.PathLike | None, kind: str | None = None,
                     directory: str | os.PathLike | None = None) -> list[tuple[str, Path, bool]]:
    """(title, card, is the demo) of the module's demo U-Net (in `directory`, default the models folder) and of the
    networks fine-tuned in the worklist's cohort (`out_folder`; None: no worklist open) for the module's task and
    lesion `kind`, by name; a folder without a readable card of that task is skipped."""
    demo = demo_id(module, kind)
    choices = [(f"{demo} (demo weights)", Path(directory or default_models_dir()) / f"{demo}.json", True)]
    folder = proposal_folder(out_folder) if out_folder is not None else None
    if folder is None or not folder.is_dir():
        return choices
    for entry in sorted(folder.iterdir()):
        try:
            path = proposal_card_path(out_folder, entry.name)
            card = read_json_limited(path, MAX_CARD_BYTES, "Model card")
        except (InputError, ModelError):  # not a model name, no card
            continue
        if card.get("task") == card_task(module, kind):
            choices.append((f"{entry.name} (fine-tuned on this cohort)", path, False))
    return choices


def next_name(module: str, out_folder: str | os.PathLike | None, kind: str | None = None) -> str:
    """The first free name `<prefix>-ft-<n>` for a new fine-tuned network of the module (mammography: of the kind)."""
    prefix = {"MammoRadiomics": f"{kind or 'mass'}-unet", "BreastLVI": "lvi-unet", "BoneScanBSTBI": "bonescan-unet"}
    number = 1
    while out_folder is not None and (proposal_folder(out_folder) / f"{prefix[module]}-ft-{number}").exists():
        number += 1
    return f"{prefix[module]}-ft-{number}"


def check_finetune_data(module: str, manifest_path: str | os.PathLike, kind: str | None = None) -> dict[str, int]:
    """The worklist's done cases per split (mammography: of the lesion kind); InputError saying what is missing when
    they are too few to fine-tune on (see the module docstring)."""
    manifest_path = Path(manifest_path)
    if not manifest_path.is_file():
        raise InputError("No case of this worklist is done yet: correct the AI's ROIs, save the cases as done, then "
                         "fine-tune (it learns from the done cases' corrected ROIs)")
    rows = read_manifest(manifest_path, required=("patient_id", "split")).rows
    what = "case"
    if module == "MammoRadiomics":
        rows = [row for row in rows if row.get("kind", kind) == kind]
        what = f"{kind} case"
    counts = {split: sum(row["split"] == split for row in rows) for split in ("train", "val", "test")}
    if counts["train"] < MIN_TRAINING or counts["val"] + counts["test"] < MIN_HELD_OUT:
        raise InputError(
            f"Too few corrected cases to fine-tune: it needs at least {counted(MIN_TRAINING, 'done ' + what)} in the "
            f"train split (to learn from) and {counted(MIN_HELD_OUT, what)} in the test or val split (held out: Dice "
            f"before and after is measured there); this worklist has {counts['train']} train, {counts['val']} val "
            f"and {counts['test']} test {what}s done. The worklist puts each patient in a split by a hash (about 70 % "
            "train, 15 % val, 15 % test): save more cases as done, then fine-tune")
    return counts


def _number(value, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "not recorded"


def held_out_text(task: str, n, split) -> str:
    """"3 held-out mammograms ('test' split)", for a U-Net card's `task`."""
    unit = next((unit for prefix, unit in UNITS.items() if str(task).startswith(prefix)), "case")
    return f"{counted(n, 'held-out ' + unit) if isinstance(n, int) else 'held-out ' + plural(unit)} ('{split}' split)"


def _held_out(card: dict, metrics: dict) -> str:
    return held_out_text(card.get("task", ""), metrics.get("n"), metrics.get("split"))


def proposal_summary(card_path: str | os.PathLike) -> list[list[str]]:
    """A U-Net card as [what, value] rows for the selector: id, trained on, Dice (before and after on the held-out
    cases for a fine-tuned one), the start model, phantom numbers or not, intended use."""
    card = read_json_limited(Path(card_path), MAX_CARD_BYTES, "Model card")
    metrics = card.get("metrics") if isinstance(card.get("metrics"), dict) else {}
    training = card.get("training") if isinstance(card.get("training"), dict) else {}
    rows = [["Model", f"{card.get('id')} {card.get('version', '')}".strip()]]
    start = metrics.get("fine_tuned_from")
    if isinstance(start, dict):
        data = training.get("data") if isinstance(training.get("data"), dict) else {}
        counts = ", ".join(f"{value} {key.replace('held_out', 'held-out').replace('_', ' ')}"
                           for key, value in data.items() if key != "manifest")
        rows += [["Trained on", f"the corrected ROIs of {data.get('manifest', 'a manifest')}: {counts}"],
                 ["Dice before → after", f"{_number(metrics.get('dice_before'))} → {_number(metrics.get('dice_after'))}"
                                         f" on {_held_out(card, metrics)}"],
                 ["Fine-tuned from", f"{start.get('id')} {start.get('version')} (sha256 "
                                     f"{str(start.get('sha256'))[:12]}…), "
                                     + (counted(training["epochs"], "epoch", "epochs")
                                        if isinstance(training.get("epochs"), int) else "epochs not recorded")],
                 ["Phantom", "yes: synthetic phantoms, not real-data numbers" if metrics.get("phantom") else
                  "no: the cohort's own cases"]]
    else:
        domain = card.get("training_domain") if isinstance(card.get("training_domain"), dict) else {}
        rows.append(["Trained on", str(domain.get("data") or "not recorded")])
        if isinstance(metrics.get("dice"), float):
            rows.append(["Dice", f"{metrics['dice']:.3f} on {metrics.get('data', 'its validation data')}"])
    rows.append(["Intended use", str(card.get("intended_use", "not recorded"))])
    return rows


def phantom_manifest(manifest: str | os.PathLike) -> bool:
    """Whether a fine-tuning manifest is a phantom cohort's (its marker file, `manifest.is_phantom_cohort`): the
    cohort's own manifest.csv or its worklist's `<cohort>/smartimaging/<Module>/manifest.csv`. The card then labels
    its Dice as phantom numbers, whatever the reader asks: phantoms cannot be un-phantomed."""
    folder = Path(manifest).parent
    worklist = folder.parent.name == OUTPUT_FOLDER and is_phantom_cohort(folder.parent.parent)
    return worklist or is_phantom_cohort(folder)


def _dice_pair(before: float, after: float) -> str:
    """"0.968 → 0.966", with more digits where three would show two different values as the same."""
    digits = 3
    while digits < 6 and f"{before:.{digits}f}" == f"{after:.{digits}f}" and before != after:
        digits += 1
    return f"{before:.{digits}f} → {after:.{digits}f}"


def finetune_outcome(task: str, result: dict) -> tuple[bool, list[list[str]]]:
    """A `finetune-segmenter` result as [what, value] rows, and whether its network is chosen for Segment: not when
    its held-out Dice fell (the current network stays; the reader may choose the new one)."""
    chosen = result["dice_after"] >= result["dice_before"]
    dice = _dice_pair(result["dice_before"], result["dice_after"])
    name = Path(result["card"]).stem
    rows = [["Fine-tuned", f"{name} (chosen for Segment)" if chosen else name],
            ["Dice before → after", dice + (" (PHANTOM numbers)" if result.get("phantom") else "")],
            ["Measured on", held_out_text(task, result["n"], result["split"])]]
    if not chosen:
        rows.append(["Not chosen", f"Dice fell {dice} on the held-out cases: the current network stays chosen; "
                                   "choose it yourself if you want it"])
    return chosen, rows
