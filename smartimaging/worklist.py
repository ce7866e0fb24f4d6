"""A module's worklist over a cohort folder: one case per study, its status, the reader's saved work, and the
manifest that `extract` / `train` / `evaluate` read. GUI-free (numpy, SimpleITK); the station and the desktop modules
drive it through `worklist_scene`.

The cohort folder is the project's standard. The reader's work goes to `<cohort>/smartimaging/<Module>/`:
```
worklist.json              the case the reader had open (reopening resumes there) and the cohort's own models
                           the reader chose (reopening reads with them again)
.pseudonym-key             the cohort's pseudonym key (see below; never copy it into a shared output)
manifest.csv               one row per case that is done, in the task's manifest columns (+ ai_mask, dice, time...)
cases/<case id>/case.json  status, labels, model, Dice AI-vs-corrected, editing time, revision
cases/<case id>/ai.seg.nrrd, corrected.seg.nrrd
```
Cases come from the folder's `manifest.csv` when it has the module's columns (its masks and labels are then the
case's answer key, for teaching), else from the studies found in the folder: each image file or DICOM file for the
one-image modules, each sub-folder for the MRI modules (its files or DICOM series named after the sequence, e.g.
`dce.nrrd`, `t2.nii.gz`, `T1/`). A manifest.csv that cannot be read is refused with its message; a row whose
lesion kind or pixel_mm `mammo extract` would refuse is skipped with the reason (`Worklist.skipped`). Every write
is atomic (temporary file + rename) and made under the worklist's lock, so a killed station loses at most the case
being edited and two tabs never corrupt the folder; a save over a newer save of the same case (another tab) is
refused unless forced. Nothing is written until the reader's first write (a
case opened, a proposal kept, a save): opening a folder only reads it. The output folder, its `cases/` folder and
each case folder must be real folders inside the cohort: a link there (which would send the reader's work into
another cohort) is refused. A record that does not fit the schema reads as none (the case shows as new), so one
damaged case never blocks the others; saved ROI files are read through the checked image reader. Temporary files
a killed save left (older than a minute) are removed when the worklist opens. A mammogram file that stores no pixel
size (PNG, JPEG, PGM, TIFF, a DICOM file without a pixel spacing) and has no `pixel_mm` in the cohort manifest is
neither opened nor saved until the reader gives one (`PixelSizeNeededError`, `set_pixel_size`): it is kept in the
case record, so it is asked once.

Case ids: a cohort manifest's cases keep its `patient_id` (the research id the user chose). Studies found by
scanning the folder get neutral ids, "c" and 8 hex digits of a keyed hash (HMAC-SHA256) of the study's path
relative to the folder, and their patient keys (for the splits) are keyed pseudonyms ("P" and 10 hex digits) of the
DICOM PatientID, else of the top-level folder or file: file and folder names often hold the patient's name or MRN.
The key is 32 random bytes kept in `<output folder>/.pseudonym-key` (mode 0600), made at the first write and never
written into an output; a case's `display_name` (its path in the folder) is shown on the reader's own screen only.
A top-level `masks` folder is not scanned (a cohort's reference masks are not studies).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import hmac
import io
import json
import math
import os
import re
import secrets
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .evaluation import dice
from .io import read_volume, same_geometry
from .limits import SizeLimit, file_suffix, image_header, is_dicom
from .manifest import MAX_MANIFEST_BYTES, read_manifest
from .segfile import write_seg_nrrd
from .segments import SegmentSpec

NEW, PROPOSED, CORRECTED, DONE = "new", "AI proposed", "corrected", "done"
STATUSES = (NEW, PROPOSED, CORRECTED, DONE)
OUTPUT_FOLDER = "smartimaging"  # inside the cohort folder; never scanned for studies
MAX_RECORD_BYTES = 1 * 2**20  # a case.json is a few hundred bytes
MAX_CASES = 100_000
NOT_REMEMBERED = "chosen for now, not remembered for the next opening"  # a model choice worklist.json cannot keep
KEY_FILE = ".pseudonym-key"  # in the output folder: the cohort's pseudonym key (hex), mode 0600
STALE_SECONDS = 60  # a temporary file of this worklist older than this was left by a killed save
TEMPORARY = re.compile(r"^\.(manifest\.csv|case\.json|worklist\.json|pseudonym-key)\..*\.tmp$|^\.seg\..*\.seg\.nrrd$"
                       r"|^\.probe\.")
IMAGE_SUFFIXES = {".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".pgm", ".tif", ".tiff", ".nrrd", ".nii", ".nii.gz",
                  ".mha"}
SPLITS = (("train", 70), ("val", 15), ("test", 15))  # percent of patients, stable as cases are added
NO_PIXEL_SIZE = {".png", ".jpg", ".jpeg", ".pgm", ".tif", ".tiff"}  # image files that store no pixel size


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
    DICOM series by the list of its files; the worklist makes it a series folder. `display_name` is what the reader
    recognises the study by (its path in the cohort folder): it is shown on the reader's own screen only and never
    written to any file."""
    case_id: str
    patient_id: str
    inputs: dict[str, Path]
    key_mask: Path | None = None
    key_label: str | None = None
    given: dict[str, str] = field(default_factory=dict)
    display_name: str = ""

    @property
    def name(self) -> str:
        """The case as the reader's screen shows it: its display name, else its id."""
        return self.display_name or self.case_id


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "case"


def _unique(ids: list[str]) -> list[str]:
    """The ids made unique (case-insensitively) by construction: an id listed once stays as it is; a repeat gets the
    first free "-2", "-3"... that is neither taken nor another id of the list."""
    listed = {case_id.casefold() for case_id in ids}
    taken: set[str] = set()
    unique = []
    for case_id in ids:
        candidate, count = case_id, 1
        while candidate.casefold() in taken or (count > 1 and candidate.casefold() in listed):
            count += 1
            candidate = f"{case_id}-{count}"
        taken.add(candidate.casefold())
        unique.append(candidate)
    return unique


def _keyed(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()


def _pseudonym(value: str, key: bytes) -> str:
    """A patient key that does not reveal the identifier: "P" and 10 hex digits of its HMAC-SHA256 under the
    cohort's key (an unkeyed hash could be reversed by hashing every MRN)."""
    return "P" + _keyed(key, value)[:10]


def _study_id(relative: str, key: bytes) -> str:
    """A scanned study's neutral case id: "c" and 8 hex digits of the keyed hash of its path in the folder."""
    return "c" + _keyed(key, relative)[:8]


def _read_regular(path: Path, limit: int) -> bytes | None:
    """The bytes of a regular file of at most `limit` bytes; None for a missing file, a link, a pipe or a device
    (opened without blocking: a pipe named case.json never hangs the worklist), or a larger file."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        handle = os.open(path, flags)
    except OSError:
        return None
    with os.fdopen(handle, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        data = f.read(limit + 1)
    return data if len(data) <= limit else None


def _read_json(path: Path) -> dict:
    """A JSON object from a regular file of at most MAX_RECORD_BYTES; {} for anything else."""
    data = _read_regular(path, MAX_RECORD_BYTES)
    try:
        record = json.loads(data.decode("utf-8")) if data is not None else {}
    except (ValueError, RecursionError):
        return {}
    return record if isinstance(record, dict) else {}


def _chosen_models(state: dict) -> dict:
    """The models worklist.json remembers ({} when it holds none, or something else than a set of values)."""
    models = state.get("models")
    return models if isinstance(models, dict) else {}


def _model_key(attribute: str, kind: str | None) -> str:
    """A chosen model's key in worklist.json: the flow's attribute and the lesion kind ("classifier_card:mass")."""
    return f"{attribute}:{kind or ''}"


def cohort_key(out: str | os.PathLike, create: bool = True) -> bytes | None:
    """The cohort's pseudonym key, kept in the output folder `out` (KEY_FILE, mode 0600); made now when `create`
    and there is none (None otherwise). A damaged key file is refused: ids made with it would change."""
    path = Path(out) / KEY_FILE
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise InputError(f"{path} is not a plain file; remove it (the worklist's pseudonym key)")
    data = _read_regular(path, 1024)
    if data is not None:
        try:
            key = bytes.fromhex(data.decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            key = b""
        if len(key) < 16:
            raise InputError(f"The worklist's pseudonym key {path} is damaged; restore it from a backup (the case ids "
                             "and patient keys of the scanned studies are made with it)")
        return key
    if not create:
        return None
    for folder in (path.parent, path.parent.parent):  # <cohort>/smartimaging/<Module>: neither may be a link
        if folder.is_symlink():
            raise InputError(f"{folder} is a link; SmartImaging saves the reader's work only in real folders: remove "
                             "the link")
    key = secrets.token_bytes(32)
    _write_key(path, key)
    return cohort_key(out, create=False)  # another window may have made it first: its key is the cohort's


def _write_key(path: Path, key: bytes) -> None:
    """Create the key file (mode 0600); an existing one (made by another window at the same time) is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        handle = os.open(path, flags, 0o600)
    except FileExistsError:
        return
    with os.fdopen(handle, "w") as f:
        f.write(key.hex() + "\n")
        f.flush()
        os.fsync(f.fileno())


def _dicom_patient(path: Path) -> str | None:
    """The DICOM PatientID (only ever turned into a keyed pseudonym), None when the header has none."""
    import pydicom

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"])
    except Exception:  # a corrupt header: the case opens and the reader gets the loader's message then
        return None
    return str(header.get("PatientID", "") or "").strip() or None


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
    keyed: bool = False  # whether its ids and patient keys were made with the cohort's pseudonym key


def discover(folder: Path, spec: WorklistSpec, key: bytes) -> Discovery:
    """The cases of a cohort folder (see the module docstring); `key`: the cohort's pseudonym key. A file or folder
    that cannot be read refuses the folder with a plain message."""
    try:
        manifest = folder / "manifest.csv"
        if manifest.is_file() and set(spec.roles.values()) <= set(_header(manifest)):
            return _from_manifest(manifest, spec)
        return _from_files(folder, spec, key) if len(spec.roles) == 1 else _from_subfolders(folder, spec, key)
    except OSError as exc:
        name = Path(exc.filename).name if exc.filename else folder.name
        raise InputError(f"Cannot read {name or exc.filename}: {(exc.strerror or str(exc)).lower()}") from exc


def _header(path: Path) -> list[str]:
    """The manifest's columns ([] for an empty file); a manifest that cannot be read is refused."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return next(csv.reader(f), [])
    except UnicodeDecodeError as exc:
        raise InputError(f"Manifest {path.name} is not a UTF-8 text file (save it as CSV UTF-8)") from exc
    except csv.Error as exc:
        raise InputError(f"Manifest {path.name} is not a readable CSV file ({exc})") from exc


def _row_problem(row: dict, spec: WorklistSpec) -> str | None:
    """Why a manifest row's lesion kind or pixel size cannot be used (mammo extract's rules and words), else None."""
    fields = {f.name: f for f in spec.fields}
    for name in spec.prefilled:
        value = row.get(name, "")
        if value and fields[name].choices and value not in fields[name].choices:
            return f"{fields[name].title.lower()} '{value}' is not one of {', '.join(fields[name].choices)}"
    if "pixel_mm" in spec.extra_columns and (row.get("pixel_mm") or "").strip():
        from .mammo.features import pixel_mm_of_row

        try:
            pixel_mm_of_row(row)
        except InputError as exc:
            return str(exc)
    return None


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
        problem = _row_problem(row, spec)
        if problem:
            skipped.append(f"{case_id}: {problem}")
            continue
        mask = manifest.resolve(row[spec.mask_column]) if spec.mask_column and row.get(spec.mask_column) else None
        cases.append(Case(case_id, row["patient_id"], inputs, mask if mask and mask.is_file() else None,
                          spec.key_label(row.get("label", "")),
                          {c: row[c] for c in (*spec.extra_columns, *spec.prefilled) if row.get(c)}))
    return Discovery(cases, skipped)


def _scanned(relative: Path) -> bool:
    """Whether a path of the folder is scanned for studies: not hidden, not the output folder, not `masks/`."""
    parts = relative.parts
    return bool(parts) and parts[0] not in (OUTPUT_FOLDER, "masks") and not any(p.startswith(".") for p in parts)


def _from_files(folder: Path, spec: WorklistSpec, key: bytes) -> Discovery:
    role = next(iter(spec.roles))
    files = [p for p in sorted(folder.rglob("*")) if _scanned(p.relative_to(folder)) and _is_image(p)]
    if len(files) > MAX_CASES:
        raise InputError(f"{folder.name} holds {len(files)} images; a worklist takes at most {MAX_CASES}")
    relative = [p.relative_to(folder).as_posix() for p in files]
    ids = _unique([_study_id(r, key) for r in relative])
    cases = []
    for case_id, path, rel in zip(ids, files, relative, strict=True):
        patient = (_dicom_patient(path) if is_dicom(path) else None) or rel.split("/")[0]
        cases.append(Case(case_id, _pseudonym(patient, key), {role: path}, display_name=rel))
    return Discovery(cases, [], keyed=True)


def _from_subfolders(folder: Path, spec: WorklistSpec, key: bytes) -> Discovery:
    cases, skipped = [], []
    first = next(iter(spec.roles))
    for sub in (p for p in _entries(folder) if p.is_dir() and p.name != "masks"):
        inputs = {role: entry for role in spec.roles if (entry := _role_entry(sub, role)) is not None}
        if first not in inputs:
            skipped.append(f"{sub.name}: no {first} file or series (name it {first.lower()}.nrrd, "
                           f"{first.lower()}.nii.gz or a {first} folder of DICOM files)")
            continue
        cases.append(Case(_study_id(sub.name, key), _pseudonym(sub.name, key), inputs, display_name=sub.name))
    if len(cases) > MAX_CASES:
        raise InputError(f"{folder.name} holds {len(cases)} studies; a worklist takes at most {MAX_CASES}")
    ids = _unique([case.case_id for case in cases])
    return Discovery([dataclasses.replace(case, case_id=i) for case, i in zip(cases, ids, strict=True)], skipped,
                     keyed=True)


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
    handle = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0), 0o600)
    with os.fdopen(handle, "r+b") as f:
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


class PixelSizeNeededError(InputError):
    """A case whose image file stores no pixel size and for which the worklist holds none (`set_pixel_size`)."""

    def __init__(self, case: Case, image: Path):
        self.case_id = case.case_id
        kind = "DICOM" if file_suffix(image) not in NO_PIXEL_SIZE else file_suffix(image).lstrip(".").upper()
        super().__init__(f"Case {case.name}: its {kind} file stores no pixel size; give the pixel size in mm (e.g. "
                         "0.1) to open it (it is kept with the case)")


def stores_no_pixel_size(path: Path) -> bool:
    """Whether a mammogram file stores no pixel size: a PNG, JPEG, PGM or TIFF file, or a DICOM file without
    PixelSpacing and ImagerPixelSpacing (a digitised film); a DICOM header that cannot be read counts as storing one
    (the loader then says what is wrong with the file)."""
    suffix = file_suffix(path)
    if suffix in NO_PIXEL_SIZE:
        return True
    if not path.is_file() or not (suffix in (".dcm", ".dicom") or is_dicom(path)):
        return False
    import pydicom

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PixelSpacing", "ImagerPixelSpacing"])
    except Exception:  # a damaged header: the case opens and the reader gets the loader's message then
        return False
    return not (header.get("PixelSpacing") or header.get("ImagerPixelSpacing"))


LABEL_PIXELS = {sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16, sitk.sitkUInt32, sitk.sitkInt32,
                sitk.sitkUInt64, sitk.sitkInt64}


class OffGridError(InputError):
    """A saved ROI that is not on the grid of the case's image (the image was replaced)."""


def read_roi(path: Path, reference: sitk.Image, what: str = "saved ROI") -> sitk.Image:
    """A saved ROI file (ai.seg.nrrd, corrected.seg.nrrd) on the grid of the case's image `reference`, read through
    the checked image reader with the size of that grid as the limit: a link, a damaged file, one claiming more
    than the grid or one that is not a scalar label image is refused with one plain message before any pixel is
    decoded; a ROI on another grid raises OffGridError."""
    name = f"{path.parent.name}/{path.name}"
    hint = "press Segment or draw the ROI again"
    if path.is_symlink() or not path.is_file():
        raise InputError(f"The {what} {name} is not a plain file (a link, a folder or a pipe); {hint}")
    size = reference.GetSize()
    limit = SizeLimit(f"a ROI of this case's {'×'.join(str(s) for s in size)} grid", max(size[:2]),
                      math.prod(size[2:]), math.prod(size) * 8)
    off_grid = OffGridError(f"The {what} {name} is not on the grid of the case's image (the image was replaced?): "
                            f"{hint}")
    try:
        claimed = image_header(path).sizes
        if claimed + (1,) * (len(size) - len(claimed)) != size:
            raise off_grid
        image = read_volume(path, limit)
    except OffGridError:
        raise
    except InputError as exc:
        raise InputError(f"The {what} {name} cannot be used: {exc}. {hint[0].upper()}{hint[1:]}") from None
    if image.GetNumberOfComponentsPerPixel() != 1 or image.GetPixelID() not in LABEL_PIXELS:
        raise InputError(f"The {what} {name} is not a label image (one integer per voxel); {hint}")
    if not same_geometry(image, reference):
        raise off_grid
    return image


# ---- the worklist -------------------------------------------------------------------------------------------------

class Worklist:
    """A module's cases in a cohort folder and the reader's work on them."""

    def __init__(self, folder: str | os.PathLike, module: str, out: str | os.PathLike | None = None,
                 cases: list[Case] | None = None):
        """`cases`: the worklist's cases as given (studies of Slicer's DICOM database), instead of those found in
        `folder`, which then only receives the reader's work. Nothing is written here (see `_writing`)."""
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(f"The worklist folder {self.folder} does not exist or is not a folder")
        if module not in SPECS:
            raise InputError(f"No worklist for the module {module!r}")
        self.spec = SPECS[module]
        self.out = Path(out) if out else self.folder / OUTPUT_FOLDER / module
        self._check_links(self.out)
        stored = cohort_key(self.out, create=False)
        self._key, self._key_stored, self._ready = stored or secrets.token_bytes(32), stored is not None, False
        self._keyed = False
        found = discover(self.folder, self.spec, self._key) if cases is None else self._given(cases)
        if not found.cases:
            reasons = f" ({'; '.join(found.skipped[:3])})" if found.skipped else ""
            raise InputError(f"No {self._study_word()} found in {self.folder.name}{reasons}")
        self.cases = found.cases
        self.skipped = found.skipped
        self._keyed = found.keyed
        self._by_id = {case.case_id: case for case in self.cases}
        self._remove_stale_temporaries()

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
                        links = self.out / "series" / case.case_id / role
                        with self._writing(links):  # two windows opening the worklist make the links once
                            inputs[role] = series_folder(files, links)
            except OSError as exc:
                skipped.append(f"{case.case_id}: its series could not be linked into {self.out} ({exc.strerror})")
                continue
            given.append(dataclasses.replace(case, inputs=inputs))
        return Discovery(given, skipped)

    def _study_word(self) -> str:
        return "studies (images or DICOM files)" if len(self.spec.roles) == 1 else (
            f"case folders (one per case, holding {' and '.join(r.lower() for r in self.spec.roles)} files)")

    # ---- the output folder ----

    def _check_links(self, path: Path) -> None:
        """Refuse `path` (the output folder or a path under it) when a folder on the way from the cohort (for the
        default output folder, `smartimaging/` too) or from a given output folder is a link, or when it resolves
        elsewhere: the reader's work would be written into another folder (another cohort's manifest)."""
        base = self.folder if self.out == self.folder / OUTPUT_FOLDER / self.spec.module else self.out
        parts = path.relative_to(base).parts
        for current in [base.joinpath(*parts[:n]) for n in range(0 if base == self.out else 1, len(parts) + 1)]:
            if current.is_symlink():
                raise InputError(f"{current} is a link; SmartImaging saves the reader's work only in real folders "
                                 f"inside {self.out}: remove the link")
        if path.exists() and base.exists() and not path.resolve().is_relative_to(base.resolve()):
            raise InputError(f"{path} is outside {base}; SmartImaging saves the reader's work only there")

    @contextlib.contextmanager
    def _writing(self, folder: Path | None = None) -> Iterator[None]:
        """The worklist's lock, held for a write into `folder` (under the output folder; None: the output folder).
        The first write makes the output folder, checks that it is writable and stores the pseudonym key."""
        folder = folder or self.out
        self._check_links(folder)
        if not self._ready:
            try:
                self.out.mkdir(parents=True, exist_ok=True)
                probe = tempfile.NamedTemporaryFile(dir=self.out, prefix=".probe.")
                probe.close()
            except OSError as exc:
                raise InputError(f"The reader's work cannot be saved in {self.out} ({exc.strerror}); open the "
                                 "worklist with a writable output folder") from exc
            if not self._key_stored:
                _write_key(self.out / KEY_FILE, self._key)
                stored = cohort_key(self.out, create=False)
                if stored != self._key and self._keyed:  # another window made it first: its ids are the cohort's
                    raise InputError("The worklist was opened in another window at the same moment; open it again")
                self._key, self._key_stored = stored, True
            self._ready = True
        with _locked(self.out / ".lock"):
            self._check_links(folder)
            yield

    def _remove_stale_temporaries(self) -> None:
        """Temporary files of this worklist left by a killed save (older than a minute), in the output folder and
        the case folders."""
        if not self.out.is_dir() or self.out.is_symlink():
            return
        folders = [self.out]
        cases = self.out / "cases"
        if cases.is_dir() and not cases.is_symlink():
            folders += [cases / case.case_id for case in self.cases]
        now = time.time()
        for folder in folders:
            with contextlib.suppress(OSError):
                for entry in os.scandir(folder):
                    if TEMPORARY.match(entry.name) and entry.is_file(follow_symlinks=False) and \
                            now - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS:
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)

    # ---- reading ----

    def case(self, case_id: str) -> Case:
        try:
            return self._by_id[case_id]
        except KeyError:
            raise InputError(f"The worklist has no case {case_id!r}") from None

    def case_folder(self, case_id: str) -> Path:
        return self.out / "cases" / self.case(case_id).case_id

    def record(self, case_id: str) -> dict:
        """The case's saved record ({} for a new case); a record that does not fit the schema the worklist writes
        (damaged or edited by hand), or that is not a plain file in a real case folder, reads as none (the case
        shows as new)."""
        folder = self.case_folder(case_id)
        if folder.is_symlink() or folder.parent.is_symlink():
            return {}
        record = _read_json(folder / "case.json")
        return record if self._fits(record, case_id) else {}

    def _fits(self, record: dict, case_id: str) -> bool:
        """Whether a record has the fields and types the worklist writes, with labels and options it accepts."""
        def number(value, low=-math.inf, high=math.inf) -> bool:
            return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
                and low <= value <= high

        def texts(value) -> bool:
            return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())

        labels, options = record.get("labels", {}), record.get("options", {})
        model = record.get("model", {})
        revision = record.get("revision", 0)
        if not (record.get("case_id") == case_id and record.get("status") in STATUSES and texts(labels)
                and texts(options) and set(options) <= set(self.spec.extra_columns)
                and texts(record.get("proposal_attributes", {}))
                and isinstance(model, dict) and isinstance(model.get("id", ""), str)
                and isinstance(revision, int) and not isinstance(revision, bool) and revision >= 0
                and all(number(record[k], 0) for k in ("edit_seconds", "saved_at", "proposed_at") if k in record)
                and (record.get("dice_ai_vs_corrected") is None or number(record["dice_ai_vs_corrected"], 0, 1))):
            return False
        if not all(isinstance(record.get(k, ""), str) for k in ("ai_roi", "corrected_roi", "roi_source")):
            return False
        try:
            if self._checked_labels(labels) != labels or _row_problem(options, self.spec):
                return False
        except InputError:
            return False
        return record["status"] != DONE or all(labels.get(f.name) for f in self.spec.fields if f.required)

    def status(self, case_id: str) -> str:
        return self.record(case_id).get("status", NEW)

    def pixel_size(self, case_id: str) -> str:
        """The case's pixel size in mm as text: the reader's (its record), else its cohort manifest's; "" if none."""
        return self.record(case_id).get("options", {}).get("pixel_mm") or self.case(case_id).given.get("pixel_mm", "")

    def require_pixel_size(self, case_id: str, pixel_mm: str | float | None = None) -> None:
        """Refuse (PixelSizeNeededError) a case of a module that takes a pixel size whose image file stores none
        (`stores_no_pixel_size`), when neither `pixel_mm` nor the worklist gives one: it would be read at 1 mm."""
        case = self.case(case_id)
        image = case.inputs.get(next(iter(self.spec.roles)))
        if "pixel_mm" in self.spec.extra_columns and image is not None and not pixel_mm \
                and not self.pixel_size(case_id) and stores_no_pixel_size(Path(image)):
            raise PixelSizeNeededError(case, Path(image))

    def set_pixel_size(self, case_id: str, pixel_mm: str) -> dict:
        """Keep the reader's pixel size (mm) of a case in its record, so that it is asked once (the same size again
        writes nothing): checked as the station's and desktop's pixel-size field (`mammo.images.parse_pixel_mm`), kept
        as that number ("0.20" and "2e-1" as "0.2"). Refused when the case's saved ROIs were made on another pixel
        size (they would no longer fit the image)."""
        if "pixel_mm" not in self.spec.extra_columns:
            raise InputError(f"{self.spec.module} takes no pixel size")
        from .mammo.images import parse_pixel_mm

        value = parse_pixel_mm(pixel_mm)
        if value is None:
            raise InputError("Type the pixel size in mm (e.g. 0.1)")
        text = str(value)
        folder = self.case_folder(case_id)
        with self._writing(folder):
            record = self.record(case_id) or {"case_id": case_id, "revision": 0, "status": NEW}
            old = self.pixel_size(case_id)
            if old and float(old) == value:
                return record
            if old and (record.get("ai_roi") or record.get("corrected_roi")):
                raise InputError(f"Case {case_id} was read at {old} mm and its ROIs were saved on that grid; its "
                                 "pixel size is not changed")
            record.update(options={**record.get("options", {}), "pixel_mm": text},
                          revision=record.get("revision", 0) + 1)
            folder.mkdir(parents=True, exist_ok=True)
            _atomic_json(folder / "case.json", record)
        return record

    def rows(self, status: str | None = None) -> list[dict]:
        """One row per case for the worklist table: case, the name the reader's screen shows, status, labels, Dice;
        `status` filters."""
        rows = []
        for case in self.cases:
            record = self.record(case.case_id)
            row = {"case": case.case_id, "name": case.name, "status": record.get("status", NEW),
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
        if isinstance(state.get("current"), str) and state["current"] in self._by_id:
            return state["current"]
        return next((c.case_id for c in self.cases if self.status(c.case_id) != DONE), self.cases[0].case_id)

    def open(self, case_id: str) -> Case:
        """Mark the case as the one being read (the worklist resumes there)."""
        case = self.case(case_id)
        with self._writing():
            _atomic_json(self.out / "worklist.json", {**self._state(), "module": self.spec.module,
                                                      "current": case_id, "opened_at": time.time()})
        return case

    def chosen_card(self, attribute: str, kind: str | None, choices: list[tuple[str, Path, bool]]) -> Path | None:
        """The card, among a selector's `choices` ((title, card, is the demo)), of the cohort's own model the reader
        last chose in any window for the flow's `attribute` ("classifier_card", "segmenter_card", ...) and lesion
        `kind`, so that the worklist reopens reading with it; None: the demo (chosen, or nothing remembered, or the
        model remembered is no longer offered)."""
        name = _chosen_models(self._state()).get(_model_key(attribute, kind))
        return next((card for _, card, demo in choices if not demo and card.parent.name == name), None)

    def choose_card(self, attribute: str, kind: str | None, card: Path | None) -> None:
        """Remember the cohort's model whose card is `card` (None: the demo) as chosen for `attribute` and `kind`
        (`chosen_card` reads it); nothing is written when the worklist remembers that already."""
        key, name = _model_key(attribute, kind), Path(card).parent.name if card is not None else None
        if _chosen_models(self._state()).get(key) == name:
            return
        with self._writing():
            state = self._state()  # as another window may have left it
            models = {k: v for k, v in _chosen_models(state).items() if k != key}
            _atomic_json(self.out / "worklist.json", {**state, "module": self.spec.module,
                                                      "models": {**models, **({key: name} if name else {})}})

    def remember_card(self, attribute: str, kind: str | None, card: Path | None) -> str:
        """`choose_card` for a GUI's selector: "" once remembered, else why not (the choice is used all the same)."""
        try:
            self.choose_card(attribute, kind, card)
        except InputError as exc:
            return f"{NOT_REMEMBERED}: {exc}"
        except OSError as exc:  # the folder changed since it opened (a file where a folder was, disk full)
            return f"{NOT_REMEMBERED}: {exc.strerror or exc} ({self.out})"
        return ""

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
        return _read_json(self.out / "worklist.json") if not self.out.is_symlink() else {}

    # ---- saving ----

    def save_proposal(self, case_id: str, labels: np.ndarray, reference: sitk.Image,
                      segments: tuple[SegmentSpec, ...], model: dict, roi_source: str = "AI",
                      attributes: dict[str, str] | None = None) -> dict:
        """Keep the AI's proposal of a case (ai.seg.nrrd) and mark it "AI proposed" unless the reader already
        corrected it; the model that proposed it is recorded, and the proposal's `attributes` (what the scene keeps
        with it: the networks' result) so that a reopened case computes as the first time. A new proposal of a case
        the reader already corrected replaces the old one (it is the outline the reader sees as the AI's when the
        case reopens, and the manifest's ai_mask), so its Dice against the saved correction is computed again and
        the manifest rewritten: the study's Dice always describes the proposal file it names."""
        self.require_pixel_size(case_id)
        folder = self.case_folder(case_id)
        with self._writing(folder):
            record = self.record(case_id) or {"case_id": case_id, "revision": 0}
            record.update(ai_roi="ai.seg.nrrd", model=model, roi_source=roi_source, proposed_at=time.time(),
                          proposal_attributes=dict(attributes or {}), revision=record.get("revision", 0) + 1)
            if record.get("corrected_roi"):
                record["dice_ai_vs_corrected"] = self._dice(folder / "corrected.seg.nrrd", labels, reference,
                                                            "saved correction")
            if record.get("status") not in (CORRECTED, DONE):
                record["status"] = PROPOSED
            manifest = self._manifest_data({case_id: record})
            folder.mkdir(parents=True, exist_ok=True)
            _atomic_seg(folder / "ai.seg.nrrd", labels, reference, segments)
            _atomic_json(folder / "case.json", record)
            self._write_manifest(manifest)
        return record

    def save(self, case_id: str, labels: dict[str, str], corrected: np.ndarray | None = None,
             reference: sitk.Image | None = None, segments: tuple[SegmentSpec, ...] = (),
             edit_seconds: float | None = None, roi_source: str | None = None, options: dict[str, str] | None = None,
             expected_revision: int | None = None, force: bool = False) -> dict:
        """Save the reader's work on a case: the corrected ROI (when the module has one), the labels, the time spent
        editing, the case options (pixel size); Dice AI-vs-corrected when the AI proposed one. The case is "done"
        when the required labels are filled, else "corrected". Refused (ConflictError) when the case was saved
        elsewhere since `expected_revision`, unless `force`. The manifest is rewritten. Everything is read and
        checked (the saved proposal too) before the first file is written: a refused save changes nothing."""
        values = self._checked_labels(labels)
        kept_options = {k: str(v) for k, v in (options or {}).items() if k in self.spec.extra_columns and v}
        problem = _row_problem(kept_options, self.spec)
        if problem:
            raise InputError(problem[0].upper() + problem[1:])
        self.require_pixel_size(case_id, kept_options.get("pixel_mm"))
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
        with self._writing(folder):
            record = self.record(case_id) or {"case_id": case_id, "revision": 0}
            if expected_revision is not None and record.get("revision", 0) != expected_revision and not force:
                raise ConflictError(f"Case {case_id} was saved in another window after you opened it; open it again "
                                    "to see that work, or save anyway to replace it")
            if corrected is not None:
                record["corrected_roi"] = "corrected.seg.nrrd"
                record["dice_ai_vs_corrected"] = (self._dice(folder / "ai.seg.nrrd", corrected, reference,
                                                             "saved AI proposal") if record.get("ai_roi") else None)
            required = [f.name for f in self.spec.fields if f.required]
            record.update(labels=values, status=DONE if all(values.get(n) for n in required) else CORRECTED,
                          saved_at=time.time(), revision=record.get("revision", 0) + 1)
            if edit_seconds is not None and np.isfinite(edit_seconds) and edit_seconds >= 0:
                record["edit_seconds"] = round(float(edit_seconds) + record.get("edit_seconds", 0.0), 1)
            if roi_source:
                record["roi_source"] = roi_source
            if options:
                record["options"] = kept_options
            manifest = self._manifest_data({case_id: record})
            folder.mkdir(parents=True, exist_ok=True)
            if corrected is not None:
                _atomic_seg(folder / "corrected.seg.nrrd", corrected, reference, segments)
            _atomic_json(folder / "case.json", record)
            self._write_manifest(manifest)
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
    def _dice(path: Path, labels: np.ndarray, reference: sitk.Image, what: str) -> float | None:
        """Dice of `labels` with a saved ROI of the case (None when there is none or it is on another grid: the
        image was replaced); a damaged one is refused (`read_roi`)."""
        if not path.exists() and not path.is_symlink():
            return None
        try:
            saved = read_roi(path, reference, what)
        except OffGridError:
            return None
        return round(dice(sitk.GetArrayViewFromImage(saved) > 0, np.asarray(labels) > 0), 4)

    # ---- the manifest ----

    @property
    def manifest_path(self) -> Path:
        return self.out / "manifest.csv"

    def manifest_rows(self, records: dict[str, dict] | None = None) -> list[dict]:
        """One row per case that is done, in the task's manifest columns; paths relative to the manifest.
        `records`: records by case id to use instead of the saved ones (a save about to be written)."""
        rows = []
        label_field = self.spec.label_field
        records = records or {}
        for case in self.cases:
            record = records.get(case.case_id) or self.record(case.case_id)
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
            dice_ = record.get("dice_ai_vs_corrected")
            row.update(dice_ai_vs_corrected="" if dice_ is None else dice_,
                       edit_seconds=record.get("edit_seconds", ""), model=model.get("id", ""),
                       roi_source=record.get("roi_source", ""), split=stable_split(case.patient_id))
            rows.append(row)
        return rows

    def _manifest_data(self, records: dict[str, dict]) -> bytes | None:
        """The manifest as it will be once `records` are saved (None: no case is done); built before anything is
        written, so that a manifest that cannot be made refuses the save."""
        rows = self.manifest_rows(records)
        if not rows:
            return None
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
        return data

    def _write_manifest(self, data: bytes | None) -> None:
        if data is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.manifest_path)
            return
        _atomic_write(self.manifest_path, data)
