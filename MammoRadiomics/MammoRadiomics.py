import os
import pathlib
import sys
from typing import Annotated

import qt
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

DEPENDENCIES = ["torch", "monai", "safetensors", "pydicom", "sklearn", "yaml", "joblib", "skops", "xgboost",
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
    """Uses ScriptedLoadableModuleWidget base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    def __init__(self, parent=None) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._worker = None

    def setup(self) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/MammoRadiomics.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = MammoRadiomicsLogic()
        self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(self.logic.getSegmentEditorNode())

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.segmentButton.connect("clicked(bool)", self.onSegmentButton)
        self.ui.drawButton.connect("clicked(bool)", self.onDrawButton)
        self.ui.classifyButton.connect("clicked(bool)", self.onClassifyButton)
        self.ui.batchButton.connect("clicked(bool)", self.onBatchButton)
        self.ui.batchCancelButton.connect("clicked(bool)", self.onBatchCancelButton)

        self._pollTimer = qt.QTimer()
        self._pollTimer.setInterval(200)
        self._pollTimer.connect("timeout()", self.onPollWorker)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        if self._worker:
            self._worker.cancel()
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module."""
        self.initializeParameterNode()

    def exit(self) -> None:
        """Called each time the user opens a different module."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtonStates)

    def onSceneStartClose(self, caller, event) -> None:
        """Called just before the scene is closed."""
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
        self.ui.segmentButton.enabled = bool(p and p.inputVolume)
        self.ui.drawButton.enabled = bool(p and p.inputVolume)
        self.ui.classifyButton.enabled = bool(p and p.inputVolume and (p.editedSegmentation or p.aiSegmentation))
        self.ui.batchButton.enabled = bool(p and self._worker is None and _isFolder(p.batchFolder)
                                           and _isFolder(p.batchOutputFolder.parent))
        self.ui.batchCancelButton.enabled = self._worker is not None
        if p and p.editedSegmentation:
            self.ui.segmentEditorWidget.setSegmentationNode(p.editedSegmentation)
            self.ui.segmentEditorWidget.setSourceVolumeNode(p.inputVolume)

    def onSegmentButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to segment the lesion."), waitCursor=True):
            if not self.logic.ensureDependencies():
                return
            p = self._parameterNode
            p.aiSegmentation, p.editedSegmentation = self.logic.segment(p.inputVolume, p.lesionKind, p.lesionPoint,
                                                                        p.lesionBox)

    def onDrawButton(self) -> None:
        """An empty ROI to paint by hand (the way forward when the AI finds nothing, or the wrong thing)."""
        with slicer.util.tryWithErrorDisplay(_("Failed to create the ROI to draw."), waitCursor=True):
            p = self._parameterNode
            p.aiSegmentation = None
            p.editedSegmentation = self.logic.drawByHand(p.inputVolume, p.lesionKind)
            _startPainting(self.ui.segmentEditorWidget, p.editedSegmentation, p.inputVolume)

    def onClassifyButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to extract features and classify."), waitCursor=True):
            p = self._parameterNode
            p.resultTable = self.logic.classify(p.inputVolume, p.editedSegmentation or p.aiSegmentation,
                                                p.lesionKind, p.resultTable)
            self._showDomain(p.resultTable)
            self.logic.showTable(p.resultTable)

    def _showDomain(self, tableNode) -> None:
        """The result's domain check under the button, in bold red when the image is outside the training data."""
        from smartimaging.result_nodes import domain_check, domain_sentence

        domain = domain_check(tableNode) if tableNode else None
        outside = bool(domain) and domain["verdict"] == "outside"
        self.ui.domainLabel.text = domain_sentence(domain) if domain else ""
        self.ui.domainLabel.styleSheet = "color: #d32f2f; font-weight: bold;" if outside else ""

    def onBatchButton(self) -> None:
        """Start the batch in a background process; rows arrive in onPollWorker."""
        with slicer.util.tryWithErrorDisplay(_("Failed to start the batch."), waitCursor=True):
            if not self.logic.ensureDependencies():
                return
            p = self._parameterNode
            masks = p.batchMasksFolder if _isFolder(p.batchMasksFolder) else None
            self._worker = self.logic.startBatch(p.batchFolder, p.lesionKind, p.batchOutputFolder, masks)
            self.ui.batchProgressBar.value = 0
            self._pollTimer.start()
            self._updateButtonStates()

    def onBatchCancelButton(self) -> None:
        if self._worker:
            self._worker.cancel()
            self._stopWorker()
            self.ui.batchProgressBar.value = 0
            slicer.util.showStatusMessage(_("Batch cancelled; nothing was written."), 3000)

    def _stopWorker(self) -> None:
        self._pollTimer.stop()
        self._worker = None
        self._updateButtonStates()

    def onPollWorker(self) -> None:
        """Read the worker's JSON events without blocking the GUI (the timer pauses while a dialog may be open)."""
        if not self._worker:
            return
        self._pollTimer.stop()
        if self._worker.dispatch(self._onBatchProgress, self._onBatchResult, self._onBatchError):
            self._stopWorker()
        else:
            self._pollTimer.start()

    def _onBatchProgress(self, fraction, message) -> None:
        self.ui.batchProgressBar.value = int(100 * fraction)
        slicer.util.showStatusMessage(message)

    def _onBatchResult(self, event) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to load the batch results."), waitCursor=True):
            self._parameterNode.batchTable = self.logic.loadBatchResults(event, self._parameterNode.batchTable)
            self.logic.showTable(self._parameterNode.batchTable)
            self.ui.batchProgressBar.value = 100
            if event["failed"]:
                slicer.util.warningDisplay(_("{failed} of {images} images could not be read; the reason is in the "
                                             "table's error column.").format(failed=event["failed"],
                                                                              images=event["images"]))

    def _onBatchError(self, message, details) -> None:
        slicer.util.errorDisplay(message, detailedText=details or None)


def _startPainting(segmentEditorWidget, segmentationNode, volumeNode) -> None:
    """Segment Editor on the segmentation's first segment with the Paint effect selected."""
    segmentEditorWidget.setSegmentationNode(segmentationNode)
    segmentEditorWidget.setSourceVolumeNode(volumeNode)
    segmentEditorWidget.setCurrentSegmentID(segmentationNode.GetSegmentation().GetNthSegmentID(0))
    segmentEditorWidget.setActiveEffectByName("Paint")


def _isFolder(path) -> bool:
    """An unset path field holds '.'; only an explicitly chosen, existing folder counts."""
    return bool(path) and str(path) not in ("", ".") and pathlib.Path(path).is_dir()


#
# MammoRadiomicsLogic
#


class MammoRadiomicsLogic(ScriptedLoadableModuleLogic):
    """Thin wrapper of smartimaging.mammo.scene: takes nodes, never widgets."""

    def __init__(self) -> None:
        """Called when the logic class is instantiated. Can be used for initializing member variables."""
        ScriptedLoadableModuleLogic.__init__(self)
        _ensureSmartImagingImportable()

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

    def segment(self, volumeNode, kind, pointNode=None, boxNode=None, device="auto"):
        """AI ROI from the point (or the box, or the whole image) and the reader's editable copy."""
        from smartimaging.mammo import scene as mammo_scene
        from smartimaging.mammo.segment import MammoSegmenter
        from smartimaging.segmentation_nodes import editable_copy

        point = mammo_scene.point_from_markups(volumeNode, pointNode) if pointNode and \
            pointNode.GetNumberOfControlPoints() else None
        box = mammo_scene.box_from_markups_roi(volumeNode, boxNode) if boxNode and point is None else None
        segmenter = MammoSegmenter.load(kind, device=device)
        aiNode = mammo_scene.segment(slicer.mrmlScene, volumeNode, kind, segmenter, point=point, box=box)
        editedNode = editable_copy(slicer.mrmlScene, aiNode)
        aiNode.GetDisplayNode().SetVisibility(False)
        return aiNode, editedNode

    def drawByHand(self, volumeNode, kind):
        """An empty, coded ROI segment on the mammogram's geometry for the reader to paint."""
        from smartimaging.segmentation_nodes import drawn_segmentation
        from smartimaging.segments import MAMMO_SEGMENTS

        if volumeNode is None:
            raise ValueError(_("Select the mammogram first."))
        return drawn_segmentation(slicer.mrmlScene, volumeNode, (MAMMO_SEGMENTS[kind],),
                                  f"{volumeNode.GetName()} drawn {kind}")

    def classify(self, volumeNode, segmentationNode, kind, tableNode=None):
        from smartimaging.mammo import scene as mammo_scene

        table, _prediction = mammo_scene.classify(slicer.mrmlScene, volumeNode, segmentationNode, kind,
                                                  table_node=tableNode)
        return table

    @staticmethod
    def workerPython():
        import shutil

        return shutil.which("PythonSlicer") or sys.executable

    def startBatch(self, folder, kind, outputFolder, masksFolder=None, device="auto"):
        """Start `mammo-batch` on a folder in a background process; returns a WorkerProcess."""
        from smartimaging.worker import WorkerProcess

        arguments = ["--input", str(folder), "--output-dir", str(outputFolder), "--kind", kind, "--device", device]
        if masksFolder:
            arguments += ["--masks", str(masksFolder)]
        return WorkerProcess("mammo-batch", arguments, python=self.workerPython())

    def loadBatchResults(self, event, tableNode=None):
        """The batch's results.csv (one row per image) as a table node."""
        from smartimaging.mammo import scene as mammo_scene

        return mammo_scene.batch_table(slicer.mrmlScene, event["results"], tableNode)

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
    """Runs the real pipeline (demo weights) on a phantom mammogram."""

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
        point = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
        point.AddControlPoint(*(ijk_to_ras_matrix(volume) @ [col, row, 0, 1])[:3])

        logic = MammoRadiomicsLogic()
        ai, edited = logic.segment(volume, "mass", point)
        self.assertEqual(ai.GetSegmentation().GetNthSegment(0).GetName(), "Breast mass")
        table = logic.classify(volume, edited, "mass")
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

        drawn = MammoRadiomicsLogic().drawByHand(volume, "mass")
        segmentation = drawn.GetSegmentation()
        self.assertEqual(segmentation.GetNthSegment(0).GetName(), "Breast mass")
        self.assertEqual(int(slicer.util.arrayFromSegmentBinaryLabelmap(drawn, segmentation.GetNthSegmentID(0),
                                                                        volume).sum()), 0)
        painted = (case.mask > 0).astype(np.uint8)[None]
        slicer.util.updateSegmentBinaryLabelmapFromArray(painted, drawn, segmentation.GetNthSegmentID(0), volume)
        table = MammoRadiomicsLogic().classify(volume, drawn, "mass")
        rows = {table.GetCellText(r, 0): table.GetCellText(r, 1) for r in range(table.GetNumberOfRows())}
        self.assertEqual(rows["ROI"], "drawn by the reader")
        self.assertEqual(int(rows["ROI pixels"]), int(painted.sum()))
        self.delayDisplay("Test passed")

    def test_MammoRadiomicsBatch(self):
        """Two phantom PNGs in a folder → background batch → one table row per image."""
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
        worker = MammoRadiomicsLogic().startBatch(folder / "images", "mass", folder / "out", device="cpu")
        events = worker.wait(timeout=300)
        result = next(event for event in events if event["event"] == "result")
        table = MammoRadiomicsLogic().loadBatchResults(result)
        self.assertEqual(table.GetNumberOfRows(), 2)
        self.assertTrue((folder / "out" / "features.csv").is_file())
        self.delayDisplay("Test passed")
