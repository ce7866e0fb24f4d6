"""Segmentation nodes shared by the scene adapters: coded segments from label arrays, label arrays back from
(edited) segmentations, the reader's editable copy that keeps AI and edited segments apart, the empty segmentation
the reader draws by hand, where an ROI came from (`roi_source`), and the one rule for "the reader edited the ROI"
with the Dice between the AI's proposal and the reader's segmentation (`edit_check`). For the editors of both GUIs:
the AI's proposal shown as an outline over the reader's filled copy (`show_proposal`), drawn over it again after an
undo or redo (`raise_proposal`, `keep_proposal_on_top`), the brush sizes in mm for an image and a lesion
(`brush_sizes`), and a segment renamed to the lesion kind the reader chose (`relabel`)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from .errors import InputError
from .mrml import place_in_same_study, remove_temporary_labelmap, sitk_to_volume_node, volume_node_to_sitk
from .segments import SegmentSpec

ROLE = "SmartImaging.Role"  # "AI" or "edited"
SOURCE_VOLUME = "SmartImaging.SourceVolume"
AI_REFERENCE = "SmartImaging.AISegmentation"
LABEL_TAG = "SmartImaging.Label"
ROI_SOURCE = "SmartImaging.ROISource"  # who proposed the ROI: CLASSICAL or DRAWN (absent: the AI)
AI, CLASSICAL, DRAWN = "AI", "classical (AI found none)", "drawn by the reader"
PROPOSAL_COLOR = (0.25, 1.0, 0.25)  # green: the AI's proposal, outlined over the reader's filled copy
LESION_MM = {"Bone metastasis": 20.0, "Urinary bladder": 60.0, "Breast mass": 10.0,
             "Breast calcification": 2.0}  # typical diameter of what each segment holds (the brush scales to it)
DEFAULT_LESION_MM = 12.0
UNDO_STATES = 20  # edits the reader can undo in either editor


def segmentation_from_labels(scene, volume_node, labels: np.ndarray, segments: tuple[SegmentSpec, ...], name: str,
                             role: str):
    """Segmentation node with one coded segment per SegmentSpec (its label value in `labels`), on the volume's
    geometry, placed in the volume's study."""
    segmentation_node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
    segmentation = segmentation_node.GetSegmentation()
    reference = volume_node_to_sitk(volume_node)
    labelmap_node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    try:
        for spec in segments:
            mask = sitk.GetImageFromArray((labels == spec.label).astype(np.uint8))
            mask.CopyInformation(reference)
            sitk_to_volume_node(mask, labelmap_node)
            before = {segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())}
            has_voxels = bool(np.any(labels == spec.label))
            if has_voxels:
                slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap_node,
                                                                                         segmentation_node)
            new = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())
                   if segmentation.GetNthSegmentID(i) not in before]
            segment_id = new[0] if has_voxels and new else segmentation.AddEmptySegment(spec.segment_id)
            segment = segmentation.GetSegment(segment_id)
            segment.SetName(spec.name)
            segment.SetColor(*spec.color)
            segment.SetTerminology(spec.terminology_entry())
            segment.SetTag(LABEL_TAG, str(spec.label))
    finally:
        remove_temporary_labelmap(scene, labelmap_node)
    segmentation_node.SetAttribute(ROLE, role)
    segmentation_node.SetNodeReferenceID(SOURCE_VOLUME, volume_node.GetID())
    segmentation_node.CreateDefaultDisplayNodes()
    place_in_same_study(scene, segmentation_node, volume_node)
    return segmentation_node


def labels_from_segmentation(scene, segmentation_node, volume_node, segments: tuple[SegmentSpec, ...]) -> np.ndarray:
    """(k, j, i) label array on the volume's grid; segments are found by their label tag, else by name."""
    segmentation = segmentation_node.GetSegmentation()
    labels = np.zeros(slicer.util.arrayFromVolume(volume_node).shape, np.uint8)
    labelmap_node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    try:
        for spec in segments:
            for index in range(segmentation.GetNumberOfSegments()):
                segment = segmentation.GetNthSegment(index)
                tag = vtk.mutable("")
                tagged = segment.GetTag(LABEL_TAG, tag) and str(tag) == str(spec.label)
                if not (tagged or segment.GetName() == spec.name):
                    continue
                ids = vtk.vtkStringArray()
                ids.InsertNextValue(segmentation.GetNthSegmentID(index))
                if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                        segmentation_node, ids, labelmap_node, volume_node):
                    raise InputError(f"The segment '{segment.GetName()}' could not be read on the grid of "
                                     f"{volume_node.GetName()}; draw it on that image")
                labels[slicer.util.arrayFromVolume(labelmap_node) > 0] = spec.label
    finally:
        remove_temporary_labelmap(scene, labelmap_node)
    return labels


def drawn_segmentation(scene, volume_node, segments: tuple[SegmentSpec, ...], name: str):
    """An empty segmentation for the reader to draw the ROI by hand: one empty segment per SegmentSpec (name,
    terminology, colour, label tag), on the volume's geometry, in the volume's study, marked as drawn by the reader."""
    empty = np.zeros(slicer.util.arrayFromVolume(volume_node).shape, np.uint8)
    node = segmentation_from_labels(scene, volume_node, empty, segments, name, "edited")
    node.SetAttribute(ROI_SOURCE, DRAWN)
    return node


def roi_source(segmentation_node, edited: bool) -> str:
    """Where the ROI of a segmentation came from: "AI", "classical (AI found none)" or "drawn by the reader" (also
    any segmentation SmartImaging did not make); a reader's copy that was `edited` adds ", reader edited" ("reader
    edited" alone for the AI's ROI)."""
    role = segmentation_node.GetAttribute(ROLE)
    source = segmentation_node.GetAttribute(ROI_SOURCE) or (AI if role else DRAWN)
    if source == DRAWN or role != "edited" or not edited:
        return source
    return "reader edited" if source == AI else f"{source}, reader edited"


def editable_copy(scene, ai_segmentation_node):
    """A copy of an AI segmentation for the reader to edit; the AI node stays untouched."""
    name = ai_segmentation_node.GetName()
    edited_name = re.sub(r"\bAI\b", "edited", name, count=1)
    if edited_name == name:
        edited_name = f"{name} (edited)"
    copy = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", edited_name)
    copy.GetSegmentation().DeepCopy(ai_segmentation_node.GetSegmentation())
    copy.SetAttribute(ROLE, "edited")
    for name in ai_segmentation_node.GetAttributeNames() or ():
        if name.startswith("SmartImaging.") and name != ROLE:
            copy.SetAttribute(name, ai_segmentation_node.GetAttribute(name))
    copy.SetNodeReferenceID(SOURCE_VOLUME, ai_segmentation_node.GetNodeReferenceID(SOURCE_VOLUME))
    copy.SetNodeReferenceID(AI_REFERENCE, ai_segmentation_node.GetID())
    copy.CreateDefaultDisplayNodes()
    if ai_segmentation_node.GetDisplayNode() is not None:  # the outline's, made after the copy's: drawn over it
        outline = scene.AddNewNodeByClass("vtkMRMLSegmentationDisplayNode")
        outline.SetVisibility(False)
        ai_segmentation_node.AddAndObserveDisplayNodeID(outline.GetID())
    place_in_same_study(scene, copy, ai_segmentation_node)
    return copy


def edit_check(segmentation_nodes: list, masks_of) -> tuple[bool, dict[str, float] | None]:
    """Whether the reader edited the ROI, and the Dice AI-vs-edited per segment (None when the segmentations are not
    copies of AI proposals). `masks_of(nodes)` gives {segment name: boolean array} over a list of segmentation nodes
    (the AI's or the reader's, in the same order). The rule, for every module: the reader's segmentation (an edited
    copy or one drawn by hand) counts as edited unless it is a copy whose every segment still equals the AI's."""
    from .evaluation import dice  # scikit-learn and SciPy's statistics load only when a result is computed

    ai_nodes = [node.GetNodeReference(AI_REFERENCE) for node in segmentation_nodes]
    dices = None
    if ai_nodes and all(ai_nodes):
        proposed, edited = masks_of(ai_nodes), masks_of(segmentation_nodes)
        dices = {name: dice(proposed[name], mask) for name, mask in edited.items()}
    readers = any(node.GetAttribute(ROLE) == "edited" for node in segmentation_nodes)
    return readers and (not dices or any(value < 1 for value in dices.values())), dices


def show_proposal(ai_node, shown: bool) -> None:
    """Show the AI's proposal (`shown`) as a green outline over the reader's copy (filled, as segmentations are
    shown); hidden, only the reader's copy is seen. The proposal's segments are green in its display node only."""
    display = proposal_display(ai_node)
    display.SetVisibility2DFill(False)
    display.SetVisibility2DOutline(True)
    segmentation = ai_node.GetSegmentation()
    for index in range(segmentation.GetNumberOfSegments()):
        display.SetSegmentOverrideColor(segmentation.GetNthSegmentID(index), *PROPOSAL_COLOR)
    display.SetVisibility(shown)


def raise_proposal(ai_node) -> None:
    """Draw the AI's outline over the reader's copy again after an undo or redo. Restoring a state copies the saved
    segments into the copy (trame-slicer's undo stack by vtkSegmentation.DeepCopy, Slicer's editor by
    vtkSegmentationHistory), in new labelmap objects; Slicer 5.12's 2D segmentation displayable manager keys its
    actors by labelmap object, so the copy gets new ones, added last to the view's renderer: its fill is drawn over
    the outline. Copying the AI's segments onto themselves (same segments and voxels, new labelmap objects) gives the
    outline new actors in turn, drawn last. No display node is replaced: that manager keeps the pointer of a removed
    segmentation display node and may use it later (the crash of an earlier fix)."""
    segmentation = ai_node.GetSegmentation()
    saved = slicer.vtkSegmentation()
    saved.DeepCopy(segmentation)
    segmentation.DeepCopy(saved)
    # outline only and green again: a display node may drop the display properties of segments briefly out
    show_proposal(ai_node, bool(proposal_display(ai_node).GetVisibility()))


def keep_proposal_on_top(copy_node, later) -> None:
    """For Slicer's Segment Editor (desktop), whose Undo and Redo restore a state into new labelmap objects of the
    reader's copy (vtkSegmentationHistory), so that the copy's fill covers the AI's outline: after each modification
    of the copy, once the editor is done (`later(function)`: qt.QTimer.singleShot with 0 ms), the outline of the AI
    node the copy was made from is raised (`raise_proposal`) if the copy's displayed labelmap objects changed. A copy
    already watched stays as it is."""
    if getattr(copy_node, "smartimaging_outline_kept", False):
        return
    copy_node.smartimaging_outline_kept = True  # VTK keeps an object's Python attributes while the object lives
    check = _OutlineCheck(copy_node, later)
    for event in (vtk.vtkCommand.ModifiedEvent, slicer.vtkMRMLDisplayableNode.DisplayModifiedEvent):
        copy_node.AddObserver(event, check.modified)  # Slicer 5.12's Undo() sends DisplayModifiedEvent only


class _OutlineCheck:
    """`keep_proposal_on_top`'s check, observing the copy: its labelmap objects as Slicer's 2D segmentation
    displayable manager keys its actors (by the 2D display representation), compared by identity. It holds those
    labelmaps (none is freed and its address reused meanwhile), never the nodes: it goes with the copy's observers."""

    def __init__(self, copy_node, later):
        self.later = later
        self.shown = _displayed_labelmaps(copy_node)
        self.pending = False

    def modified(self, copy_node, _event) -> None:
        if not self.pending:
            self.pending = True
            self.later(lambda: self.check(copy_node))

    def check(self, copy_node) -> None:
        self.pending = False
        shown = _displayed_labelmaps(copy_node)
        changed = list(map(id, shown)) != list(map(id, self.shown))
        self.shown = shown
        ai_node = copy_node.GetNodeReference(AI_REFERENCE)
        if changed and ai_node is not None and copy_node.GetScene() is not None:
            raise_proposal(ai_node)


def _displayed_labelmaps(segmentation_node) -> list:
    display = segmentation_node.GetDisplayNode()
    if display is None:
        return []
    segmentation = segmentation_node.GetSegmentation()
    name = display.GetDisplayRepresentationName2D()
    return [segmentation.GetNthSegment(index).GetRepresentation(name)
            for index in range(segmentation.GetNumberOfSegments())]


def proposal_display(ai_node):
    """The display node that outlines the AI's proposal: its last one (`editable_copy` adds one after the copy's,
    so the outline is drawn over the copy; replacing the first one instead crashes Slicer 5.12's segmentation
    displayable manager when the node is removed later)."""
    if ai_node.GetDisplayNode() is None:
        ai_node.CreateDefaultDisplayNodes()
    return ai_node.GetNthDisplayNode(ai_node.GetNumberOfDisplayNodes() - 1)


@dataclass(frozen=True)
class BrushSizes:
    """Brush diameters in mm for one image: the slider's range and step, and the default."""
    minimum: float
    maximum: float
    step: float
    default: float
    pixel_mm: float  # the image's in-plane pixel size (the smallest one)

    def describe(self, diameter_mm: float) -> str:
        """E.g. "2.4 mm (12 pixels)", "5.5 mm (2.4 pixels)": the brush diameter and how many of the image's pixels it
        spans, to a tenth of a pixel (whole pixels only where the two agree)."""
        pixels = round(diameter_mm / self.pixel_mm, 1)
        return f"{diameter_mm:.1f} mm ({pixels:g} {'pixel' if pixels == 1 else 'pixels'})"


def brush_sizes(volume_node, lesion_mm: float = DEFAULT_LESION_MM) -> BrushSizes:
    """Brush sizes for painting a lesion of about `lesion_mm` on the volume: from one pixel to two lesion
    diameters (at least 20 pixels), in steps of half a pixel rounded down to a tenth of a millimetre (at least 0.1
    mm), a quarter of the lesion by default (at least 2 pixels): a stroke corrects an edge, it does not cover the
    lesion."""
    spacing = volume_node.GetSpacing()
    pixel = min(spacing[0], spacing[1])
    step = max(0.1, math.floor(pixel / 2 * 10) / 10)

    def on_step(value: float) -> float:
        return round(round(value / step) * step, 6)

    minimum = max(step, on_step(pixel))
    maximum = on_step(max(2 * lesion_mm, 20 * pixel))
    default = min(maximum, max(on_step(lesion_mm / 4), on_step(2 * pixel)))
    return BrushSizes(minimum, maximum, step, default, pixel)


def lesion_mm(segmentation_node) -> float:
    """The typical diameter of what the segmentation's first segment holds (`LESION_MM`, by segment name)."""
    segmentation = segmentation_node.GetSegmentation() if segmentation_node is not None else None
    if segmentation is None or segmentation.GetNumberOfSegments() == 0:
        return DEFAULT_LESION_MM
    return LESION_MM.get(segmentation.GetNthSegment(0).GetName(), DEFAULT_LESION_MM)


def relabel(segmentation_node, old: SegmentSpec, new: SegmentSpec, old_word: str, new_word: str) -> bool:
    """Rename the reader's segment `old` to `new` (name, colour, terminology, label tag; the voxels stay), and the
    node's name's `old_word` to `new_word`: the ROI is named after the lesion kind the reader chose. False when the
    node holds no segment `old`."""
    segmentation = segmentation_node.GetSegmentation()
    segment = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(old.name))
    if segment is None:
        return False
    segment.SetName(new.name)
    segment.SetColor(*new.color)
    segment.SetTerminology(new.terminology_entry())
    segment.SetTag(LABEL_TAG, str(new.label))
    segmentation_node.SetName(re.sub(rf"\b{re.escape(old_word)}\b", new_word, segmentation_node.GetName()))
    return True
