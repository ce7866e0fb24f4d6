"""MRML helpers shared by the scene adapters: headless scene set-up and volume node <-> SimpleITK image
(geometry kept exactly through smartimaging.geometry).

Only `vtk`, the `slicer` MRML classes and `slicer.util` array helpers are used, so the same code runs in desktop
Slicer and under pytest with the `slicer-core` wheel.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from .geometry import ijk_to_ras_from_image, set_image_geometry_from_ijk_to_ras
from .io import free_path


def create_headless_scene():
    """A vtkMRMLScene with the application logic and the Colors, Volumes and Segmentations logics registered."""
    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    colors = slicer.vtkSlicerColorLogic()
    colors.SetMRMLApplicationLogic(app_logic)
    colors.SetMRMLScene(scene)
    colors.AddDefaultColorNodes()
    app_logic.SetModuleLogic("Colors", colors)
    volumes = slicer.vtkSlicerVolumesLogic()
    volumes.SetMRMLScene(scene)
    app_logic.SetModuleLogic("Volumes", volumes)
    segmentations = slicer.vtkSlicerSegmentationsModuleLogic()
    segmentations.SetMRMLScene(scene)
    app_logic.SetModuleLogic("Segmentations", segmentations)
    scene._smartimaging_logics = (app_logic, colors, volumes, segmentations)  # keep the logics alive
    return scene


def ijk_to_ras_matrix(volume_node) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix)


def volume_node_to_sitk(volume_node) -> sitk.Image:
    """Copy of a scalar volume node as a SimpleITK image in LPS, with spacing, origin and direction kept."""
    array = slicer.util.arrayFromVolume(volume_node)
    image = sitk.GetImageFromArray(np.array(array, copy=True))
    set_image_geometry_from_ijk_to_ras(image, ijk_to_ras_matrix(volume_node))
    return image


def remove_temporary_labelmap(scene, labelmap_node) -> None:
    """Remove a labelmap node used to export a segmentation, with the display node and the colour table
    ("<segmentation>_ColorTable") that the export made for it, unless another display node uses that table."""
    display = labelmap_node.GetDisplayNode()
    color_id = display.GetColorNodeID() if display is not None else None
    scene.RemoveNode(labelmap_node)
    if display is not None and scene.IsNodePresent(display):
        scene.RemoveNode(display)
    color = scene.GetNodeByID(color_id) if color_id else None
    if color is None or color.GetSingletonTag() or not (color.GetName() or "").endswith("_ColorTable"):
        return
    displays = scene.GetNodesByClass("vtkMRMLDisplayNode")
    if not any(displays.GetItemAsObject(i).GetColorNodeID() == color_id for i in range(displays.GetNumberOfItems())):
        scene.RemoveNode(color)


def write_for_worker(volume_node, folder: Path) -> Path:
    """Save a volume node as NRRD (LPS geometry) for the worker process, named after the node (made a safe, unique
    file name), so that the worker's messages name the image the reader sees."""
    stem = re.sub(r"[^A-Za-z0-9._ -]+", "_", volume_node.GetName() or "").strip(" .")[:80] or "volume"
    path = free_path(folder, stem, ".nrrd")
    sitk.WriteImage(volume_node_to_sitk(volume_node), str(path))
    return path


def sitk_to_volume_node(image: sitk.Image, volume_node) -> None:
    """Fill a volume node (scalar or labelmap) from a SimpleITK image, converting LPS geometry to RAS."""
    volume_node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(ijk_to_ras_from_image(image)))
    slicer.util.updateVolumeFromArray(volume_node, sitk.GetArrayFromImage(image))


def set_json_attribute(node, name: str, value) -> None:
    node.SetAttribute(name, json.dumps(value))


def get_json_attribute(node, name: str, default=None):
    text = node.GetAttribute(name)
    return json.loads(text) if text else default


def fill_table(table_node, columns: list[str], rows: list[list]) -> None:
    """Replace a table node's content with string columns (numbers formatted by the caller)."""
    table_node.RemoveAllColumns()
    for title in columns:
        column = table_node.AddColumn(vtk.vtkStringArray())
        column.SetName(title)
    for row in rows:
        index = table_node.AddEmptyRow()
        for column, value in enumerate(row):
            table_node.SetCellText(index, column, str(value))


def place_in_same_study(scene, node, source_node) -> None:
    """Put `node` under the subject-hierarchy parent (study) of `source_node` (items are created if missing, as
    happens without the application's subject-hierarchy plugins)."""
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    invalid = hierarchy.GetInvalidItemID()
    source_item = hierarchy.GetItemByDataNode(source_node)
    parent = hierarchy.GetItemParent(source_item) if source_item != invalid else hierarchy.GetSceneItemID()
    item = hierarchy.GetItemByDataNode(node)
    if item == invalid:
        hierarchy.CreateItem(parent, node)
    else:
        hierarchy.SetItemParent(item, parent)
