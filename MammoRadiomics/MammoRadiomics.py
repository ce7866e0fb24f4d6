import os
import pathlib
import sys
from typing import Annotated

import slicer
import vtk
from slicer import (
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLMarkupsROINode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
    vtkMRMLTableNode,
)
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

DEPENDENCIES = ["torch", "safetensors", "pydicom", "sklearn", "yaml", "joblib", "skops", "xgboost",
                "radiomics"]  # import names


def _ensureSmartImagingImportable():
    """Put the repository root on sys.path when the module runs from a source checkout ("Additional module paths")."""
    try:
        import smartimaging  # noqa: F401
    except ImportError:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


#
# MammoRadiomics
#


class MammoRadiomics(ScriptedLoadableModule):
    """Uses ScriptedLoadableModule base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Mammo Radiomics")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "SmartImaging")]
        self.parent.dependencies = []
        self.parent.contributors = ["SmartImaging developers"]
        self.parent.helpText = _("""
Mammography radiomics: mark a mass or a calcification cluster with a point or a box, let the U-Net propose the ROI,
correct it in the Segment Editor, then extract 102 pyradiomics 2D features and compute the Rad-score with an
FAE-style classifier (benign/malignant at the Youden cutoff). The bundled models are DEMO WEIGHTS trained on
synthetic phantoms: not for clinical use.
""")
        self.parent.acknowledgementText = _("Built on 3D Slicer, pyradiomics, MONAI, PyTorch and scikit-learn.")


#
# MammoRadiomicsParameterNode
#


@parameterNodeWrapper
class MammoRadiomicsParameterNode:
    """
    inputVolume - the mammogram (one-slice volume).
    lesionKind - mass or calcification.
    lesionPoint - markups point on the lesion.
    lesionBox - markups ROI around the lesion.
    pixelSize - the reader's pixel size in mm for image files that store none (PNG, PGM, JPEG, TIFF).
    aiSegmentation - the model's ROI, kept unchanged.
    editedSegmentation - the reader's corrected ROI used for the features.
    resultTable - Rad-score and features.
    batchFolder - folder of mammograms read by "Batch a folder".
    batchMasksFolder - optional reader masks named like the images.
    batchOutputFolder - receives results.csv, features.csv and rois/.
    batchTable - one row per image of the last batch.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    lesionKind: Annotated[str, Choice(["mass", "calcification"])] = "mass"
    lesionPoint: vtkMRMLMarkupsFiducialNode
    lesionBox: vtkMRMLMarkupsROINode
    pixelSize: str = ""
    aiSegmentation: vtkMRMLSegmentationNode
    editedSegmentation: vtkMRMLSegmentationNode
    resultTable: vtkMRMLTableNode
    batchFolder: pathlib.Path
    batchMasksFolder: pathlib.Path
    batchOutputFolder: pathlib.Path
    batchTable: vtkMRMLTableNode


#
# MammoRadiomicsWidget
#


class MammoRadiomicsWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Binds the controls to the module's reading flow (smartimaging.mammo.flow.MammoFlow, the one the reading
    station drives): the widget selects the nodes, runs the flow's steps and shows what they made."""

    def __init__(self, parent=None) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._steps = None
        self._training = None
        self._proposal = None
        self._teaching = None

    def setup(self) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MammoRadiomics.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = MammoRadiomicsLogic()
        self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(self.logic.getSegmentEditorNode())

        from smartimaging.desktop import WidgetSteps

        self._steps = WidgetSteps(self.ui.batchProgressBar, self._onBatchDone, self._updateButtonStates)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.segmentButton.connect("clicked(bool)", self.onSegmentButton)
        self.ui.drawButton.connect("clicked(bool)", self.onDrawButton)
        self.ui.classifyButton.connect("clicked(bool)", self.onClassifyButton)
        self.ui.batchButton.connect("clicked(bool)", self.onBatchButton)
        self.ui.batchCancelButton.connect("clicked(bool)", self.onBatchCancelButton)
        self.ui.exportDicomButton.connect("clicked(bool)", self.onExportDicomButton)
        self.ui.exportReportButton.connect("clicked(bool)", self.onExportReportButton)
        from smartimaging.desktop_worklist import WorklistSection

        self._worklist = WorklistSection(self.layout, self.logic.flow, lambda: self._parameterNode,
                                         self._showSegmentation)  # the worklist over this module's flow
        from smartimaging.desktop_training import TrainingSection

        self._training = TrainingSection(self.layout, self._worklist)  # the Model selector, Train and Evaluate
        from smartimaging.desktop_proposal import ProposalSection

        self._proposal = ProposalSection(self.layout, self._worklist)  # the U-Net Segment uses, Fine-tune
        from smartimaging.desktop_teaching import TeachingSection

        self._teaching = TeachingSection(self.layout, self.logic.flow, lambda: self._parameterNode,
                                         self._showSegmentation, self._updateButtonStates)  # a student's cases

        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        if self._steps:
            self._steps.abandon()
        if self._training:
            self._training.abandon()
        if self._proposal:
            self._proposal.abandon()
        if self._teaching:
            self._teaching.abandon()
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module."""
        self.initializeParameterNode()
        self.ui.segmentEditorWidget.installKeyboardShortcuts()  # Ctrl+Z / Ctrl+Y undo and redo edits (Slicer 5.12)

    def exit(self) -> None:
        """Called each time the user opens a different module."""
        self.ui.segmentEditorWidget.uninstallKeyboardShortcuts()
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtonStates)

    def onSceneStartClose(self, caller, event) -> None:
        """Called just before the scene is closed: a running batch stops (its table would be gone)."""
        self._steps.abandon()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        """Called just after the scene is closed."""
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        """Ensure parameter node exists and observed."""
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode) -> None:
        """Set and observe parameter node."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtonStates)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtonStates)
            self._updateButtonStates()

    def _updateButtonStates(self, caller=None, event=None) -> None:
        p = self._parameterNode
        busy = self._steps.busy
        from smartimaging.desktop import show_reading_display

        show_reading_display("MammoRadiomics", p.inputVolume if p else None)  # preset, caption, hanging
        self.ui.exportDicomButton.enabled = self.logic.flow.result is not None and not busy
        self.ui.exportReportButton.enabled = self.logic.flow.result is not None and not busy
        self.ui.segmentButton.enabled = bool(p and p.inputVolume)
        self.ui.drawButton.enabled = bool(p and p.inputVolume)
        self.ui.classifyButton.enabled = bool(p and p.inputVolume and (p.editedSegmentation or p.aiSegmentation))
        self.ui.batchButton.enabled = bool(p and not busy and _isFolder(p.batchFolder)
                                           and _isFolder(p.batchOutputFolder.parent))
        self.ui.batchCancelButton.enabled = busy
        self._training.update(p.lesionKind if p else self.logic.flow.kind)  # the worklist's models of the kind
        self._proposal.update(p.lesionKind if p else self.logic.flow.kind)  # and its U-Nets of the kind
        blocks = self._teaching.update()  # a teaching case open: no AI proposal or call before Check
        self.ui.segmentButton.enabled = self.ui.segmentButton.enabled and not blocks["segment"]
        self.ui.drawButton.enabled = self.ui.drawButton.enabled and not blocks["draw"]
        self.ui.classifyButton.enabled = self.ui.classifyButton.enabled and not blocks["compute"]
        if p and p.editedSegmentation:
            self.ui.segmentEditorWidget.setSegmentationNode(p.editedSegmentation)
            self.ui.segmentEditorWidget.setSourceVolumeNode(p.inputVolume)

    def _showSegmentation(self) -> None:
        """The flow's AI ROI and the reader's ROI in the selectors."""
        flow = self.logic.flow
        self._parameterNode.aiSegmentation = flow.ai_segmentation
        self._parameterNode.editedSegmentation = flow.segmentation
        if flow.segmentation is not None:
            from smartimaging.desktop import edit_in

            edit_in(self.ui.segmentEditorWidget, flow.segmentation, flow.primary, flow.ai_segmentation)

    def onSegmentButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to segment the lesion."), waitCursor=True):
            if not self.logic.ensureDependencies():
                return
            self.logic.segment(self._parameterNode)
            self._showSegmentation()
            self._worklist.keep_proposal()  # the worklist's case keeps the AI's proposal

    def onDrawButton(self) -> None:
        """An empty ROI to paint by hand (the way forward when the AI finds nothing, or the wrong thing)."""
        with slicer.util.tryWithErrorDisplay(_("Failed to create the ROI to draw."), waitCursor=True):
            from smartimaging.desktop import start_painting

            self.logic.drawByHand(self._parameterNode)
            self._showSegmentation()
            start_painting(self.ui.segmentEditorWidget, self.logic.flow.segmentation, self.logic.flow.primary)

    def onClassifyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to extract features and classify."), waitCursor=True):
            from smartimaging.desktop import show_domain

            p = self._parameterNode
            result = self.logic.classify(p)
            p.resultTable = result.table_node
            show_domain(self.ui.domainLabel, result.table_node)
            self.logic.showTable(result.table_node)

    def onBatchButton(self) -> None:
        """Start the batch in a background process; its table arrives in _onBatchDone."""
        with slicer.util.tryWithErrorDisplay(_("Failed to start the batch."), waitCursor=True):
            if not self.logic.ensureDependencies():
                return
            p = self._parameterNode
            flow = self.logic.select(p)
            masks = p.batchMasksFolder if _isFolder(p.batchMasksFolder) else None
            self._steps.start(flow.batch(p.batchFolder, p.batchOutputFolder, masks, p.batchTable,
                                         self._steps.progress))
            self._updateButtonStates()

    def onExportDicomButton(self) -> None:
        """The result as DICOM SEG + SR into a folder the reader picks (smartimaging.desktop.export_dicom)."""
        from smartimaging.desktop import export_dicom

        export_dicom(self.logic.flow, self.parent)

    def onExportReportButton(self) -> None:
        """The case report (HTML) and the result CSV into a folder the reader picks
        (smartimaging.desktop.export_report)."""
        from smartimaging.desktop import export_report

        export_report(self.logic.flow, self.parent)

    def onBatchCancelButton(self) -> None:
        self._steps.cancel()

    def _onBatchDone(self, value) -> None:
        table, event = value
        self._parameterNode.batchTable = table
        self.logic.showTable(table)
        if event["failed"]:
            slicer.util.warningDisplay(_("{failed} of {images} images could not be read; the reason is in the "
                                         "table's error column.").format(failed=event["failed"],
                                                                          images=event["images"]))


def _isFolder(path) -> bool:
    """An unset path field holds '.'; only an explicitly chosen, existing folder counts."""
    return bool(path) and str(path) not in ("", ".") and pathlib.Path(path).is_dir()


#
# MammoRadiomicsLogic
#


class MammoRadiomicsLogic(ScriptedLoadableModuleLogic):
    """The module's reading flow (smartimaging.mammo.flow.MammoFlow) on Slicer's scene: takes nodes, never widgets."""

    def __init__(self) -> None:
        """Called when the logic class is instantiated. Can be used for initializing member variables."""
        ScriptedLoadableModuleLogic.__init__(self)
        _ensureSmartImagingImportable()
        from smartimaging.desktop import worker_python
        from smartimaging.mammo.flow import MammoFlow

        self.flow = MammoFlow(slicer.mrmlScene, python=worker_python())

    def getParameterNode(self):
        return MammoRadiomicsParameterNode(super().getParameterNode())

    def getSegmentEditorNode(self):
        node = slicer.mrmlScene.GetSingletonNode("MammoRadiomics", "vtkMRMLSegmentEditorNode")
        if node is None:
            node = slicer.vtkMRMLSegmentEditorNode()
            node.SetSingletonTag("MammoRadiomics")
            node = slicer.mrmlScene.AddNode(node)
        return node

    def ensureDependencies(self) -> bool:
        """Install what is missing, with the user's consent."""
        from smartimaging.slicer_dependencies import ensure

        return ensure(DEPENDENCIES, "Mammo Radiomics")

    def select(self, parameterNode):
        """The flow with the parameter node's mammogram (and the reader's pixel size for it), lesion kind, point,
        ROI and table; returns the flow."""
        p = parameterNode
        self.flow.set_kind(p.lesionKind)  # the reader's ROI is renamed after the kind
        self.flow.set_pixel_size(p.pixelSize)
        self.flow.select({"mammogram": p.inputVolume}, p.lesionPoint, p.editedSegmentation or p.aiSegmentation,
                         p.resultTable)
        return self.flow

    def segment(self, parameterNode):
        """AI ROI from the point (or the box, or the whole image), kept hidden, and the reader's editable copy."""
        from smartimaging.mammo.scene import box_from_markups_roi

        p = parameterNode
        flow = self.select(p)
        usesBox = p.lesionBox is not None and not flow.has_point and flow.primary is not None
        flow.run(flow.segment_box(box_from_markups_roi(flow.primary, p.lesionBox)) if usesBox else flow.segment())
        return flow.ai_segmentation, flow.segmentation

    def drawByHand(self, parameterNode):
        """An empty, coded ROI segment on the mammogram's geometry for the reader to paint."""
        self.select(parameterNode).draw_by_hand()
        return self.flow.segmentation

    def classify(self, parameterNode):
        """Rad-score, label and features of the reader's ROI: the flow's result (its table node included)."""
        flow = self.select(parameterNode)
        return flow.run(flow.compute())

    def showTable(self, tableNode):
        layoutManager = slicer.app.layoutManager()
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(tableNode.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()


#
# MammoRadiomicsTest
#


def _phantomMammogram():
    """A malignant phantom mass (seed 910002) and its mammogram as a volume node of the scene."""
    import SimpleITK as sitk

    from smartimaging.mrml import sitk_to_volume_node
    from smartimaging.phantoms.mammo import PIXEL_MM, make_mammo_phantom

    case = make_mammo_phantom(910_002, "mass", 1)
    image = sitk.GetImageFromArray(case.image[None])
    image.SetSpacing((PIXEL_MM, PIXEL_MM, 1.0))
    volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "phantom mammogram")
    sitk_to_volume_node(image, volume)
    return case, volume


class MammoRadiomicsTest(ScriptedLoadableModuleTest):
    """Runs the module's flow with the real pipeline (demo weights) on a phantom mammogram."""

    def setUp(self):
        """Do whatever is needed to reset the state - typically a scene clear will be enough."""
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Run as few or as many tests as needed here."""
        self.setUp()
        self.test_MammoRadiomics1()
        self.setUp()
        self.test_MammoRadiomicsBatch()
        self.setUp()
        self.test_MammoRadiomicsDrawnROI()

    def test_MammoRadiomics1(self):
        """Point on a phantom mass → AI ROI → Rad-score table with 102 features."""
        self.delayDisplay("Starting the test")
        _ensureSmartImagingImportable()
        from smartimaging.mammo.segment import prompt_point
        from smartimaging.mrml import ijk_to_ras_matrix

        case, volume = _phantomMammogram()
        row, col = prompt_point(case.mask)
        logic = MammoRadiomicsLogic()
        p = logic.getParameterNode()
        p.inputVolume, p.lesionKind = volume, "mass"
        p.lesionPoint = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
        p.lesionPoint.AddControlPoint(*(ijk_to_ras_matrix(volume) @ [col, row, 0, 1])[:3])

        ai, p.editedSegmentation = logic.segment(p)
        self.assertEqual(ai.GetSegmentation().GetNthSegment(0).GetName(), "Breast mass")
        table = logic.classify(p).table_node
        score = float(table.GetAttribute("SmartImaging.RadScore"))
        self.assertTrue(0.0 <= score <= 1.0)
        features = [r for r in range(table.GetNumberOfRows()) if table.GetCellText(r, 0).startswith("original_")]
        self.assertEqual(len(features), 102)
        self.delayDisplay("Test passed")

    def test_MammoRadiomicsDrawnROI(self):
        """No AI: an empty ROI drawn by hand (a disc painted through the segmentation API) → Rad-score."""
        self.delayDisplay("Starting the drawn-ROI test")
        _ensureSmartImagingImportable()
        import numpy as np

        case, volume = _phantomMammogram()
        logic = MammoRadiomicsLogic()
        p = logic.getParameterNode()
        p.inputVolume, p.lesionKind = volume, "mass"
        drawn = p.editedSegmentation = logic.drawByHand(p)
        segmentation = drawn.GetSegmentation()
        self.assertEqual(segmentation.GetNthSegment(0).GetName(), "Breast mass")
        self.assertEqual(int(slicer.util.arrayFromSegmentBinaryLabelmap(drawn, segmentation.GetNthSegmentID(0),
                                                                        volume).sum()), 0)
        painted = (case.mask > 0).astype(np.uint8)[None]
        slicer.util.updateSegmentBinaryLabelmapFromArray(painted, drawn, segmentation.GetNthSegmentID(0), volume)
        result = logic.classify(p)
        self.assertEqual(result.roi_source, "drawn by the reader")
        self.assertIn(["ROI pixels", str(int(painted.sum()))], result.rows)
        self.delayDisplay("Test passed")

    def test_MammoRadiomicsBatch(self):
        """Two phantom PNGs in a folder → the flow's batch step in the worker → one table row per image."""
        self.delayDisplay("Starting the batch test")
        _ensureSmartImagingImportable()
        import tempfile

        import numpy as np
        from PIL import Image

        from smartimaging.phantoms.mammo import make_mammo_phantom

        folder = pathlib.Path(tempfile.mkdtemp(prefix="MammoRadiomicsTest-"))
        (folder / "images").mkdir()
        for seed in (910_003, 910_004):
            case = make_mammo_phantom(seed, "mass", seed % 2)
            Image.fromarray(case.image.round().astype(np.uint16)).save(folder / "images" / f"{seed}.png")
        flow = MammoRadiomicsLogic().flow
        table, _event = flow.run(flow.batch(folder / "images", folder / "out"))
        self.assertEqual(table.GetNumberOfRows(), 2)
        self.assertTrue((folder / "out" / "features.csv").is_file())
        self.delayDisplay("Test passed")
