"""The networks in smartimaging.models are MONAI's BasicUNet and ResNet without importing MONAI: same parameter names,
same outputs on every shipped card's weights, same initialisation under a seed; inference never imports MONAI."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import GE_BONE_SCAN
from monai.networks import nets as monai_nets
from safetensors.torch import load_file

from smartimaging.models import lvi, nets
from smartimaging.models.registry import MODELS_DIR

MONAI_RESNETS = {10: monai_nets.resnet10, 18: monai_nets.resnet18, 34: monai_nets.resnet34}
SHIPPED = sorted(p for p in MODELS_DIR.glob("*.json") if "architecture" in json.loads(p.read_text())
                 and json.loads(p.read_text())["architecture"]["name"] in ("basic_unet", "resnet10", "resnet18",
                                                                          "resnet34", "resnet10_3d_convpool"))


def _monai_network(architecture: dict, monkeypatch) -> torch.nn.Module:
    """The card's network with MONAI's classes where ours stand (the VanillaCNN / conv-pool head are ours in both)."""
    with monkeypatch.context() as patch:
        patch.setattr(nets, "ResNet", lambda depth, **kw: MONAI_RESNETS[depth](**kw))
        patch.setattr(lvi, "ResNet", lambda depth, **kw: MONAI_RESNETS[depth](**kw))
        patch.setattr(nets, "BasicUNet", monai_nets.BasicUNet)
        return nets.build_network(architecture)


def _input(architecture: dict, generator: torch.Generator, odd: bool = False) -> torch.Tensor:
    name, dims = architecture["name"], architecture.get("spatial_dims", 2)
    if name == "resnet10_3d_convpool":
        size = tuple(architecture["input_size"])
    else:
        size = (16, 40, 40) if dims == 3 else (72, 56)
        if odd:  # odd sides exercise the U-Net's replicate padding after upsampling
            size = tuple(s + 3 for s in size)
    return torch.randn(2, architecture.get("in_channels", 1), *size, generator=generator)


@pytest.mark.parametrize("card_path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_weights_give_monai_outputs(card_path, monkeypatch):
    architecture = json.loads(card_path.read_text())["architecture"]
    state = load_file(str(card_path.with_suffix(".safetensors")))
    ours, theirs = nets.build_network(architecture), _monai_network(architecture, monkeypatch)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == \
        [(k, v.shape) for k, v in theirs.state_dict().items()]
    assert not any(type(m).__module__.startswith("monai") for m in ours.modules())
    for network in (ours, theirs):
        network.load_state_dict(state, strict=True)
        network.eval()
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for odd in (False, True):
            x = _input(architecture, generator, odd)
            torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=0)


ARCHITECTURES = [
    {"name": "basic_unet", "spatial_dims": 2, "in_channels": 2, "out_channels": 3, "features": [4, 8, 8, 12, 16, 4]},
    {"name": "basic_unet", "spatial_dims": 3, "out_channels": 2, "features": [4, 4, 8, 8, 8, 4], "act": "prelu",
     "norm": "instance", "dropout": 0.2, "upsample": "nontrainable"},
    {"name": "basic_unet", "spatial_dims": 2, "out_channels": 2, "features": [4, 6, 8, 8, 8, 6], "act": "leakyrelu",
     "upsample": "nontrainable"},
    {"name": "resnet18", "spatial_dims": 2, "num_classes": 3, "widen_factor": 0.125, "conv1_size": 5},
    {"name": "resnet34", "spatial_dims": 3, "num_classes": 1, "widen_factor": 0.125, "conv1_stride": 1},
    {"name": "resnet10_3d_convpool", "input_size": [8, 32, 32], "widen_factor": 0.125, "head_channels": 8},
]


@pytest.mark.parametrize("architecture", ARCHITECTURES, ids=lambda a: f"{a['name']}-{a.get('act', '')}")
def test_same_initialisation_and_training_forward_as_monai(architecture, monkeypatch):
    """Under one seed both are the same network (training from scratch reproduces MONAI-era cards)."""
    torch.manual_seed(11)
    ours = nets.build_network(architecture)
    torch.manual_seed(11)
    theirs = _monai_network(architecture, monkeypatch)
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert list(mine) == list(reference)
    for name in mine:
        assert torch.equal(mine[name], reference[name]), name
    x = _input(architecture, torch.Generator().manual_seed(5), odd=architecture["name"] == "basic_unet")
    ours.train(), theirs.train()
    torch.manual_seed(2)
    y_ours = ours(x)
    torch.manual_seed(2)
    torch.testing.assert_close(y_ours, theirs(x), atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def predict_commands(tmp_path_factory) -> dict[str, list[str]]:
    from smartimaging.lvi.cohort import write_lvi_phantom_cohort
    from smartimaging.mammo.cohort import write_mammo_phantom_cohort

    folder = tmp_path_factory.mktemp("predict")
    mammo = write_mammo_phantom_cohort(folder / "mg", 1, kind="mass")
    mri = write_lvi_phantom_cohort(folder / "mr", 1)
    row, case = next(csv.DictReader(mammo.open())), next(csv.DictReader(mri.open()))
    return {
        "bonescan": ["bonescan", "predict", str(GE_BONE_SCAN), "--out", str(folder / "bs")],
        "mammo": ["mammo", "predict", str(mammo.parent / row["image"]), "--kind", "mass", "--pixel-mm",
                  row["pixel_mm"], "--point", f"{row['centre_col']},{row['centre_row']}",
                  "--out", str(folder / "mg-out")],
        "lvi": ["lvi", "predict", "--dce", str(mri.parent / case["dce"]), "--t2", str(mri.parent / case["t2"]),
                "--voi", str(mri.parent / case["voi"]), "--out", str(folder / "lvi-out")],
    }


# What each predict command must never import: MONAI (its top-level import costs ~3 s), torch._dynamo (imported by
# running layers on the meta device, ~1 s), matplotlib (~0.5 s with the first figure), scikit-learn, skops and
# XGBoost (~1 s; the radiomics classifier is applied from its plain-array form), scipy and pydicom where nothing needs
# them (~0.2 s, ~0.1 s).
NOT_IMPORTED = {"bonescan": ("monai", "torch._dynamo", "matplotlib", "sklearn"),
                "mammo": ("monai", "torch._dynamo", "matplotlib", "pydicom", "sklearn", "skops", "xgboost"),
                "lvi": ("monai", "torch._dynamo", "matplotlib", "sklearn", "scipy", "pydicom")}


@pytest.mark.parametrize("task", sorted(NOT_IMPORTED))
def test_predict_command_imports_only_what_it_needs(task, predict_commands):
    """The whole `<task> predict` (bone scan: the real GE scan; mammo: point prompt; LVI: phantoms) in a fresh
    process."""
    code = textwrap.dedent(f"""
        import sys
        from smartimaging.cli import main
        assert main({predict_commands[task]!r}) == 0
        print([m for m in sys.modules if m.split(".")[0] in {NOT_IMPORTED[task]!r} or m in {NOT_IMPORTED[task]!r}])
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, encoding="utf-8", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("input_size", [(16, 64, 64), (5, 33, 70), (1, 7, 9), (2, 2, 2)])
@pytest.mark.parametrize("conv1_stride", [1, 2, 3])
def test_conv_pool_head_size_is_computed_right(input_size, conv1_stride):
    """The 3D ResNet10's FC input is computed from the card's input size (no forward pass at construction)."""
    network = nets.build_network({"name": "resnet10_3d_convpool", "input_size": list(input_size),
                                  "conv1_stride": conv1_stride, "widen_factor": 0.125, "head_channels": 4}).eval()
    with torch.no_grad():
        assert network(torch.zeros(1, 1, *input_size)).shape == (1, 1)


def test_loaded_network_has_no_tensor_left_on_the_meta_device(tmp_path, monkeypatch):
    """The registry builds the network on the meta device and assigns the file's tensors: a buffer that the weights
    file cannot hold (non-persistent) would stay on the meta device, and is refused."""
    from smartimaging.errors import ModelError
    from smartimaging.models.registry import load_model, save_model

    class WithScratchBuffer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(2, 1)
            self.register_buffer("scratch", torch.zeros(2), persistent=False)

    card = {"id": "scratchy", "version": "1", "task": "test", "architecture": {"name": "resnet10"}, "inputs": {},
            "outputs": {}, "intended_use": "test", "weights_sha256": ""}
    monkeypatch.setitem(nets.BUILDERS, "resnet10", lambda params: WithScratchBuffer())
    monkeypatch.setattr(nets, "check_architecture", lambda *args, **kwargs: None)
    save_model(WithScratchBuffer(), card, tmp_path)
    with pytest.raises(ModelError, match="tensors its weights file does not set"):
        load_model("scratchy", tmp_path)
    network = load_model(MODELS_DIR / "bonescan-unet-demo.json").network
    assert not any(t.is_meta for t in (*network.parameters(), *network.buffers()))
