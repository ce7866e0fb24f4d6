import json
import logging
import os
import sys
import tempfile
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, vtkMRMLTableNode
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

DEPENDENCIES = ["torch", "monai", "safetensors", "pydicom", "sklearn", "tqdm", "matplotlib"]  # import names
SIDE_BY_SIDE_LAYOUT_ID = 20260  # anterior | posterior | table
SIDE_BY_SIDE_LAYOUT = """
<layout type="horizontal" split="true">
 <item><view class="vtkMRMLSliceNode" singletontag="Red">
  <property name="orientation" action="default">Axial</property>
  <property name="viewlabel" action="default">A</property></view></item>
 <item><view class="vtkMRMLSliceNode" singletontag="Yellow">
  <property name="orientation" action="default">Axial</property>
  <property name="viewlabel" action="default">P</property></view></item>
 <item><view class="vtkMRMLTableViewNode" singletontag="TableView1">
  <property name="viewlabel" action="default">T</property></view></item>
</layout>
"""


def _ensureSmartImagingImportable():
    """Put the repository root on sys.path when the module runs from a source checkout ("Additional module paths")."""
    try:
        import smartimaging  # noqa: F401
    except ImportError:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


#
# BoneScanBSTBI
#


class BoneScanBSTBI(ScriptedLoadableModule):
    """Uses ScriptedLoadableModule base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Bone Scan BSTBI")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "SmartImaging")]
        self.parent.dependencies = []
        self.parent.contributors = ["SmartImaging developers"]
        self.parent.helpText = _("""
Whole-body bone scan (99mTc-MDP, anterior/posterior): a ResNet34 flags metastasis and bladder, a U-Net segments them,
you remove false positives in the Segment Editor, and the Bone Scan Tumour Burden Index (BSTBI) is computed on the
four sub-images (2 views × 2 grey-level settings). The bundled models are DEMO WEIGHTS trained on synthetic
phantoms: not for clinical use.
""")
        self.parent.acknowledgementText = _("""
Reproduces the bone-scan intelligent diagnosis model and BSTBI (formula 1, K = 5). Built on 3D Slicer, MONAI and
PyTorch.
""")


#
# BoneScanBSTBIParameterNode
#


@parameterNodeWrapper
class BoneScanBSTBIParameterNode:
    """
    anteriorVolume - anterior view (or a two-frame volume with both views).
    posteriorVolume - optional posterior view.
    aiSegmentation - the model's segmentation, kept unchanged.
    editedSegmentation - the reader's corrected copy used for BSTBI.
    resultTable - BSTBI table.
    baselineTable - BSTBI table of an earlier study, for follow-up.
    excludeLesions - lesion numbers left out of BSTBI.
    device - auto, cpu or cuda.
    """

    anteriorVolume: vtkMRMLScalarVolumeNode
    posteriorVolume: vtkMRMLScalarVolumeNode
    aiSegmentation: vtkMRMLSegmentationNode
    editedSegmentation: vtkMRMLSegmentationNode
    resultTable: vtkMRMLTableNode
    baselineTable: vtkMRMLTableNode
    excludeLesions: str = ""
    device: Annotated[str, Choice(["auto", "cpu", "cuda"])] = "auto"


#
# BoneScanBSTBIWidget
#


class BoneScanBSTBIWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Uses ScriptedLoadableModuleWidget base class, available at:
    https://github.com/Slicer/Slicer/blob/main/Base/Python/slicer/ScriptedLoadableModule.py
    """

    def __init__(self, parent=None) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)  # needed for parameter node observation
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._worker = None
        self._workerVolumes = None
        self._pollTimer = None

    def setup(self) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.setup(self)

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/BoneScanBSTBI.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = BoneScanBSTBILogic()

        self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(self.logic.getSegmentEditorNode())

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.segmentButton.connect("clicked(bool)", self.onSegmentButton)
        self.ui.drawButton.connect("clicked(bool)", self.onDrawButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.computeButton.connect("clicked(bool)", self.onComputeButton)
        self.ui.compareButton.connect("clicked(bool)", self.onCompareButton)

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
        if not self._parameterNode.anteriorVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.anteriorVolume = firstVolumeNode

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
        running = self._worker is not None
        p = self._parameterNode
        self.ui.segmentButton.enabled = bool(p and p.anteriorVolume) and not running
        self.ui.drawButton.enabled = bool(p and p.anteriorVolume) and not running
        self.ui.cancelButton.enabled = running
        self.ui.computeButton.enabled = bool(p and p.anteriorVolume and (p.editedSegmentation or p.aiSegmentation))
        self.ui.compareButton.enabled = bool(p and p.resultTable and p.baselineTable)
        if p and p.editedSegmentation:
            self.ui.segmentEditorWidget.setSegmentationNode(p.editedSegmentation)
            self.ui.segmentEditorWidget.setSourceVolumeNode(p.anteriorVolume)

    def _volumes(self):
        p = self._parameterNode
        return [node for node in (p.anteriorVolume, p.posteriorVolume) if node]

    def onSegmentButton(self) -> None:
        """Start the networks in a background process; results arrive in onPollWorker."""
        with slicer.util.tryWithErrorDisplay(_("Failed to start the segmentation."), waitCursor=True):
            if not self.logic.ensureDependencies():
                return
            self._workerVolumes = self._volumes()
            self._worker = self.logic.startSegmentation(self._workerVolumes, self._parameterNode.device)
            self.ui.progressBar.value = 0
            self._pollTimer.start()
            self._updateButtonStates()

    def onDrawButton(self) -> None:
        """Empty metastasis and bladder segments to paint by hand (when the AI misses lesions)."""
        with slicer.util.tryWithErrorDisplay(_("Failed to create the segments to draw."), waitCursor=True):
            p = self._parameterNode
            p.aiSegmentation = None
            p.editedSegmentation = self.logic.drawByHand(self._volumes())
            _startPainting(self.ui.segmentEditorWidget, p.editedSegmentation, p.anteriorVolume)

    def onCancelButton(self) -> None:
        if self._worker:
            self._worker.cancel()
            self._stopWorker()
            self.logic.removeScratchFolder()
            self.ui.progressBar.value = 0
            slicer.util.showStatusMessage(_("Segmentation cancelled."), 3000)

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
        with slicer.util.tryWithErrorDisplay(_("Failed to load the segmentation."), waitCursor=True):
            ai, edited = self.logic.finishSegmentation(self._workerVolumes, event)
            self._parameterNode.aiSegmentation = ai
            self._parameterNode.editedSegmentation = edited
            self.ui.progressBar.value = 100

    def _onWorkerError(self, message, details) -> None:
        slicer.util.errorDisplay(message, detailedText=details or None)

    def onComputeButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to compute BSTBI."), waitCursor=True):
            p = self._parameterNode
            table = self.logic.computeBSTBI(self._volumes(), p.editedSegmentation or p.aiSegmentation,
                                            p.excludeLesions, p.resultTable)
            p.resultTable = table
            self._showDomain(table)
            self.logic.showResult(self._volumes(), p.editedSegmentation or p.aiSegmentation, table)

    def _showDomain(self, tableNode) -> None:
        """The result's domain check under the button, in bold red when the image is outside the training data."""
        from smartimaging.result_nodes import domain_check, domain_sentence

        domain = domain_check(tableNode) if tableNode else None
        outside = bool(domain) and domain["verdict"] == "outside"
        self.ui.domainLabel.text = domain_sentence(domain) if domain else ""
        self.ui.domainLabel.styleSheet = "color: #d32f2f; font-weight: bold;" if outside else ""

    def onCompareButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to compare with the baseline."), waitCursor=True):
            table = self.logic.compare(self._parameterNode.baselineTable, self._parameterNode.resultTable)
            self.logic.showTable(table)


def _startPainting(segmentEditorWidget, segmentationNode, volumeNode) -> None:
    """Segment Editor on the segmentation's first segment with the Paint effect selected."""
    segmentEditorWidget.setSegmentationNode(segmentationNode)
    segmentEditorWidget.setSourceVolumeNode(volumeNode)
    segmentEditorWidget.setCurrentSegmentID(segmentationNode.GetSegmentation().GetNthSegmentID(0))
    segmentEditorWidget.setActiveEffectByName("Paint")


#
# BoneScanBSTBILogic
#


class BoneScanBSTBILogic(ScriptedLoadableModuleLogic):
    """Thin wrapper of smartimaging.bonescan.scene: takes nodes, never widgets."""

    def __init__(self) -> None:
        """Called when the logic class is instantiated. Can be used for initializing member variables."""
        ScriptedLoadableModuleLogic.__init__(self)
        _ensureSmartImagingImportable()
        self._scratchFolder = None

    def getParameterNode(self):
        return BoneScanBSTBIParameterNode(super().getParameterNode())

    def getSegmentEditorNode(self):
        node = slicer.mrmlScene.GetSingletonNode("BoneScanBSTBI", "vtkMRMLSegmentEditorNode")
        if node is None:
            node = slicer.vtkMRMLSegmentEditorNode()
            node.SetSingletonTag("BoneScanBSTBI")
            node = slicer.mrmlScene.AddNode(node)
        return node

    def ensureDependencies(self) -> bool:
        """Install what is missing, with the user's consent (torch through the PyTorch extension)."""
        from smartimaging.slicer_dependencies import ensure

        return ensure(DEPENDENCIES, "Bone Scan BSTBI")

    @staticmethod
    def workerPython():
        import shutil

        return shutil.which("PythonSlicer") or sys.executable

    def startSegmentation(self, volumeNodes, device="auto"):
        """Write the volumes to a temporary folder and start the worker; returns a WorkerProcess."""
        from smartimaging.bonescan.scene import write_volumes_for_worker
        from smartimaging.worker import WorkerProcess

        if not volumeNodes:
            raise ValueError(_("Select the bone-scan volume first."))
        self.removeScratchFolder()
        folder = tempfile.mkdtemp(prefix="BoneScanBSTBI-")
        self._scratchFolder = folder
        inputs = write_volumes_for_worker(volumeNodes, folder)
        arguments = ["--input", *map(str, inputs), "--output-dir", folder, "--device", device]
        return WorkerProcess("bonescan-segment", arguments, python=self.workerPython())

    def finishSegmentation(self, volumeNodes, event):
        """AI segmentation node(s) from the worker result, plus the reader's editable copy."""
        from smartimaging.bonescan import scene as bonescan_scene

        aiNodes = bonescan_scene.import_worker_result(slicer.mrmlScene, volumeNodes, event)
        self.removeScratchFolder()
        return self._withEditableCopies(aiNodes)

    def removeScratchFolder(self):
        """Delete the worker's temporary input/output folder."""
        import shutil

        if self._scratchFolder:
            shutil.rmtree(self._scratchFolder, ignore_errors=True)
            self._scratchFolder = None

    @staticmethod
    def _withEditableCopies(aiNodes):
        """Editable copies of every AI node (AI nodes hidden, kept unchanged); returns the first pair."""
        from smartimaging.segmentation_nodes import editable_copy

        editedNodes = [editable_copy(slicer.mrmlScene, node) for node in aiNodes]
        for node in aiNodes:
            node.GetDisplayNode().SetVisibility(False)
        return aiNodes[0], editedNodes[0]

    def segment(self, volumeNodes, device="cpu"):
        """Synchronous segmentation (for scripts and the self-test): (AI node, edited copy)."""
        from smartimaging.bonescan import scene as bonescan_scene
        from smartimaging.bonescan.pipeline import BoneScanModels

        aiNodes, _result = bonescan_scene.segment(slicer.mrmlScene, volumeNodes, BoneScanModels.load(device=device))
        return self._withEditableCopies(aiNodes)

    def drawByHand(self, volumeNodes):
        """Empty, coded metastasis and bladder segments on each view's geometry for the reader to paint; returns
        the first view's (the others are found through their source volume, as for the AI's)."""
        from smartimaging.segmentation_nodes import drawn_segmentation
        from smartimaging.segments import BONESCAN_SEGMENTS

        if not volumeNodes:
            raise ValueError(_("Select the anterior view first."))
        nodes = [drawn_segmentation(slicer.mrmlScene, volume, BONESCAN_SEGMENTS, f"{volume.GetName()} drawn metastases")
                 for volume in volumeNodes]
        return nodes[0]

    def computeBSTBI(self, volumeNodes, segmentationNode, excludeLesions="", tableNode=None):
        from smartimaging.bonescan import scene as bonescan_scene
        from smartimaging.bonescan.pipeline import parse_lesion_ids

        exclude = parse_lesion_ids(excludeLesions)
        segmentations = self._segmentationsPerVolume(volumeNodes, segmentationNode)
        table, result = bonescan_scene.compute_bstbi(slicer.mrmlScene, volumeNodes, segmentations, exclude, tableNode)
        logging.info("BSTBI %s", json.dumps(result.bstbi))
        return table

    @staticmethod
    def _segmentationsPerVolume(volumeNodes, segmentationNode):
        """One segmentation per volume: the posterior view's AI/edited node is found through its source volume."""
        from smartimaging.segmentation_nodes import ROLE, SOURCE_VOLUME

        nodes = [segmentationNode]
        role = segmentationNode.GetAttribute(ROLE)
        for volume in volumeNodes[1:]:
            match = [n for n in slicer.util.getNodesByClass("vtkMRMLSegmentationNode")
                     if n.GetNodeReferenceID(SOURCE_VOLUME) == volume.GetID()
                     and n.GetAttribute(ROLE) == role]
            if not match:
                raise ValueError(_("No segmentation found for {volume}.").format(volume=volume.GetName()))
            nodes.append(match[-1])
        return nodes

    def compare(self, baselineTable, followupTable):
        from smartimaging.bonescan import scene as bonescan_scene

        return bonescan_scene.compare(slicer.mrmlScene, baselineTable, followupTable)

    def showTable(self, tableNode):
        layoutManager = slicer.app.layoutManager()
        layoutNode = layoutManager.layoutLogic().GetLayoutNode()
        if not layoutNode.IsLayoutDescription(SIDE_BY_SIDE_LAYOUT_ID):
            layoutNode.AddLayoutDescription(SIDE_BY_SIDE_LAYOUT_ID, SIDE_BY_SIDE_LAYOUT)
        layoutManager.setLayout(SIDE_BY_SIDE_LAYOUT_ID)
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(tableNode.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()

    def showResult(self, volumeNodes, segmentationNode, tableNode):
        """Anterior | posterior | table, with the segmentation overlaid."""
        self.showTable(tableNode)
        layoutManager = slicer.app.layoutManager()
        for viewName, volume in zip(["Red", "Yellow"], volumeNodes, strict=False):
            composite = layoutManager.sliceWidget(viewName).mrmlSliceCompositeNode()
            composite.SetBackgroundVolumeID(volume.GetID())
            layoutManager.sliceWidget(viewName).sliceLogic().FitSliceToAll()
        segmentationNode.CreateDefaultDisplayNodes()
        segmentationNode.GetDisplayNode().SetVisibility(True)


#
# BoneScanBSTBITest
#


def _phantomViews():
    """A bone-scan phantom (seed 9) and its anterior and posterior views as volume nodes of the scene."""
    import SimpleITK as sitk

    from smartimaging.mrml import sitk_to_volume_node
    from smartimaging.phantoms.bonescan import PIXEL_MM, make_bone_scan_phantom

    case = make_bone_scan_phantom(seed=9)
    volumes = []
    for name in ("anterior", "posterior"):
        image = sitk.GetImageFromArray(case.views[name][None])
        image.SetSpacing((PIXEL_MM, PIXEL_MM, 1.0))
        node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"phantom {name}")
        sitk_to_volume_node(image, node)
        volumes.append(node)
    return case, volumes


class BoneScanBSTBITest(ScriptedLoadableModuleTest):
    """Runs the real pipeline (demo weights) on a small phantom case."""

    def setUp(self):
        """Do whatever is needed to reset the state - typically a scene clear will be enough."""
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Run as few or as many tests as needed here."""
        self.setUp()
        self.test_BoneScanBSTBI1()
        self.setUp()
        self.test_BoneScanBSTBIDrawnSegments()

    def test_BoneScanBSTBI1(self):
        """Phantom with metastases: segment, erase one lesion in the edited copy, BSTBI must drop."""
        self.delayDisplay("Starting the test")
        _ensureSmartImagingImportable()
        import numpy as np

        _, volumes = _phantomViews()  # 33 metastases

        logic = BoneScanBSTBILogic()
        ai, edited = logic.segment(volumes)
        self.assertEqual(ai.GetAttribute("SmartImaging.Role"), "AI")
        segmentation = edited.GetSegmentation()
        names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
        self.assertEqual(names, ["Bone metastasis", "Urinary bladder"])

        table = logic.computeBSTBI(volumes, edited)
        before = float(table.GetAttribute("SmartImaging.BSTBI"))
        self.assertGreater(before, 0.0)
        self.assertLessEqual(before, 1.0)

        table = logic.computeBSTBI(volumes, edited, excludeLesions="1", tableNode=table)
        after = float(table.GetAttribute("SmartImaging.BSTBI"))
        self.assertLess(after, before)
        self.assertTrue(np.isfinite(after))
        self.delayDisplay("Test passed")

    def test_BoneScanBSTBIDrawnSegments(self):
        """No AI: metastases drawn by hand on both views (painted through the segmentation API) → BSTBI > 0."""
        self.delayDisplay("Starting the drawn-segments test")
        _ensureSmartImagingImportable()
        from smartimaging.phantoms.bonescan import LESION

        case, volumes = _phantomViews()

        logic = BoneScanBSTBILogic()
        drawn = logic.drawByHand(volumes)
        segmentation = drawn.GetSegmentation()
        names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
        self.assertEqual(names, ["Bone metastasis", "Urinary bladder"])
        self.assertEqual(float(logic.computeBSTBI(volumes, drawn).GetAttribute("SmartImaging.BSTBI")), 0.0)
        for name, volume, segmentationNode in zip(("anterior", "posterior"), volumes,
                                                  logic._segmentationsPerVolume(volumes, drawn), strict=True):
            metastases = (case.masks[name] == LESION).astype("uint8")[None]
            slicer.util.updateSegmentBinaryLabelmapFromArray(
                metastases, segmentationNode, segmentationNode.GetSegmentation().GetNthSegmentID(0), volume)
        self.assertGreater(float(logic.computeBSTBI(volumes, drawn).GetAttribute("SmartImaging.BSTBI")), 0.0)
        self.delayDisplay("Test passed")
