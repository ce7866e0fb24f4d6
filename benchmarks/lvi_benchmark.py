"""BreastLVI speed: per-case inference of each demo network (preprocessing included) and, on the same 16×64×64 box,
the network alone beside MONAI's default `resnet10` (3D, stride-1 stem, full width), in one run.

    .venv/bin/python benchmarks/lvi_benchmark.py --device cpu --out benchmarks/results/lvi_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import SimpleITK as sitk
import torch
from monai.networks import nets

from smartimaging.lvi.predict import _settings
from smartimaging.lvi.preprocess import network_input
from smartimaging.models.nets import count_parameters
from smartimaging.models.registry import load_model
from smartimaging.phantoms.breast_mri import make_breast_mri_phantom

MODELS = [f"lvi-{s}-{m}-demo" for s in ("dce", "t2") for m in ("vanilla2d", "resnet10-2d", "resnet10-3d")]


def timed(call, repeats: int, device: torch.device) -> float:
    call()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        call()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out")
    args = parser.parse_args()
    device = torch.device(args.device)
    case = make_breast_mri_phantom(31, (16, 96, 96), lvi=1)
    volumes = {}
    for name, array in (("DCE", case.dce2), ("T2", case.t2)):
        volumes[name] = sitk.GetImageFromArray(array)
        volumes[name].SetSpacing(case.spacing)
    voi = sitk.GetImageFromArray(case.lesions)
    voi.CopyInformation(volumes["DCE"])
    report = {"machine": {"platform": platform.platform(), "cores": os.cpu_count(), "torch": torch.__version__},
              "device": args.device, "models": {}}
    with torch.inference_mode():
        for model_id in MODELS:
            model = load_model(model_id, device=device)
            card = model.card
            dimensions, settings = card["inputs"]["dimensions"], _settings(card)
            volume = volumes[card["inputs"]["sequence"]]

            def full_case(model=model, volume=volume, dimensions=dimensions, settings=settings):
                array = network_input(volume, voi, dimensions, settings).array
                batch = torch.from_numpy(array)[None, None] if dimensions == 3 else torch.from_numpy(array)[:, None]
                return torch.sigmoid(model.network(batch.to(device))).mean().item()

            report["models"][model_id] = {"parameters": count_parameters(model.network),
                                          "case_s": timed(full_case, args.repeats, device)}
        box = torch.randn(1, 1, 16, 64, 64, device=device)
        ours = load_model("lvi-dce-resnet10-3d-demo", device=device).network
        monai_default = nets.resnet10(spatial_dims=3, n_input_channels=1, num_classes=1).to(device).eval()
        report["network_only_3d"] = {
            "smartimaging_resnet10_3d_demo": {"parameters": count_parameters(ours),
                                              "s": timed(lambda: ours(box), args.repeats, device)},
            "monai_resnet10_default": {"parameters": count_parameters(monai_default),
                                       "s": timed(lambda: monai_default(box), args.repeats, device)}}
    ratio = report["network_only_3d"]["monai_resnet10_default"]["s"] / \
        report["network_only_3d"]["smartimaging_resnet10_3d_demo"]["s"]
    report["network_only_3d"]["speedup"] = ratio
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
