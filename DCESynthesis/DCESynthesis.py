import os
import sys
from typing import Annotated

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

DEPENDENCIES = ["torch", "safetensors", "pydicom", "tqdm"]  # import names


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
    """Binds the controls to the module's reading flow (smartimaging.dce.flow.DCEFlow, the one the reading station
    drives): the widget selects the volumes, starts the synthesis and shows what it made."""

    def __init__(self, parent=None) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._steps = None
        self._training = None

    def setup(self) -> None:
        """Called when the user opens the module the first time and the widget is initialized."""
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/DCESynthesis.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = DCESynthesisLogic()

        from smartimaging.desktop import WidgetSteps

        self._steps = WidgetSteps(self.ui.progressBar, self._onSynthesized, self._updateButtonStates)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.synthesizeButton.connect("clicked(bool)", self.onSynthesizeButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.showButton.connect("clicked(bool)", self.onShowButton)
        self.ui.exportDicomButton.connect("clicked(bool)", self.onExportDicomButton)
        self.ui.exportReportButton.connect("clicked(bool)", self.onExportReportButton)
        from smartimaging.desktop_sections import DCERegionsSection

        self._regions = DCERegionsSection(self.layout, self.logic.showRegions, self.logic.goToRegion)  # as the station
        from smartimaging.desktop_worklist import WorklistSection

        self._worklist = WorklistSection(self.layout, self.logic.flow, lambda: self._parameterNode, None)
        from smartimaging.desktop_training import TrainingSection

        self._training = TrainingSection(self.layout, self._worklist)  # the generator Synthesize uses; fine-tune it

        self.initializeParameterNode()

    def cleanup(self) -> None:
        """Called when the application closes and the module widget is destroyed."""
        if self._steps:
            self._steps.abandon()
        if self._training:
            self._training.abandon()
        self.removeObservers()

    def enter(self) -> None:
        """Called each time the user opens this module."""
        self.initializeParameterNode()
        from smartimaging.desktop import warm_up

        warm_up(self.logic.flow, DEPENDENCIES)

    def exit(self) -> None:
        """Called each time the user opens a different module."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._updateButtonStates)

    def onSceneStartClose(self, caller, event) -> None:
        """Called just before the scene is closed: a running synthesis stops (its nodes would be gone)."""
        self._steps.abandon()
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
        busy = self._steps.busy
        from smartimaging.desktop import show_reading_display

        show_reading_display("DCESynthesis", p.t1Volume if p else None, "T1")  # preset, caption
        self.ui.exportDicomButton.enabled = self.logic.flow.result is not None and not busy
        self.ui.exportReportButton.enabled = self.logic.flow.result is not None and not busy
        self.ui.synthesizeButton.enabled = bool(p and p.t1Volume) and not busy
        self.ui.cancelButton.enabled = busy
        self.ui.showButton.enabled = bool(p and p.syntheticVolume)
        self._training.update()  # the Model list follows the open worklist

    def onSynthesizeButton(self) -> None:
        """Start the generator in a background process; the result arrives in _onSynthesized."""
        with slicer.util.tryWithErrorDisplay(_("Failed to start the synthesis."), waitCursor=True):
            if not self.logic.ensureDependencies():
                return
            flow = self.logic.select(self._parameterNode)
            self._steps.start(flow.compute(self._steps.progress))
            self._updateButtonStates()

    def onExportDicomButton(self) -> None:
        """The synthetic DCE as a DICOM series marked SYNTHETIC and its SR into a folder the reader picks
        (smartimaging.desktop.export_dicom)."""
        from smartimaging.desktop import export_dicom

        export_dicom(self.logic.flow, self.parent)

    def onExportReportButton(self) -> None:
        """The case report (HTML) and the result CSV into a folder the reader picks
        (smartimaging.desktop.export_report)."""
        from smartimaging.desktop import export_report

        export_report(self.logic.flow, self.parent)

    def onCancelButton(self) -> None:
        self._steps.cancel()

    def _onSynthesized(self, result) -> None:
        from smartimaging.desktop import show_domain

        p, volumes = self._parameterNode, self.logic.flow.extra_nodes
        p.syntheticVolume, p.subtractionVolume = volumes["synthetic"], volumes["subtraction"]
        p.mipVolume = volumes["mip"]
        p.metricsTable = result.table_node
        show_domain(self.ui.domainLabel, p.metricsTable or p.syntheticVolume)  # no table without a real DCE
        self.onShowButton()

    def onShowButton(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to show the volumes."), waitCursor=True):
            p = self._parameterNode
            self.logic.showSideBySide(p.t1Volume, p.syntheticVolume, p.realDceVolume, p.mipVolume, p.metricsTable)
            self.logic.showRegions(self._regions.shown.checked)
            self._regions.show(self.logic.regionLegend())


#
# DCESynthesisLogic
#


class DCESynthesisLogic(ScriptedLoadableModuleLogic):
    """The module's reading flow (smartimaging.dce.flow.DCEFlow) on Slicer's scene: takes nodes, never widgets."""

    def __init__(self) -> None:
        """Called when the logic class is instantiated. Can be used for initializing member variables."""
        ScriptedLoadableModuleLogic.__init__(self)
        _ensureSmartImagingImportable()
        from smartimaging.dce.flow import DCEFlow
        from smartimaging.desktop import worker_python

        self.flow = DCEFlow(slicer.mrmlScene, python=worker_python())

    def getParameterNode(self):
        return DCESynthesisParameterNode(super().getParameterNode())

    def ensureDependencies(self) -> bool:
        """Install what is missing, with the user's consent (torch through the PyTorch extension)."""
        from smartimaging.slicer_dependencies import ensure

        return ensure(DEPENDENCIES, "DCE Synthesis")

    def select(self, parameterNode):
        """The flow with the parameter node's T1, real DCE, metrics table and device; returns the flow."""
        from smartimaging.desktop import torch_device

        p = parameterNode
        self.flow.device = torch_device(p.device)
        self.flow.select({"T1": p.t1Volume, "DCE": p.realDceVolume}, table_node=p.metricsTable)
        return self.flow

    def showSideBySide(self, t1Node, syntheticNode, realDceNode=None, mipNode=None, tableNode=None):
        """Linked views T1 | synthetic DCE | real DCE | subtraction MIP; the regions that enhance on the real DCE
        outlined on the synthetic and the real DCE views (named by whether they show on the synthetic one)."""
        from smartimaging.dce import scene as dce_scene

        layoutNode = slicer.app.layoutManager().layoutLogic().GetLayoutNode()
        dce_scene.show_side_by_side(slicer.mrmlScene, layoutNode, {
            "DCE-T1": t1Node, "DCE-Synthetic": syntheticNode, "DCE-Real": realDceNode, "DCE-MIP": mipNode},
            self.flow.regions)
        if tableNode is not None:
            slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(tableNode.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()

    def regionLegend(self):
        """The enhancing regions of the synthesis, named and numbered as outlined and in the table ([] without)."""
        from smartimaging.dce import scene as dce_scene

        return dce_scene.region_legend(self.flow.regions) if self.flow.regions is not None else []

    def showRegions(self, shown):
        """The enhancing regions' outlines on the synthetic and the real DCE views, or hidden."""
        from smartimaging.dce import scene as dce_scene

        if self.flow.regions is not None:
            dce_scene.show_regions(slicer.mrmlScene, self.flow.regions, dce_scene.REGION_VIEWS, shown)

    def goToRegion(self, number):
        """The T1, synthetic and real DCE views through the region's centre."""
        from smartimaging.dce import scene as dce_scene

        if self.flow.regions is not None and self.flow.primary is not None:
            dce_scene.go_to_region(slicer.mrmlScene, self.flow.regions, self.flow.primary, number)


#
# DCESynthesisTest
#


class DCESynthesisTest(ScriptedLoadableModuleTest):
    """Runs the module's flow with the real generator (demo weights) on a small phantom T1 / DCE pair."""

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

        from smartimaging.mrml import ijk_to_ras_matrix, sitk_to_volume_node
        from smartimaging.phantoms.breast_mri import make_breast_mri_phantom, phantom_image

        case = make_breast_mri_phantom(960_000, shape=(8, 96, 96))
        logic = DCESynthesisLogic()
        p = logic.getParameterNode()
        for name, array in (("t1Volume", case.t1), ("realDceVolume", case.dce)):
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"phantom {name}")
            sitk_to_volume_node(phantom_image(array, case.spacing, (-96.0, -60.0, 10.0)), node)
            setattr(p, name, node)
        p.device = "cpu"
        flow = logic.select(p)
        result = flow.run(flow.compute())
        volumes = flow.view_volumes
        self.assertTrue(np.array_equal(ijk_to_ras_matrix(volumes["DCE-Synthetic"]), ijk_to_ras_matrix(p.t1Volume)))
        self.assertEqual(slicer.util.arrayFromVolume(volumes["DCE-MIP"]).shape, (1, 96, 96))
        self.assertEqual(result.table_node.GetCellText(0, 0), "SSIM (mean of slices)")
        self.assertTrue(result.headline.startswith("Synthetic DCE: SSIM "))
        logic.showSideBySide(*(volumes[view] for view in ("DCE-T1", "DCE-Synthetic", "DCE-Real", "DCE-MIP")),
                             result.table_node)
        self.delayDisplay("Test passed")
