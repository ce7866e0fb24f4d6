import os
import sys
from typing import Annotated

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

DEPENDENCIES = ["torch", "safetensors", "pydicom", "sklearn"]  # import names


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
    """Binds the controls to the module's reading flow (smartimaging.lvi.flow.LVIFlow, the one the reading station
    drives): the widget selects the nodes, starts the flow's steps and shows what they made."""

    def __init__(self, parent=None) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._steps = None
        self._shownPair = None  # the DCE and T2 last shown side by side
        self._training = None
        self._proposal = None
        self._teaching = None

    def setup(self) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/BreastLVI.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = BreastLVILogic()
        self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(self.logic.getSegmentEditorNode())

        from smartimaging.desktop import WidgetSteps

        self._steps = WidgetSteps(self.ui.progressBar, self._onPredicted, self._updateButtonStates)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.segmentButton.connect("clicked(bool)", self.onSegmentButton)
        self.ui.drawButton.connect("clicked(bool)", self.onDrawButton)
        self.ui.predictButton.connect("clicked(bool)", self.onPredictButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.exportDicomButton.connect("clicked(bool)", self.onExportDicomButton)
        self.ui.exportReportButton.connect("clicked(bool)", self.onExportReportButton)
        from smartimaging.desktop_sections import HeatMapSection

        self._heatMap = HeatMapSection(self.layout, self.onHeatMapChanged)  # as the station's Grad-CAM controls
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
        from smartimaging.desktop import warm_up

        warm_up(self.logic.flow, DEPENDENCIES)

    def exit(self) -> None:
        """Called each time the user opens a different module."""
        self.ui.segmentEditorWidget.uninstallKeyboardShortcuts()
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtonStates)

    def onSceneStartClose(self, caller, event) -> None:
        """Called just before the scene is closed: a running prediction stops (its nodes would be gone)."""
        self._steps.abandon()
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
        busy = self._steps.busy
        from smartimaging.desktop import show_reading_display, show_side_by_side

        show_reading_display("BreastLVI", (p.dceVolume or p.t2Volume) if p else None,  # preset, caption
                             "DCE" if p and p.dceVolume else "T2")
        pair = (p.dceVolume, p.t2Volume) if p and p.dceVolume and p.t2Volume else None
        if pair is not None and pair != self._shownPair:  # the T2 the T2 model reads, beside the DCE
            show_side_by_side("BreastLVI", *pair, "DCE", "FS-T2WI")
        self._shownPair = pair
        volume = bool(p and (p.dceVolume or p.t2Volume))
        self.ui.exportDicomButton.enabled = self.logic.flow.result is not None and not busy
        self.ui.exportReportButton.enabled = self.logic.flow.result is not None and not busy
        self.ui.predictButton.enabled = volume and bool(p.voiSegmentation) and not busy
        self.ui.cancelButton.enabled = busy
        self.ui.segmentButton.enabled = volume and bool(p.lesionPoint) and not busy
        self.ui.drawButton.enabled = volume and not busy
        self._training.update()  # the Model list follows the open worklist
        self._proposal.update()  # and the Proposal network list
        blocks = self._teaching.update()  # a teaching case open: no AI proposal or call before Check
        self.ui.segmentButton.enabled = self.ui.segmentButton.enabled and not blocks["segment"]
        self.ui.drawButton.enabled = self.ui.drawButton.enabled and not blocks["draw"]
        self.ui.predictButton.enabled = self.ui.predictButton.enabled and not blocks["compute"]
        if p and p.voiSegmentation:
            self.ui.segmentEditorWidget.setSegmentationNode(p.voiSegmentation)
            self.ui.segmentEditorWidget.setSourceVolumeNode(p.dceVolume or p.t2Volume)

    def _showSegmentation(self) -> None:
        """The flow's AI VOI and the reader's VOI in the selectors."""
        flow = self.logic.flow
        self._parameterNode.aiSegmentation = flow.ai_segmentation
        self._parameterNode.voiSegmentation = flow.segmentation
        if flow.segmentation is not None:
            from smartimaging.desktop import edit_in

            edit_in(self.ui.segmentEditorWidget, flow.segmentation, flow.primary, flow.ai_segmentation)

    def onSegmentButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to segment the lesion."), waitCursor=True):
            if not self.logic.ensureDependencies():
                return
            flow = self.logic.select(self._parameterNode)
            flow.run(flow.segment())
            self._showSegmentation()
            self._worklist.keep_proposal()  # the worklist's case keeps the AI's proposal

    def onDrawButton(self) -> None:
        """An empty lesion VOI to paint by hand (the way forward when the AI finds nothing, or the wrong thing)."""
        with slicer.util.tryWithErrorDisplay(_("Failed to create the VOI to draw."), waitCursor=True):
            from smartimaging.desktop import start_painting

            self.logic.drawByHand(self._parameterNode)
            self._showSegmentation()
            start_painting(self.ui.segmentEditorWidget, self.logic.flow.segmentation, self.logic.flow.primary)

    def onPredictButton(self) -> None:
        """Start the networks in a background process; the result arrives in _onPredicted."""
        with slicer.util.tryWithErrorDisplay(_("Failed to start the prediction."), waitCursor=True):
            if not self.logic.ensureDependencies():
                return
            flow = self.logic.select(self._parameterNode)
            self._steps.start(flow.compute(self._steps.progress))
            self._updateButtonStates()

    def onHeatMapChanged(self, shown, opacityPercent) -> None:
        self.logic.showHeatMap(shown, opacityPercent)

    def onExportDicomButton(self) -> None:
        """The result as DICOM SEG + SR into a folder the reader picks (smartimaging.desktop.export_dicom)."""
        from smartimaging.desktop import export_dicom

        export_dicom(self.logic.flow, self.parent)

    def onExportReportButton(self) -> None:
        """The case report (HTML) and the result CSV into a folder the reader picks
        (smartimaging.desktop.export_report)."""
        from smartimaging.desktop import export_report

        export_report(self.logic.flow, self.parent)

    def onCancelButton(self) -> None:
        self._steps.cancel()

    def _onPredicted(self, result) -> None:
        from smartimaging.desktop import show_domain

        self._parameterNode.resultTable = result.table_node
        show_domain(self.ui.domainLabel, result.table_node)
        self.logic.showResult(self._heatMap.shown.checked, self._heatMap.opacity.value)


#
# BreastLVILogic
#


class BreastLVILogic(ScriptedLoadableModuleLogic):
    """The module's reading flow (smartimaging.lvi.flow.LVIFlow) on Slicer's scene: takes nodes, never widgets."""

    def __init__(self) -> None:
        """Called when the logic class is instantiated. Can be used for initializing member variables."""
        ScriptedLoadableModuleLogic.__init__(self)
        _ensureSmartImagingImportable()
        from smartimaging.desktop import worker_python
        from smartimaging.lvi.flow import LVIFlow

        self.flow = LVIFlow(slicer.mrmlScene, python=worker_python())

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

    def select(self, parameterNode):
        """The flow with the parameter node's sequences, point, VOI, table and device; returns the flow."""
        from smartimaging.desktop import torch_device

        p = parameterNode
        self.flow.device = torch_device(p.device)
        self.flow.select({"DCE": p.dceVolume, "T2": p.t2Volume}, p.lesionPoint, p.voiSegmentation, p.resultTable)
        return self.flow

    def drawByHand(self, parameterNode):
        """An empty, coded lesion segment on the sequence's geometry for the reader to paint the VOI."""
        self.select(parameterNode).draw_by_hand()
        return self.flow.segmentation

    def showResult(self, heatMapShown=True, opacityPercent=None):
        """The segmented sequence with the first DCE model's Grad-CAM map overlaid (its colour legend in the views),
        and the result table."""
        from smartimaging.heat_legend import DEFAULT_OPACITY_PERCENT
        from smartimaging.reading import style_heat_map

        flow = self.flow
        heatMap = flow.overlay
        if heatMap is not None:
            style_heat_map(heatMap)  # made from an array: it has no display node until now
            slicer.util.setSliceViewerLayers(background=flow.primary, foreground=heatMap)
            self.showHeatMap(heatMapShown, DEFAULT_OPACITY_PERCENT if opacityPercent is None else opacityPercent)
        layoutManager = slicer.app.layoutManager()
        layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(flow.result.table_node.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()

    def showHeatMap(self, shown, opacityPercent):
        """The Grad-CAM map shown (at the opacity) or hidden, its colour legend with it (Slicer 5.12
        slicer.util.setSliceViewerLayers foregroundOpacity; the legend: smartimaging.heat_legend)."""
        from smartimaging.heat_legend import foreground_opacity, show_heat_legend

        heatMap = self.flow.overlay
        if heatMap is None:
            return
        show_heat_legend(heatMap, shown)
        slicer.util.setSliceViewerLayers(foregroundOpacity=foreground_opacity(shown, opacityPercent))


#
# BreastLVITest
#


class BreastLVITest(ScriptedLoadableModuleTest):
    """Runs the module's flow with the real networks (demo weights) on a small LVI phantom with its VOI."""

    def setUp(self):
        """Do whatever is needed to reset the state - typically a scene clear will be enough."""
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Run as few or as many tests as needed here."""
        self.setUp()
        self.test_BreastLVI1()

    def test_BreastLVI1(self):
        """Phantom DCE + T2 + VOI → probabilities per model, fusion, Grad-CAM on the sequence grid, shown."""
        self.delayDisplay("Starting the test")
        _ensureSmartImagingImportable()
        import numpy as np

        from smartimaging.mrml import ijk_to_ras_matrix, sitk_to_volume_node
        from smartimaging.phantoms.breast_mri import make_breast_mri_phantom, phantom_image

        case = make_breast_mri_phantom(970_000, (16, 96, 96), lvi=1)
        logic = BreastLVILogic()
        p = logic.getParameterNode()
        for name, array in (("dceVolume", case.dce2), ("t2Volume", case.t2)):
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"phantom {name}")
            sitk_to_volume_node(phantom_image(array, case.spacing, (-96.0, -70.0, -20.0)), node)
            setattr(p, name, node)
        labelmap = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
        sitk_to_volume_node(phantom_image((case.lesions > 0).astype(np.uint8), case.spacing, (-96.0, -70.0, -20.0)),
                            labelmap)
        p.voiSegmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "VOI")
        slicer.modules.segmentations.logic().ImportLabelmapToSegmentationNode(labelmap, p.voiSegmentation)
        p.device = "cpu"
        flow = logic.select(p)
        result = flow.run(flow.compute())
        self.assertTrue(result.headline.startswith("LVI probability "))
        self.assertIn("fused", [row[0] for row in result.rows])
        for name, heatMap in flow.extra_nodes.items():
            sequence = p.dceVolume if "-dce-" in name else p.t2Volume
            self.assertTrue(np.array_equal(ijk_to_ras_matrix(heatMap), ijk_to_ras_matrix(sequence)))
        logic.showResult()
        self.assertIsNotNone(flow.overlay.GetDisplayNode())
        self.delayDisplay("Test passed")
