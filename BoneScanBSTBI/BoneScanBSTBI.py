import logging
import os
import sys
from typing import Annotated

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

DEPENDENCIES = ["torch", "safetensors", "pydicom", "sklearn", "tqdm", "matplotlib"]  # import names
SIDE_BY_SIDE_LAYOUT_ID = 20261  # anterior | posterior | result table over the lesion list
SIDE_BY_SIDE_LAYOUT = """
<layout type="horizontal" split="true">
 <item><view class="vtkMRMLSliceNode" singletontag="Red">
  <property name="orientation" action="default">Axial</property>
  <property name="viewlabel" action="default">A</property></view></item>
 <item><view class="vtkMRMLSliceNode" singletontag="Yellow">
  <property name="orientation" action="default">Axial</property>
  <property name="viewlabel" action="default">P</property></view></item>
 <item><layout type="vertical" split="true">
  <item><view class="vtkMRMLTableViewNode" singletontag="TableView1">
   <property name="viewlabel" action="default">T</property></view></item>
  <item><view class="vtkMRMLTableViewNode" singletontag="BoneScanLesions">
   <property name="viewlabel" action="default">L</property></view></item>
 </layout></item>
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
        # The extension's sample case and terminology, once Slicer has started (one module does it for all four)
        slicer.app.connect("startupCompleted()", _onStartupCompleted)


def _onStartupCompleted():
    _ensureSmartImagingImportable()
    from smartimaging.slicer_startup import on_startup

    on_startup(os.path.join(os.path.dirname(__file__), "Resources", "Icons", "BoneScanBSTBI.png"))


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
    """Binds the controls to the module's reading flow (smartimaging.bonescan.flow.BoneScanFlow, the one the reading
    station drives): the widget selects the nodes, starts the flow's steps and shows what they made."""

    def __init__(self, parent=None) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)  # needed for parameter node observation
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

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/BoneScanBSTBI.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = BoneScanBSTBILogic()

        self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(self.logic.getSegmentEditorNode())

        from smartimaging.desktop import WidgetSteps

        self._steps = WidgetSteps(self.ui.progressBar, self._onSegmented, self._updateButtonStates)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.segmentButton.connect("clicked(bool)", self.onSegmentButton)
        self.ui.drawButton.connect("clicked(bool)", self.onDrawButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.computeButton.connect("clicked(bool)", self.onComputeButton)
        self.ui.compareButton.connect("clicked(bool)", self.onCompareButton)
        self.ui.exportDicomButton.connect("clicked(bool)", self.onExportDicomButton)
        self.ui.exportReportButton.connect("clicked(bool)", self.onExportReportButton)
        from smartimaging.desktop_sections import FollowUpSection, LesionReviewSection

        self._lesions = LesionReviewSection(self.layout, self.onToggleLesion)  # as the station's lesion list
        self._followUp = FollowUpSection(self.layout, self.onAddBaselineResult, self.onAddResultFolder,
                                         self.onRemoveEarlierStudy, self.onShowTrend)
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
        """Called just before the scene is closed: a running segmentation stops (its volumes would be gone); the
        follow-up's studies go with the scene's results."""
        self._steps.abandon()
        self.logic.forgetStudies()
        self._lesions.show(None)
        self._followUp.show([], [])
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
        running = self._steps.busy
        p = self._parameterNode
        from smartimaging.desktop import show_reading_display

        show_reading_display("BoneScanBSTBI", p.anteriorVolume if p else None)  # black on white, ANT / POST
        self.ui.exportDicomButton.enabled = self.logic.flow.result is not None and not running
        self.ui.exportReportButton.enabled = self.logic.flow.result is not None and not running
        self.ui.segmentButton.enabled = bool(p and p.anteriorVolume) and not running
        self.ui.drawButton.enabled = bool(p and p.anteriorVolume) and not running
        self.ui.cancelButton.enabled = running
        self.ui.computeButton.enabled = bool(p and p.anteriorVolume and (p.editedSegmentation or p.aiSegmentation)
                                             and not running)
        self.ui.compareButton.enabled = bool(p and p.resultTable and p.baselineTable)
        self._training.update()  # the Model list follows the open worklist
        self._proposal.update()  # and the Proposal network list
        blocks = self._teaching.update()  # a teaching case open: no AI proposal or call before Check
        self.ui.segmentButton.enabled = self.ui.segmentButton.enabled and not blocks["segment"]
        self.ui.drawButton.enabled = self.ui.drawButton.enabled and not blocks["draw"]
        self.ui.computeButton.enabled = self.ui.computeButton.enabled and not blocks["compute"]
        if p and p.editedSegmentation:
            self.ui.segmentEditorWidget.setSegmentationNode(p.editedSegmentation)
            self.ui.segmentEditorWidget.setSourceVolumeNode(p.anteriorVolume)

    def _showSegmentation(self) -> None:
        """The flow's AI segmentation and the reader's copy (of the first view) in the selectors."""
        flow = self.logic.flow
        self._parameterNode.aiSegmentation = flow.ai_segmentation
        self._parameterNode.editedSegmentation = flow.segmentation
        if flow.segmentation is not None:
            from smartimaging.desktop import edit_in

            edit_in(self.ui.segmentEditorWidget, flow.segmentation, flow.primary, flow.ai_segmentation)

    def onSegmentButton(self) -> None:
        """Start the networks in a background process; the segmentation arrives in _onSegmented."""
        with slicer.util.tryWithErrorDisplay(_("Failed to start the segmentation."), waitCursor=True):
            if not self.logic.ensureDependencies():
                return
            flow = self.logic.select(self._parameterNode)
            self._steps.start(flow.segment(self._steps.progress))
            self._updateButtonStates()

    def _onSegmented(self, _value) -> None:
        self._showSegmentation()
        self._worklist.keep_proposal()  # the worklist's case keeps the AI's proposal

    def onDrawButton(self) -> None:
        """Empty metastasis and bladder segments to paint by hand (when the AI misses lesions)."""
        with slicer.util.tryWithErrorDisplay(_("Failed to create the segments to draw."), waitCursor=True):
            from smartimaging.desktop import start_painting

            self.logic.drawByHand(self._parameterNode)
            self._showSegmentation()
            start_painting(self.ui.segmentEditorWidget, self.logic.flow.segmentation, self.logic.flow.primary)

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

    def onComputeButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to compute BSTBI."), waitCursor=True):
            self._showComputed(self.logic.computeBSTBI(self._parameterNode))

    def onToggleLesion(self, lesionId) -> None:
        """The reader unchecked (rejected) or checked (accepted) a lesion of the list: BSTBI again."""
        with slicer.util.tryWithErrorDisplay(_("Failed to reject or accept the lesion."), waitCursor=True):
            self._showComputed(self.logic.toggleLesion(self._parameterNode, lesionId))
        self._lesions.show(self.logic.flow.result_record)  # a refused click leaves its box as the result has it

    def _showComputed(self, result) -> None:
        from smartimaging.desktop import show_domain

        p = self._parameterNode
        p.resultTable = result.table_node
        show_domain(self.ui.domainLabel, result.table_node)
        self.logic.showResult()
        self._lesions.show(self.logic.flow.result_record)

    def onAddBaselineResult(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to add the earlier study."), waitCursor=True):
            self.logic.addEarlierStudy(tableNode=self._parameterNode.baselineTable)
        self._followUp.show(self.logic.followUp.lines())

    def onAddResultFolder(self, folder) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to add the earlier study."), waitCursor=True):
            self.logic.addEarlierStudy(folder=folder)
        self._followUp.show(self.logic.followUp.lines())

    def onRemoveEarlierStudy(self, index) -> None:
        self.logic.followUp.remove(index)
        self._followUp.show(self.logic.followUp.lines())

    def onShowTrend(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to show the trend."), waitCursor=True):
            self._followUp.show(self.logic.followUp.lines(), self.logic.showTrend())

    def onCompareButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to compare with the baseline."), waitCursor=True):
            table = self.logic.compare(self._parameterNode.baselineTable, self._parameterNode.resultTable)
            self.logic.showTable(table)


#
# BoneScanBSTBILogic
#


class BoneScanBSTBILogic(ScriptedLoadableModuleLogic):
    """The module's reading flow (smartimaging.bonescan.flow.BoneScanFlow) on Slicer's scene: takes nodes, never
    widgets."""

    def __init__(self) -> None:
        """Called when the logic class is instantiated. Can be used for initializing member variables."""
        ScriptedLoadableModuleLogic.__init__(self)
        _ensureSmartImagingImportable()
        from smartimaging.bonescan.flow import BoneScanFlow
        from smartimaging.desktop import worker_python

        self.flow = BoneScanFlow(slicer.mrmlScene, python=worker_python())
        self.forgetStudies()

    def forgetStudies(self):
        """No earlier study, no result of this session as a trend point, no trend chart (a new scene)."""
        from smartimaging.bonescan.reading_nodes import FollowUp

        self.followUp = FollowUp()  # the earlier studies the reader added
        self.studyPoints = {}  # result table ID -> its study as a trend point (this session's results)
        self.trendChart = None

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

    def select(self, parameterNode):
        """The flow with the parameter node's views, segmentation, excluded lesions, table and device; returns the
        flow."""
        from smartimaging.desktop import torch_device

        p = parameterNode
        self.flow.device = torch_device(p.device)
        self.flow.select({"scan": p.anteriorVolume, "posterior": p.posteriorVolume}, None,
                         p.editedSegmentation or p.aiSegmentation, p.resultTable)
        self.flow.set_exclude(p.excludeLesions)
        return self.flow

    def drawByHand(self, parameterNode):
        """Empty, coded metastasis and bladder segments on each view's geometry for the reader to paint; returns
        the first view's (the flow keeps the others)."""
        self.select(parameterNode).draw_by_hand()
        return self.flow.segmentation

    def computeBSTBI(self, parameterNode):
        """BSTBI from the reader's segmentation of every view, excluded lesions left out: the flow's result."""
        from smartimaging.bonescan.reading_nodes import current_point

        flow = self.select(parameterNode)
        result = flow.run(flow.compute())
        logging.info("%s: %s", result.headline, result.table_node.GetAttribute("SmartImaging.BoneScanResult"))
        self.studyPoints[result.table_node.GetID()] = current_point(flow, flow.primary.GetName())
        return result

    def toggleLesion(self, parameterNode, lesionId):
        """Reject the lesion (or accept it again) as the station's list does, into the "Exclude lesions" field, and
        compute BSTBI again: the flow's result."""
        from smartimaging.bonescan.reading_nodes import exclude_text

        flow = self.select(parameterNode)
        flow.toggle_lesion(int(lesionId))
        parameterNode.excludeLesions = exclude_text(flow.exclude)
        return self.computeBSTBI(parameterNode)

    def addEarlierStudy(self, tableNode=None, folder=None):
        """An earlier study for the trend: a result table of the scene (this session's, with its date and
        acquisition) or a result folder of `bonescan predict` / `bstbi`, checked against the others and this study."""
        from smartimaging.bonescan.followup import read_result
        from smartimaging.bonescan.reading_nodes import current_point, table_point
        from smartimaging.errors import InputError

        if folder:
            point = read_result(folder)
        elif tableNode is not None:
            point = self.studyPoints.get(tableNode.GetID()) or table_point(tableNode)
        else:
            raise InputError("Select the earlier study's BSTBI table as the baseline, or add its result folder")
        self.followUp.add(point, current_point(self.flow))

    def showTrend(self):
        """The trend of the earlier studies and this one: its plot in the layout (Slicer 5.12
        vtkSlicerPlotsLogic.ShowChartInLayout), its lines returned."""
        from smartimaging.bonescan.followup import trend_lines
        from smartimaging.bonescan.reading_nodes import current_point, trend_chart

        result = self.followUp.trend(current_point(self.flow))
        if self.trendChart is not None and not slicer.mrmlScene.IsNodePresent(self.trendChart):
            self.trendChart = None
        self.trendChart = trend_chart(slicer.mrmlScene, result, self.trendChart, self.flow.primary)
        slicer.modules.plots.logic().ShowChartInLayout(self.trendChart)
        return trend_lines(result)

    def compare(self, baselineTable, followupTable):
        """Baseline vs follow-up BSTBI and the change, as a table node."""
        return self.flow.compare(baselineTable, followupTable)

    def showTable(self, tableNode):
        layoutManager = slicer.app.layoutManager()
        layoutNode = layoutManager.layoutLogic().GetLayoutNode()
        if not layoutNode.IsLayoutDescription(SIDE_BY_SIDE_LAYOUT_ID):
            layoutNode.AddLayoutDescription(SIDE_BY_SIDE_LAYOUT_ID, SIDE_BY_SIDE_LAYOUT)
        layoutManager.setLayout(SIDE_BY_SIDE_LAYOUT_ID)
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(tableNode.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()

    def showResult(self):
        """Anterior | posterior | result table over the lesion list, with the reader's segmentation and the lesion
        numbers overlaid."""
        flow = self.flow
        self.showTable(flow.result.table_node)
        layoutManager = slicer.app.layoutManager()
        for viewName, volume in zip(["Red", "Yellow"], flow.scan_volumes, strict=False):
            composite = layoutManager.sliceWidget(viewName).mrmlSliceCompositeNode()
            composite.SetBackgroundVolumeID(volume.GetID())
            layoutManager.sliceWidget(viewName).sliceLogic().FitSliceToAll()
        for segmentation in flow.segmentations:
            segmentation.CreateDefaultDisplayNodes()
            segmentation.GetDisplayNode().SetVisibility(True)
        lesions = flow.extra_nodes.get("lesion table")  # numbered as in the views; "Exclude lesions" takes them
        if lesions is not None:
            # Slicer 5.12: vtkMRMLScene.GetSingletonNode; vtkMRMLTableViewNode.SetDoPropagateTableSelection (the
            # active table, the result, is not propagated to this view) and SetTableNodeID
            view = slicer.mrmlScene.GetSingletonNode("BoneScanLesions", "vtkMRMLTableViewNode")
            view.SetDoPropagateTableSelection(False)
            view.SetTableNodeID(lesions.GetID())


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
    """Runs the module's flow with the real pipeline (demo weights) on a small phantom case."""

    def setUp(self):
        """Do whatever is needed to reset the state - typically a scene clear will be enough."""
        slicer.mrmlScene.Clear()

    def runTest(self):
        """Run as few or as many tests as needed here."""
        self.setUp()
        self.test_BoneScanBSTBI1()
        self.setUp()
        self.test_BoneScanBSTBIDrawnSegments()

    def _parameters(self, logic):
        """The parameter node with the phantom's anterior and posterior views selected; the phantom case."""
        case, volumes = _phantomViews()  # 33 metastases
        p = logic.getParameterNode()
        p.anteriorVolume, p.posteriorVolume = volumes
        p.device, p.excludeLesions = "cpu", ""
        return case, p

    def test_BoneScanBSTBI1(self):
        """Phantom with metastases: segment, leave lesion 1 out of the reader's result, BSTBI must drop."""
        self.delayDisplay("Starting the test")
        _ensureSmartImagingImportable()
        import numpy as np

        logic = BoneScanBSTBILogic()
        _, p = self._parameters(logic)
        flow = logic.select(p)
        flow.run(flow.segment())
        p.aiSegmentation, p.editedSegmentation = flow.ai_segmentation, flow.segmentation
        self.assertEqual(flow.ai_segmentation.GetAttribute("SmartImaging.Role"), "AI")
        segmentation = flow.segmentation.GetSegmentation()
        names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
        self.assertEqual(names, ["Bone metastasis", "Urinary bladder"])
        self.assertEqual(len(flow.segmentations), 2)

        p.resultTable = logic.computeBSTBI(p).table_node
        before = float(p.resultTable.GetAttribute("SmartImaging.BSTBI"))
        self.assertGreater(before, 0.0)
        self.assertLessEqual(before, 1.0)

        after = float(logic.toggleLesion(p, 1).table_node.GetAttribute("SmartImaging.BSTBI"))  # the list's click
        self.assertEqual(p.excludeLesions, "1")
        self.assertLess(after, before)
        self.assertTrue(np.isfinite(after))
        logic.showResult()
        self.delayDisplay("Test passed")

    def test_BoneScanBSTBIDrawnSegments(self):
        """No AI: metastases drawn by hand on both views (painted through the segmentation API) → BSTBI > 0."""
        self.delayDisplay("Starting the drawn-segments test")
        _ensureSmartImagingImportable()
        from smartimaging.phantoms.bonescan import LESION

        logic = BoneScanBSTBILogic()
        case, p = self._parameters(logic)
        drawn = p.editedSegmentation = logic.drawByHand(p)
        segmentation = drawn.GetSegmentation()
        names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
        self.assertEqual(names, ["Bone metastasis", "Urinary bladder"])
        self.assertEqual(float(logic.computeBSTBI(p).table_node.GetAttribute("SmartImaging.BSTBI")), 0.0)
        for name, volume, segmentationNode in zip(("anterior", "posterior"), logic.flow.scan_volumes,
                                                  logic.flow.segmentations, strict=True):
            metastases = (case.masks[name] == LESION).astype("uint8")[None]
            slicer.util.updateSegmentBinaryLabelmapFromArray(
                metastases, segmentationNode, segmentationNode.GetSegmentation().GetNthSegmentID(0), volume)
        self.assertGreater(float(logic.computeBSTBI(p).table_node.GetAttribute("SmartImaging.BSTBI")), 0.0)
        self.delayDisplay("Test passed")
