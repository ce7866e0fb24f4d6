"""Fine-tuning of the ROI-proposal U-Nets from corrected ROIs (issue 16): `--from-model` on the training commands,
the `finetune-segmenter` worker job, Dice before and after on the same held-out rows, refused start cards."""

from __future__ import annotations

import csv
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from smartimaging.cli import main
from smartimaging.models import load_model
from smartimaging.models.registry import models_dir, sha256_of

MAMMO_CARD = models_dir() / "mammo-mass-unet-demo.json"
LVI_CARD = models_dir() / "lvi-lesion-unet-demo.json"
BONESCAN_CARD = models_dir() / "bonescan-unet-demo.json"


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mammo_cohort(tmp_path_factory) -> Path:
    from smartimaging.mammo.cohort import write_mammo_phantom_cohort

    return write_mammo_phantom_cohort(tmp_path_factory.mktemp("mammo"), 6, 5, "mass", {"train": 0.5, "test": 0.5})


def _rows(manifest: Path, split: str) -> list[tuple[int, dict]]:
    rows = csv.DictReader(manifest.read_text(encoding="utf-8").splitlines())
    return [(number, row) for number, row in enumerate(rows, start=2) if row["split"] == split]


def _changed(card: Path, start: Path) -> bool:
    new, old = load_model(card).network.state_dict(), load_model(start).network.state_dict()
    assert new.keys() == old.keys()
    return any(not torch.equal(new[name], old[name]) for name in new if new[name].is_floating_point())


def test_mammo_unet_fine_tuned_from_a_card_records_dice_before_and_after_on_the_same_rows(mammo_cohort, tmp_path,
                                                                                          capsys):
    from smartimaging.evaluation import dice
    from smartimaging.mammo.features import load_mask
    from smartimaging.mammo.images import load_mammogram
    from smartimaging.mammo.segment import MammoSegmenter, prompt_point

    out = tmp_path / "models"
    assert main(["mammo", "train-segmenter", "--manifest", str(mammo_cohort), "--kind", "mass", "--out", str(out),
                 "--name", "mass-ft", "--from-model", str(MAMMO_CARD), "--epochs", "1", "--device", "cpu",
                 "--phantom", "--quiet"]) == 0
    printed = capsys.readouterr().out
    card = json.loads((out / "mass-ft.json").read_text(encoding="utf-8"))
    metrics = card["metrics"]
    start = json.loads(MAMMO_CARD.read_text(encoding="utf-8"))
    assert metrics["fine_tuned_from"] == {"id": "mammo-mass-unet-demo", "version": start["version"],
                                          "sha256": sha256_of(models_dir() / "mammo-mass-unet-demo.safetensors")}
    test_rows = _rows(mammo_cohort, "test")
    assert metrics["split"] == "test" and metrics["n"] == len(test_rows) > 0 and metrics["phantom"]
    assert metrics["data"].startswith("PHANTOM numbers") and metrics["manifest"] == "manifest.csv"
    assert [item["item"] for item in metrics["per_item"]] == [f"row {number}" for number, _ in test_rows]
    assert all(0 <= metrics[key] <= 1 for key in ("dice_before", "dice_after"))
    assert metrics["seed"] == 0 and metrics["command"].startswith("smartimaging ")
    assert card["training"]["epochs"] == 1 and card["training"]["learning_rate"] == pytest.approx(1e-4)
    assert card["inputs"] == start["inputs"] and card["task"] == start["task"]
    assert f"{metrics['dice_before']:.3f} before, {metrics['dice_after']:.3f} after" in printed
    assert _changed(out / "mass-ft.json", MAMMO_CARD)
    # the same rows, the same click, as in use: the start model and the written model give the card's numbers
    for card_path, key in ((MAMMO_CARD, "dice_before"), (out / "mass-ft.json", "dice_after")):
        segmenter = MammoSegmenter(load_model(card_path), torch.device("cpu"))
        scores = []
        for _, row in test_rows:
            mammogram = load_mammogram(mammo_cohort.parent / row["image"], float(row["pixel_mm"]))
            truth = load_mask(mammo_cohort.parent / row["mask"], mammogram)
            scores.append(dice(segmenter.segment(mammogram.pixels, float(row["pixel_mm"]),
                                                 point=prompt_point(truth)), truth))
        assert np.mean(scores) == pytest.approx(metrics[key], abs=1e-6)


def _card_copy(folder: Path, source: Path, change) -> Path:
    """A copy of a card and its weights in `folder`, the card changed by `change(card)`."""
    folder.mkdir()
    shutil.copy(source.with_suffix(".safetensors"), folder)
    card = json.loads(source.read_text(encoding="utf-8"))
    change(card)
    path = folder / source.name
    path.write_text(json.dumps(card), encoding="utf-8")
    return path


@pytest.mark.parametrize("start, expected", [
    (BONESCAN_CARD, "not a mammography lesion U-Net"),
    (lambda f: _card_copy(f, MAMMO_CARD, lambda c: c["architecture"].update(in_channels=1)),
     "architecture.in_channels is 1; expected one of 2"),
    (lambda f: _card_copy(f, MAMMO_CARD, lambda c: c["inputs"].update(patch=[96, 96])), "inputs.patch"),
    (lambda f: _card_copy(f, MAMMO_CARD, lambda c: c.update(weights_sha256="0" * 64)), "checksum"),
], ids=["another task", "another architecture", "another input spec", "tampered weights"])
def test_a_start_card_of_another_network_is_refused(mammo_cohort, tmp_path, capsys, start, expected):
    card = start if isinstance(start, Path) else start(tmp_path / "card")
    assert main(["mammo", "train-segmenter", "--manifest", str(mammo_cohort), "--kind", "mass", "--out",
                 str(tmp_path / "out"), "--from-model", str(card), "--device", "cpu"]) == 2
    assert expected in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_the_start_model_is_never_overwritten(mammo_cohort, tmp_path, capsys):
    card = _card_copy(tmp_path / "models", MAMMO_CARD, lambda c: None)
    before = card.read_bytes()
    assert main(["mammo", "train-segmenter", "--manifest", str(mammo_cohort), "--kind", "mass", "--out",
                 str(card.parent), "--name", "mammo-mass-unet-demo", "--from-model", str(card), "--epochs", "1",
                 "--device", "cpu"]) == 2
    assert "over the start model" in capsys.readouterr().err and card.read_bytes() == before


def test_fine_tuning_options_that_cannot_apply_are_refused(mammo_cohort, tmp_path, capsys):
    from smartimaging.bonescan.commands import EPOCHS, LEARNING_RATE
    from smartimaging.bonescan.train import TRAINING_LEARNING_RATE as BONESCAN_LR
    from smartimaging.lvi.commands import SEGMENTER_LR as LVI_COMMAND_LR
    from smartimaging.lvi.segment import TRAINING_LEARNING_RATE as LVI_LR
    from smartimaging.mammo.commands import SEGMENTER_LR
    from smartimaging.mammo.segment import TRAINING_LEARNING_RATE

    # the fine-tuning learning rate is a tenth of the command's own default
    assert (SEGMENTER_LR, LVI_COMMAND_LR, LEARNING_RATE) == (TRAINING_LEARNING_RATE, LVI_LR, BONESCAN_LR)
    assert EPOCHS == 100
    cases = [(["mammo", "train-segmenter", "--kind", "calcification", "--from-model", str(MAMMO_CARD)],
              "segments mass lesions, not calcification"),
             (["mammo", "train-segmenter", "--kind", "mass", "--phantom"], "--phantom"),
             (["bonescan", "train", "--from-model", str(BONESCAN_CARD)], "--which segmenter"),
             (["lvi", "train-segmenter", "--from-model", str(MAMMO_CARD)], "not an LVI lesion U-Net")]
    for arguments, expected in cases:
        if arguments[0] == "bonescan":
            arguments += ["--which", "classifier,segmenter"]
        assert main([*arguments, "--manifest", str(mammo_cohort), "--out", str(tmp_path / "out"),
                     "--device", "cpu"]) == 2, arguments
        assert expected in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_lvi_unet_fine_tuned_by_the_worker_job(tmp_path, capsys):
    from smartimaging.lvi.cohort import write_lvi_phantom_cohort
    from smartimaging.worker import main as worker

    manifest = write_lvi_phantom_cohort(tmp_path / "cohort", 4, 6, {"train": 0.5, "val": 0.5})
    out = tmp_path / "models"
    assert worker(["finetune-segmenter", "--task", "lvi", "--manifest", str(manifest), "--from-card", str(LVI_CARD),
                   "--output-dir", str(out), "--name", "lvi-ft", "--epochs", "1", "--device", "cpu"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["event"] for e in events[:-1]] == ["progress"] * (len(events) - 1) and events[-1]["event"] == "result"
    fractions = [e["fraction"] for e in events[:-1]]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    result = events[-1]
    card = json.loads(Path(result["card"]).read_text(encoding="utf-8"))
    metrics = card["metrics"]
    assert result["split"] == metrics["split"] == "val"  # no 'test' rows: the 'val' rows are held out ...
    assert card["training"]["selection"].startswith("last epoch")  # ... and never choose the model
    volumes = [f"row {number} ({sequence})" for number, _ in _rows(manifest, "val") for sequence in ("dce", "t2")]
    assert [item["item"] for item in metrics["per_item"]] == volumes and result["n"] == len(volumes)
    assert (result["dice_before"], result["dice_after"]) == (metrics["dice_before"], metrics["dice_after"])
    assert all(0 <= metrics[key] <= 1 for key in ("dice_before", "dice_after"))
    assert metrics["fine_tuned_from"]["sha256"] == sha256_of(LVI_CARD.with_suffix(".safetensors"))
    assert metrics["command"].startswith("python -m smartimaging.worker finetune-segmenter --task lvi")
    # without --phantom: the cohort's marker labels it (the command the card records says --phantom)
    assert result["phantom"] and metrics["phantom"] and metrics["command"].endswith(" --phantom")
    assert card["training"]["learning_rate"] == pytest.approx(3e-4)
    assert _changed(Path(result["card"]), LVI_CARD)
    assert worker(["finetune-segmenter", "--task", "lvi", "--output-dir", str(tmp_path / "x")]) == 2
    assert "--manifest, --from-card, --name" in capsys.readouterr().out


def test_bone_scan_unet_fine_tuned_with_the_command(tmp_path, capsys):
    from smartimaging.bonescan.cohort import write_phantom_cohort

    manifest = write_phantom_cohort(tmp_path / "cohort", 4, seed=8, splits={"train": 0.5, "test": 0.5})
    out = tmp_path / "models"
    assert main(["bonescan", "train", "--manifest", str(manifest), "--out", str(out), "--from-model",
                 str(BONESCAN_CARD), "--which", "segmenter", "--name", "ft", "--segmenter-epochs", "1",
                 "--device", "cpu", "--quiet"]) == 0
    card = json.loads((out / "bonescan-unet-ft.json").read_text(encoding="utf-8"))
    metrics = card["metrics"]
    assert metrics["split"] == "test" and not metrics["phantom"] and 1 <= metrics["n"] <= 2
    assert all(0 <= metrics[key] <= 1 for key in ("dice_before", "dice_after"))
    assert metrics["fine_tuned_from"]["sha256"] == json.loads(BONESCAN_CARD.read_text(encoding="utf-8"))[
        "weights_sha256"]
    assert card["training"]["epochs"] == 1 and card["training"]["batch_size"] == 8
    assert _changed(out / "bonescan-unet-ft.json", BONESCAN_CARD)
    assert "Dice on" in capsys.readouterr().out


def test_a_cancelled_fine_tuning_writes_no_model(mammo_cohort, tmp_path):
    from smartimaging.worker import WorkerProcess

    out = tmp_path / "models"
    worker = WorkerProcess("finetune-segmenter", ["--task", "mammo", "--manifest", str(mammo_cohort), "--from-card",
                                                  str(MAMMO_CARD), "--output-dir", str(out), "--name", "never",
                                                  "--epochs", "500", "--device", "cpu"])
    events, deadline = [], time.monotonic() + 120
    while not any(e.get("message", "").startswith("fine-tuning") for e in events) and time.monotonic() < deadline:
        assert not worker.finished, worker.stderr
        events += worker.poll()
        time.sleep(0.05)
    assert any(e["message"] == "fine-tuning for 500 epochs" for e in events)  # the start model measured: training
    worker.cancel()
    assert worker.cancelled and worker.finished and worker.process.returncode != 0
    assert not list(out.glob("never*"))


def test_the_core_function_stops_when_asked(mammo_cohort, tmp_path):
    from smartimaging.errors import CancelledError
    from smartimaging.mammo.segment import finetune_segmenter
    from smartimaging.training import TrainConfig

    calls, steps = [], []

    def should_stop() -> bool:  # asked before each measurement and each batch: stop in the first epoch
        calls.append(1)
        return len(calls) > 2

    config = TrainConfig(epochs=3, batch_size=4, learning_rate=None, device="cpu", show_progress=False)
    with pytest.raises(CancelledError):
        finetune_segmenter(mammo_cohort, MAMMO_CARD, tmp_path / "out", "stopped", config,
                           progress=lambda fraction, message: steps.append((fraction, message)),
                           should_stop=should_stop)
    assert steps[0][0] == 0.0 and "fine-tuning for 3 epochs" in steps[-1][1] and not (tmp_path / "out").exists()
