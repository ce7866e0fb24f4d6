"""Write `training_domain` (see smartimaging/domain.py) into the shipped model cards, from their own training data.

Every demo card records the command that made its phantom cohort. This tool regenerates that cohort (same size, seed
and splits, hence the same files), profiles the inputs of the split the model was trained on exactly as inference
profiles a new input, and stores the ranges in the card. The mammography and LVI lesion U-Nets are left alone (their
trainers write their own).

    .venv/bin/python tools/card_domains.py --work /tmp/card-domains [--only bonescan lvi dce mammo]
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from smartimaging.manifest import parse_splits, read_manifest  # noqa: E402

MODELS = REPO / "Resources" / "Models"
TOOL = "python tools/card_domains.py"
BONESCAN = ("bonescan-resnet34-demo", "bonescan-unet-demo")
LVI = tuple(f"lvi-{s}-{m}-demo" for s in ("dce", "t2") for m in ("resnet10-3d", "resnet10-2d", "vanilla2d"))
LVI_FUSION = "lvi-fusion-demo"
DCE = ("dce-pix2pix-demo",)
MAMMO = ("mammo-mass-classifier-demo", "mammo-calcification-classifier-demo")


def read_card(model_id: str) -> dict:
    return json.loads((MODELS / f"{model_id}.json").read_text(encoding="utf-8"))


def write_domain(model_id: str, domain: dict) -> None:
    path = MODELS / f"{model_id}.json"
    card = json.loads(path.read_text(encoding="utf-8"))
    card["training_domain"] = domain
    path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    print(f"{model_id}: training_domain of {domain['n']} inputs, {len(domain['ranges'])} quantities")


def cohort_command(card: dict) -> str:
    training = card["training"]
    return training.get("cohort_command") or training["data"]["cohort_command"]


def regenerate(command: str, work: Path) -> Path:
    """The cohort of `smartimaging <module> phantoms ...` under `work` (reused when already made by that command)."""
    words = shlex.split(command)
    module, options = words[1], dict(zip(words[3::2], words[4::2], strict=True))
    out = work / f"{module}-n{options['--n']}-seed{options['--seed']}-{options.get('--kind', 'all')}"
    stamp = out / "command.txt"
    if stamp.exists() and stamp.read_text(encoding="utf-8") == command:
        return out / "manifest.csv"
    n, seed, splits = int(options["--n"]), int(options["--seed"]), parse_splits(options.get("--splits", ""))
    print(f"regenerating: {command}", flush=True)
    if module == "bonescan":
        from smartimaging.bonescan.cohort import write_phantom_cohort as write
    elif module == "lvi":
        from smartimaging.lvi.cohort import write_lvi_phantom_cohort as write
    elif module == "dce":
        from smartimaging.dce.cohort import write_dce_phantom_cohort as write
    else:
        from smartimaging.mammo.cohort import write_mammo_phantom_cohort

        def write(out_dir, n_cases, seed, splits):
            return write_mammo_phantom_cohort(out_dir, n_cases, seed, options.get("--kind"), splits)
    manifest = write(out, n, seed=seed, splits=splits)
    stamp.write_text(command, encoding="utf-8")
    return manifest


def described(command: str, split: str) -> str:
    return f"the '{split}' split of the phantom cohort `{command}` (regenerated and profiled by `{TOOL}`)"


def bonescan(work: Path, limit: int | None = None) -> None:
    from smartimaging.bonescan.pipeline import training_domain

    command = cohort_command(read_card(BONESCAN[0]))
    assert all(cohort_command(read_card(model_id)) == command for model_id in BONESCAN)
    if limit:
        manifest, data = first_train_cases(command, work, limit)
    else:
        manifest, data = regenerate(command, work), described(command, "train")
    domain = training_domain(manifest, "train", data)
    for model_id in BONESCAN:
        write_domain(model_id, domain)


def first_train_cases(command: str, work: Path, limit: int) -> tuple[Path, str]:
    """A manifest of the first `limit` 'train' cases of a bone-scan cohort command, written as that command writes
    them (same case seeds, same grouped split), without the other cases (the full cohort takes long on a CPU)."""
    from smartimaging.bonescan.views import write_nm_dicom
    from smartimaging.manifest import grouped_split, write_manifest
    from smartimaging.phantoms.bonescan import make_bone_scan_phantom

    words = shlex.split(command)
    options = dict(zip(words[3::2], words[4::2], strict=True))
    n, seed = int(options["--n"]), int(options["--seed"])
    ids = [f"BS{seed * 100_000 + index:05d}" for index in range(n)]
    splits = grouped_split(ids, parse_splits(options["--splits"]), seed)
    out = work / f"bonescan-seed{seed}-first{limit}-train"
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for index in [i for i, split in enumerate(splits) if split == "train"][:limit]:
        image = out / "images" / f"{ids[index]}.dcm"
        if not image.exists():
            case = make_bone_scan_phantom(seed * 100_000 + index)
            assert case.patient_id == ids[index]
            write_nm_dicom(image, case.views, case.patient_id, case.age)
        rows.append({"patient_id": ids[index], "image": f"images/{image.name}", "split": "train"})
    write_manifest(out / "manifest.csv", rows)
    total = splits.count("train")
    return out / "manifest.csv", (f"the first {len(rows)} of the {total} 'train' cases of the phantom cohort "
                                  f"`{command}` (regenerated and profiled by `{TOOL} --bonescan-limit {limit}`)")


def lvi(work: Path) -> None:
    from smartimaging.domain import summarise
    from smartimaging.lvi.predict import training_domain

    for model_id in LVI:
        card = read_card(model_id)
        command = cohort_command(card)
        write_domain(model_id, training_domain(regenerate(command, work), "train", card, described(command, "train")))
    fusion = read_card(LVI_FUSION)
    command = fusion["training"]["cohort_command"]
    manifest = read_manifest(regenerate(command, work), required=("patient_id",))
    covariates = [name for name in fusion["fusion"]["inputs"] if not (MODELS / f"{name}.json").exists()]
    rows = manifest.subset("train")
    profiles = [{name: float(row[name]) for name in covariates} for row in rows]
    write_domain(LVI_FUSION, summarise(profiles, f"covariates of {len(rows)} cases: {described(command, 'train')}"))


def dce(work: Path) -> None:
    from smartimaging.dce.synthesis import training_domain

    for model_id in DCE:
        command = cohort_command(read_card(model_id))
        write_domain(model_id, training_domain(regenerate(command, work), "train", described(command, "train")))


def proposed(command: str, manifest: Path) -> Path:
    """The manifest of `smartimaging mammo propose ...` (its options; the regenerated cohort's `manifest`) beside
    the cohort (reused when already made by that command)."""
    from smartimaging.mammo.propose import propose_cohort

    words = shlex.split(command)
    options = dict(zip(words[3::2], words[4::2], strict=True))
    out = manifest.parent.with_name(f"{manifest.parent.name}-proposed")
    stamp = out / "command.txt"
    if not (stamp.exists() and stamp.read_text(encoding="utf-8") == command):
        print(f"proposing: {command}", flush=True)
        propose_cohort(manifest, out, options.get("--kind"), device=options.get("--device", "auto"),
                       correct_fraction=float(options.get("--correct-fraction", 0)))
        stamp.write_text(command, encoding="utf-8")
    return out / "manifest.csv"


def mammo(work: Path) -> None:
    from smartimaging.mammo.domain import classifier_training_domain
    from smartimaging.mammo.features import features_of_row

    for model_id in MAMMO:
        card = read_card(model_id)
        command, split = card["training"]["cohort_command"], card["training"]["split"]
        manifest = read_manifest(regenerate(command, work))
        rois = card["training"].get("propose_command")  # trained on AI-proposed ROIs: profile those
        if rois:
            manifest = read_manifest(proposed(rois, manifest.path))
        cache = manifest.root / f"features-{split}.json"  # pyradiomics takes minutes: reused on the next run
        if not cache.exists():
            cache.write_text(json.dumps([features_of_row(manifest.root, row) for row in manifest.subset(split)]),
                             encoding="utf-8")
        rows = json.loads(cache.read_text(encoding="utf-8"))
        data = f"radiomics features of {len(rows)} lesions: {described(command, split)}" + \
            (f", ROIs from `{rois}`" if rois else "")
        write_domain(model_id, classifier_training_domain(rows, data, card["training"].get("pixel_spacing_mm")))


STEPS = {"bonescan": bonescan, "lvi": lvi, "dce": dce, "mammo": mammo}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the regenerated cohorts (reused)")
    parser.add_argument("--only", nargs="+", choices=sorted(STEPS), default=sorted(STEPS))
    parser.add_argument("--bonescan-limit", type=int, help="profile only the first N 'train' bone scans")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    for name in args.only:
        if name == "bonescan":
            bonescan(args.work, args.bonescan_limit)
        else:
            STEPS[name](args.work)


if __name__ == "__main__":
    main()
