"""Model folders are untrusted input: exact skops allow-list (complete for our own pipelines, nothing by prefix),
file names confined to the card's folder, safetensors headers and architectures checked before allocation,
checkpoints never unpickled."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import time

import numpy as np
import pytest
import torch

from smartimaging.errors import ModelError
from smartimaging.mammo.persistence import (
    ALLOWED_SKOPS_NODES,
    load_radiomics_model,
    save_radiomics_model,
    skops_nodes,
)
from smartimaging.mammo.search import CLASSIFIERS, NORMALISERS, REDUCERS, SELECTORS, fit_final
from smartimaging.models.registry import load_model, models_dir, save_model, sha256_of
from smartimaging.training import TrainConfig, fit

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


@pytest.fixture(scope="module")
def separable():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    X = rng.normal(size=(40, 12))
    X[:, :4] += y[:, None] * 1.5
    return X, y, np.arange(40), [f"f{i}" for i in range(12)]


def _configs():
    """Every normaliser, reducer, selector and classifier of the search at least once."""
    count = max(len(NORMALISERS), len(REDUCERS), len(SELECTORS), len(CLASSIFIERS))
    for i in range(count):
        yield {"normaliser": list(NORMALISERS)[i % len(NORMALISERS)], "reducer": list(REDUCERS)[i % len(REDUCERS)],
               "selector": SELECTORS[i % len(SELECTORS)], "n_features": 3, "classifier": CLASSIFIERS[i]}


@pytest.mark.parametrize("config", list(_configs()), ids=lambda c: "-".join(str(v) for v in c.values()))
def test_allow_list_holds_every_type_our_pipelines_save(separable, config, tmp_path):
    X, y, groups, names = separable
    model = fit_final(config, X, y, groups, names, folds=3)
    card = save_radiomics_model(model, tmp_path, "m", {"intended_use": "test"})
    assert skops_nodes(tmp_path / "m.skops") <= ALLOWED_SKOPS_NODES
    assert np.allclose(load_radiomics_model(card).scores(X), model.scores(X))


def test_allow_list_is_exact_names_not_prefixes():
    names = {name for _, name in ALLOWED_SKOPS_NODES}
    assert "builtins.exec" not in names and "builtins.eval" not in names and "numpy.load" not in names
    assert all(not name.endswith((".", "*")) for name in names)


def test_demo_classifiers_load_under_the_allow_list():
    for kind in ("mass", "calcification"):
        assert load_radiomics_model(models_dir() / f"mammo-{kind}-classifier-demo.json").cutoff > 0


def test_a_card_file_linking_outside_its_folder_is_refused(separable, tmp_path):
    X, y, groups, names = separable
    card = save_radiomics_model(fit_final(next(_configs()), X, y, groups, names, folds=3), tmp_path / "m", "m",
                                {"intended_use": "test"})
    outside = tmp_path / "elsewhere.skops"
    shutil.move(tmp_path / "m" / "m.skops", outside)
    os.symlink(outside, tmp_path / "m" / "m.skops")
    with pytest.raises(ModelError, match="links outside the model folder"):
        load_radiomics_model(card)


def _copy_network(tmp_path, model_id="bonescan-unet-demo"):
    for suffix in (".json", ".safetensors"):
        shutil.copy(models_dir() / f"{model_id}{suffix}", tmp_path / f"{model_id}{suffix}")
    return tmp_path / f"{model_id}.json"


@pytest.mark.parametrize("name", ["../bonescan-unet-demo.safetensors", "/etc/passwd", "", "..", "sub/x.safetensors"])
def test_weights_file_outside_the_model_folder_is_refused(tmp_path, name):
    card = _copy_network(tmp_path)
    record = json.loads(card.read_text(encoding="utf-8"))
    card.write_text(json.dumps({**record, "weights_file": name}), encoding="utf-8")
    with pytest.raises(ModelError, match="outside its own folder"):
        load_model(card)


def test_giant_architecture_is_refused_before_allocation(tmp_path):
    card = _copy_network(tmp_path)
    record = json.loads(card.read_text(encoding="utf-8"))
    record["architecture"]["features"] = [200_000] * len(record["architecture"]["features"])
    card.write_text(json.dumps(record), encoding="utf-8")
    started = time.perf_counter()
    with pytest.raises(ModelError, match="do not fit the network"):
        load_model(card)
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("header", [b"\xff" * 8, (10**12).to_bytes(8, "little"), (3).to_bytes(8, "little") + b"{[}"])
def test_damaged_safetensors_header_is_refused(tmp_path, header):
    card = _copy_network(tmp_path)
    weights = tmp_path / "bonescan-unet-demo.safetensors"
    weights.write_bytes(header + bytes(32))
    record = json.loads(card.read_text(encoding="utf-8"))
    card.write_text(json.dumps({**record, "weights_sha256": sha256_of(weights)}), encoding="utf-8")
    with pytest.raises(ModelError, match="safetensors"):
        load_model(card)


def test_oversized_card_is_refused(tmp_path):
    card = _copy_network(tmp_path)
    card.write_text(json.dumps({"padding": "x" * (2 << 20)}), encoding="utf-8")
    with pytest.raises(ModelError, match="a card is a few kB"):
        load_model(card)


def test_weights_saved_by_save_model_still_load(tmp_path):
    card = {"id": "tiny", "version": "1", "task": "test", "architecture": {"name": "basic_unet", "out_channels": 1,
            "features": [4, 4, 4, 4, 4, 4]}, "inputs": {}, "outputs": {}, "weights_sha256": "", "intended_use": "t"}
    from smartimaging.models.nets import build_network

    network = build_network(card["architecture"])
    assert load_model(save_model(network, card, tmp_path)).card["id"] == "tiny"


def test_a_card_renamed_by_hand_is_refused_by_path_and_by_id(tmp_path):
    """Results name the card's id: a card whose file name says another model is not the one the reader chose."""
    card = {"id": "tiny", "version": "1", "task": "test", "architecture": {"name": "basic_unet", "out_channels": 1,
            "features": [4, 4, 4, 4, 4, 4]}, "inputs": {}, "outputs": {}, "weights_sha256": "", "intended_use": "t"}
    from smartimaging.models.nets import build_network

    saved = save_model(build_network(card["architecture"]), card, tmp_path)
    renamed = saved.rename(tmp_path / "other.json")
    for given in (renamed, "other"):
        with pytest.raises(ModelError, match=r"other.json names the model 'tiny', not 'other' as its file name does"):
            load_model(given, tmp_path)


def test_a_radiomics_classifier_card_renamed_by_hand_is_refused(tmp_path):
    from smartimaging.mammo.scorer import load_classifier

    for path in models_dir().glob("mammo-mass-classifier-demo*"):
        shutil.copy(path, tmp_path / path.name)
    card = tmp_path / "mammo-mass-classifier-demo.json"
    assert load_classifier(card) is not None
    card.write_text(json.dumps({**json.loads(card.read_text(encoding="utf-8")), "id": "mammo-mass-other"}),
                    encoding="utf-8")
    with pytest.raises(ModelError, match="names the model 'mammo-mass-other', not 'mammo-mass-classifier-demo'"):
        load_classifier(card)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_resume_never_unpickles_a_checkpoint(tmp_path):
    marker = tmp_path / "code-ran"
    (tmp_path / "checkpoint.pt").write_bytes(pickle.dumps({"model": _Payload(str(marker))}))
    network = torch.nn.Linear(2, 1)
    data = torch.utils.data.TensorDataset(torch.zeros(4, 2), torch.zeros(4, 1))
    config = TrainConfig(epochs=1, batch_size=2, checkpoint_dir=str(tmp_path), resume=True, show_progress=False,
                         device="cpu")
    with pytest.raises(ModelError, match="Cannot resume from"):
        fit(network, data, torch.nn.functional.mse_loss, lambda model, device: {"score": 0.0}, config)
    assert not marker.exists()


def test_a_full_disk_while_saving_leaves_no_half_model(tmp_path, monkeypatch):
    import errno

    from smartimaging.models import registry
    from smartimaging.models.nets import build_network

    card = {"id": "tiny", "version": "1", "task": "test", "architecture": {"name": "basic_unet", "out_channels": 1,
            "features": [4, 4, 4, 4, 4, 4]}, "inputs": {}, "outputs": {}, "weights_sha256": "", "intended_use": "t"}

    def full_disk(path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(registry, "sha256_of", full_disk)  # the weights are written, the card is not yet
    with pytest.raises(OSError):
        save_model(build_network(card["architecture"]), card, tmp_path)
    assert list(tmp_path.iterdir()) == []
