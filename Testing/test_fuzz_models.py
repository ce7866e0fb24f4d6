"""Property-based fuzzing of the loaders of model folders and manifests: mutated, truncated or extended bytes of a
valid model card, safetensors weights, skops pipeline, plain-array classifier and manifest give either a working load
or our own clear error (ModelError / InputError), never another exception, never more than 10 s.

The example count per loader is small in CI; a longer run:
    SMARTIMAGING_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest Testing/test_fuzz_models.py
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smartimaging.errors import InputError, ModelError
from smartimaging.mammo.persistence import load_radiomics_model, save_radiomics_model
from smartimaging.mammo.scorer import load_classifier
from smartimaging.mammo.search import PRESETS, fit_final
from smartimaging.manifest import read_manifest
from smartimaging.models.registry import load_model, models_dir, sha256_of

EXAMPLES = int(os.environ.get("SMARTIMAGING_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=timedelta(seconds=10), derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


@st.composite
def mutations(draw, length: int):
    """(kind, position, payload): overwrite bytes, truncate, or insert bytes, anywhere in a file of `length`."""
    kind = draw(st.sampled_from(["overwrite", "truncate", "insert"]))
    position = draw(st.integers(0, max(length - 1, 0)))
    payload = draw(st.binary(min_size=1, max_size=16))
    return kind, position, payload


def mutate(data: bytes, mutation) -> bytes:
    kind, position, payload = mutation
    if kind == "truncate":
        return data[:position]
    if kind == "insert":
        return data[:position] + payload + data[position:]
    return data[:position] + payload + data[position + len(payload):]


@pytest.fixture(scope="module")
def network_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("network")
    for suffix in (".json", ".safetensors"):
        shutil.copy(models_dir() / f"mammo-mass-unet-demo{suffix}", folder / f"mammo-mass-unet-demo{suffix}")
    return folder


@pytest.fixture(scope="module")
def radiomics_folder(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    X = rng.normal(size=(40, 16)) + y[:, None]
    folder = tmp_path_factory.mktemp("radiomics")
    save_radiomics_model(fit_final(PRESETS["mass"], X, y, np.arange(40), [f"f{i}" for i in range(16)], folds=3),
                         folder, "m", {"intended_use": "fuzz"})
    return folder


def _load_mutated(folder: Path, name: str, mutation, load, fix_checksum) -> None:
    scratch = folder / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(folder, scratch, ignore=shutil.ignore_patterns("scratch"))
    target = scratch / name
    target.write_bytes(mutate(target.read_bytes(), mutation))
    if fix_checksum:
        fix_checksum(scratch, target)
    try:
        load(scratch)
    except (ModelError, InputError) as exc:
        assert str(exc) and "\n" not in str(exc)


def _network_checksum(scratch: Path, weights: Path) -> None:
    card = scratch / "mammo-mass-unet-demo.json"
    record = json.loads(card.read_text(encoding="utf-8"))
    card.write_text(json.dumps({**record, "weights_sha256": sha256_of(weights)}), encoding="utf-8")


def _radiomics_checksum(scratch: Path, edited: Path) -> None:
    card = scratch / "m.json"
    record = json.loads(card.read_text(encoding="utf-8"))
    record["sha256"][edited.name] = sha256_of(edited)
    card.write_text(json.dumps(record), encoding="utf-8")


@FUZZ
@given(data=st.data())
def test_fuzzed_network_card(network_folder, data):
    name = "mammo-mass-unet-demo.json"
    mutation = data.draw(mutations((network_folder / name).stat().st_size))
    _load_mutated(network_folder, name, mutation, lambda f: load_model(f / name), None)


@FUZZ
@given(data=st.data())
def test_fuzzed_safetensors_with_matching_checksum(network_folder, data):
    name = "mammo-mass-unet-demo.safetensors"
    size = (network_folder / name).stat().st_size
    mutation = data.draw(mutations(min(size, 4096)))  # the header and the first tensors
    _load_mutated(network_folder, name, mutation, lambda f: load_model(f / "mammo-mass-unet-demo.json"),
                  _network_checksum)


@FUZZ
@given(data=st.data())
def test_fuzzed_skops_with_matching_checksum(radiomics_folder, data):
    mutation = data.draw(mutations((radiomics_folder / "m.skops").stat().st_size))
    _load_mutated(radiomics_folder, "m.skops", mutation, lambda f: load_radiomics_model(f / "m.json"),
                  _radiomics_checksum)


def _score_plain(folder: Path) -> None:
    """Load the plain-array form; a loaded one must give finite scores in [0, 1]."""
    classifier = load_classifier(folder / "m.json")
    scores = classifier.scores(np.random.default_rng(1).normal(size=(8, 16)) * 3)
    assert np.all((scores >= 0) & (scores <= 1))


@FUZZ
@given(data=st.data())
def test_fuzzed_plain_classifier_with_matching_checksum(radiomics_folder, data):
    name = "m.plain.safetensors"
    size = (radiomics_folder / name).stat().st_size
    mutation = data.draw(mutations(min(size, 8192)))  # the header (steps in its metadata) and the first arrays
    _load_mutated(radiomics_folder, name, mutation, _score_plain, _radiomics_checksum)


@FUZZ
@given(data=st.data())
def test_fuzzed_radiomics_card(radiomics_folder, data):
    mutation = data.draw(mutations((radiomics_folder / "m.json").stat().st_size))
    _load_mutated(radiomics_folder, "m.json", mutation, lambda f: load_radiomics_model(f / "m.json"), None)
    _load_mutated(radiomics_folder, "m.json", mutation, _score_plain, None)


MANIFEST = (b"patient_id,image,mask,label,split\nP1,images/a.png,masks/a.png,0,train\n"
            b"P2,images/b.png,masks/b.png,1,train\nP3,images/c.png,masks/c.png,1,val\n")


@FUZZ
@given(mutation=mutations(len(MANIFEST)))
def test_fuzzed_manifest(tmp_path, mutation):
    path = tmp_path / "manifest.csv"
    path.write_bytes(mutate(MANIFEST, mutation))
    try:
        read_manifest(path, required=("patient_id", "image", "mask"))
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)
