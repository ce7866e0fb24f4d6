import os
import sys
import tempfile
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLTableNode
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

DEPENDENCIES = ["torch", "monai", "safetensors", "pydicom", "tqdm"]  # import names


def _ensureSmartImagingImportable():
    """Put the repository root on sys.path when the module runs from a source checkout ("Additional module paths")."""
    try:
        import smartimaging  # noqa: F401
    except ImportError:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


#
# DCESynthesis
#


class DCESynthesis(ScriptedLoadableModule):
    """Uses ScriptedLoadableModule base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("DCE Synthesis")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "SmartImaging")]
        self.parent.dependencies = []
        self.parent.contributors = ["SmartImaging developers"]
        self.parent.helpText = _("""
Breast MRI: a Pix2Pix generator turns a T1-weighted volume without fat suppression into a synthetic first-phase DCE
(fat suppressed), shown beside the T1 and, when you give it, the real DCE, with a synthetic subtraction and its MIP.
With the real DCE a table gives SSIM, PSNR, MAE, MSE and Pearson r. The bundled model is DEMO WEIGHTS trained on
synthetic phantoms: not for clinical use.
""")
        self.parent.acknowledgementText = _("Built on 3D Slicer and PyTorch (Pix2Pix, Isola et al. 2017).")


#
# DCESynthesisParameterNode
#


@parameterNodeWrapper
class DCESynthesisParameterNode:
    """
    t1Volume - T1WI without fat suppression.
    realDceVolume - optional real first DCE phase, for comparison.
    syntheticVolume - the synthetic DCE (same geometry as the T1).
    subtractionVolume - synthetic DCE minus the intensity-mapped T1.
    mipVolume - maximum intensity projection of the subtraction.
    metricsTable - SSIM, PSNR, MAE, MSE, Pearson r when the real DCE is given.
    device - auto, cpu or cuda.
    """

    t1Volume: vtkMRMLScalarVolumeNode
    realDceVolume: vtkMRMLScalarVolumeNode
    syntheticVolume: vtkMRMLScalarVolumeNode
    subtractionVolume: vtkMRMLScalarVolumeNode
    mipVolume: vtkMRMLScalarVolumeNode
    metricsTable: vtkMRMLTableNode
    device: Annotated[str, Choice(["auto", "cpu", "cuda"])] = "auto"


#
# DCESynthesisWidget
#


class DCESynthesisWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
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
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DCESynthesis.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = DCESynthesisLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.synthesizeButton.connect("clicked(bool)", self.onSynthesizeButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.showButton.connect("clicked(bool)", self.onShowButton)

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
        if not self._parameterNode.t1Volume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.t1Volume = firstVolumeNode

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
        self.ui.synthesizeButton.enabled = bool(p and p.t1Volume and self._worker is None)
        self.ui.cancelButton.enabled = self._worker is not None
        self.ui.showButton.enabled = bool(p and p.syntheticVolume)

    def onSynthesizeButton(self) -> None:
        """Start the generator in a background process; results arrive in onPollWorker."""
        with slicer.util.tryWithErrorDisplay(_("Failed to start the synthesis."), waitCursor=True):
            if not self.logic.ensureDependencies():
                return
            p = self._parameterNode
            self._worker = self.logic.startSynthesis(p.t1Volume, p.realDceVolume, p.device)
            self.ui.progressBar.value = 0
            self._pollTimer.start()
            self._updateButtonStates()

    def onCancelButton(self) -> None:
        if self._worker:
            self._worker.cancel()
            self._stopWorker()
            self.logic.removeScratchFolder()
            self.ui.progressBar.value = 0
            slicer.util.showStatusMessage(_("Synthesis cancelled."), 3000)

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
        with slicer.util.tryWithErrorDisplay(_("Failed to load the synthetic DCE."), waitCursor=True):
            p = self._parameterNode
            nodes = self.logic.finishSynthesis(p.t1Volume, event)
            p.syntheticVolume, p.subtractionVolume, p.mipVolume = nodes["synthetic"], nodes["subtraction"], nodes["mip"]
            p.metricsTable = nodes.get("table")
            self._showDomain(p.metricsTable or p.syntheticVolume)  # no table without a real DCE
            self.ui.progressBar.value = 100
            self.onShowButton()

    def _showDomain(self, resultNode) -> None:
        """The result's domain check under the button, in bold red when the image is outside the training data."""
        from smartimaging.result_nodes import domain_check, domain_sentence

        domain = domain_check(resultNode) if resultNode else None
        outside = bool(domain) and domain["verdict"] == "outside"
        self.ui.domainLabel.text = domain_sentence(domain) if domain else ""
        self.ui.domainLabel.styleSheet = "color: #d32f2f; font-weight: bold;" if outside else ""

    def _onWorkerError(self, message, details) -> None:
        self.logic.removeScratchFolder()
        slicer.util.errorDisplay(message, detailedText=details or None)

    def onShowButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to show the volumes."), waitCursor=True):
            p = self._parameterNode
            self.logic.showSideBySide(p.t1Volume, p.syntheticVolume, p.realDceVolume, p.mipVolume, p.metricsTable)


#
# DCESynthesisLogic
#


class DCESynthesisLogic(ScriptedLoadableModuleLogic):
    """Thin wrapper of smartimaging.dce.scene: takes nodes, never widgets."""

    def __init__(self) -> None:
        """Called when the logic class is instantiated. Can be used for initializing member variables."""
        ScriptedLoadableModuleLogic.__init__(self)
        _ensureSmartImagingImportable()
        self._scratchFolder = None

    def getParameterNode(self):
        return DCESynthesisParameterNode(super().getParameterNode())

    def ensureDependencies(self) -> bool:
        """Install what is missing, with the user's consent (torch through the PyTorch extension)."""
        from smartimaging.slicer_dependencies import ensure

        return ensure(DEPENDENCIES, "DCE Synthesis")

    @staticmethod
    def workerPython():
        import shutil

        return shutil.which("PythonSlicer") or sys.executable

    def startSynthesis(self, t1Node, realDceNode=None, device="auto"):
        """Write the volumes to a temporary folder and start the worker; returns a WorkerProcess."""
        from smartimaging.dce.scene import write_inputs_for_worker
        from smartimaging.worker import WorkerProcess

        if t1Node is None:
            raise ValueError(_("Select the T1 volume first."))
        self.removeScratchFolder()
        self._scratchFolder = tempfile.mkdtemp(prefix="DCESynthesis-")
        arguments = write_inputs_for_worker(t1Node, realDceNode, self._scratchFolder)
        return WorkerProcess("dce-synthesize", [*arguments, "--device", device], python=self.workerPython())

    def finishSynthesis(self, t1Node, event):
        """Result volume nodes (and metrics table) from the worker's files."""
        from smartimaging.dce import scene as dce_scene

        nodes = dce_scene.import_worker_result(slicer.mrmlScene, t1Node, event)
        self.removeScratchFolder()
        return nodes

    def removeScratchFolder(self):
        """Delete the worker's temporary input/output folder."""
        import shutil

        if self._scratchFolder:
            shutil.rmtree(self._scratchFolder, ignore_errors=True)
            self._scratchFolder = None

    def synthesize(self, t1Node, realDceNode=None, device="cpu"):
        """Synchronous synthesis (for scripts and the self-test): dict of result nodes."""
        from smartimaging.dce import scene as dce_scene
        from smartimaging.dce.synthesis import DCESynthesizer

        return dce_scene.synthesize(slicer.mrmlScene, t1Node, DCESynthesizer.load(device=device), realDceNode)

    def showSideBySide(self, t1Node, syntheticNode, realDceNode=None, mipNode=None, tableNode=None):
        """Linked views T1 | synthetic DCE | real DCE | subtraction MIP."""
        from smartimaging.dce import scene as dce_scene

        layoutNode = slicer.app.layoutManager().layoutLogic().GetLayoutNode()
        dce_scene.show_side_by_side(slicer.mrmlScene, layoutNode, {
            "DCE-T1": t1Node, "DCE-Synthetic": syntheticNode, "DCE-Real": realDceNode, "DCE-MIP": mipNode})
        if tableNode is not None:
            slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(tableNode.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()


#
# DCESynthesisTest
#


class DCESynthesisTest(ScriptedLoadableModuleTest):
    """Runs the real generator (demo weights) on a small phantom T1 / DCE pair."""

    def setUp(self):
        """Do whatever is needed to reset the state - typically a scene clear will be enough."""
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Run as few or as many tests as needed here."""
        self.setUp()
        self.test_DCESynthesis1()

    def test_DCESynthesis1(self):
        """Phantom T1 + real DCE → synthetic DCE on the T1's grid, subtraction MIP, metrics table."""
        self.delayDisplay("Starting the test")
        _ensureSmartImagingImportable()
        import numpy as np

        from smartimaging.dce.cohort import phantom_image
        from smartimaging.mrml import ijk_to_ras_matrix, sitk_to_volume_node
        from smartimaging.phantoms.breast_mri import make_breast_mri_phantom

        case = make_breast_mri_phantom(960_000, shape=(8, 96, 96))
        volumes = []
        for name, array in (("phantom T1", case.t1), ("phantom DCE", case.dce)):
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
            sitk_to_volume_node(phantom_image(array, case.spacing, (-96.0, -60.0, 10.0)), node)
            volumes.append(node)
        logic = DCESynthesisLogic()
        nodes = logic.synthesize(volumes[0], volumes[1])
        self.assertTrue(np.array_equal(ijk_to_ras_matrix(nodes["synthetic"]), ijk_to_ras_matrix(volumes[0])))
        self.assertEqual(slicer.util.arrayFromVolume(nodes["mip"]).shape, (1, 96, 96))
        self.assertEqual(nodes["table"].GetCellText(0, 0), "SSIM (mean of slices)")
        logic.showSideBySide(volumes[0], nodes["synthetic"], volumes[1], nodes["mip"], nodes["table"])
        self.delayDisplay("Test passed")
