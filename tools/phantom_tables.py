"""Demo (phantom) tables: every demo model on fresh phantoms (seeds never used in training), 95 % CIs.

    .venv/bin/python tools/phantom_tables.py --n 200 --work /tmp/phantom-tables [--sections lvi-unet ...]
        [--write-cards]

Writes benchmarks/results/phantom_tables/<section>.json per section measured, then phantom_tables.md and
phantom_tables.json from every section present; `--write-cards` records each model's rows in its card as
`metrics.fresh_phantoms` (the tests re-check the cards against them). Cohorts are written once under --work and reused.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smartimaging.fresh_phantoms import MEASURE, SECTIONS  # noqa: E402
from smartimaging.models.registry import models_dir  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "phantom_tables"
TITLES = {"mammo-classifiers": "Mammography radiomics classifiers (ground-truth ROIs)",
          "mammo-unets": "Mammography prompted U-Nets", "lvi-classifiers": "BreastLVI networks and fusion",
          "lvi-unet": "BreastLVI lesion U-Net", "bonescan": "Bone scan", "dce": "DCE synthesis (Pix2Pix)"}


def _cell(row: dict) -> str:
    if row["kind"] == "proportion":
        return f"{100 * row['value']:.1f} % ({row['successes']}/{row['n']}; {100 * row['ci_low']:.1f}-" \
               f"{100 * row['ci_high']:.1f})"
    digits = 2 if row["metric"].startswith("PSNR") else 3
    text = f"{row['value']:.{digits}f} ({row['ci_low']:.{digits}f}-{row['ci_high']:.{digits}f})"
    return text + (f", SD {row['sd']:.{digits}f}" if row["kind"] == "mean" else "")


def markdown(sections: dict) -> str:
    lines = ["| model | metric | phantoms | value (95 % CI) | weights sha256 | fresh cohort |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name in SECTIONS:
        for row in sections.get(name, {}).get("rows", []):
            n = f"{row['n']} ({row['n_positive']}+/{row['n_negative']}-)" if row["kind"] == "auc" else str(row["n"])
            sha = ", ".join(digest[:12] for digest in row.get("weights_sha256", {}).values())
            lines.append(f"| {row['model']} | {row['metric']} | {n} | {_cell(row)} | {sha} | `{row['cohort']}` |")
    return "\n".join(lines) + "\n"


def write_cards(sections: dict, command: str) -> list[str]:
    """`metrics.fresh_phantoms` of every card measured: its rows, the command and the date."""
    by_model: dict[str, list[dict]] = {}
    for section in sections.values():
        for row in section["rows"]:
            by_model.setdefault(row["model"], []).append({**row, "measured": section["date"]})
    written = []
    for model_id, rows in by_model.items():
        path = models_dir() / f"{model_id}.json"
        card = json.loads(path.read_text(encoding="utf-8"))
        card.setdefault("metrics", {})["fresh_phantoms"] = {"command": command, "rows": rows}
        path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        written.append(path.name)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--n", type=int, default=200, help="phantoms per cohort")
    parser.add_argument("--work", type=Path, help="folder for the phantom cohorts (reused)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write-cards", action="store_true", help="record the rows in the cards")
    parser.add_argument("--record-only", action="store_true",
                        help="measure nothing: tables (and cards) from the sections' JSON already in --out")
    args = parser.parse_args(argv)
    if not (args.work or args.record_only):
        parser.error("--work is required unless --record-only")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in [] if args.record_only else args.sections:
        started = time.perf_counter()
        rows = MEASURE[name](args.work, args.n)
        record = {"section": name, "n": args.n, "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                  "seconds": round(time.perf_counter() - started, 1), "threads": args.threads,
                  "machine": f"{platform.machine()}, {platform.system()} {platform.release()}",
                  "command": "python tools/phantom_tables.py " + shlex.join(
                      ["--n", str(args.n), "--work", str(args.work), "--sections", name]),
                  "rows": rows}
        (args.out / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        print(f"{name}: {record['seconds']} s", flush=True)
    sections = {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(args.out.glob("*.json"))
                if path.stem in SECTIONS}
    (args.out.parent / "phantom_tables.json").write_text(json.dumps(sections, indent=2) + "\n", encoding="utf-8")
    table = markdown(sections)
    (args.out.parent / "phantom_tables.md").write_text(table, encoding="utf-8")
    print(table)
    if args.write_cards:
        measured = {name: sections[name] for name in args.sections}
        print("cards written:", ", ".join(write_cards(measured, "python tools/phantom_tables.py --n "
                                                      f"{args.n} --work <folder> --write-cards")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
