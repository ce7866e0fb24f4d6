"""Bone-scan speed per case (file -> BSTBI), split into load / classify / segment / BSTBI, for the demo models and
the seed-faithful reference (full-width ResNet34 + classic U-Net, eager fp32) in the same run, with the machine's
torch matmul GFLOP/s and the conv GFLOP/s the networks reach.

    .venv/bin/python benchmarks/bonescan_benchmark.py --cases 5 --device cpu --out benchmarks/results/bonescan_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from smartimaging.bonescan.bstbi import study_bstbi
from smartimaging.bonescan.pipeline import BLADDER, LESION, BoneScanModels, crops_of, network_input
from smartimaging.bonescan.views import load_bone_scan, write_nm_dicom
from smartimaging.evaluation import dice
from smartimaging.models import LoadedModel, build_network
from smartimaging.phantoms.bonescan import make_bone_scan_phantom

REFERENCE = {
    "classifier": {"name": "resnet34", "spatial_dims": 2, "in_channels": 1, "num_classes": 2, "widen_factor": 1.0,
                   "conv1_stride": 2},
    "segmenter": {"name": "basic_unet", "spatial_dims": 2, "in_channels": 1, "out_channels": 3,
                  "features": [64, 128, 256, 512, 1024, 64], "act": "relu", "norm": "batch"},
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(device: torch.device, size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    torch.mm(a, b)
    sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def conv_flops(network: torch.nn.Module, example: torch.Tensor) -> float:
    """Multiply-add FLOPs (2 per MAC) of the convolutions and linear layers for one forward pass."""
    total = [0.0]

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
            kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels / module.groups
            positions = output.numel() if isinstance(module, torch.nn.Conv2d) else inputs[0].numel() / \
                module.in_channels * module.out_channels
            total[0] += 2 * kernel * positions
        elif isinstance(module, torch.nn.Linear):
            total[0] += 2 * module.in_features * output.numel()
    handles = [m.register_forward_hook(hook) for m in network.modules()]
    with torch.inference_mode():
        network(example)
    for handle in handles:
        handle.remove()
    return total[0]


def reference_models(device: torch.device) -> BoneScanModels:
    loaded = {}
    for role, architecture in REFERENCE.items():
        network = build_network(architecture).to(device).eval()
        loaded[role] = LoadedModel({"id": f"reference-{role}", "version": "0", "weights_sha256": "random-init"},
                                   network, Path("-"))
    return BoneScanModels(loaded["classifier"], loaded["segmenter"], device)


def time_cases(models: BoneScanModels, paths: list[Path], phantoms) -> dict:
    """Per-case seconds by stage, and Dice against the phantom truth."""
    stages = {k: [] for k in ("load", "classify", "segment", "bstbi", "total")}
    dices = {"lesion": [], "bladder": []}
    device = models.device
    for path, phantom in zip(paths, phantoms, strict=True):
        t0 = time.perf_counter()
        study = load_bone_scan([path])
        inputs = [network_input(v.counts) for v in study.views]
        t1 = time.perf_counter()
        for x in inputs:
            models.classify(x)
        sync(device)
        t2 = time.perf_counter()
        labelmaps = {v.name: models.segment(x, v.counts.shape) for v, x in zip(study.views, inputs, strict=True)}
        sync(device)
        t3 = time.perf_counter()
        study_bstbi({v.name: v.counts for v in study.views}, {k: m == LESION for k, m in labelmaps.items()},
                    {k: m == BLADDER for k, m in labelmaps.items()})
        t4 = time.perf_counter()
        for key, value in zip(stages, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True):
            stages[key].append(value)
        for key, label in (("lesion", LESION), ("bladder", BLADDER)):
            truth = np.concatenate([phantom.masks[v] == label for v in labelmaps])
            if truth.any():
                dices[key].append(dice(np.concatenate([labelmaps[v] == label for v in labelmaps]), truth))
    return {"seconds": {k: [float(np.mean(v)), float(np.std(v))] for k, v in stages.items()},
            "dice": {k: float(np.mean(v)) if v else None for k, v in dices.items()}}


def network_seconds(network: torch.nn.Module, example: torch.Tensor, device: torch.device, repeats: int = 5) -> float:
    """Mean seconds of one forward pass (after a warm-up), network only."""
    with torch.inference_mode():
        network(example)
        sync(device)
        started = time.perf_counter()
        for _ in range(repeats):
            network(example)
        sync(device)
    return (time.perf_counter() - started) / repeats


def achieved_gflops(models: BoneScanModels, views_per_case: int) -> dict:
    """FLOPs per case and GFLOP/s of the network forward passes alone (no resizing or post-processing)."""
    x = np.zeros((1024, 256), np.float32)
    crops, full = models.to_network_tensor(crops_of(x)), models.to_network_tensor(x[None, None])
    result = {}
    for role, network, example in (("classifier", models.classifier.network, crops),
                                   ("segmenter", models.segmenter.network, full)):
        flops = conv_flops(network, example)
        seconds = network_seconds(network, example, models.device)
        result[f"{role}_gflop_per_case"] = flops * views_per_case / 1e9
        result[f"{role}_network_seconds_per_case"] = seconds * views_per_case
        result[f"{role}_gflops"] = flops / seconds / 1e9
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    folder = Path(tempfile.mkdtemp(prefix="bonescan-bench-"))
    phantoms = [make_bone_scan_phantom(9000 + i) for i in range(args.cases)]
    paths = []
    for phantom in phantoms:
        paths.append(folder / f"{phantom.patient_id}.dcm")
        write_nm_dicom(paths[-1], phantom.views, phantom.patient_id)
    demo = BoneScanModels.load(device=args.device)
    time_cases(demo, paths[:1], phantoms[:1])  # warm-up
    report = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(device),
                          "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None},
              "cases": args.cases, "matmul_gflops": matmul_gflops(device)}
    report["demo"] = time_cases(demo, paths, phantoms)
    report["demo"].update(achieved_gflops(demo, 2))
    if not args.skip_reference:
        reference = reference_models(device)
        time_cases(reference, paths[:1], phantoms[:1])
        report["reference"] = time_cases(reference, paths, phantoms)
        report["reference"].update(achieved_gflops(reference, 2))
        report["speedup_total"] = report["reference"]["seconds"]["total"][0] / report["demo"]["seconds"]["total"][0]
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
