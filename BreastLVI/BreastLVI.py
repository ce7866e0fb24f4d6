import os
import sys
import tempfile
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
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

DEPENDENCIES = ["torch", "monai", "safetensors", "pydicom", "sklearn"]  # import names


def _ensureSmartImagingImportable():
    """Put the repository root on sys.path when the module runs from a source checkout ("Additional module paths")."""
    try:
        import smartimaging  # noqa: F401
    except ImportError:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


#
# BreastLVI
#


class BreastLVI(ScriptedLoadableModule):
    """Uses ScriptedLoadableModule base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Breast LVI")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "SmartImaging")]
        self.parent.dependencies = []
        self.parent.contributors = ["SmartImaging developers"]
        self.parent.helpText = _("""
Breast MRI: probability of lymphovascular invasion of a cancer from the DCE (2nd post-contrast phase) and/or the
fat-suppressed T2WI and the lesion VOI (draw or edit it in the Segment Editor), by a 2D VanillaCNN, a 2D ResNet10 and
a 3D ResNet10 per sequence, their late fusion, and a Grad-CAM heat map per model. The bundled models are DEMO WEIGHTS
trained on synthetic phantoms: not for clinical use.
""")
        self.parent.acknowledgementText = _("Built on 3D Slicer, MONAI and PyTorch.")


#
# BreastLVIParameterNode
#


@parameterNodeWrapper
class BreastLVIParameterNode:
    """
    dceVolume - DCE, second post-contrast phase.
    t2Volume - fat-suppressed T2WI.
    lesionPoint - markups point on the lesion, for the AI VOI.
    aiSegmentation - the model's VOI, kept unchanged.
    voiSegmentation - the lesion VOI used for prediction (the reader's edited copy, or one drawn by hand).
    resultTable - probability per model and sequence, and the fusion.
    device - auto, cpu or cuda.
    """

    dceVolume: vtkMRMLScalarVolumeNode
    t2Volume: vtkMRMLScalarVolumeNode
    lesionPoint: vtkMRMLMarkupsFiducialNode
    aiSegmentation: vtkMRMLSegmentationNode
    voiSegmentation: vtkMRMLSegmentationNode
    resultTable: vtkMRMLTableNode
    device: Annotated[str, Choice(["auto", "cpu", "cuda"])] = "auto"


#
# BreastLVIWidget
#


class BreastLVIWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
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
        self._pollTimer = None

    def setup(self) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/BreastLVI.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = BreastLVILogic()
        self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(self.logic.getSegmentEditorNode())

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.segmentButton.connect("clicked(bool)", self.onSegmentButton)
        self.ui.drawButton.connect("clicked(bool)", self.onDrawButton)
        self.ui.predictButton.connect("clicked(bool)", self.onPredictButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)

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
        if not self._parameterNode.dceVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.dceVolume = firstVolumeNode

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
        self.ui.predictButton.enabled = bool(p and (p.dceVolume or p.t2Volume) and p.voiSegmentation
                                             and self._worker is None)
        self.ui.cancelButton.enabled = self._worker is not None
        self.ui.segmentButton.enabled = bool(p and (p.dceVolume or p.t2Volume) and p.lesionPoint)
        self.ui.drawButton.enabled = bool(p and (p.dceVolume or p.t2Volume))
        if p and p.voiSegmentation:
            self.ui.segmentEditorWidget.setSegmentationNode(p.voiSegmentation)
            self.ui.segmentEditorWidget.setSourceVolumeNode(p.dceVolume or p.t2Volume)

    def _sequences(self):
        p = self._parameterNode
        return {name: node for name, node in (("DCE", p.dceVolume), ("T2", p.t2Volume)) if node}

    def onSegmentButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to segment the lesion."), waitCursor=True):
            if not self.logic.ensureDependencies():
                return
            p = self._parameterNode
            p.aiSegmentation, p.voiSegmentation = self.logic.segment(p.dceVolume or p.t2Volume, p.lesionPoint)

    def onDrawButton(self) -> None:
        """An empty lesion VOI to paint by hand (the way forward when the AI finds nothing, or the wrong thing)."""
        with slicer.util.tryWithErrorDisplay(_("Failed to create the VOI to draw."), waitCursor=True):
            p = self._parameterNode
            volume = p.dceVolume or p.t2Volume
            p.aiSegmentation = None
            p.voiSegmentation = self.logic.drawByHand(volume)
            _startPainting(self.ui.segmentEditorWidget, p.voiSegmentation, volume)

    def onPredictButton(self) -> None:
        """Start the networks in a background process; results arrive in onPollWorker."""
        with slicer.util.tryWithErrorDisplay(_("Failed to start the prediction."), waitCursor=True):
            if not self.logic.ensureDependencies():
                return
            self._worker = self.logic.startPrediction(self._sequences(), self._parameterNode.voiSegmentation,
                                                      self._parameterNode.device)
            self.ui.progressBar.value = 0
            self._pollTimer.start()
            self._updateButtonStates()

    def onCancelButton(self) -> None:
        if self._worker:
            self._worker.cancel()
            self._stopWorker()
            self.logic.removeScratchFolder()
            self.ui.progressBar.value = 0
            slicer.util.showStatusMessage(_("Prediction cancelled."), 3000)

    def _stopWorker(self) -> None:
        self._pollTimer.stop()
        self._worker = None
        self._updateButtonStates()

    def onPollWorker(self) -> None:
        """Read the worker's JSON events without blocking the GUI (the timer pauses while a dialog may be open)."""
        if not self._worker:
            return
        self._pollTimer.stop()
        if self._worker.dispatch(self._onWorkerProgress, self._onWorkerResult, self._onWorkerError):
            self._stopWorker()
        else:
            self._pollTimer.start()

    def _onWorkerProgress(self, fraction, message) -> None:
        self.ui.progressBar.value = int(100 * fraction)
        slicer.util.showStatusMessage(message)

    def _onWorkerResult(self, event) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to load the LVI result."), waitCursor=True):
            p = self._parameterNode
            nodes = self.logic.finishPrediction(self._sequences(), event, p.voiSegmentation, p.resultTable)
            self._parameterNode.resultTable = nodes["table"]
            self._showDomain(nodes["table"])
            self.ui.progressBar.value = 100
            self.logic.showResult(self._sequences(), nodes)

    def _showDomain(self, tableNode) -> None:
        """The result's domain check under the button, in bold red when the image is outside the training data."""
        from smartimaging.result_nodes import domain_check, domain_sentence

        domain = domain_check(tableNode) if tableNode else None
        outside = bool(domain) and domain["verdict"] == "outside"
        self.ui.domainLabel.text = domain_sentence(domain) if domain else ""
        self.ui.domainLabel.styleSheet = "color: #d32f2f; font-weight: bold;" if outside else ""

    def _onWorkerError(self, message, details) -> None:
        self.logic.removeScratchFolder()
        slicer.util.errorDisplay(message, detailedText=details or None)


def _startPainting(segmentEditorWidget, segmentationNode, volumeNode) -> None:
    """Segment Editor on the segmentation's first segment with the Paint effect selected."""
    segmentEditorWidget.setSegmentationNode(segmentationNode)
    segmentEditorWidget.setSourceVolumeNode(volumeNode)
    segmentEditorWidget.setCurrentSegmentID(segmentationNode.GetSegmentation().GetNthSegmentID(0))
    segmentEditorWidget.setActiveEffectByName("Paint")


#
# BreastLVILogic
#


class BreastLVILogic(ScriptedLoadableModuleLogic):
    """Thin wrapper of smartimaging.lvi.scene: takes nodes, never widgets."""

    def __init__(self) -> None:
        """Called when the logic class is instantiated. Can be used for initializing member variables."""
        ScriptedLoadableModuleLogic.__init__(self)
        _ensureSmartImagingImportable()
        self._scratchFolder = None

    def getParameterNode(self):
        return BreastLVIParameterNode(super().getParameterNode())

    def getSegmentEditorNode(self):
        node = slicer.mrmlScene.GetSingletonNode("BreastLVI", "vtkMRMLSegmentEditorNode")
        if node is None:
            node = slicer.vtkMRMLSegmentEditorNode()
            node.SetSingletonTag("BreastLVI")
            node = slicer.mrmlScene.AddNode(node)
        return node

    def ensureDependencies(self) -> bool:
        """Install what is missing, with the user's consent (torch through the PyTorch extension)."""
        from smartimaging.slicer_dependencies import ensure

        return ensure(DEPENDENCIES, "Breast LVI")

    @staticmethod
    def workerPython():
        import shutil

        return shutil.which("PythonSlicer") or sys.executable

    def startPrediction(self, sequenceNodes, voiSegmentation, device="auto"):
        """Write the sequences and the VOI to a temporary folder and start the worker; returns a WorkerProcess."""
        from smartimaging.lvi.scene import write_inputs_for_worker
        from smartimaging.worker import WorkerProcess

        if not sequenceNodes or voiSegmentation is None:
            raise ValueError(_("Select the DCE and/or T2 volume and the lesion VOI first."))
        self.removeScratchFolder()
        self._scratchFolder = tempfile.mkdtemp(prefix="BreastLVI-")
        arguments = write_inputs_for_worker(slicer.mrmlScene, sequenceNodes, voiSegmentation, self._scratchFolder)
        torchDevice = "cpu" if device == "auto" else device
        return WorkerProcess("lvi-predict", [*arguments, "--device", torchDevice], python=self.workerPython())

    def finishPrediction(self, sequenceNodes, event, voiSegmentation=None, tableNode=None):
        """Result table and Grad-CAM nodes from the worker's files."""
        from smartimaging.lvi import scene as lvi_scene

        nodes = lvi_scene.import_worker_result(slicer.mrmlScene, sequenceNodes, event, voiSegmentation, tableNode)
        self.removeScratchFolder()
        return nodes

    def removeScratchFolder(self):
        """Delete the worker's temporary input/output folder."""
        import shutil

        if self._scratchFolder:
            shutil.rmtree(self._scratchFolder, ignore_errors=True)
            self._scratchFolder = None

    def segment(self, volumeNode, pointNode):
        """AI VOI from the click (kept unchanged, hidden) and the reader's editable copy."""
        from smartimaging.lvi import scene as lvi_scene
        from smartimaging.lvi.segment import LesionSegmenter

        aiNode, editedNode = lvi_scene.segment(slicer.mrmlScene, volumeNode, pointNode, LesionSegmenter.load())
        aiNode.GetDisplayNode().SetVisibility(False)
        return aiNode, editedNode

    def drawByHand(self, volumeNode):
        """An empty, coded lesion segment on the sequence's geometry for the reader to paint the VOI."""
        from smartimaging.segmentation_nodes import drawn_segmentation
        from smartimaging.segments import BREAST_MASS

        if volumeNode is None:
            raise ValueError(_("Select the DCE (or T2) volume first."))
        return drawn_segmentation(slicer.mrmlScene, volumeNode, (BREAST_MASS,),
                                  f"{volumeNode.GetName()} drawn lesion VOI")

    def predict(self, sequenceNodes, voiSegmentation, modelIds=None):
        """Synchronous prediction (for scripts and the self-test): dict with the table and the heat-map nodes."""
        from smartimaging.lvi import scene as lvi_scene
        from smartimaging.lvi.predict import DEFAULT_MODELS

        return lvi_scene.predict(slicer.mrmlScene, sequenceNodes, voiSegmentation, modelIds or DEFAULT_MODELS)

    def showResult(self, sequenceNodes, nodes):
        """The first sequence with the first Grad-CAM map overlaid, and the result table."""
        heatMaps = list(nodes["heat_maps"].values())
        if heatMaps:
            heatMaps[0].GetDisplayNode().SetAndObserveColorNodeID("vtkMRMLColorTableNodeFileColdToHotRainbow.txt")
            slicer.util.setSliceViewerLayers(background=next(iter(sequenceNodes.values())), foreground=heatMaps[0],
                                             foregroundOpacity=0.4)
        layoutManager = slicer.app.layoutManager()
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(nodes["table"].GetID())
        slicer.app.applicationLogic().PropagateTableSelection()


#
# BreastLVITest
#


class BreastLVITest(ScriptedLoadableModuleTest):
    """Runs the real networks (demo weights) on a small LVI phantom with its VOI."""

    def setUp(self):
        """Do whatever is needed to reset the state - typically a scene clear will be enough."""
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Run as few or as many tests as needed here."""
        self.setUp()
        self.test_BreastLVI1()

    def test_BreastLVI1(self):
        """Phantom DCE + T2 + VOI → probabilities per model, fusion, Grad-CAM on the sequence grid."""
        self.delayDisplay("Starting the test")
        _ensureSmartImagingImportable()
        import numpy as np

        from smartimaging.dce.cohort import phantom_image
        from smartimaging.mrml import ijk_to_ras_matrix, sitk_to_volume_node
        from smartimaging.phantoms.breast_mri import make_breast_mri_phantom

        case = make_breast_mri_phantom(970_000, (16, 96, 96), lvi=1)
        nodes = {}
        for name, array in (("DCE", case.dce2), ("T2", case.t2)):
            nodes[name] = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"phantom {name}")
            sitk_to_volume_node(phantom_image(array, case.spacing, (-96.0, -70.0, -20.0)), nodes[name])
        labelmap = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
        sitk_to_volume_node(phantom_image((case.lesions > 0).astype(np.uint8), case.spacing, (-96.0, -70.0, -20.0)),
                            labelmap)
        voi = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "VOI")
        slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(labelmap, voi)
        logic = BreastLVILogic()
        result = logic.predict(nodes, voi)
        self.assertEqual(result["table"].GetCellText(result["table"].GetNumberOfRows() - 1, 0), "fused")
        for modelId, heatMap in result["heat_maps"].items():
            sequence = "DCE" if "-dce-" in modelId else "T2"
            self.assertTrue(np.array_equal(ijk_to_ras_matrix(heatMap), ijk_to_ras_matrix(nodes[sequence])))
        logic.showResult(nodes, result)
        self.delayDisplay("Test passed")
