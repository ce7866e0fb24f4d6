"""The desktop modules' Teaching section (mammography, Breast LVI, bone scan), the station's Teaching section in Qt:
the GUI-free `teaching_session.TeachingSession` does the teaching; this section binds Qt widgets to it. Qt / CTK /
Slicer calls used here, each found in Slicer 5.12's own code (Testing/test_desktop_teaching.py lists where):
ctk.ctkPathLineEdit with its Dirs filter, settingKey and currentPath, the scratch in slicer.app.temporaryPath
(DICOMPatcher.py), qt.QComboBox, qt.QPushButton,
qt.QHBoxLayout, qt.QTableWidget, qt.QProgressBar (DICOMLib), qt.QFileDialog.getExistingDirectory (ExtensionWizard),
slicer.util.tryWithErrorDisplay and slicer.util.showStatusMessage (Base/Python/slicer/util.py)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .desktop_worklist import SELECTORS, show_in_selectors
from .teaching_scene import TEACHABLE
from .teaching_session import TeachingSession

STUDENT_HINT = ("Student mode: the AI's proposal and the answer key stay hidden until Check. Press “Draw ROI by hand”, "
                "paint the lesion in the Segment Editor, make your call, then press Check.")
SPOT_HINT = ("Student mode: the AI's proposal and the answer key stay hidden until Check. Press “Draw ROI by hand” "
             "and paint, on both views, the hot spots you believe are metastases (none if you see none; the bladder is "
             "no metastasis), make your call, then press Check.")


class TeachingSection:
    """The "Teaching" section of a module's panel, after its worklist sections: a teaching set folder (a cohort
    with masks and labels: Open set) or a Phantom teaching set, the case with Previous / Next, the pixel size a set
    of PNG files waits for, the student's call and Check (a step: the AI's outline may run in the worker), what the
    check says, and the session's score sheet (Save score sheet). The student paints with the module's “Draw ROI by
    hand” and its Segment Editor; the module asks `update()` which of its buttons stay disabled meanwhile, and
    `on_changed()` (its button states) is called when that changes. `parameter_node()` and `on_opened()`: as for the
    WorklistSection (the module's selectors show the case, its own display of the flow's segmentation)."""

    def __init__(self, layout, flow, parameter_node, on_opened=None, on_changed=None):
        import ctk
        import qt
        import slicer

        from .desktop import WidgetSteps
        from .desktop_sections import _label, _section

        if flow.module not in TEACHABLE:
            raise ValueError(f"{flow.module} has no teaching mode")
        self.session = TeachingSession(flow, Path(tempfile.mkdtemp(prefix="SmartImaging-teaching-",
                                                                   dir=slicer.app.temporaryPath)))
        self._choices: list[str] = []  # the calls the Your call list offers
        self._parameter_node, self._on_opened, self._on_changed = parameter_node, on_opened, None
        self.section, form = _section(layout, "Teaching")
        self.section.collapsed = True  # as the Worklist section
        self.folder = ctk.ctkPathLineEdit()
        self.folder.filters = ctk.ctkPathLineEdit.Dirs
        self.folder.settingKey = f"SmartImaging/{flow.module}/TeachingFolder"
        form.addRow("Teaching set", self.folder)
        self.buttons = {}
        sets = qt.QHBoxLayout()
        for text, callback in (("Open set", self._open_set), ("Phantom teaching set", self._phantom_set)):
            button = qt.QPushButton(text)
            button.connect("clicked(bool)", lambda _checked, callback=callback: callback())
            sets.addWidget(button)
            self.buttons[text] = button
        form.addRow(sets)
        self.title = _label("Open a teaching set: a cohort folder whose manifest.csv has masks and labels.")
        form.addRow(self.title)
        self.case = _label("")
        form.addRow(self.case)
        moves = qt.QHBoxLayout()
        for text, step in (("Previous", -1), ("Next", 1)):
            button = qt.QPushButton(text)
            button.connect("clicked(bool)", lambda _checked, step=step: self._open(self.session.index + step))
            moves.addWidget(button)
            self.buttons[text] = button
        form.addRow(moves)
        self.pixel_size = qt.QLineEdit()
        pixel_row = qt.QHBoxLayout()
        pixel_row.addWidget(self.pixel_size)
        button = qt.QPushButton("Open the case with this pixel size")
        button.connect("clicked(bool)", lambda _checked: self._open(self.session.index, self.pixel_size.text))
        pixel_row.addWidget(button)
        self.buttons["pixel size"] = button
        form.addRow("Pixel size (mm)", pixel_row)
        self.hint = _label("")
        form.addRow(self.hint)
        self.call = qt.QComboBox()
        form.addRow("Your call", self.call)
        self.buttons["Check"] = qt.QPushButton("Check")
        self.buttons["Check"].connect("clicked(bool)", lambda _checked: self._check())
        form.addRow(self.buttons["Check"])
        self.progress_bar = qt.QProgressBar()
        form.addRow(self.progress_bar)
        self.result = _label("")
        form.addRow(self.result)
        self.table = qt.QTableWidget()
        form.addRow(self.table)
        self.summary = _label("")
        form.addRow(self.summary)
        self.buttons["Save score sheet"] = qt.QPushButton("Save score sheet (CSV)")
        self.buttons["Save score sheet"].connect("clicked(bool)", lambda _checked: self._save_sheet())
        form.addRow(self.buttons["Save score sheet"])
        self.steps = WidgetSteps(self.progress_bar, self._checked, self._enable)
        self._show()
        self._on_changed = on_changed  # from now on: the module's widget holds this section

    def update(self) -> dict[str, bool]:
        """The module's state changed: a teaching case that another image replaced (a sample, an upload) is no longer
        open and its outlines go. Which of the module's buttons stay disabled: "segment", "draw", "compute"
        (`TeachingSession.blocks`)."""
        if self.session.replaced():
            self.hint.text = "The teaching case was replaced by another image: press Previous or Next to go on."
            self._show()
        return self.session.blocks()

    def abandon(self) -> None:
        """Stop a running Check without a word (the module goes away)."""
        self.steps.abandon()

    # ---- the section's actions ----

    def _open_set(self) -> None:
        import slicer

        with slicer.util.tryWithErrorDisplay("Failed to open the teaching set.", waitCursor=True):
            self.session.open_set(Path(self.folder.currentPath))
            self._open(0)

    def _phantom_set(self) -> None:
        import slicer

        with slicer.util.tryWithErrorDisplay("Failed to write the phantom teaching set.", waitCursor=True):
            folder = self.session.phantom_set()
            self.folder.currentPath = str(folder)
            self.session.open_set(folder)
            self._open(0)

    def _open(self, index: int, pixel_size: str | None = None) -> None:
        """Open the set's `index`-th case (`pixel_size`: first give the pixel size it waits for); a set of PNG files
        without pixel sizes asks for one under the case."""
        import slicer

        from .worklist import PixelSizeNeededError

        with slicer.util.tryWithErrorDisplay("Failed to open the teaching case.", waitCursor=True):
            try:
                if pixel_size is not None:
                    self.session.give_pixel_size(pixel_size)
                else:
                    self.session.open_case(index)
            except PixelSizeNeededError:
                self.hint.text = self.session.set.pixel_size_request(self.session.index)
            else:
                self._opened()
        self._show()

    def _check(self) -> None:
        import slicer

        call = self.call.currentText or None
        with slicer.util.tryWithErrorDisplay("Failed to check the outline.", waitCursor=True):
            self.steps.start(self.session.check(call, self.steps.progress, self._let_go))
        self._enable()

    def _save_sheet(self) -> None:
        import qt
        import slicer

        folder = qt.QFileDialog.getExistingDirectory(self.section, "Save the score sheet (CSV) into folder")
        if not folder:
            return
        with slicer.util.tryWithErrorDisplay("Failed to save the score sheet.", waitCursor=True):
            slicer.util.showStatusMessage(f"Score sheet saved: {self.session.save_sheet(folder)}", 5000)

    # ---- showing ----

    def _let_go(self) -> None:
        """Before the outline is locked: the module's selectors (and so its Segment Editor) let go of it."""
        node = self._parameter_node()
        edited = SELECTORS[self.session.flow.module]["edited"]
        if node is not None and edited:
            setattr(node, edited, None)

    def _opened(self) -> None:
        """A case opened: the module's selectors show it (its images, no ROI yet), then the section."""
        show_in_selectors(self._parameter_node(), self.session.flow, self._on_opened)
        lesion_wise = self.session.set.lesion_wise
        self.hint.text = SPOT_HINT if lesion_wise else STUDENT_HINT
        self.call.setCurrentText("")  # each case's call is the student's own

    def _checked(self, checked) -> None:
        """What the check says (`Checked.lines`), the outline now locked."""
        self.result.text = "\n".join([*checked.lines(), "Your outline is locked; press Next for the next case."])
        self._show()

    def _show(self) -> None:
        from .desktop_sections import _fill_read_only

        session = self.session
        teaching = session.set
        if teaching is not None:
            self.title.text = (f"Teaching set {teaching.folder.name}: {len(teaching.cases)} cases with an answer key"
                               + (f"\n{teaching.left_out}" if teaching.left_out else ""))
            if self._choices != ["", *teaching.choices]:
                self._choices = ["", *teaching.choices]
                self.call.clear()
                self.call.addItems(self._choices)
        self.case.text = session.case_title if session.is_open or teaching is None else \
            f"{session.case_title}: not open (another image replaced it, or it waits for its pixel size)"
        if session.checked is None:
            self.result.text = ""
        columns, rows = session.columns, session.sheet_rows()
        self.table.setColumnCount(len(columns))
        self.table.setHorizontalHeaderLabels(columns)
        _fill_read_only(self.table, rows)
        self.summary.text = session.sheet.summary().text if rows else ""
        self._enable()

    def _enable(self) -> None:
        session, busy = self.session, self.steps.busy
        open_ = session.is_open
        for text in ("Open set", "Phantom teaching set"):
            self.buttons[text].enabled = not busy
        self.buttons["Previous"].enabled = not busy and session.has_previous
        self.buttons["Next"].enabled = not busy and session.has_next
        self.buttons["pixel size"].enabled = not busy and session.set is not None and not open_ and \
            session.index >= 0 and bool(session.set.pixel_size_request(session.index))
        self.buttons["Check"].enabled = not busy and open_ and session.checked is None
        self.call.enabled = not busy and open_ and session.checked is None
        self.buttons["Save score sheet"].enabled = not busy and bool(session.sheet.rows)
        if self._on_changed is not None:
            self._on_changed()
