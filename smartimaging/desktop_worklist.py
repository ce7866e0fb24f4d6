"""The worklist in the desktop modules: a "Worklist" section the four widgets add under their .ui, over the flow the
reading station reads a worklist with (`worklist_scene.WorklistReading`). A worklist is a cohort folder, or a set of
studies of Slicer's DICOM database (`cases_from_dicom_database`).

GUI-free (tested on slicer-core): `WorklistSession`, the section's logic (open, move, keep the AI's proposal, save,
the table's rows, the module's selectors after a case opens), and `cases_from_dicom_database`. The Qt section
(`WorklistSection`) only shows them, with Qt, CTK and Slicer APIs as Slicer 5.12's own code uses them:
- ctk.ctkCollapsibleButton and its `collapsed` (Modules/Scripted/Endoscopy/Endoscopy.py), qt.QFormLayout,
  qt.QPushButton, qt.QLabel (as desktop_sections);
- ctk.ctkPathLineEdit, `filters = ctk.ctkPathLineEdit.Dirs`, `settingKey` (Modules/Scripted/DICOMPatcher/
  DICOMPatcher.py) and `currentPath` (Applications/SlicerApp/Testing/Python/ScenePerformance.py);
- qt.QComboBox addItems / setCurrentText / currentText and qt.QLineEdit text (DICOMLib/DICOMSendDialog.py), the
  "currentIndexChanged(int)" signal (Base/Python/slicer/util.py); qt.QHBoxLayout addWidget (CropVolumeSequence.py);
- qt.QTableWidget with setSelectionBehavior(qt.QTableView.SelectRows) and its items (DICOMLib/DICOMBrowser.py),
  selectRow (DICOMLib/DICOMRecentActivityWidget.py), selectedItems (ExtensionWizardLib/EditableTreeWidget.py);
- qt.QShortcut(qt.QKeySequence("..."), widget) connected to "activated()" (Docs/developer_guide/script_repository/
  gui.md);
- slicer.util.confirmYesNoDisplay, tryWithErrorDisplay, showStatusMessage (Base/Python/slicer/util.py);
  slicer.dicomDatabase (DICOMLib/DICOMBrowser.py)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from .errors import InputError
from .worklist import (
    NOTE,
    OUTPUT_FOLDER,
    SPECS,
    STATUSES,
    Case,
    ConflictError,
    Discovery,
    PixelSizeNeededError,
    _pseudonym,
    _slug,
    _unique,
    cohort_key,
)
from .worklist_scene import WorklistReading

# ---- the module's selectors ---------------------------------------------------------------------------------------

# Per module: the parameter node's volume fields by the flow's role, its AI and reader segmentation fields, its lesion
# point, the fields a new case empties (its results), and the labels a selector of the module holds (the mammogram's
# lesion kind). The names are those of each <Module>ParameterNode (checked by Testing/test_desktop_worklist.py).
SELECTORS = {
    "MammoRadiomics": {"volumes": {"mammogram": "inputVolume"}, "ai": "aiSegmentation",
                       "edited": "editedSegmentation", "point": "lesionPoint", "emptied": ("lesionBox", "resultTable"),
                       "labels": {"kind": "lesionKind"}},
    "BreastLVI": {"volumes": {"DCE": "dceVolume", "T2": "t2Volume"}, "ai": "aiSegmentation",
                  "edited": "voiSegmentation", "point": "lesionPoint", "emptied": ("resultTable",), "labels": {}},
    "BoneScanBSTBI": {"volumes": {"scan": "anteriorVolume", "posterior": "posteriorVolume"}, "ai": "aiSegmentation",
                      "edited": "editedSegmentation", "point": None, "emptied": ("resultTable",), "labels": {}},
    "DCESynthesis": {"volumes": {"T1": "t1Volume", "DCE": "realDceVolume"}, "ai": None, "edited": None,
                     "point": None, "emptied": ("syntheticVolume", "subtractionVolume", "mipVolume", "metricsTable"),
                     "labels": {}},
}


def selector_values(flow) -> dict[str, object]:
    """What the module's selectors (parameter node fields) show once a case is open: the flow's volumes and
    segmentations, an empty lesion point to place, no result of another case; the mammogram's lesion kind and pixel
    size as the case gives them (the module's Segment and compute read them back into the flow)."""
    selectors = SELECTORS[flow.module]
    values: dict[str, object] = {field: flow.volumes.get(role) for role, field in selectors["volumes"].items()}
    if selectors["ai"]:
        values[selectors["ai"]] = flow.ai_segmentation
        values[selectors["edited"]] = flow.segmentation
    if selectors["point"]:
        values[selectors["point"]] = flow.ensure_point_node()
    values.update(dict.fromkeys(selectors["emptied"]))
    if flow.module == "MammoRadiomics":
        values["lesionKind"] = flow.kind
        values["pixelSize"] = repr(flow.pixel_mm) if flow.pixel_mm else ""
    return values


def show_in_selectors(parameter_node, flow, on_opened=None) -> None:
    """The module's selectors (its parameter node, None before it has one) show the flow's open case
    (`selector_values`), then `on_opened()`: the module's own display of the flow's segmentation."""
    if parameter_node is not None:
        for field, value in selector_values(flow).items():
            setattr(parameter_node, field, value)
    if on_opened is not None:
        on_opened()


# ---- the section's logic ------------------------------------------------------------------------------------------

DICE_COLUMN = "Dice AI vs corrected"
TABLE_COLUMNS = ("Case", "Status", DICE_COLUMN, "Labels")
ALL = "all"


class WorklistSession:
    """A module's worklist in the desktop: the flow's WorklistReading, the status filter of the table and of
    Previous / Next, and the case's volume as opened (the reader may select another volume in the module: the
    worklist then neither keeps a proposal nor saves into the case).

    Only `open_folder`, `open_database`, `open` / `step` and `give_pixel_size` load a case; the module's own Segment /
    draw / compute run on the nodes `selector_values` put in its selectors. A mammogram file that stores no pixel
    size is not loaded until the reader gives one (`waiting`, then `give_pixel_size`: kept with the case)."""

    def __init__(self, flow):
        self.flow = flow
        self.reading: WorklistReading | None = None
        self.status: str | None = None  # the filter; None: every case
        self.skipped: list[str] = []  # studies of the DICOM database that are not cases, and why
        self._opened: str | None = None  # the ID of the case's first volume node as opened
        self.waiting: PixelSizeNeededError | None = None  # the case that waits for its pixel size

    @property
    def fields(self):
        """The labels the reader fills in the section (a label a module's selector holds is read from it)."""
        owned = SELECTORS[self.flow.module]["labels"]
        return tuple(f for f in SPECS[self.flow.module].fields if f.name not in owned)

    def open_folder(self, folder) -> Case:
        """A cohort folder as the worklist; the case where the reader stopped opens."""
        if not str(folder or "").strip() or not Path(folder).is_dir():
            raise InputError("Choose the worklist's folder (a cohort folder of studies)")
        self.reading, self.skipped = WorklistReading(self.flow, folder), []
        return self.open()

    def open_database(self, database, folder) -> Case:
        """The studies of Slicer's DICOM database that the module reads (`cases_from_dicom_database`) as the
        worklist; the reader's work goes into `folder`."""
        if not str(folder or "").strip() or not Path(folder).is_dir():
            raise InputError("Choose the folder the reader's work on the DICOM database's studies is saved in")
        found = cases_from_dicom_database(database, self.flow.module,
                                          cohort_key(Path(folder) / OUTPUT_FOLDER / self.flow.module))
        if not found.cases:
            reasons = f": {'; '.join(found.skipped[:3])}" if found.skipped else ""
            raise InputError(f"No study of the DICOM database can be read by {self.flow.module}{reasons}")
        reading = WorklistReading(self.flow, folder, cases=found.cases)
        self.reading, self.skipped = reading, [*found.skipped, *reading.worklist.skipped]
        return self.open()

    def open(self, case_id: str | None = None) -> Case:
        """Open a case (None: where the reader stopped). Nodes the reader selected in the module for a case of their
        own stay in the scene (the flow lets go of them; a worklist case's nodes are replaced)."""
        reading = self._reading()
        if self.flow.primary is not None and self.flow.primary.GetID() != self._opened:
            self.flow.select({})
            self.flow.extra_nodes = {}  # that case's results (heat maps, synthetic DCE) stay too
        self.waiting = None
        try:
            case = reading.open_case(case_id)
        except PixelSizeNeededError as needed:
            self.waiting = needed
            raise
        self._opened = self.flow.primary.GetID()
        return case

    def give_pixel_size(self, text) -> Case:
        """The pixel size (mm) of the case that waits for one: kept in its record (asked once), then it opens."""
        if self.waiting is None:
            raise InputError("No worklist case waits for a pixel size")
        case_id = self.waiting.case_id
        self._reading().worklist.set_pixel_size(case_id, str(text or ""))
        return self.open(case_id)

    def step(self, step: int) -> Case | None:
        """The next (1) or previous (-1) case among those the filter shows (from the case waiting for its pixel
        size, if any); None at the end (nothing changes)."""
        reading = self._reading()
        current = reading.case.case_id if reading.case else self.waiting.case_id if self.waiting else None
        if current is None:
            return self.open()
        neighbour = reading.worklist.neighbour(current, step, self.status)
        return self.open(neighbour) if neighbour else None

    @property
    def columns(self) -> tuple[str, ...]:
        """The table's columns: TABLE_COLUMNS, without the Dice column for a module whose cases have no ROI (DCE
        synthesis)."""
        roi = SPECS[self.flow.module].mask_column is not None
        return tuple(column for column in TABLE_COLUMNS if roi or column != DICE_COLUMN)

    def rows(self) -> list[list[str]]:
        """The table's rows (`columns`) of the cases the filter shows; a case as the reader's screen names it
        (a scanned study: its path, shown on this screen only)."""
        if self.reading is None:
            return []
        rows, roi = [], DICE_COLUMN in self.columns
        for row in self.reading.worklist.rows(self.status):
            dice = "" if row["dice"] is None else f"{row['dice']:.3f}"
            labels = ", ".join(row["labels"][f.name] for f in SPECS[self.flow.module].fields  # in the form's order
                               if f.name in row["labels"] and f.name != NOTE.name)
            rows.append([row["name"], row["status"], *([dice] if roi else []), labels])
        return rows

    def shown_ids(self) -> list[str]:
        """The case ids of `rows()`, in its order."""
        return [row["case"] for row in self.reading.worklist.rows(self.status)] if self.reading else []

    def set_filter(self, status: str) -> None:
        """Show the cases of one status (STATUSES), or every case (ALL)."""
        if status != ALL and status not in STATUSES:
            raise InputError(f"Filter by {', '.join((ALL, *STATUSES))}; got {status!r}")
        self.status = None if status == ALL else status

    def labels(self) -> dict[str, str]:
        """The open case's labels, as saved or as its cohort gives them."""
        return self.reading.labels() if self.reading else {}

    @property
    def case_id(self) -> str | None:
        return self.reading.case.case_id if self.reading and self.reading.case else None

    def counts_line(self) -> str:
        if self.reading is None:
            return "Open a folder of studies, or the DICOM database's studies, as the worklist."
        counts = self.reading.worklist.counts()
        return " · ".join(f"{status}: {counts[status]}" for status in STATUSES)

    # ---- the reader's work ----

    def keep_proposal(self) -> dict | None:
        """After the module's Segment: the AI's proposal of the open case is kept (None: no worklist case is read
        in the module now)."""
        if not self._reading_the_case():
            return None
        return self.reading.keep_proposal()

    def save(self, labels: dict[str, str], selector_labels: dict[str, str] | None = None,
             force: bool = False) -> dict:
        """Save the open case: the section's labels and those the module's selectors hold (the mammogram's lesion
        kind: the reader's ROI is renamed after it first, as the module's Segment and compute do). ConflictError
        when another window saved the case since it opened, unless `force`."""
        if not self._reading_the_case():
            raise InputError("The module's volume is not the worklist's open case: open the case again from the "
                             "worklist (or select its volume) before saving")
        selector_labels = dict(selector_labels or {})
        if "kind" in selector_labels and hasattr(self.flow, "set_kind"):
            self.flow.set_kind(selector_labels["kind"])
        return self.reading.save({**labels, **selector_labels}, force=force)

    def _reading(self) -> WorklistReading:
        if self.reading is None:
            raise InputError("Open a worklist first (a folder of studies, or the DICOM database's studies)")
        return self.reading

    def _reading_the_case(self) -> bool:
        primary = self.flow.primary
        return (self.reading is not None and self.reading.case is not None and primary is not None
                and primary.GetID() == self._opened)


# ---- Slicer's DICOM database --------------------------------------------------------------------------------------

MODALITY = {"MammoRadiomics": "MG", "BoneScanBSTBI": "NM", "BreastLVI": "MR", "DCESynthesis": "MR"}
TAG_MODALITY, TAG_DESCRIPTION, TAG_PATIENT = "0008,0060", "0008,103E", "0010,0020"
TAG_INSTANCE = "0008,0018"
# MR sequences by SeriesDescription (lower case, whole words): derived series are never inputs; a DCE phase before
# T2 and T1 (a dynamic series is T1-weighted); the DCESynthesis T1 is the one without fat suppression.
DERIVED = re.compile(r"\b(sub|subtraction|mip|adc|map|ser|mpr|dwi|diff\w*|trace)\b")
DCE_WORDS = re.compile(r"\b(dce|dyn|dynamic|post|gd|contrast|phase ?\d|ph ?\d)\b|\+c\b")
T2_WORDS = re.compile(r"\b(t2\w*|stir|tirm)\b")
T1_WORDS = re.compile(r"\bt1\w*\b")
FAT_SUPPRESSED = re.compile(r"\b(fs|fat ?sat\w*|fat ?sup\w*|spair|spir|dixon)\b")


def mr_sequence(description: str) -> str | None:
    """The sequence a SeriesDescription names: "DCE", "T2", "T1" (without fat suppression), or None (derived
    series such as subtractions and MIPs, diffusion, fat-suppressed T1 before contrast, or no keyword)."""
    text = re.sub(r"[_\-]+", " ", description.lower())
    if DERIVED.search(text):
        return None
    if DCE_WORDS.search(text):
        return "DCE"
    if T2_WORDS.search(text):
        return "T2"
    if T1_WORDS.search(text) and not FAT_SUPPRESSED.search(text):
        return "T1"
    return None


def _digest(text: str, length: int = 6) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def cases_from_dicom_database(database, module: str, key: bytes) -> Discovery:
    """The studies of a DICOM database that `module` reads, as worklist cases, and the studies skipped and why.

    `database` is Slicer's ctkDICOMDatabase (slicer.dicomDatabase); only the methods Slicer 5.12's DICOMBrowser.py
    and Docs/developer_guide/script_repository/batch.md call are used: patients(), studiesForPatient(patient),
    seriesForStudy(study), filesForSeries(series) and fileValue(file, "gggg,eeee") (CTK's ctkDICOMDatabase.h at the
    commit Slicer 5.12.0 builds). MammoRadiomics: each image of an MG series is a case; BoneScanBSTBI: each file of
    an NM series; BreastLVI and DCESynthesis: a study is a case, its MR series chosen by SeriesDescription
    (`mr_sequence`): DCE and T2 (LVI), T1 and DCE (synthesis); the first role is needed, a role that several series
    could be skips the study (the reader loads it by hand). Patient keys are pseudonyms of the PatientID keyed with
    `key` (the worklist's `cohort_key`) as for a folder's DICOM files; case ids are the patient key and digests of
    the study and image UIDs: no identifier is shown or saved."""
    from .worklist import SPECS

    if module not in MODALITY:
        raise InputError(f"No worklist for the module {module!r}")
    roles = list(SPECS[module].roles)
    wanted = MODALITY[module]
    ids, cases, skipped = [], [], []
    for patient in database.patients():
        for study in database.studiesForPatient(patient):
            series = {uid: database.filesForSeries(uid) for uid in database.seriesForStudy(study)}
            series = {uid: files for uid, files in series.items() if files}
            first_files = [files[0] for files in series.values()]
            patient_id = next((value for f in first_files if (value := database.fileValue(f, TAG_PATIENT).strip())),
                              "")
            patient_key = _pseudonym(patient_id or f"database patient {patient}", key)
            name = f"{patient_key} study {_digest(study)}"
            of_modality = {uid: files for uid, files in series.items()
                           if database.fileValue(files[0], TAG_MODALITY).strip().upper() == wanted}
            if not of_modality:
                found = sorted({database.fileValue(f, TAG_MODALITY).strip() or "?" for f in first_files})
                skipped.append(f"{name}: no {wanted} series (it has {', '.join(found) or 'no series'})")
                continue
            if wanted != "MR":
                for files in of_modality.values():
                    for file in files:
                        instance = database.fileValue(file, TAG_INSTANCE).strip() or file
                        ids.append(f"{patient_key}-{_digest(study)}-{_digest(instance)}")
                        cases.append(Case("", patient_key, {roles[0]: Path(file)}))
                continue
            by_role: dict[str, list[str]] = {}
            for uid, files in of_modality.items():
                sequence = mr_sequence(database.fileValue(files[0], TAG_DESCRIPTION))
                if sequence in roles:
                    by_role.setdefault(sequence, []).append(uid)
            several = {role: uids for role, uids in by_role.items() if len(uids) > 1}
            if several:
                role, uids = next(iter(several.items()))
                descriptions = ", ".join(repr(database.fileValue(of_modality[u][0], TAG_DESCRIPTION)) for u in uids)
                skipped.append(f"{name}: {len(uids)} series could be the {role} ({descriptions}); load it by hand")
                continue
            if roles[0] not in by_role:
                descriptions = ", ".join(sorted(repr(database.fileValue(f[0], TAG_DESCRIPTION))
                                                for f in of_modality.values()))
                skipped.append(f"{name}: no {roles[0]} series among its MR series ({descriptions}); a series "
                               f"description names it (e.g. {'DCE, dynamic, post' if roles[0] == 'DCE' else 'T1'})")
                continue
            ids.append(f"{patient_key}-{_digest(study)}")
            cases.append(Case("", patient_key, {role: [Path(f) for f in of_modality[uids[0]]]
                                        for role, uids in by_role.items()}))
    for case, case_id in zip(cases, _unique([_slug(i) for i in ids]), strict=True):
        case.case_id = case_id
    return Discovery(cases, skipped)


# ---- the Qt section -----------------------------------------------------------------------------------------------

NEXT_KEYS, PREVIOUS_KEYS = "Alt+N", "Alt+P"  # the station's keys; free in Slicer 5.12 (its menus: Alt+F, E, V, H)


class WorklistSection:
    """The "Worklist" section of a module's panel: folder (or the DICOM database's studies), the case table with
    its status filter, Previous / Next (buttons, and Alt+P / Alt+N while the module's panel shows), the labels of
    the module's WorklistSpec, Save and Save and next ("Save anyway?" when another window saved the case since).
    `parameter_node()`: the module's parameter node, whose selectors show the case once it opens;
    `on_opened()`: the module's own display of the flow's segmentation (its `_showSegmentation`), or None."""

    def __init__(self, layout, flow, parameter_node, on_opened=None):
        import ctk
        import qt

        from .desktop_sections import _label, _section

        self.session = WorklistSession(flow)
        self._parameter_node, self._on_opened = parameter_node, on_opened
        self.section, form = _section(layout, "Worklist")
        self.section.collapsed = True  # as Endoscopy.py's advanced section
        self.folder = ctk.ctkPathLineEdit()
        self.folder.filters = ctk.ctkPathLineEdit.Dirs
        self.folder.settingKey = f"SmartImaging/{flow.module}/WorklistFolder"
        form.addRow("Folder", self.folder)
        open_row = qt.QHBoxLayout()
        for text, callback in (("Open folder", self._open_folder), ("Open DICOM database studies",
                                                                    self._open_database)):
            button = qt.QPushButton(text)
            button.connect("clicked(bool)", lambda _checked, callback=callback: callback())
            open_row.addWidget(button)
        form.addRow(open_row)
        form.addRow(_label("Open folder: the studies in the folder (a cohort folder). Open DICOM database studies: "
                           "the studies of Slicer's DICOM database this module reads; the reader's work is saved in "
                           "the folder."))
        self.counts = _label(self.session.counts_line())
        form.addRow(self.counts)
        self.filter = qt.QComboBox()
        self.filter.addItems([ALL, *STATUSES])
        self.filter.connect("currentIndexChanged(int)", lambda _index: self._filtered())
        form.addRow("Show", self.filter)
        self.table = qt.QTableWidget()
        self.table.setColumnCount(len(self.session.columns))
        self.table.setHorizontalHeaderLabels(list(self.session.columns))
        self.table.setSelectionBehavior(qt.QTableView.SelectRows)
        form.addRow(self.table)
        moves = qt.QHBoxLayout()
        for text, callback in ((f"Previous ({PREVIOUS_KEYS})", lambda: self._step(-1)),
                               ("Open the selected case", self._open_selected),
                               (f"Next ({NEXT_KEYS})", lambda: self._step(1))):
            button = qt.QPushButton(text)
            button.connect("clicked(bool)", lambda _checked, callback=callback: callback())
            moves.addWidget(button)
        form.addRow(moves)
        self._shortcuts = []
        for keys, step in ((NEXT_KEYS, 1), (PREVIOUS_KEYS, -1)):
            shortcut = qt.QShortcut(qt.QKeySequence(keys), self.section)  # active while the panel shows
            shortcut.connect("activated()", lambda step=step: self._step(step))
            self._shortcuts.append(shortcut)
        self.case = _label("No case open.")
        form.addRow(self.case)
        self.pixel_size = qt.QLineEdit()  # for a mammogram file that stores no pixel size
        if "pixel_mm" in SPECS[flow.module].extra_columns:
            pixel_row = qt.QHBoxLayout()
            pixel_row.addWidget(self.pixel_size)
            button = qt.QPushButton("Open the case with this pixel size")
            button.connect("clicked(bool)", lambda _checked: self._opening(
                lambda: self.session.give_pixel_size(self.pixel_size.text)))
            pixel_row.addWidget(button)
            form.addRow("Pixel size of the case (mm)", pixel_row)
        self.inputs = {}
        for field in self.session.fields:
            if field.choices:
                widget = qt.QComboBox()
                widget.addItems(["", *field.choices])
            else:
                widget = qt.QLineEdit()
            self.inputs[field.name] = (widget, bool(field.choices))
            form.addRow(field.title + (" *" if field.required else ""), widget)
        saves = qt.QHBoxLayout()
        for text, advance in (("Save", False), ("Save and next", True)):
            button = qt.QPushButton(text)
            button.connect("clicked(bool)", lambda _checked, advance=advance: self._save(advance))
            saves.addWidget(button)
        form.addRow(saves)
        self.skipped = _label("")
        form.addRow(self.skipped)

    # ---- after the module's Segment ----

    def keep_proposal(self) -> None:
        """The module calls it after Segment: the AI's proposal of the worklist's case is kept. An error goes to the
        module's own error display (its Segment's tryWithErrorDisplay, or the step's error dialog)."""
        if self.session.keep_proposal() is not None:
            self._show()

    # ---- the section's actions ----

    def _opening(self, open_case, failure: str = "Failed to open the case.") -> None:
        """Run `open_case` (a session call that opens a case; None: no further case), then show the case; a case
        whose file stores no pixel size is shown as waiting for it (the module's selectors emptied)."""
        import slicer

        with slicer.util.tryWithErrorDisplay(failure, waitCursor=True):
            try:
                opened = open_case()
            except PixelSizeNeededError:
                self.pixel_size.text = ""
                self._opened()
                return
            if opened is None:
                slicer.util.showStatusMessage("No further case" + (f" ({self.session.status})"
                                                                   if self.session.status else ""), 3000)
                return
            self._opened()

    def _open_folder(self) -> None:
        self._opening(lambda: self.session.open_folder(self.folder.currentPath), "Failed to open the worklist.")

    def _open_database(self) -> None:
        import slicer

        def open_database():
            database = getattr(slicer, "dicomDatabase", None)
            if database is None:
                raise InputError("Slicer's DICOM database is not open (open the DICOM module first)")
            return self.session.open_database(database, self.folder.currentPath)

        self._opening(open_database, "Failed to open the DICOM database's studies.")

    def _open_selected(self) -> None:
        items = self.table.selectedItems()
        if items:
            self._opening(lambda: self.session.open(self.session.shown_ids()[items[0].row()]))

    def _step(self, step: int) -> None:
        if self.session.reading is not None:
            self._opening(lambda: self.session.step(step))

    def _filtered(self) -> None:
        self.session.set_filter(self.filter.currentText)
        self._show()

    def _save(self, advance: bool) -> None:
        """Save the case (asking "Save anyway?" when another window saved it since it opened), then open the next
        one for Save and next."""
        import slicer

        labels = {name: widget.currentText if choice else widget.text
                  for name, (widget, choice) in self.inputs.items()}
        node = self._parameter_node()
        owned = {label: str(getattr(node, field)) for label, field in
                 SELECTORS[self.session.flow.module]["labels"].items()} if node else {}
        conflict = None
        with slicer.util.tryWithErrorDisplay("Failed to save the case.", waitCursor=True):
            try:
                self.session.save(labels, owned)
            except ConflictError as error:
                conflict = error
        if conflict is not None:  # asked without the wait cursor
            if not slicer.util.confirmYesNoDisplay(f"{conflict}\n\nSave anyway?", windowTitle="Save anyway?"):
                return
            with slicer.util.tryWithErrorDisplay("Failed to save the case.", waitCursor=True):
                self.session.save(labels, owned, force=True)
        self._show()
        if advance:
            self._step(1)

    # ---- showing ----

    def _opened(self) -> None:
        """A case opened: the module's selectors show it, then the section."""
        show_in_selectors(self._parameter_node(), self.session.flow, self._on_opened)
        labels = self.session.labels()
        for name, (widget, choice) in self.inputs.items():
            if choice:
                widget.setCurrentText(labels.get(name, ""))
            else:
                widget.text = labels.get(name, "")
        self._show()

    def _show(self) -> None:
        from .desktop_sections import _fill_read_only

        _fill_read_only(self.table, self.session.rows())
        for index, case_id in enumerate(self.session.shown_ids()):
            if case_id == self.session.case_id:
                self.table.selectRow(index)
        self.counts.text = self.session.counts_line()
        case_id, waiting = self.session.case_id, self.session.waiting
        self.case.text = (f"Case {self.session.reading.worklist.case(case_id).name}: "
                          f"{self.session.reading.worklist.status(case_id)}") if case_id else \
            f"{waiting}: type it under “Pixel size of the case (mm)”, then open the case with it." if waiting else \
            "No case open."
        self.skipped.text = ("Not in the worklist: " + "; ".join(self.session.skipped)) if self.session.skipped \
            else ""
