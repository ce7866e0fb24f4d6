"""MRML adapter of MammoRadiomics: takes a vtkMRMLScene and nodes (never widgets).

- `segment`: the AI ROI of a mass or calcification cluster marked by a markups point or ROI (box), or the whole
  image, as a coded segmentation node kept as AI; the reader edits `segmentation_nodes.editable_copy` of it;
- `classify`: features, Rad-score, label and contributing features of the (edited) ROI into a table node, with the
  Dice between the AI and the edited ROI and provenance in the node's attributes;
- `batch_table`: the rows of a folder batch (`mammo.batch`) as a table node.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import vtk

from ..domain import combine
from ..errors import InputError
from ..mrml import fill_table, get_json_attribute, place_in_same_study, set_json_attribute, volume_node_to_sitk
from ..segmentation_nodes import (
    CLASSICAL,
    ROI_SOURCE,
    edit_check,
    labels_from_segmentation,
    roi_source,
    segmentation_from_labels,
)
from ..segments import MAMMO_SEGMENTS
from .domain import segmenter_check
from .images import PIXEL_SIZE_FROM_HEADER, PIXEL_SIZE_GIVEN, PIXEL_SIZE_HINTS, PIXEL_SIZE_UNKNOWN, Mammogram
from .predict import MammoPrediction, predict_mammogram
from .segment import CLASSICAL_SOURCE, MammoSegmenter, propose_roi

RESULT = "SmartImaging.MammoResult"
PIXEL_SIZE = "SmartImaging.PixelSize"  # where the loaded file's pixel size came from (Mammogram.meta pixel_size_*)


def mammogram_from_volume_node(volume_node) -> Mammogram:
    """The mammogram of a one-slice scalar volume node (geometry kept)."""
    if volume_node is None:
        raise InputError("Select the mammogram first")
    image = volume_node_to_sitk(volume_node)
    if image.GetSize()[2] != 1:
        raise InputError(f"{volume_node.GetName()} has {image.GetSize()[2]} slices; a mammogram is one 2D image")
    meta = get_json_attribute(volume_node, PIXEL_SIZE, {})
    return Mammogram(Path(volume_node.GetName()), sitk.Cast(image, sitk.sitkFloat32), meta)


def record_pixel_size(volume_node, mammogram: Mammogram) -> None:
    """Keep on the volume node where the mammogram's pixel size came from, so that its results can say so."""
    set_json_attribute(volume_node, PIXEL_SIZE, {key: value for key, value in mammogram.meta.items()
                                                 if key.startswith("pixel_size")})


RASTER_SUFFIXES = (".png", ".pgm", ".jpg", ".jpeg", ".tif", ".tiff")  # image files that store no pixel size


def check_pixel_size(volume_node, pixel_mm: float | None) -> bool:
    """For a mammogram read from a file that stores no pixel size (a PNG, PGM, JPEG or TIFF loaded by Slicer, or
    any file recorded so): the reader's `pixel_mm` becomes its spacing (origin and axes kept) and is recorded as
    given; without one, it is recorded as unknown, so that its results say so as for the station's files. A pixel
    size read from a file's header is never replaced. True when the spacing changed."""
    record = get_json_attribute(volume_node, PIXEL_SIZE, None)
    if record is None:
        storage = volume_node.GetStorageNode()
        name = (storage.GetFileName() or "") if storage is not None else ""
        suffix = Path(name).suffix.lower()
        if suffix not in RASTER_SUFFIXES:
            return False  # DICOM, NRRD, NIfTI: Slicer took the spacing from the file
        record = {"format": suffix.lstrip(".").upper(), "pixel_size_source": PIXEL_SIZE_UNKNOWN}
    if record.get("pixel_size_source") == PIXEL_SIZE_FROM_HEADER:
        return False
    spacing = volume_node.GetSpacing()
    changed = bool(pixel_mm) and tuple(spacing[:2]) != (pixel_mm, pixel_mm)
    if changed:
        volume_node.SetSpacing(pixel_mm, pixel_mm, spacing[2])
    row_mm, col_mm = volume_node.GetSpacing()[1], volume_node.GetSpacing()[0]
    if pixel_mm:
        record = {key: value for key, value in record.items() if key != "pixel_size_note"}
        record.update(pixel_size_source=PIXEL_SIZE_GIVEN, pixel_size_mm=[row_mm, col_mm])
    elif record.get("pixel_size_source") == PIXEL_SIZE_UNKNOWN:
        record.setdefault("pixel_size_note", f"the {record.get('format', 'image')} file stores no pixel size")
        record["pixel_size_mm"] = [row_mm, col_mm]
    set_json_attribute(volume_node, PIXEL_SIZE, record)
    return changed


def _ras_to_ij(volume_node, ras) -> tuple[float, float, float]:
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetRASToIJKMatrix(matrix)
    i, j, k, _ = matrix.MultiplyPoint([*ras, 1.0])
    return j, i, k


def point_from_markups(volume_node, markups_node, index: int = 0) -> tuple[float, float]:
    """(row, col) of a markups control point on the mammogram."""
    if markups_node is None or markups_node.GetNumberOfControlPoints() <= index:
        raise InputError("Place a point on the lesion first")
    ras = [0.0, 0.0, 0.0]
    markups_node.GetNthControlPointPositionWorld(index, ras)
    row, col, _ = _ras_to_ij(volume_node, ras)
    return row, col


def box_from_markups_roi(volume_node, roi_node) -> tuple[int, int, int, int]:
    """(row0, col0, row1, col1) of a markups ROI's extent on the mammogram."""
    if roi_node is None:
        raise InputError("Draw a box around the lesion first")
    bounds = [0.0] * 6
    roi_node.GetBounds(bounds)
    corners = [_ras_to_ij(volume_node, (x, y, (bounds[4] + bounds[5]) / 2)) for x in bounds[:2] for y in bounds[2:4]]
    rows, cols = [c[0] for c in corners], [c[1] for c in corners]
    return int(np.floor(min(rows))), int(np.floor(min(cols))), int(np.ceil(max(rows))), int(np.ceil(max(cols)))


def segment(scene, volume_node, kind: str, segmenter: MammoSegmenter, point=None, box=None):
    """AI segmentation node of the lesion at `point` (row, col) or in `box`, or over the whole image; the classical
    fallback's ROI (marked as such) when the network finds nothing at the point or box."""
    mammogram = mammogram_from_volume_node(volume_node)
    mask, source = propose_roi(segmenter, mammogram.image, kind, point, box)
    spec = MAMMO_SEGMENTS[kind]
    node = segmentation_from_labels(scene, volume_node, mask[None] * spec.label, (spec,),
                                    f"{volume_node.GetName()} AI {kind}", "AI")
    if source == CLASSICAL_SOURCE:
        node.SetAttribute(ROI_SOURCE, CLASSICAL)
    domain = segmenter_check(segmenter.model.card, mammogram, mask)
    set_json_attribute(node, "SmartImaging.MammoSegmentation", {"kind": kind, "model": segmenter.model.provenance,
                                                                "point": point, "box": box, "domain": domain})
    return node


def classify(scene, volume_node, segmentation_node, kind: str, directory=None, table_node=None,
             pixel_hint: str = PIXEL_SIZE_HINTS["desktop"], classifier_card=None) -> tuple[object, MammoPrediction]:
    """Rad-score of the segmentation's ROI into a table node (quantity | value), features included, and the
    classifier that gave it; `pixel_hint`, `classifier_card`: as `predict_mammogram`."""
    mammogram = mammogram_from_volume_node(volume_node)
    spec = MAMMO_SEGMENTS[kind]
    mask = labels_from_segmentation(scene, segmentation_node, volume_node, (spec,))[0]
    prediction = predict_mammogram(mammogram, kind, mask=mask, directory=directory, pixel_hint=pixel_hint,
                                   classifier_card=classifier_card)
    source = get_json_attribute(segmentation_node, "SmartImaging.MammoSegmentation", {})
    if source.get("model"):
        prediction.models.insert(0, source["model"])
    if source.get("domain"):
        prediction.domain = combine([source["domain"], *prediction.domain["checks"]])
    edited, dices = edit_check([segmentation_node], lambda nodes: {
        "ROI": labels_from_segmentation(scene, nodes[0], volume_node, (spec,))[0] > 0})
    edit_dice = dices and dices["ROI"]
    prediction.roi_source = roi_source(segmentation_node, edited)
    if table_node is None:
        table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", f"{volume_node.GetName()} {kind} Rad-score")
        place_in_same_study(scene, table_node, volume_node)
    rows = [["Rad-score", f"{prediction.rad_score:.3f}"], ["Label", prediction.label],
            ["Cutoff (Youden, training)", f"{prediction.cutoff:.3f}"],
            ["Classifier", f"{prediction.models[-1]['id']} {prediction.models[-1]['version']}"],
            ["ROI", prediction.roi_source],
            ["ROI pixels", str(int(mask.sum()))]]
    if edit_dice is not None:
        rows.append(["Dice AI vs edited ROI", f"{edit_dice:.3f}"])
    rows.insert(1, ["Domain check", prediction.domain["text"]])
    rows += [[f"Contribution: {item['feature']}", f"{item['score_change']:+.3f}"] for item in prediction.top_features]
    rows += [["Warning", text] for text in prediction.warnings]
    rows += [[name, f"{value:.6g}"] for name, value in prediction.features.items()]
    fill_table(table_node, ["Quantity", "Value"], rows)
    record = {**prediction.as_json(), "dice_ai_vs_edited": edit_dice}
    set_json_attribute(table_node, RESULT, record)
    table_node.SetAttribute("SmartImaging.RadScore", repr(prediction.rad_score))
    return table_node, prediction


def batch_table(scene, results_csv, table_node=None):
    """A batch's results.csv (one row per image: Rad-score, label, cutoff, or the error) as a table node."""
    results_csv = Path(results_csv)
    with open(results_csv, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        columns = next(reader)
        rows = list(reader)
    if table_node is None:
        table_node = scene.AddNewNodeByClass("vtkMRMLTableNode", f"Mammography batch ({results_csv.parent.name})")
    fill_table(table_node, columns, rows)
    table_node.SetAttribute("SmartImaging.BatchResults", str(results_csv))
    return table_node
