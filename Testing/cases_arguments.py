"""Bad-input cases of command-line options: names that would leave the output folder, devices this machine lacks,
numbers out of their range, options that need another option."""

from __future__ import annotations

from pathlib import Path

from badinput import BadInput

AREA = "Command-line options"


def _manifest(folder: Path) -> str:
    path = folder / "manifest.csv"
    path.write_text("patient_id,dce,voi,label,split\n", encoding="utf-8")
    return str(path)


CASES = [
    BadInput(AREA, "`lvi train-segmenter --name ../evil` (a model name that leaves --out)",
             lambda f: ["lvi", "train-segmenter", "--manifest", _manifest(f), "--out", str(f / "models"),
                        "--name", "../evil"],
             "argument --name: The model name '../evil' must be a plain name"),
    BadInput(AREA, "`bonescan predict --device cuda` on a machine without CUDA",
             lambda f: ["bonescan", "predict", str(f / "scan.dcm"), "--out", str(f / "out"), "--device", "cuda"]
             if not __import__("torch").cuda.is_available() else
             ["bonescan", "predict", str(f / "scan.dcm"), "--out", str(f / "out"), "--device", "cuda:99"],
             "is not available on this machine; use auto or cpu"),
    BadInput(AREA, "`mammo predict --device banana`",
             lambda f: ["mammo", "predict", str(f / "mg.png"), "--kind", "mass", "--out", str(f / "out"),
                        "--device", "banana"],
             "'banana' is not a device: give auto, cpu, cuda, cuda:N or mps"),
    BadInput(AREA, "`lvi phantoms --seed -1`",
             lambda f: ["lvi", "phantoms", "--n", "2", "--seed", "-1", "--out", str(f / "cohort")],
             "argument --seed: -1 is not allowed: a seed is a whole number from 0 to 4294967295"),
    BadInput(AREA, "`dce train --lr 1e300`",
             lambda f: ["dce", "train", "--manifest", _manifest(f), "--out", str(f / "models"), "--lr", "1e300"],
             "argument --lr: 1e300 is not allowed: a learning rate is above 0 and at most 1"),
    BadInput(AREA, "`lvi train-segmenter --resume` without `--checkpoint-dir`",
             lambda f: ["lvi", "train-segmenter", "--manifest", _manifest(f), "--out", str(f / "models"),
                        "--resume"],
             "--resume needs --checkpoint-dir"),
]
