"""DCESynthesis speed and memory: per-slice and per-volume (384²×160) synthesis time and peak RSS for
- the demo generator as SmartImaging runs it (ngf 12, batch norms folded, channels-last, inference mode, 8-slice
  batches),
- the same weights run eagerly (what the tuning adds),
- the reference Pix2Pix generator (unet_256 = ngf 64, 8 levels, eager fp32, no_grad, as the reference test script),
each in its own process (so that peak RSS is its own), in one run.

    .venv/bin/python benchmarks/dce_benchmark.py --device cpu --out benchmarks/results/dce_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

SIZE, SLICES = 384, 160


def _measure(variant: str, device_name: str, reference_slices: int) -> dict:
    """Runs inside the child process."""
    import numpy as np
    import torch

    from smartimaging.dce.synthesis import MODEL_ID, DCESynthesizer
    from smartimaging.models.nets import build_network, count_parameters
    from smartimaging.models.registry import load_model

    device = torch.device(device_name)
    rng = np.random.default_rng(0)
    volume = np.clip(rng.normal(0, 0.4, (SLICES, SIZE, SIZE)), -1, 1).astype(np.float32)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    if variant == "smartimaging":
        synthesizer = DCESynthesizer.load(device=device_name)
        network, parameters = synthesizer.model.network, count_parameters(synthesizer.model.network)

        def run_slices(array):
            synthesizer.synthesize_normalised(array, batch_slices=8)
    else:
        if variant == "demo-eager":  # the same weights without folding / channels-last: what the tuning adds
            network = load_model(MODEL_ID, device=device).network
        else:
            network = build_network({"name": "pix2pix_unet", "ngf": 64, "depth": 8}).to(device).eval()
        parameters = count_parameters(network)

        def run_slices(array):
            with torch.no_grad():
                for start in range(0, len(array), 8):
                    network(torch.from_numpy(array[start:start + 8])[:, None].to(device)).cpu()

    run_slices(volume[:8])  # warm-up
    sync()
    single = []
    for index in range(5):
        started = time.perf_counter()
        run_slices(volume[index:index + 1])
        sync()
        single.append(time.perf_counter() - started)
    slices = SLICES if variant != "reference" or device.type == "cuda" else reference_slices
    started = time.perf_counter()
    run_slices(volume[:slices])
    sync()
    seconds = time.perf_counter() - started
    result = {"parameters": parameters, "slice_s": float(np.median(single)), "slices_timed": slices,
              "volume_s": seconds * SLICES / slices, "volume_extrapolated": slices < SLICES,
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reference-slices", type=int, default=16,
                        help="slices timed for the reference on CPU (its volume time is extrapolated)")
    parser.add_argument("--out")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "DEVICE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(*args.child, args.reference_slices)))
        return
    import torch

    report = {"machine": {"platform": platform.platform(), "cores": os.cpu_count(), "torch": torch.__version__,
                          "threads": torch.get_num_threads(),
                          "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None},
              "device": args.device, "volume": f"{SIZE}x{SIZE}x{SLICES}", "variants": {}}
    for variant in ("smartimaging", "demo-eager", "reference"):
        completed = subprocess.run([sys.executable, __file__, "--child", variant, args.device,
                                    "--reference-slices", str(args.reference_slices)],
                                   check=True, capture_output=True, text=True)
        report["variants"][variant] = json.loads(completed.stdout.strip().splitlines()[-1])
    ours, reference = report["variants"]["smartimaging"], report["variants"]["reference"]
    report["speedup_per_slice"] = reference["slice_s"] / ours["slice_s"]
    report["speedup_per_volume"] = reference["volume_s"] / ours["volume_s"]
    report["tuning_speedup_per_volume"] = report["variants"]["demo-eager"]["volume_s"] / ours["volume_s"]
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
