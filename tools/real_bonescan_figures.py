"""Bone-scan proposals on the real GE whole-body scan, once per stored copy, as README figures and a table.

For each copy in ../shared/realdata/bone_scan_nm (a copy decompressed from lossy JPEG 2000, the NEMA "NM1" instance
as JPEG lossless and as JPEG 2000 reversible) this runs the demo classifier and segmenter exactly as
`smartimaging bonescan predict` does, draws the scan beside the proposal (metastasis outlines red and numbered,
bladder yellow) into <out>/real-bonescan-<copy>.png without identifiers, and prints one Markdown table row per copy.

    .venv/bin/python tools/real_bonescan_figures.py [--realdata ../shared/realdata] [--out Resources/Screenshots]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
COPIES = {"uncompressed": ("pydicom_NM_wholebody_bone_uncompressed.dcm", "uncompressed (decoded from lossy JPEG 2000)"),
          "jpeg-lossless": ("nema_nm1_jpeg_lossless.dcm", "JPEG lossless (process 14)"),
          "jpeg2000": ("nema_nm1_jpeg2000_reversible.dcm", "JPEG 2000 reversible")}
MAX_BYTES = 300 * 1024


def render(counts: np.ndarray, labels: np.ndarray, lesions: list[dict], title: str, path: Path) -> None:
    """The scan (uptake dark) and the same scan with the proposal, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from smartimaging.bonescan.pipeline import BLADDER, LESION

    upper = float(np.percentile(counts, 99.9)) or 1.0
    rows, cols = counts.shape
    fig, axes = plt.subplots(1, 2, figsize=(4.4, 2.2 * rows / cols * 0.9 + 0.5), dpi=110)
    for ax in axes:
        ax.imshow(counts, cmap="gray_r", vmin=0, vmax=upper, interpolation="bilinear")
        ax.axis("off")
    axes[0].set_title("scan", fontsize=7)
    axes[1].set_title("AI proposal", fontsize=7)
    for label, color in ((LESION, "red"), (BLADDER, "gold")):
        if np.any(labels == label):
            axes[1].contour(labels == label, levels=[0.5], colors=color, linewidths=0.7)
    for lesion in lesions:
        axes[1].annotate(str(lesion["id"]), (lesion["col"], lesion["row"]), xytext=(6, 0), textcoords="offset points",
                         color="red", fontsize=5, va="center")
    fig.suptitle(title, fontsize=7)
    fig.tight_layout(pad=0.3)
    fig.savefig(path)
    plt.close(fig)
    if path.stat().st_size > MAX_BYTES:
        raise SystemExit(f"{path} is {path.stat().st_size // 1024} KB, over the {MAX_BYTES // 1024} KB budget")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdata", type=Path, default=REPO.parent / "shared" / "realdata")
    parser.add_argument("--out", type=Path, default=REPO / "Resources" / "Screenshots")
    args = parser.parse_args(argv)

    import torch

    from smartimaging.bonescan.pipeline import BLADDER, LESION, BoneScanModels, analyse
    from smartimaging.bonescan.views import load_bone_scan

    torch.set_num_threads(2)
    models = BoneScanModels.load(device="cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    print("| copy | command | metastasis probability | BSTBI | lesions (pixels) | bladder found |")
    print("|---|---|---|---|---|---|")
    for key, (name, description) in COPIES.items():
        path = args.realdata / "bone_scan_nm" / name
        if not path.is_file():
            print(f"skipped {description}: {path} is absent", file=sys.stderr)
            continue
        study = load_bone_scan([path])
        result = analyse(study, models)
        view = study.views[0]
        labels = result.labelmaps[view.name]
        lesion_pixels = int(np.count_nonzero(labels == LESION))
        bladder = bool(np.any(labels == BLADDER))
        title = (f"{description}\nmetastasis probability {result.metastasis_probability:.3f}, "
                 f"BSTBI {result.bstbi['mean']:.3f}, {len(result.lesions)} lesions")
        render(view.counts, labels, result.lesions, title, args.out / f"real-bonescan-{key}.png")
        print(f"| {description} | `smartimaging bonescan predict ../shared/realdata/bone_scan_nm/{name} --out out` | "
              f"{result.metastasis_probability:.3f} | {result.bstbi['mean']:.3f} | {len(result.lesions)} "
              f"({lesion_pixels}) | {'yes' if bladder else 'no'} ({result.bladder_probability:.3f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
