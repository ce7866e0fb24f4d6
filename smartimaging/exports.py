"""A reading flow's result as files for PACS (MRML adapter; the station's downloads and the desktop modules' Export
DICOM button call it): `export_dicom` writes the case's DICOM SEG and SR (and the series they reference when the
image was not read from DICOM, or the synthetic DCE series) as `<task>/dicom.py` and the CLI's `--dicom` do.

The SEG holds the AI's proposal (AUTOMATIC, with the model's id and version) and, when the reader edited it or drew
the ROI by hand, the reader's ROI (MANUAL); the SR holds the numbers of the result on screen, which was computed
from the reader's ROI. Each volume's source is the file or DICOM series it was loaded from (`display.SOURCE_FILE`).
"""

from __future__ import annotations

import os
from pathlib import Path

from .dicom_outputs import CLASSICAL_ALGORITHM
from .dicom_series import IDENTITY, check_identity, check_output_apart
from .display import SOURCE_FILE
from .errors import InputError
from .io import atomic_output_dir
from .limits import is_dicom
from .mrml import get_json_attribute, volume_node_to_sitk
from .segmentation_nodes import CLASSICAL, ROI_SOURCE, labels_from_segmentation

MAMMO_SEGMENTATION = "SmartImaging.MammoSegmentation"  # mammo.scene's record of an AI ROI: its kind and model


def source_of(volume_node) -> Path | None:
    """The file or DICOM series folder a volume node was loaded from, None when unknown (made in the scene);
    InputError when it is gone (its DICOM study could not be referenced: the export would start a new one)."""
    source = volume_node.GetAttribute(SOURCE_FILE)
    if source and not Path(source).exists():
        raise InputError(f"{Path(source).name}, which '{volume_node.GetName()}' was loaded from, is no longer there; "
                         "load the image again to export its result as DICOM")
    if source:
        check_identity(source, volume_node.GetAttribute(IDENTITY))  # not replaced by another series since
    return Path(source) if source else None


def _reader_edited(flow) -> bool:
    """Whether the result's ROI is the reader's (edited from the AI's proposal, or drawn without one)."""
    return flow.ai_segmentation is None or "edited" in (flow.result.roi_source or "")


def _ai_algorithm(ai_node, attribute: str) -> tuple[str, str] | None:
    """(model id, version) of an AI segmentation node's network (its `attribute` record's "model"), or the classical
    fallback's when the network found nothing."""
    if ai_node.GetAttribute(ROI_SOURCE) == CLASSICAL:
        return CLASSICAL_ALGORITHM
    model = get_json_attribute(ai_node, attribute, {}).get("model") or {}
    return (model["id"], model["version"]) if model.get("id") else None


def _bonescan(flow, folder: Path) -> dict[str, Path]:
    from .bonescan import scene as bonescan_scene
    from .bonescan.dicom import dicom_parts, write_bonescan_dicom

    volumes, record = flow.scan_volumes, flow.result_record
    study = bonescan_scene.study_from_volume_nodes(volumes, flow.view_names or None)
    views = [[view.name for view in study.views if view.source == index] for index in range(len(volumes))]
    ai_nodes = [flow.ai_segmentation, *(ai for ai, _ in flow.other_views)]
    ai = [bonescan_scene.labels_from_segmentation(flow.scene, node, volume)
          for node, volume in zip(ai_nodes, volumes, strict=True)] if all(ai_nodes) else None
    rejected = record.get("excluded_lesions") or []
    reader = None
    if _reader_edited(flow) or rejected:  # the reader's segment: edited, drawn, or the AI's less the rejected lesions
        reader = bonescan_scene.without_rejected(study, [
            bonescan_scene.labels_from_segmentation(flow.scene, node, volume)
            for node, volume in zip(flow.segmentations, volumes, strict=True)], rejected)
    parts = dicom_parts([volume_node_to_sitk(volume) for volume in volumes], [source_of(v) for v in volumes], views,
                        record, ai, reader)
    return write_bonescan_dicom(folder, parts)


def _mammo(flow, folder: Path) -> dict[str, Path]:
    from .mammo import scene as mammo_scene
    from .mammo.dicom import dicom_part, write_mammo_dicom
    from .segments import MAMMO_SEGMENTS

    record = get_json_attribute(flow.result.table_node, mammo_scene.RESULT)
    volume, ai_node = flow.primary, flow.ai_segmentation
    specs = (MAMMO_SEGMENTS[record["kind"]],)  # the AI's segment too: found by its label tag whatever its kind
    ai_mask = labels_from_segmentation(flow.scene, ai_node, volume, specs) if ai_node is not None else None
    reader_mask = labels_from_segmentation(flow.scene, flow.segmentation, volume, specs) \
        if _reader_edited(flow) else None
    proposal = get_json_attribute(ai_node, MAMMO_SEGMENTATION, {}) if ai_node is not None else {}
    part = dicom_part(volume_node_to_sitk(volume), source_of(volume), record, ai_mask,
                      _ai_algorithm(ai_node, MAMMO_SEGMENTATION) if ai_node is not None else None,
                      reader_mask, proposal.get("kind"))
    return write_mammo_dicom(folder, part, record)


def _lvi(flow, folder: Path) -> dict[str, Path]:
    import SimpleITK as sitk

    from .lvi import scene as lvi_scene
    from .lvi.dicom import dicom_part, write_lvi_dicom

    record = get_json_attribute(flow.result.table_node, lvi_scene.RESULT)
    volume, ai_node = flow.primary, flow.ai_segmentation

    def voi(node):
        return sitk.GetArrayFromImage(lvi_scene.voi_image(flow.scene, node, volume))

    part = dicom_part(volume_node_to_sitk(volume), source_of(volume), record,
                      voi(ai_node) if ai_node is not None else None,
                      _ai_algorithm(ai_node, lvi_scene.SEGMENTATION) if ai_node is not None else None,
                      voi(flow.segmentation) if _reader_edited(flow) else None)
    return write_lvi_dicom(folder, part)


def _dce(flow, folder: Path) -> dict[str, Path]:
    from .dce import scene as dce_scene
    from .dce.dicom import write_dce_dicom

    synthetic = flow.extra_nodes["synthetic"]
    return write_dce_dicom(folder, volume_node_to_sitk(flow.primary), source_of(flow.primary),
                           volume_node_to_sitk(synthetic), get_json_attribute(synthetic, dce_scene.RESULT))


def standalone_dicom(flow) -> bool:
    """Whether the result's SEG and SR stand on their own in PACS: they reference only images read from DICOM (which
    PACS holds), never a series written with them (a derived image series, the synthetic DCE)."""
    if flow.module == "DCESynthesis":
        return False
    volumes = flow.scan_volumes if flow.module == "BoneScanBSTBI" else [flow.primary]
    sources = [volume.GetAttribute(SOURCE_FILE) if volume is not None else None for volume in volumes]
    return all(source and (any(map(is_dicom, Path(source).iterdir())) if Path(source).is_dir() else is_dicom(source))
               for source in sources)


EXPORTERS = {"BoneScanBSTBI": _bonescan, "MammoRadiomics": _mammo, "BreastLVI": _lvi, "DCESynthesis": _dce}


def export_dicom(flow, folder: str | os.PathLike) -> dict[str, Path]:
    """Write the flow's current result as DICOM into `folder` (all or nothing): "seg" (seg.dcm), "sr" (sr.dcm) and,
    for an image not read from DICOM, "series" (image_dicom/: the image as a derived series); for DCESynthesis
    "series" is the synthetic DCE (synthetic_dce_dicom/) and there is no SEG. Returns the paths by kind. InputError
    when there is no result, when the ROI was edited after it was computed, or when a volume's DICOM source does
    not describe it."""
    if flow.result is None or flow.module not in EXPORTERS:
        raise InputError(f"{flow.compute_label} first: there is no result to export")
    if flow.result_is_stale:
        raise InputError(f"The ROI was edited after the result was computed: {flow.compute_label} again before "
                         "exporting, so that the SR's numbers are those of the SEG's ROI")
    folder = Path(folder)
    check_output_apart(folder, [volume.GetAttribute(SOURCE_FILE) for volume in flow.volumes.values()])
    with atomic_output_dir(folder) as scratch:
        written = EXPORTERS[flow.module](flow, scratch)
    return {kind: folder / path.name for kind, path in written.items()}
