"""What the four desktop module widgets share (needs the Slicer application; imported by the widgets only): their
reading flow's steps run from a qt.QTimer with progress, cancel and error dialogs (`WidgetSteps`), the worker's
interpreter, the result's domain line, and the Segment Editor opened on the reader's segmentation (undo, brush in mm,
the AI's proposal outlined) or on one to paint."""

from __future__ import annotations

import html
import json
import shutil
import sys
import traceback

from .errors import CancelledError, SmartImagingError
from .reading import Step, StepRunner
from .result_nodes import domain_check, domain_sentence

POLL_INTERVAL_MS = 200
EXPLANATIONS_PROPERTY = "SmartImagingExplanations"  # a result label's Qt property: [summary, details] as JSON
EXPLAIN_LINKED = "SmartImagingExplainLinked"


def worker_python() -> str:
    """Slicer's PythonSlicer launcher for the worker process (this interpreter outside Slicer)."""
    return shutil.which("PythonSlicer") or sys.executable


def warm_up(flow, dependencies: list[str]) -> None:
    """Load the module's worker models in the background when the module opens, once its packages are installed
    (before that, the first Apply installs them with the reader's consent)."""
    from .slicer_dependencies import missing, with_decoders

    if not missing(with_decoders(dependencies)):
        flow.warm_up()


def torch_device(choice: str) -> str:
    """The worker's device for the module's device choice ("auto" runs on the CPU, as the station does)."""
    return "cpu" if choice == "auto" else choice


class WidgetSteps:
    """A widget's flow steps, one at a time: polled by a qt.QTimer through `StepRunner`; progress on the widget's
    progress bar and the status bar; an error in a dialog (the worker's error output as its details), a cancel as a
    status message; then `on_done(value)` for a step that succeeded and `on_over()` whatever happened (the buttons).
    Cancel stops the worker process and its children (WorkerProcess.cancel)."""

    def __init__(self, progress_bar, on_done, on_over):
        import qt

        self.progress_bar, self._on_done = progress_bar, on_done
        self.timer = qt.QTimer()
        self.timer.setInterval(POLL_INTERVAL_MS)
        self.runner = StepRunner(self.timer, self._done, self._failed, on_over)
        self.timer.connect("timeout()", self.runner.poll)

    @property
    def busy(self) -> bool:
        return self.runner.busy

    def progress(self, fraction: float, message: str) -> None:
        import slicer

        self.progress_bar.value = int(100 * fraction)
        slicer.util.showStatusMessage(message)

    def start(self, step: Step) -> None:
        self.progress_bar.value = 0
        self.runner.start(step)

    def cancel(self) -> None:
        self.runner.cancel()

    def abandon(self) -> None:
        """Stop the running step without a word (the widget or the scene goes away); its scratch is removed."""
        self.runner.abandon()

    def _done(self, value) -> None:
        self.progress_bar.value = 100
        self._on_done(value)

    def _failed(self, error: BaseException) -> None:
        import slicer

        self.progress_bar.value = 0
        if isinstance(error, CancelledError):
            slicer.util.showStatusMessage(str(error), 3000)
            return
        if isinstance(error, SmartImagingError):
            slicer.util.errorDisplay(str(error), detailedText=getattr(error, "details", "") or None)
            return
        slicer.util.errorDisplay(f"Unexpected error ({type(error).__name__}): {error}",
                                 detailedText="".join(traceback.format_exception(error)))


def show_domain(label, result_node) -> None:
    """The result's domain check in `label` (a QLabel under the compute button), in bold red when the image is
    outside the model's training data, then the result's warning explanations (borderline score, disagreeing
    sequences, faint lesions) and an "Explain this result" link that opens every explanation (`show_explanations`);
    empty without a result."""
    import qt

    from .explain import as_text, explain_node, plain_domain

    domain = plain_domain(domain_check(result_node)) if result_node is not None else None  # plain feature names
    outside = bool(domain) and domain["verdict"] == "outside"
    explanations = explain_node(result_node) if result_node is not None else []
    summary, details = as_text(explanations)
    lines = [html.escape(domain_sentence(domain))] if domain else []
    lines += [html.escape(line) for line in summary.splitlines()]
    lines += ['<a href="explain">Explain this result</a>'] if explanations else []
    label.textFormat = qt.Qt.RichText  # escaped text, line breaks and the link
    label.text = "<br>".join(lines)
    label.styleSheet = "color: #d32f2f; font-weight: bold;" if outside else ""
    label.setProperty(EXPLANATIONS_PROPERTY, json.dumps([summary, details]))
    if not label.property(EXPLAIN_LINKED):  # connected once per label, whatever result it shows next
        label.linkActivated.connect(lambda _link: show_explanations(label))
        label.setProperty(EXPLAIN_LINKED, True)


def show_explanations(label) -> None:
    """The explanations of the result `label` shows, in a message box: the warnings and cutoff, everything else
    under "Show Details" (slicer.util.infoDisplay with detailedText, Slicer 5.12 Base/Python/slicer/util.py)."""
    import slicer

    summary, details = json.loads(label.property(EXPLANATIONS_PROPERTY) or '["", ""]')
    slicer.util.infoDisplay(summary or "About this result", windowTitle="About this result", detailedText=details)


def edit_in(segment_editor_widget, segmentation_node, volume_node, ai_node=None) -> None:
    """The Segment Editor on the reader's segmentation: its Undo/Redo buttons keep UNDO_STATES edits (Ctrl+Z and
    Ctrl+Y once the module's `enter` installed the editor's shortcuts), Paint and Erase in mm with the image's and the
    lesion's sizes (`brush_sizes`), the AI's proposal outlined in green (`show_proposal`), over the copy also after
    an Undo or Redo (`keep_proposal_on_top`). Slicer 5.12: qMRMLSegmentEditorWidget.setMaximumNumberOfUndoStates /
    effectByName, qSlicerSegmentEditorAbstractEffect.setCommonParameter with qSlicerSegmentEditorPaintEffect's common
    Brush* parameters (shared by Paint and Erase); qt.QTimer.singleShot(0, ...) as Base/Python/slicer/util.py."""
    import qt

    from .segmentation_nodes import UNDO_STATES, brush_sizes, keep_proposal_on_top, lesion_mm, show_proposal

    segment_editor_widget.setMaximumNumberOfUndoStates(UNDO_STATES)
    segment_editor_widget.setSegmentationNode(segmentation_node)
    segment_editor_widget.setSourceVolumeNode(volume_node)
    sizes = brush_sizes(volume_node, lesion_mm(segmentation_node))
    paint = segment_editor_widget.effectByName("Paint")
    paint.setCommonParameter("BrushDiameterIsRelative", 0)
    paint.setCommonParameter("BrushMinimumAbsoluteDiameter", sizes.minimum)
    paint.setCommonParameter("BrushMaximumAbsoluteDiameter", sizes.maximum)
    paint.setCommonParameter("BrushAbsoluteDiameter", sizes.default)
    if ai_node is not None:
        show_proposal(ai_node, True)
        keep_proposal_on_top(segmentation_node, lambda check: qt.QTimer.singleShot(0, check))


def export_dicom(flow, parent) -> None:
    """The flow's result as DICOM (`exports.export_dicom`: SEG, SR and the series they reference) into a folder the
    reader picks, then the files written; a refusal in an error dialog. Slicer 5.12: qt.QFileDialog.
    getExistingDirectory (as ExtensionWizard's DirectoryListWidget calls it), slicer.util.tryWithErrorDisplay and
    infoDisplay (Base/Python/slicer/util.py)."""
    import qt
    import slicer

    from .exports import export_dicom as write

    folder = qt.QFileDialog.getExistingDirectory(parent, "Export DICOM SEG and SR into folder")
    if not folder:
        return
    with slicer.util.tryWithErrorDisplay("Failed to export DICOM.", waitCursor=True):
        written = write(flow, folder)
    slicer.util.infoDisplay("\n".join(f"{kind}: {path}" for kind, path in written.items()),
                            windowTitle="DICOM exported")


def export_report(flow, parent) -> None:
    """The flow's case report (HTML, printable to PDF) and its result table (CSV) (`case_report.export_report`,
    `export_csv`) into a folder the reader picks, then the files written; a refusal in an error dialog. Slicer 5.12:
    qt.QFileDialog.getExistingDirectory (as ExtensionWizard's DirectoryListWidget calls it),
    slicer.util.tryWithErrorDisplay and infoDisplay (Base/Python/slicer/util.py)."""
    import qt
    import slicer

    from .case_report import export_csv
    from .case_report import export_report as write

    folder = qt.QFileDialog.getExistingDirectory(parent, "Export the case report and CSV into folder")
    if not folder:
        return
    with slicer.util.tryWithErrorDisplay("Failed to export the report.", waitCursor=True):
        written = [write(flow, folder), export_csv(flow, folder)]
    slicer.util.infoDisplay("\n".join(str(path) for path in written), windowTitle="Report exported")


def start_painting(segment_editor_widget, segmentation_node, volume_node) -> None:
    """Segment Editor on the segmentation's first segment (`edit_in`) with the Paint effect selected."""
    edit_in(segment_editor_widget, segmentation_node, volume_node)
    segment_editor_widget.setCurrentSegmentID(segmentation_node.GetSegmentation().GetNthSegmentID(0))
    segment_editor_widget.setActiveEffectByName("Paint")


PRESET_SET = "SmartImaging.DisplayPreset"  # volume attribute: the default preset was applied (once: the reader's
# own window/level is kept afterwards)
_captions: dict[str, object] = {}  # slice view name -> its caption annotation
_shown: dict[str, tuple] = {}  # slice view name -> (volume ID, image MTime) its caption was drawn for


def show_reading_display(module: str, volume_node, sequence: str = "", view_name: str = "Red") -> None:
    """The module's input volume as a radiologist reads it (smartimaging.display): its modality's default
    window/level preset once per volume (bone scan black on white), the caption and edge letters in the slice view,
    a mammogram hung chest wall to chest wall. Slicer 5.12 APIs (as DataProbe's SliceViewAnnotations uses them):
    qMRMLLayoutManager.sliceWidget, qMRMLSliceWidget.mrmlSliceNode, sliceLogic and sliceView,
    vtkMRMLSliceLogic.FitSliceToBackground, ctkVTKAbstractView.renderWindow and scheduleRender; a volume loaded from
    the DICOM database finds its file as Docs/developer_guide/script_repository/dicom.md does (DICOM.instanceUIDs,
    slicer.dicomDatabase.fileForInstance)."""
    import slicer

    from . import display

    if volume_node is None or volume_node.GetImageData() is None or volume_node.GetDisplayNode() is None:
        return
    uids = (volume_node.GetAttribute("DICOM.instanceUIDs") or "").split()
    database = getattr(slicer, "dicomDatabase", None)
    if not display.source_of(volume_node) and uids and database:  # loaded from the DICOM database
        volume_node.SetAttribute(display.SOURCE_FILE, database.fileForInstance(uids[0]))
    if not volume_node.GetAttribute(PRESET_SET):
        preset = display.presets(display.MODALITY.get(module, ""), slicer.util.arrayFromVolume(volume_node),
                                 display.read_header(display.source_of(volume_node)))[0]
        display.apply_preset(volume_node.GetDisplayNode(), preset)
        volume_node.SetAttribute(PRESET_SET, preset.name)
    widget = slicer.app.layoutManager().sliceWidget(view_name) if slicer.app.layoutManager() else None
    key = (volume_node.GetID(), volume_node.GetImageData().GetMTime())
    if widget is None or _shown.get(view_name) == key:
        return
    _shown[view_name] = key
    captions = display.volume_captions(module, volume_node, sequence)
    caption = captions[0] if len(captions) == 1 else display.ViewCaption(
        " | ".join(f"frame {index + 1}: {c.title}" for index, c in enumerate(captions)))
    if display.MODALITY.get(module) == "MG":  # other modules keep the reader's slice orientation
        display.hang(widget.mrmlSliceNode(), caption.mirrored)
        widget.sliceLogic().FitSliceToBackground()
    view = widget.sliceView()  # left-drag: the image's window/level, never an overlay's (Slicer 5.12 qMRMLSliceView)
    display.drag_adjusts_background_only(view.displayableManagerByClassName("vtkMRMLScalarBarDisplayableManager"))
    if view_name not in _captions:
        _captions[view_name] = display.caption_annotation()
        view.renderWindow().GetRenderers().GetItemAsObject(0).AddViewProp(_captions[view_name])
    display.draw_caption(_captions[view_name], caption, widget.mrmlSliceNode())
    view.scheduleRender()


def show_side_by_side(module: str, left, right, left_sequence: str, right_sequence: str) -> None:
    """Two sequences of a case side by side, scrolling together, each with its caption (e.g. the DCE and the T2
    that BreastLVI's models read). Slicer 5.12: vtkMRMLLayoutNode.SlicerLayoutSideBySideView (Red | Yellow, both
    axial), qMRMLLayoutManager.setLayout and sliceWidget, qMRMLSliceWidget.mrmlSliceCompositeNode and sliceLogic,
    vtkMRMLSliceCompositeNode.SetBackgroundVolumeID and SetLinkedControl, vtkMRMLSliceLogic.FitSliceToBackground."""
    import slicer

    manager = slicer.app.layoutManager()
    if manager is None:
        return
    manager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutSideBySideView)
    for view_name, volume, sequence in (("Red", left, left_sequence), ("Yellow", right, right_sequence)):
        widget = manager.sliceWidget(view_name)
        composite = widget.mrmlSliceCompositeNode()
        composite.SetBackgroundVolumeID(volume.GetID())
        composite.SetLinkedControl(True)
        widget.sliceLogic().FitSliceToBackground()
        show_reading_display(module, volume, sequence, view_name)
