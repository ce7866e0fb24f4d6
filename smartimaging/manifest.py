"""Manifest CSV: one row per image, `patient_id,image,mask,label,split,...` + task columns; paths are relative
to the manifest. Splits are grouped by patient so that no patient is on both sides."""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError


@dataclass
class Manifest:
    path: Path
    rows: list[dict]
    sha256: str = ""  # of the bytes the rows were read from (a model card records the cohort it was trained on)

    @property
    def root(self) -> Path:
        return self.path.parent

    def resolve(self, value: str) -> Path:
        """Path of a manifest cell, relative to the manifest's folder; several paths are separated by ';'."""
        return (self.root / value).resolve()

    def paths(self, row: dict, column: str) -> list[Path]:
        return [self.resolve(part) for part in row.get(column, "").split(";") if part.strip()]

    def subset(self, split: str) -> list[dict]:
        return [row for row in self.rows if row.get("split", "") == split]


MAX_MANIFEST_BYTES = 64 * 2**20  # a million-row cohort is ~100 MB of features, its manifest far less


def read_manifest(path: str | os.PathLike, required: tuple[str, ...] = ("patient_id", "image")) -> Manifest:
    """Read and validate a manifest CSV (UTF-8, with or without the byte-order mark spreadsheets write)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"Manifest not found: {path}")
    if not path.is_file():
        raise InputError(f"The manifest {path} is not a regular file (a folder, a pipe or a device)")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise InputError(f"Manifest {path.name} is {path.stat().st_size / 2**20:.0f} MB; the limit is "
                         f"{MAX_MANIFEST_BYTES // 2**20} MB")
    data = path.read_bytes()  # read once: the rows and their SHA-256 come from the same bytes
    try:
        with io.StringIO(data.decode("utf-8-sig"), newline="") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            rows = []
            for row in reader:
                if None in row:
                    raise InputError(f"Manifest {path.name}: line {reader.line_num} has more cells than the header "
                                     "has columns (a comma inside a value needs quotes)")
                rows.append({k: (v or "").strip() for k, v in row.items()})
    except UnicodeDecodeError as exc:
        raise InputError(f"Manifest {path.name} is not a UTF-8 text file (save it as CSV UTF-8)") from exc
    except csv.Error as exc:
        raise InputError(f"Manifest {path.name} is not a readable CSV file ({exc})") from exc
    missing = [c for c in required if c not in columns]
    if missing:
        hint = " (it seems to use ';' between cells: save it as comma-separated CSV)" if ";" in "".join(columns) else ""
        raise InputError(f"Manifest {path.name} lacks the column(s) {', '.join(missing)}{hint}")
    if not rows:
        raise InputError(f"Manifest {path.name} has no rows")
    check_cohort_rows(rows, path.name)
    return Manifest(path=path, rows=rows, sha256=hashlib.sha256(data).hexdigest())


CASE_COLUMNS = ("image", "mask", "t1", "dce", "t2", "voi")


def check_cohort_rows(rows: list[dict], name: str) -> None:
    """Refuse a case listed twice (same image files) and a patient on both sides of a split: either would let the
    same data count twice or leak from training into validation. Rows are numbered as CSV lines (header = 1)."""
    columns = [c for c in CASE_COLUMNS if c in rows[0]]
    first_row: dict[tuple, int] = {}
    patient_split: dict[str, tuple[str, int]] = {}
    for line, row in enumerate(rows, start=2):
        key = tuple(os.path.normpath(row[c]) if row.get(c) else "" for c in columns)  # ./a/../a/x = a/x
        if columns and any(key):
            if key in first_row:
                files = ", ".join(f"{c} {v}" for c, v in zip(columns, key, strict=True) if v)
                raise InputError(f"{name}: rows {first_row[key]} and {line} are the same case ({files}); remove the "
                                 "duplicate")
            first_row[key] = line
        split, patient = row.get("split", ""), row.get("patient_id", "")
        if split and patient:
            seen = patient_split.setdefault(patient.casefold(), (split, line))  # MG001 and mg001: one patient
            if seen[0] != split:
                raise InputError(f"{name}: patient {patient} is in both '{seen[0]}' (row {seen[1]}) and '{split}' "
                                 f"(row {line}); keep each patient's rows in one split")


def write_manifest(path: str | os.PathLike, rows: list[dict]) -> None:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def grouped_split(patient_ids: list[str], fractions: dict[str, float], seed: int = 0) -> list[str]:
    """Assign each row a split name so that all rows of a patient share it; fractions are over patients."""
    unique = sorted(set(patient_ids))
    order = np.random.default_rng(seed).permutation(len(unique))
    names = list(fractions)
    bounds = np.cumsum([fractions[n] for n in names]) / sum(fractions.values()) * len(unique)
    assignment = {}
    for rank, index in enumerate(order):
        assignment[unique[index]] = names[int(np.searchsorted(bounds, rank, side="right"))]
    return [assignment[p] for p in patient_ids]


def prepare_cohort_folder(out_dir: str | os.PathLike) -> Path:
    """The cohort folder with its images/ and masks/ subfolders."""
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "masks").mkdir(parents=True, exist_ok=True)
    return out_dir


PHANTOM_MARKER = "SYNTHETIC_PHANTOMS.txt"  # in a cohort folder that SmartImaging's phantom writers made


def is_phantom_cohort(folder: str | os.PathLike) -> bool:
    """Whether a cohort folder holds SmartImaging's synthetic phantoms (its marker file): what is measured on it is
    a demo (phantom) number, and says so."""
    return (Path(folder) / PHANTOM_MARKER).is_file()


def finish_cohort(out_dir: Path, rows: list[dict], splits: dict[str, float] | None, seed: int) -> Path:
    """Assign patient-grouped splits (when asked), write `manifest.csv` and the phantom marker; returns the
    manifest's path."""
    (out_dir / PHANTOM_MARKER).write_text(
        "Synthetic phantoms written by SmartImaging's phantom generators (seed "
        f"{seed}): not patients. Numbers measured on this cohort are demo (phantom) numbers.\n", encoding="utf-8")
    if splits:
        for row, split in zip(rows, grouped_split([r["patient_id"] for r in rows], splits, seed), strict=True):
            row["split"] = split
    manifest = out_dir / "manifest.csv"
    write_manifest(manifest, rows)
    return manifest


def parse_splits(text: str) -> dict[str, float] | None:
    """`--splits train=0.8,val=0.2` as {name: fraction}; None when empty."""
    splits = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        name, _, value = part.partition("=")
        try:
            fraction = float(value)
        except ValueError:
            fraction = math.nan
        if not name.strip() or not 0 < fraction < math.inf:
            raise InputError(f"--splits takes name=fraction pairs, e.g. train=0.7,val=0.15,test=0.15; got {text!r}")
        splits[name.strip()] = fraction
    return splits or None


def binary_label(row: dict, manifest_name: str, column: str = "label") -> int:
    """A manifest row's 0/1 label, or a clear refusal naming the patient and the value."""
    value = row.get(column, "")
    try:
        label = float(value)
    except ValueError:
        label = math.nan
    if label not in (0.0, 1.0):
        raise InputError(f"{manifest_name}: patient {row.get('patient_id', '?')} has {column} {value!r}; the "
                         f"{column} column takes 1 (positive) or 0 (negative)")
    return int(label)
