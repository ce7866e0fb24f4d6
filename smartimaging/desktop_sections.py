"""Sections the desktop widgets add under their .ui (needs the Slicer application; imported by the widgets only):
thin Qt views of GUI-free code the station shares. The bone scan's lesion list with accept/reject
(`bonescan.reading_nodes.lesion_rows`, `view_lines`) and its follow-up (earlier studies, trend lines); BreastLVI's
Grad-CAM switch and opacity (`heat_legend`); DCESynthesis' enhancing regions (`dce.scene.region_legend`).

Qt and CTK as Slicer 5.12's own scripted modules use them: ctk.ctkCollapsibleButton with qt.QFormLayout
(CropVolumeSequence.py), qt.QTableWidget / QTableWidgetItem with setCheckState and the itemChanged signal
(DICOMLib/DICOMBrowser.py), qt.QListWidget.addItem (DICOMLib/DICOMRecentActivityWidget.py), blockSignals
(DICOM.py), qt.QFileDialog.getExistingDirectory (ExtensionWizard.py), ctk.ctkSliderWidget (RSNAVisTutorialTest.py),
qt.QCheckBox, qt.QLabel, qt.QPushButton (DICOM.py)."""

from __future__ import annotations

# The shared code is imported where it is used: a widget builds its sections before the module's packages (SciPy
# among them) are installed on the first Apply.


def _section(layout, title: str):
    """A collapsible section added to a widget's layout, and its form layout."""
    import ctk
    import qt

    section = ctk.ctkCollapsibleButton()
    section.text = title
    layout.addWidget(section)
    return section, qt.QFormLayout(section)


def _label(text: str = ""):
    import qt

    label = qt.QLabel(text)
    label.wordWrap = True
    return label


def _fill_read_only(table, rows: list[list[str]]) -> None:
    """A table widget's rows replaced by `rows` of texts the reader cannot edit."""
    import qt

    table.clearContents()
    table.setRowCount(0)
    for index, cells in enumerate(rows):
        table.insertRow(index)
        for column, text in enumerate(cells):
            item = qt.QTableWidgetItem(text)
            item.setFlags(item.flags() ^ qt.Qt.ItemIsEditable)
            table.setItem(index, column, item)


class LesionReviewSection:
    """The result's lesions, view by view, numbered as in the views: an "Accepted" check box per lesion; unchecking
    it rejects the lesion (`on_toggle(lesion id)`: the module computes BSTBI again), checking accepts it again."""

    def __init__(self, layout, on_toggle):
        import qt

        from .bonescan.reading_nodes import LESION_COLUMNS
        from .bonescan.sites import SITE_NOTE

        self.section, form = _section(layout, "Lesions: accept or reject")
        self.counts = _label("Compute BSTBI to list the lesions.")
        form.addRow(self.counts)
        self.table = qt.QTableWidget()
        self.table.setColumnCount(len(LESION_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(LESION_COLUMNS))
        form.addRow(self.table)
        form.addRow(_label(f"{SITE_NOTE} Position: centre of the lesion in mm from the top-left corner of its "
                           "view (x right, y down). Uptake: counts in the lesion's pixels; no reference region, so no "
                           "ratio."))
        self._ids: list[int] = []
        self._on_toggle = on_toggle
        self.table.connect("itemChanged(QTableWidgetItem*)", self._changed)

    def show(self, record: dict | None) -> None:
        """List the lesions of a result record (none: empty)."""
        import qt

        from .bonescan.reading_nodes import lesion_rows, view_lines

        rows = lesion_rows(record) if record else []
        blocked = self.table.blockSignals(True)  # filling the table is not the reader's click
        try:
            self.table.clearContents()
            self.table.setRowCount(0)
            for index, row in enumerate(rows):
                self.table.insertRow(index)
                check = qt.QTableWidgetItem("")
                check.setCheckState(qt.Qt.Checked if row["accepted"] else qt.Qt.Unchecked)
                self.table.setItem(index, 0, check)
                for column, text in enumerate(row["cells"], start=1):
                    item = qt.QTableWidgetItem(text)
                    item.setFlags(item.flags() ^ qt.Qt.ItemIsEditable)
                    self.table.setItem(index, column, item)
        finally:
            self.table.blockSignals(blocked)
        self._ids = [row["id"] for row in rows]
        self.counts.text = "\n".join(view_lines(record)) if record else "Compute BSTBI to list the lesions."

    def _changed(self, item) -> None:
        if item.column() == 0 and 0 <= item.row() < len(self._ids):
            self._on_toggle(self._ids[item.row()])


class FollowUpSection:
    """Earlier studies of the patient, in the order the reader adds them (the baseline table's result or a result
    folder), and the trend: its lines here, its plot in the view layout."""

    def __init__(self, layout, on_add_table, on_add_folder, on_remove, on_trend):
        import qt

        self.section, form = _section(layout, "Follow-up: BSTBI trend")
        form.addRow(_label("Earlier studies of this patient (the current study comes last):"))
        self.earlier = qt.QListWidget()
        form.addRow(self.earlier)
        buttons = [("Add the baseline table's result", on_add_table),
                   ("Add an earlier result folder (bonescan predict / bstbi)...", self._choose_folder),
                   ("Remove the selected study", lambda: on_remove(self.earlier.currentRow)),
                   ("Show the trend", on_trend)]
        for text, callback in buttons:
            button = qt.QPushButton(text)
            button.connect("clicked(bool)", lambda _checked, callback=callback: callback())
            form.addRow(button)
        self.trend = _label("Add an earlier study and compute BSTBI of this one to see the change and the trend.")
        form.addRow(self.trend)
        self._on_add_folder = on_add_folder

    def _choose_folder(self) -> None:
        import qt

        folder = qt.QFileDialog.getExistingDirectory(self.section, "Earlier bone-scan result folder (result.json)")
        if folder:
            self._on_add_folder(folder)

    def show(self, earlier: list[str], trend: list[str] | None = None) -> None:
        """The earlier studies' lines and, once shown, the trend's."""
        self.earlier.clear()
        for line in earlier:
            self.earlier.addItem(line)
        if trend is not None:
            self.trend.text = "\n".join(trend)


class HeatMapSection:
    """The Grad-CAM map's switch and opacity slider (the colour legend is drawn in the views by Slicer);
    `on_change(shown, opacity percent)`."""

    def __init__(self, layout, on_change):
        import ctk
        import qt

        from .heat_legend import DEFAULT_OPACITY_PERCENT

        self.section, form = _section(layout, "Grad-CAM heat map")
        form.addRow(_label("Where the network looked for this prediction (not a lesion outline); the colour legend "
                           "in the views gives the values."))
        self.shown = qt.QCheckBox("Show")
        self.shown.checked = True
        form.addRow(self.shown)
        self.opacity = ctk.ctkSliderWidget()
        self.opacity.minimum, self.opacity.maximum, self.opacity.singleStep = 0.0, 100.0, 5.0
        self.opacity.value = DEFAULT_OPACITY_PERCENT
        self.opacity.suffix = " %"
        form.addRow("Opacity", self.opacity)
        self.shown.connect("toggled(bool)", lambda _shown: on_change(self.shown.checked, self.opacity.value))
        self.opacity.connect("valueChanged(double)", lambda _value: on_change(self.shown.checked,
                                                                              self.opacity.value))


class DCERegionsSection:
    """The regions that enhance on the real DCE, named as their outlines on the synthetic and real DCE views: a
    "Show outlines" switch (`on_shown(shown)`) and "Go to" the selected region (`on_go_to(region number)`)."""

    def __init__(self, layout, on_shown, on_go_to):
        import qt

        self.section, form = _section(layout, "Regions that enhance on the real DCE")
        self.shown = qt.QCheckBox("Show outlines (on the synthetic and the real DCE views)")
        self.shown.checked = True
        form.addRow(self.shown)
        self.regions = qt.QListWidget()
        form.addRow(self.regions)
        go_to = qt.QPushButton("Go to the selected region")
        form.addRow(go_to)
        self.note = _label("Synthesize with a real DCE to compare the regions that enhance on it.")
        form.addRow(self.note)
        self._numbers: list[int] = []
        self.shown.connect("toggled(bool)", lambda shown: on_shown(shown))
        go_to.connect("clicked(bool)", lambda _checked: self._numbers and self.regions.currentRow >= 0
                      and on_go_to(self._numbers[self.regions.currentRow]))

    def show(self, legend: list[dict]) -> None:
        """The regions of `dce.scene.region_legend` (none: the note only)."""
        from .dce.lesion_contrast import FAINT_RATIO

        self.regions.clear()
        for entry in legend:
            ratio = "" if entry["ratio"] is None else f", ratio {entry['ratio']:.2f}"
            self.regions.addItem(f"{entry['name']} (slices {entry['slices'][0]}–{entry['slices'][1]}{ratio})")
        self._numbers = [entry["number"] for entry in legend]
        self.note.text = (f"Ratio: contrast to the surroundings on the synthetic / on the real DCE; below "
                          f"{FAINT_RATIO:g} a region is faint on the synthetic DCE: read it on the real DCE."
                          if legend else "No region enhances focally on the real DCE (or no real DCE was given).")
