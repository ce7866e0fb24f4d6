"""A module's worklist over a cohort folder: one case per study, its status, the reader's saved work, and the
manifest that `extract` / `train` / `evaluate` read. GUI-free (numpy, SimpleITK); the station and the desktop modules
drive it through `worklist_scene`.

The cohort folder is the project's standard. The reader's work goes to `<cohort>/smartimaging/<Module>/`:
```
worklist.json              the case the reader had open (reopening resumes there)
manifest.csv               one row per case that is done, in the task's manifest columns (+ ai_mask, dice, time...)
cases/<case id>/case.json  status, labels, model, Dice AI-vs-corrected, editing time, revision
cases/<case id>/ai.seg.nrrd, corrected.seg.nrrd
```
Cases come from the folder's `manifest.csv` when it has the module's columns (its masks and labels are then the
case's answer key, for teaching), else from the studies found in the folder: each image file or DICOM file for the
one-image modules, each sub-folder for the MRI modules (its files or DICOM series named after the sequence, e.g.
`dce.nrrd`, `t2.nii.gz`, `T1/`). Every write is atomic (temporary file + rename) and made under the worklist's lock,
so a killed station loses at most the case being edited and two tabs never corrupt the folder; a save over a newer
save of the same case (another tab) is refused unless forced.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .evaluation import dice
from .limits import file_suffix, is_dicom
from .manifest import MAX_MANIFEST_BYTES, read_manifest
from .segfile import write_seg_nrrd
from .segments import SegmentSpec

NEW, PROPOSED, CORRECTED, DONE = "new", "AI proposed", "corrected", "done"
STATUSES = (NEW, PROPOSED, CORRECTED, DONE)
OUTPUT_FOLDER = "smartimaging"  # inside the cohort folder; never scanned for studies
MAX_RECORD_BYTES = 1 * 2**20  # a case.json is a few hundred bytes
MAX_CASES = 100_000
IMAGE_SUFFIXES = {".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".pgm", ".tif", ".tiff", ".nrrd", ".nii", ".nii.gz",
                  ".mha"}
SPLITS = (("train", 70), ("val", 15), ("test", 15))  # percent of patients, stable as cases are added


@dataclass(frozen=True)
class LabelField:
    """A label the reader fills for a case. `choices` empty: free text; `label_of`: the manifest's 0/1 `label`."""
    name: str
    title: str
    choices: tuple[str, ...] = ()
    required: bool = False
    label_of: dict[str, int] = field(default_factory=dict)


NOTE = LabelField("note", "Note")
BIRADS = ("1", "2", "3", "4a", "4b", "4c", "5", "6")


@dataclass(frozen=True)
class WorklistSpec:
    """What a module's case holds: its roles (the first is segmented) and their manifest columns, the mask column,
    and the labels the reader fills."""
    module: str
    roles: dict[str, str]  # role -> manifest column
    mask_column: str | None
    fields: tuple[LabelField, ...]
    extra_columns: tuple[str, ...] = ()  # case options: from an input manifest, or set by the reader (pixel_mm)
    prefilled: tuple[str, ...] = ()  # labels an input manifest fills in advance (the lesion kind)
    empty_when_negative: bool = False  # an empty ROI is a valid answer of a negative case (a bone scan: no lesion)

    @property
    def label_field(self) -> LabelField | None:
        """The field that gives the manifest's 0/1 `label` (pathology, LVI, metastasis)."""
        return next((f for f in self.fields if f.label_of), None)

    def key_label(self, value: str) -> str | None:
        """An input manifest's 0/1 label as the field's choice ("1" -> "malignant")."""
        field_ = self.label_field
        if field_ is None or value.strip() == "":
            return None
        try:
            number = int(float(value))
        except ValueError:
            return None
        return next((choice for choice, label in field_.label_of.items() if label == number), None)


SPECS = {spec.module: spec for spec in (
    WorklistSpec("MammoRadiomics", {"mammogram": "image"}, "mask", (
        LabelField("kind", "Lesion kind", ("mass", "calcification"), True),
        LabelField("pathology", "Pathology", ("benign", "malignant"), True, {"benign": 0, "malignant": 1}),
        LabelField("birads", "BI-RADS", BIRADS),
        NOTE), ("pixel_mm",), ("kind",)),
    WorklistSpec("BreastLVI", {"DCE": "dce", "T2": "t2"}, "voi", (
        LabelField("lvi", "LVI", ("negative", "positive"), True, {"negative": 0, "positive": 1}),
        NOTE), ("age", "size_mm")),
    WorklistSpec("BoneScanBSTBI", {"scan": "image"}, "mask", (
        LabelField("metastasis", "Bone metastasis", ("no", "yes"), True, {"no": 0, "yes": 1}),
        NOTE), ("age",), empty_when_negative=True),
    WorklistSpec("DCESynthesis", {"T1": "t1", "DCE": "dce"}, None, (NOTE,)),
)}


@dataclass
class Case:
    """A study of the worklist: its input files by role, a pseudonymous patient key (for patient-grouped splits) and,
    when the cohort's manifest has them, the answer key (reference mask and label) and the labels and case options
    it gives (`given`: e.g. the lesion kind, the pixel size). Cases given to a Worklist (`cases=`) may name a role's
    DICOM series by the list of its files; the worklist makes it a series folder."""
    case_id: str
    patient_id: str
    inputs: dict[str, Path]
    key_mask: Path | None = None
    key_label: str | None = None
    given: dict[str, str] = field(default_factory=dict)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "case"


def _unique(ids: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for case_id in ids:
        count = seen.get(case_id.casefold(), 0)
        seen[case_id.casefold()] = count + 1
        unique.append(case_id if count == 0 else f"{case_id}-{count + 1}")
    return unique


def _pseudonym(value: str) -> str:
    return "P" + hashlib.sha256(value.encode()).hexdigest()[:10]


def _dicom_patient(path: Path) -> str | None:
    """A pseudonym of the DICOM PatientID (the ID itself never reaches an output)."""
    import pydicom

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"])
    except Exception:  # a corrupt header: the case opens and the reader gets the loader's message then
        return None
    patient = str(header.get("PatientID", "") or "").strip()
    return _pseudonym(patient) if patient else None


def _is_image(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and (
        file_suffix(path) in IMAGE_SUFFIXES or (not path.suffix and is_dicom(path)))


def _entries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.name != OUTPUT_FOLDER)


def _role_entry(folder: Path, role: str) -> Path | None:
    """The file or DICOM series folder of a case folder named after the role ("dce.nrrd", "T2/", "t1_axial.nii")."""
    pattern = re.compile(rf"^{re.escape(role.lower())}(?![a-z0-9])")
    for entry in _entries(folder):
        if pattern.match(entry.name.lower()) and (_is_image(entry) or entry.is_dir()):
            return entry
    return None


@dataclass
class Discovery:
    cases: list[Case]
    skipped: list[str]  # why a folder or row was not made a case, in the reader's words


def discover(folder: Path, spec: WorklistSpec) -> Discovery:
    """The cases of a cohort folder (see the module docstring)."""
    manifest = folder / "manifest.csv"
    if manifest.is_file() and set(spec.roles.values()) <= set(_header(manifest)):
        return _from_manifest(manifest, spec)
    return _from_files(folder, spec) if len(spec.roles) == 1 else _from_subfolders(folder, spec)


def _header(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _from_manifest(path: Path, spec: WorklistSpec) -> Discovery:
    manifest = read_manifest(path, required=("patient_id", next(iter(spec.roles.values()))))
    ids = _unique([_slug(row["patient_id"]) for row in manifest.rows])
    cases, skipped = [], []
    for case_id, row in zip(ids, manifest.rows, strict=True):
        inputs = {role: manifest.resolve(row[column]) for role, column in spec.roles.items() if row.get(column)}
        missing = [role for role, p in inputs.items() if not p.exists()]
        if missing:
            skipped.append(f"{case_id}: {', '.join(missing)} file not found")
            continue
        mask = manifest.resolve(row[spec.mask_column]) if spec.mask_column and row.get(spec.mask_column) else None
        cases.append(Case(case_id, row["patient_id"], inputs, mask if mask and mask.is_file() else None,
                          spec.key_label(row.get("label", "")),
                          {c: row[c] for c in (*spec.extra_columns, *spec.prefilled) if row.get(c)}))
    return Discovery(cases, skipped)


def _from_files(folder: Path, spec: WorklistSpec) -> Discovery:
    role = next(iter(spec.roles))
    files = [p for p in sorted(folder.rglob("*")) if OUTPUT_FOLDER not in p.relative_to(folder).parts[:1]
             and not any(part.startswith(".") for part in p.relative_to(folder).parts) and _is_image(p)]
    if len(files) > MAX_CASES:
        raise InputError(f"{folder.name} holds {len(files)} images; a worklist takes at most {MAX_CASES}")
    relative = [p.relative_to(folder) for p in files]
    ids = _unique([_slug(str(r)[: -len(file_suffix(r))] if file_suffix(r) else str(r)) for r in relative])
    cases = []
    for case_id, path, rel in zip(ids, files, relative, strict=True):
        patient = (_dicom_patient(path) if is_dicom(path) else None) or (
            rel.parts[0] if len(rel.parts) > 1 else case_id)
        cases.append(Case(case_id, patient, {role: path}))
    return Discovery(cases, [])


def _from_subfolders(folder: Path, spec: WorklistSpec) -> Discovery:
    cases, skipped = [], []
    first = next(iter(spec.roles))
    for sub in (p for p in _entries(folder) if p.is_dir()):
        inputs = {role: entry for role in spec.roles if (entry := _role_entry(sub, role)) is not None}
        if first not in inputs:
            skipped.append(f"{sub.name}: no {first} file or series (name it {first.lower()}.nrrd, "
                           f"{first.lower()}.nii.gz or a {first} folder of DICOM files)")
            continue
        cases.append(Case(_slug(sub.name), sub.name, inputs))
    if len(cases) > MAX_CASES:
        raise InputError(f"{folder.name} holds {len(cases)} studies; a worklist takes at most {MAX_CASES}")
    return Discovery(cases, skipped)


def series_folder(files: list[Path], links: Path) -> Path:
    """The folder of a DICOM series given by its files: one file is itself; files alone in their folder (Slicer's
    DICOM database stores each series in a folder of its own) are that folder; else `links`, a folder of links to
    them (the reader's files stay where they are). OSError when the links cannot be made."""
    files = [Path(f) for f in files]
    if len(files) == 1:
        return files[0]
    parent = files[0].parent
    if all(f.parent == parent for f in files) and {f.name for f in files} == {
            p.name for p in parent.iterdir() if _is_image(p)}:
        return parent
    wanted = {f"{index:05d}_{f.name}": f.resolve() for index, f in enumerate(files)}
    if links.is_dir() and {p.name: p.resolve() for p in links.iterdir()} == wanted:
        return links
    if links.is_dir():
        for stale in links.iterdir():
            stale.unlink()
    links.mkdir(parents=True, exist_ok=True)
    for name, target in wanted.items():
        try:
            os.symlink(target, links / name)
        except OSError:  # Windows without the symlink privilege: a hard link (same drive)
            os.link(target, links / name)
    return links


def stable_split(patient_id: str) -> str:
    """The patient's split, from a hash of the patient key: the same patient always lands in the same split, and
    adding cases never moves an earlier patient."""
    bucket = int(hashlib.sha256(patient_id.casefold().encode()).hexdigest()[:8], 16) % 100
    for name, percent in SPLITS:
        if bucket < percent:
            return name
        bucket -= percent
    return SPLITS[-1][0]


# ---- atomic files and the lock ----------------------------------------------------------------------------------

def _atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` at once: a reader or a crash sees the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _atomic_json(path: Path, record: dict) -> None:
    _atomic_write(path, json.dumps(record, indent=1, sort_keys=True).encode())


def _atomic_seg(path: Path, labels: np.ndarray, reference: sitk.Image, segments: tuple[SegmentSpec, ...]) -> None:
    handle, temporary = tempfile.mkstemp(prefix=".seg.", suffix=".seg.nrrd", dir=path.parent)
    os.close(handle)
    try:
        write_seg_nrrd(labels, reference, segments, temporary)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def _locked(path: Path, timeout_s: float = 30.0) -> Iterator[None]:
    """An exclusive lock between processes (station tabs, desktop, CLI) on the worklist's lock file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        try:
            import fcntl
        except ImportError:  # Windows
            import msvcrt

            def acquire() -> bool:
                try:
                    f.seek(0)
                    msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
                    return True
                except OSError:
                    return False

            def release() -> None:
                f.seek(0)
                msvcrt.locking(f.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            def acquire() -> bool:
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except OSError:
                    return False

            def release() -> None:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        deadline = time.monotonic() + timeout_s
        while not acquire():
            if time.monotonic() > deadline:
                raise InputError("The worklist is busy (another window is saving to it); try again")
            time.sleep(0.05)
        try:
            yield
        finally:
            release()


class ConflictError(InputError):
    """The case was saved elsewhere (another tab or window) after this reader opened it."""


# ---- the worklist -------------------------------------------------------------------------------------------------

class Worklist:
    """A module's cases in a cohort folder and the reader's work on them."""

    def __init__(self, folder: str | os.PathLike, module: str, out: str | os.PathLike | None = None,
                 cases: list[Case] | None = None):
        """`cases`: the worklist's cases as given (studies of Slicer's DICOM database), instead of those found in
        `folder`, which then only receives the reader's work."""
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(f"The worklist folder {self.folder} does not exist or is not a folder")
        if module not in SPECS:
            raise InputError(f"No worklist for the module {module!r}")
        self.spec = SPECS[module]
        self.out = Path(out) if out else self.folder / OUTPUT_FOLDER / module
        found = discover(self.folder, self.spec) if cases is None else self._given(cases)
        if not found.cases:
            reasons = f" ({'; '.join(found.skipped[:3])})" if found.skipped else ""
            raise InputError(f"No {self._study_word()} found in {self.folder.name}{reasons}")
        self.cases = found.cases
        self.skipped = found.skipped
        self._by_id = {case.case_id: case for case in self.cases}
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.out, prefix=".probe.")
            probe.close()
        except OSError as exc:
            raise InputError(f"The reader's work cannot be saved in {self.out} ({exc.strerror}); open the worklist "
                             "with a writable output folder") from exc

    def _given(self, cases: list[Case]) -> Discovery:
        """Cases given by the caller, checked: unique ids a folder can be named after, the module's roles with the
        first one present; a role given as the list of a DICOM series' files becomes a series folder
        (`series_folder`)."""
        if len(cases) > MAX_CASES:
            raise InputError(f"{len(cases)} studies were given; a worklist takes at most {MAX_CASES}")
        seen: set[str] = set()
        first = next(iter(self.spec.roles))
        given, skipped = [], []
        for case in cases:
            if _slug(case.case_id) != case.case_id or case.case_id.casefold() in seen:
                raise InputError(f"Case id {case.case_id!r} is not unique or not usable as a folder name")
            seen.add(case.case_id.casefold())
            unknown = sorted(set(case.inputs) - set(self.spec.roles))
            if unknown or first not in case.inputs:
                raise InputError(f"Case {case.case_id} gives {', '.join(case.inputs) or 'no image'}; "
                                 f"{self.spec.module} takes {', '.join(self.spec.roles)} ({first} needed)")
            try:
                inputs = {role: Path(value) for role, value in case.inputs.items() if not isinstance(value, list)}
                for role, files in case.inputs.items():
                    if isinstance(files, list):
                        with _locked(self.out / ".lock"):  # two windows opening the worklist make the links once
                            inputs[role] = series_folder(files, self.out / "series" / case.case_id / role)
            except OSError as exc:
                skipped.append(f"{case.case_id}: its series could not be linked into {self.out} ({exc.strerror})")
                continue
            given.append(dataclasses.replace(case, inputs=inputs))
        return Discovery(given, skipped)

    def _study_word(self) -> str:
        return "studies (images or DICOM files)" if len(self.spec.roles) == 1 else (
            f"case folders (one per case, holding {' and '.join(r.lower() for r in self.spec.roles)} files)")

    # ---- reading ----

    def case(self, case_id: str) -> Case:
        try:
            return self._by_id[case_id]
        except KeyError:
            raise InputError(f"The worklist has no case {case_id!r}") from None

    def case_folder(self, case_id: str) -> Path:
        return self.out / "cases" / self.case(case_id).case_id

    def record(self, case_id: str) -> dict:
        """The case's saved record ({} for a new case); a damaged record reads as none (the case shows as new)."""
        path = self.case_folder(case_id) / "case.json"
        try:
            if path.stat().st_size > MAX_RECORD_BYTES:
                return {}
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) and record.get("case_id") == case_id else {}

    def status(self, case_id: str) -> str:
        status = self.record(case_id).get("status")
        return status if status in STATUSES else NEW

    def rows(self, status: str | None = None) -> list[dict]:
        """One row per case for the worklist table: case, status, labels, Dice; `status` filters."""
        rows = []
        for case in self.cases:
            record = self.record(case.case_id)
            row = {"case": case.case_id, "status": record.get("status", NEW) if record else NEW,
                   "dice": record.get("dice_ai_vs_corrected"), "labels": record.get("labels", {}),
                   "answer_key": case.key_mask is not None}
            if status is None or row["status"] == status:
                rows.append(row)
        return rows

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for case in self.cases:
            counts[self.status(case.case_id)] += 1
        return counts

    # ---- moving ----

    def resume_case(self) -> str:
        """Where the reader stopped: the case open last, else the first case not done, else the first case."""
        state = self._state()
        if state.get("current") in self._by_id:
            return state["current"]
        return next((c.case_id for c in self.cases if self.status(c.case_id) != DONE), self.cases[0].case_id)

    def open(self, case_id: str) -> Case:
        """Mark the case as the one being read (the worklist resumes there)."""
        case = self.case(case_id)
        with _locked(self.out / ".lock"):
            _atomic_json(self.out / "worklist.json", {"module": self.spec.module, "current": case_id,
                                                      "opened_at": time.time()})
        return case

    def neighbour(self, case_id: str, step: int, status: str | None = None) -> str | None:
        """The next (step 1) or previous (-1) case, among those with `status` when given; None at the end."""
        ids = [c.case_id for c in self.cases]
        index = ids.index(self.case(case_id).case_id) + step
        while 0 <= index < len(ids):
            if status is None or self.status(ids[index]) == status:
                return ids[index]
            index += step
        return None

    def _state(self) -> dict:
        try:
            path = self.out / "worklist.json"
            if path.stat().st_size > MAX_RECORD_BYTES:
                return {}
            state = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    # ---- saving ----

    def save_proposal(self, case_id: str, labels: np.ndarray, reference: sitk.Image,
                      segments: tuple[SegmentSpec, ...], model: dict, roi_source: str = "AI",
                      attributes: dict[str, str] | None = None) -> dict:
        """Keep the AI's proposal of a case (ai.seg.nrrd) and mark it "AI proposed" unless the reader already
        corrected it; the model that proposed it is recorded, and the proposal's `attributes` (what the scene keeps
        with it: the networks' result) so that a reopened case computes as the first time."""
        folder = self.case_folder(case_id)
        with _locked(self.out / ".lock"):
            folder.mkdir(parents=True, exist_ok=True)
            _atomic_seg(folder / "ai.seg.nrrd", labels, reference, segments)
            record = self.record(case_id) or {"case_id": case_id, "revision": 0}
            record.update(ai_roi="ai.seg.nrrd", model=model, roi_source=roi_source, proposed_at=time.time(),
                          proposal_attributes=dict(attributes or {}), revision=record.get("revision", 0) + 1)
            if record.get("status") not in (CORRECTED, DONE):
                record["status"] = PROPOSED
            _atomic_json(folder / "case.json", record)
        return record

    def save(self, case_id: str, labels: dict[str, str], corrected: np.ndarray | None = None,
             reference: sitk.Image | None = None, segments: tuple[SegmentSpec, ...] = (),
             edit_seconds: float | None = None, roi_source: str | None = None, options: dict[str, str] | None = None,
             expected_revision: int | None = None, force: bool = False) -> dict:
        """Save the reader's work on a case: the corrected ROI (when the module has one), the labels, the time spent
        editing, the case options (pixel size); Dice AI-vs-corrected when the AI proposed one. The case is "done"
        when the required labels are filled, else "corrected". Refused (ConflictError) when the case was saved
        elsewhere since `expected_revision`, unless `force`. The manifest is rewritten."""
        values = self._checked_labels(labels)
        if self.spec.mask_column is not None:
            if corrected is None or reference is None:
                raise InputError("Draw or accept the ROI before saving the case")
            if not np.any(corrected) and not self._negative(values):
                label = self.spec.label_field
                allowed = (f" (an empty segmentation is saved with {label.title}: "
                           f"{next(c for c, v in label.label_of.items() if v == 0)})"
                           if self.spec.empty_when_negative and label else "")
                raise InputError("The ROI is empty: draw the lesion (or accept the AI's proposal) before saving"
                                 + allowed)
        folder = self.case_folder(case_id)
        with _locked(self.out / ".lock"):
            record = self.record(case_id) or {"case_id": case_id, "revision": 0}
            if expected_revision is not None and record.get("revision", 0) != expected_revision and not force:
                raise ConflictError(f"Case {case_id} was saved in another window after you opened it; open it again "
                                    "to see that work, or save anyway to replace it")
            folder.mkdir(parents=True, exist_ok=True)
            if corrected is not None:
                _atomic_seg(folder / "corrected.seg.nrrd", corrected, reference, segments)
                record["corrected_roi"] = "corrected.seg.nrrd"
                record["dice_ai_vs_corrected"] = self._dice_with_ai(folder, corrected)
            required = [f.name for f in self.spec.fields if f.required]
            record.update(labels=values, status=DONE if all(values.get(n) for n in required) else CORRECTED,
                          saved_at=time.time(), revision=record.get("revision", 0) + 1)
            if edit_seconds is not None and np.isfinite(edit_seconds):
                record["edit_seconds"] = round(float(edit_seconds) + record.get("edit_seconds", 0.0), 1)
            if roi_source:
                record["roi_source"] = roi_source
            if options:
                record["options"] = {k: str(v) for k, v in options.items() if k in self.spec.extra_columns and v}
            _atomic_json(folder / "case.json", record)
            self._write_manifest()
        return record

    def _negative(self, values: dict[str, str]) -> bool:
        """Whether the labels make this a negative case whose ROI may be empty (a bone scan without lesions)."""
        label = self.spec.label_field
        return bool(self.spec.empty_when_negative and label and label.label_of.get(values.get(label.name, "")) == 0)

    def _checked_labels(self, labels: dict[str, str]) -> dict[str, str]:
        fields = {f.name: f for f in self.spec.fields}
        unknown = sorted(set(labels) - set(fields))
        if unknown:
            raise InputError(f"Unknown label(s) {', '.join(unknown)}; this module takes {', '.join(fields)}")
        values = {}
        for name, value in labels.items():
            value = str(value or "").strip()
            if fields[name].choices and value and value not in fields[name].choices:
                raise InputError(f"{fields[name].title} takes {', '.join(fields[name].choices)}; got {value!r}")
            if len(value) > 2000:
                raise InputError(f"{fields[name].title} is too long (at most 2000 characters)")
            if value:
                values[name] = value
        return values

    @staticmethod
    def _dice_with_ai(folder: Path, corrected: np.ndarray) -> float | None:
        path = folder / "ai.seg.nrrd"
        if not path.is_file():
            return None
        ai = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        if ai.shape != corrected.shape:
            return None
        return round(dice(ai > 0, np.asarray(corrected) > 0), 4)

    # ---- the manifest ----

    @property
    def manifest_path(self) -> Path:
        return self.out / "manifest.csv"

    def manifest_rows(self) -> list[dict]:
        """One row per case that is done, in the task's manifest columns; paths relative to the manifest."""
        rows = []
        label_field = self.spec.label_field
        for case in self.cases:
            record = self.record(case.case_id)
            if record.get("status") != DONE:
                continue
            labels = record.get("labels", {})
            row = {"patient_id": case.patient_id, "case_id": case.case_id}
            for role, column in self.spec.roles.items():
                row[column] = os.path.relpath(case.inputs[role], self.out) if role in case.inputs else ""
            folder = os.path.relpath(self.case_folder(case.case_id), self.out)
            if self.spec.mask_column:
                row[self.spec.mask_column] = f"{folder}/corrected.seg.nrrd"
                row[f"ai_{self.spec.mask_column}"] = f"{folder}/ai.seg.nrrd" if record.get("ai_roi") else ""
            if label_field is not None:
                row["label"] = label_field.label_of[labels[label_field.name]]
            row.update({f.name: labels.get(f.name, "") for f in self.spec.fields
                        if f is not label_field and f.name != NOTE.name})
            options = {**case.given, **record.get("options", {})}
            row.update({c: options.get(c, "") for c in self.spec.extra_columns})
            model = record.get("model") or {}
            row.update(dice_ai_vs_corrected=record.get("dice_ai_vs_corrected", ""),
                       edit_seconds=record.get("edit_seconds", ""), model=model.get("id", ""),
                       roi_source=record.get("roi_source", ""), split=stable_split(case.patient_id))
            rows.append(row)
        return rows

    def _write_manifest(self) -> None:
        rows = self.manifest_rows()
        if not rows:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.manifest_path)
            return
        columns: list[str] = []
        for row in rows:
            columns += [c for c in row if c not in columns]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
        data = text.getvalue().encode()
        if len(data) > MAX_MANIFEST_BYTES:
            raise InputError("The worklist's manifest would exceed the manifest size limit")
        _atomic_write(self.manifest_path, data)
