"""Model registry (sha256, safetensors, strict cards), training loop (seed, resume, early stop), manifests."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from smartimaging.errors import ModelError
from smartimaging.manifest import grouped_split
from smartimaging.models import build_network, load_model, save_model
from smartimaging.training import TrainConfig, fit

TINY_UNET = {"name": "basic_unet", "spatial_dims": 2, "in_channels": 1, "out_channels": 2,
             "features": [4, 4, 8, 8, 16, 4]}


def _card(model_id="tiny"):
    return {"id": model_id, "version": "0.0.1", "task": "test", "architecture": TINY_UNET, "inputs": {},
            "outputs": {}, "intended_use": "test", "weights_sha256": ""}


def test_save_and_load_round_trip(tmp_path):
    network = build_network(TINY_UNET)
    card_path = save_model(network, _card(), tmp_path)
    loaded = load_model("tiny", tmp_path)
    card = json.loads(card_path.read_text(encoding="utf-8"))
    assert card["parameters"] == sum(p.numel() for p in network.parameters())
    x = torch.randn(1, 1, 32, 32)
    network.eval()
    assert torch.equal(loaded.network(x), network(x))
    assert loaded.provenance["sha256"] == card["weights_sha256"]


def test_half_precision_storage_halves_the_file_and_loads_as_float32(tmp_path):
    torch.manual_seed(0)
    wider = {**TINY_UNET, "features": [16, 16, 32, 32, 64, 16]}
    network = build_network(wider).eval()
    save_model(network, {**_card("full"), "architecture": wider}, tmp_path)
    card_path = save_model(network, {**_card("half"), "architecture": wider}, tmp_path, storage_dtype=torch.float16)
    assert json.loads(card_path.read_text(encoding="utf-8"))["weights_storage_dtype"] == "float16"
    full, half = (tmp_path / "full.safetensors").stat().st_size, (tmp_path / "half.safetensors").stat().st_size
    assert half < 0.6 * full
    loaded = load_model("half", tmp_path).network
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(loaded(x), network(x), atol=1e-2)


def test_tampered_weights_are_refused(tmp_path):
    save_model(build_network(TINY_UNET), _card(), tmp_path)
    weights = tmp_path / "tiny.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="modified or damaged"):
        load_model("tiny", tmp_path)


def test_missing_weights_and_unknown_models_are_refused(tmp_path):
    save_model(build_network(TINY_UNET), _card(), tmp_path)
    (tmp_path / "tiny.safetensors").unlink()
    with pytest.raises(ModelError, match="missing"):
        load_model("tiny", tmp_path)
    with pytest.raises(ModelError, match="not found"):
        load_model("nothing-here", tmp_path)


def test_card_that_does_not_fit_the_weights_is_refused(tmp_path):
    save_model(build_network(TINY_UNET), _card(), tmp_path)
    card = json.loads((tmp_path / "tiny.json").read_text(encoding="utf-8"))
    card["architecture"]["features"] = [8, 8, 8, 8, 16, 8]
    (tmp_path / "tiny.json").write_text(json.dumps(card), encoding="utf-8")
    with pytest.raises(ModelError, match="do not fit"):
        load_model("tiny", tmp_path)


def _toy_problem():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=generator)
    y = (x[:, :1] + x[:, 1:2] > 0).float()
    return TensorDataset(x, y), x, y


def _validate(x, y):
    def validate(model, device):
        accuracy = ((model(x.to(device)) > 0).float() == y.to(device)).float().mean().item()
        return {"accuracy": accuracy, "score": accuracy}
    return validate


def test_fit_learns_and_resume_reproduces_an_uninterrupted_run(tmp_path):
    data, x, y = _toy_problem()

    def run(epochs, checkpoint_dir, resume=False):
        torch.manual_seed(1)
        model = torch.nn.Linear(4, 1)
        config = TrainConfig(epochs=epochs, batch_size=8, learning_rate=0.05, device="cpu", seed=3,
                             checkpoint_dir=str(checkpoint_dir), resume=resume, show_progress=False)
        return model, fit(model, data, torch.nn.BCEWithLogitsLoss(), _validate(x, y), config)

    full_model, full = run(6, tmp_path / "full")
    assert full.best_score > 0.9
    run(3, tmp_path / "split")
    resumed_model, resumed = run(6, tmp_path / "split", resume=True)
    assert [h["train_loss"] for h in resumed.history] == pytest.approx([h["train_loss"] for h in full.history])
    assert torch.allclose(resumed_model.weight, full_model.weight)


def test_early_stopping_stops_after_patience():
    data, x, y = _toy_problem()
    model = torch.nn.Linear(4, 1)
    constant = {"calls": 0}

    def flat(model, device):
        constant["calls"] += 1
        return {"score": 0.5}
    config = TrainConfig(epochs=50, batch_size=8, device="cpu", patience=3, show_progress=False)
    result = fit(model, data, torch.nn.BCEWithLogitsLoss(), flat, config)
    assert result.epochs_run == 4 and result.best_epoch == 1 and constant["calls"] == 4


def test_grouped_split_keeps_patients_together():
    patients = [f"p{i // 3}" for i in range(60)]
    splits = grouped_split(patients, {"train": 0.8, "test": 0.2}, seed=4)
    by_patient = {}
    for patient, split in zip(patients, splits, strict=True):
        by_patient.setdefault(patient, set()).add(split)
    assert all(len(s) == 1 for s in by_patient.values())
    assert 0.7 < np.mean([s == "train" for s in splits]) < 0.9


def test_training_can_be_cancelled():
    from smartimaging.errors import CancelledError

    data, x, y = _toy_problem()
    config = TrainConfig(epochs=5, batch_size=8, device="cpu", show_progress=False)
    with pytest.raises(CancelledError):
        fit(torch.nn.Linear(4, 1), data, torch.nn.BCEWithLogitsLoss(), _validate(x, y), config,
            should_cancel=lambda: True)


@pytest.mark.parametrize("architecture, shape", [
    ({"name": "resnet34", "num_classes": 2, "widen_factor": 0.25}, (3, 1, 64, 64)),
    ({"name": "basic_unet", "out_channels": 3, "features": [8, 16, 32, 64, 128, 8], "norm": "batch"}, (1, 1, 64, 32)),
])
def test_inference_preparation_keeps_outputs(architecture, shape):
    from smartimaging.models.nets import prepare_for_inference

    torch.manual_seed(0)
    network = build_network(architecture).eval()
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):  # non-trivial statistics so that folding matters
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 1.5)
    x = torch.randn(*shape)
    with torch.inference_mode():
        expected = network(x)
        prepared = prepare_for_inference(network, torch.device("cpu"))
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in prepared.modules())
        assert torch.allclose(prepared(x.contiguous(memory_format=torch.channels_last)), expected, atol=1e-4)


def test_phantom_cohorts_say_they_are_phantoms(tmp_path):
    from smartimaging.mammo.cohort import write_mammo_phantom_cohort
    from smartimaging.manifest import PHANTOM_MARKER, is_phantom_cohort

    write_mammo_phantom_cohort(tmp_path / "phantoms", 2, seed=4, kind="mass")
    assert is_phantom_cohort(tmp_path / "phantoms")
    assert "demo (phantom) numbers" in (tmp_path / "phantoms" / PHANTOM_MARKER).read_text(encoding="utf-8")
    (tmp_path / "real").mkdir()
    assert not is_phantom_cohort(tmp_path / "real")
