"""Every module's phantom worklist (the station's *Phantom worklist*) carries the whole loop: written as the station
writes it (`worklist_panel.write_phantoms`: its case count and the module's seed), every case saved as done with its
answer-key label, the worklist's manifest (`Worklist.manifest_rows`: splits by patient, `worklist.stable_split`) passes
the trainers' own refusals to train and to evaluate. A change of seed, case count, split or minimum that breaks the
loop fails here. Also the refusals' wording of a count of one."""

from __future__ import annotations

import pytest

from smartimaging.cohort_training import MIN_TRAINING_PER_CLASS, check_can_evaluate, check_can_train
from smartimaging.dce import worklist_training as dce_training
from smartimaging.errors import InputError, SmartImagingError
from smartimaging.manifest import read_manifest, write_manifest
from smartimaging.web.worklist_panel import PHANTOM_CASES, phantom_folder, write_phantoms
from smartimaging.worklist import DONE, Worklist

WORKLISTS = [("MammoRadiomics", "mass"), ("MammoRadiomics", "calcification"), ("BreastLVI", None),
             ("BoneScanBSTBI", None), ("DCESynthesis", None)]


def _saved_manifest(folder, module: str) -> list[dict]:
    """The worklist manifest's rows once every case is saved as done, labelled as its answer key says, as the
    trainers read them (written and read back: CSV text)."""
    worklist = Worklist(folder, module)
    spec, records = worklist.spec, {}
    for case in worklist.cases:
        labels = {name: case.given[name] for name in spec.prefilled}
        if spec.label_field is not None:
            labels[spec.label_field.name] = case.key_label
        records[case.case_id] = {"status": DONE, "labels": labels}
    path = folder / "saved-manifest.csv"
    write_manifest(path, worklist.manifest_rows(records))
    return read_manifest(path, required=("patient_id", "split")).rows


@pytest.mark.parametrize("module, kind", WORKLISTS)
def test_the_phantom_worklist_trains_and_evaluates(module, kind, tmp_path):
    folder = tmp_path / phantom_folder(module, kind).name
    write_phantoms(module, folder, **({"kind": kind} if kind else {}))
    rows = _saved_manifest(folder, module)
    assert len(rows) == PHANTOM_CASES
    if module == "DCESynthesis":  # the generator's own minima (`cohort_training` hands it to `dce.worklist_training`)
        assert all(row["t1"] and row["dce"] for row in rows)
        dce_training.check_can_fine_tune(rows)
        dce_training.check_can_evaluate(rows)
        return
    if kind:  # the trainers take the rows of one lesion kind
        assert {row["kind"] for row in rows} == {kind}
    check_can_train(module, rows)
    check_can_evaluate(module, rows)


def test_a_module_with_its_own_seed_names_it_in_its_folder():
    """Seed 16's BreastLVI worklist (its test split: LVI-positive patients only) is left where stations wrote it;
    the other modules' folders keep their names and are reopened."""
    assert phantom_folder("BreastLVI").name == "BreastLVI-seed-3"
    assert phantom_folder("MammoRadiomics", "mass").name == "MammoRadiomics-mass"
    assert phantom_folder("BoneScanBSTBI").name == "BoneScanBSTBI"


@pytest.mark.parametrize("what", ["a folder without manifest.csv", "a file", "a link"])
def test_something_in_the_phantom_worklists_place_is_named_before_anything_is_written(tmp_path, what):
    """A folder left without manifest.csv (a half copy), a file or a dangling link where the phantom worklist goes:
    refused at once, naming it, nothing written beside it (no temporary folder), what is there left as it was."""
    folder = tmp_path / "phantom-worklists" / "DCESynthesis"
    folder.parent.mkdir()
    if what == "a link":
        folder.symlink_to(tmp_path / "nowhere")
    elif what == "a file":
        folder.write_text("x", encoding="utf-8")
    else:
        (folder / "images").mkdir(parents=True)
    with pytest.raises(SmartImagingError, match=f"^The phantom worklist could not be written: {folder} is already "
                                                f"there and is {what}, not a phantom worklist. Remove or rename it"):
        write_phantoms("DCESynthesis", folder)
    assert [p.name for p in folder.parent.iterdir()] == ["DCESynthesis"]
    assert folder.is_symlink() if what == "a link" else folder.is_file() if what == "a file" else \
        [p.name for p in folder.iterdir()] == ["images"]


def _rows(counts: dict[tuple[str, int], int]) -> list[dict]:
    return [{"patient_id": f"{split}-{label}-{index}", "label": str(label), "split": split}
            for (split, label), n in counts.items() for index in range(n)]


@pytest.mark.parametrize("module, counts, needed, has", [
    ("MammoRadiomics", {("test", 0): 1}, "1 benign and 1 malignant case", "1 benign and 0 malignant cases"),
    ("BoneScanBSTBI", {("test", 1): 1}, "1 case without metastasis and 1 with metastasis",
     "0 cases without metastasis and 1 with metastasis"),
    ("BreastLVI", {("test", 0): 2}, "1 case without LVI and 1 with LVI", "2 cases without LVI and 0 with LVI")])
def test_a_count_of_one_says_case(module, counts, needed, has):
    with pytest.raises(InputError) as refused:
        check_can_evaluate(module, _rows(counts))
    assert f"it needs at least {needed} among the held-out test cases" in str(refused.value)
    assert f"this cohort has {has}." in str(refused.value) and "1 cases" not in str(refused.value)


def test_training_needs_the_minimum_of_each_class():
    enough = {("train", 0): MIN_TRAINING_PER_CLASS, ("train", 1): MIN_TRAINING_PER_CLASS - 1, ("val", 1): 1}
    check_can_train("MammoRadiomics", _rows(enough))
    with pytest.raises(InputError, match=rf"this cohort has {MIN_TRAINING_PER_CLASS} benign and "
                                         rf"{MIN_TRAINING_PER_CLASS - 1} malignant cases"):
        check_can_train("MammoRadiomics", _rows({**enough, ("val", 1): 0}))
