"""Reading a worklist in the scene: open a case into a module's flow (resuming the reader's saved ROI), keep the AI's
proposal, save the reader's corrected ROI and labels. The station and the desktop modules both call it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import InputError
from .io import same_geometry
from .mrml import volume_node_to_sitk
from .segmentation_nodes import (
    CLASSICAL,
    DRAWN,
    ROI_SOURCE,
    ROLE,
    labels_from_segmentation,
    raise_proposal,
    segmentation_from_labels,
)
from .segments import MAMMO_SEGMENTS, SegmentSpec
from .worklist import Case, Worklist, read_roi

MAMMO_PROPOSAL = "SmartImaging.MammoSegmentation"  # the mammography AI node's record (its kind)


def proposal_model(ai_node) -> dict:
    """The model that proposed an AI segmentation ({"id", "version", "sha256"}; several for the bone scan's two
    networks), as the node's SmartImaging records hold it; the classical fallback is named as such."""
    if ai_node.GetAttribute(ROI_SOURCE) == CLASSICAL:
        return {"id": "classical region growing"}
    for name in ai_node.GetAttributeNames() or ():
        if not name.startswith("SmartImaging."):
            continue
        try:
            record = json.loads(ai_node.GetAttribute(name) or "")
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("model"), dict):
            return {k: record["model"][k] for k in ("id", "version", "sha256") if k in record["model"]}
        if isinstance(record, dict) and isinstance(record.get("models"), list):
            models = [m for m in record["models"] if isinstance(m, dict) and m.get("id")]
            if models:
                return {"id": " + ".join(str(m["id"]) for m in models),
                        "versions": [m.get("version") for m in models]}
    return {}


def set_segments(scene, segmentation_node, volume_node, labels: np.ndarray, segments: tuple[SegmentSpec, ...]) -> None:
    """Replace a segmentation's segments with those of a label array (named, coded, tagged as SmartImaging makes
    them); the node, its display and its references stay."""
    scratch = segmentation_from_labels(scene, volume_node, labels, segments, "scratch", "edited")
    try:
        segmentation_node.GetSegmentation().DeepCopy(scratch.GetSegmentation())
    finally:
        scene.RemoveNode(scratch)


class WorklistReading:
    """A worklist read in one module's flow: the open case, its revision when opened (a save over another window's
    later save is refused) and the editing time."""

    def __init__(self, flow, folder: str | Path, out: str | Path | None = None, cases: list[Case] | None = None):
        """`cases`: given cases instead of the folder's (`Worklist`)."""
        self.flow = flow
        self.worklist = Worklist(folder, flow.module, out, cases)
        self.case: Case | None = None
        self._revision = 0
        self._started: float | None = None

    # ---- moving ----

    def open_case(self, case_id: str | None = None) -> Case:
        """Load a case (None: where the reader stopped) into the flow: its images, its options (lesion kind, pixel
        size), and the reader's saved work: the corrected ROI to go on editing, over the AI's proposal. A mammogram
        that stores no pixel size is not loaded until the worklist has one (PixelSizeNeededError; views emptied)."""
        case = self.worklist.case(case_id or self.worklist.resume_case())
        record = self.worklist.record(case.case_id)
        options = {**case.given, **record.get("options", {}), **record.get("labels", {})}
        flow = self.flow
        self.case = None  # until the case is fully open: a failed open must not save into the previous case
        flow.clear()
        self.worklist.require_pixel_size(case.case_id)
        pixel = options.get("pixel_mm")
        flow.set_case_options(kind=options.get("kind"), pixel_mm=float(pixel) if pixel else None)
        for role in flow.roles:
            if role in case.inputs:
                flow.load(role, case.inputs[role])
        self._restore(self.worklist.case_folder(case.case_id), record)
        self.worklist.open(case.case_id)
        self.case, self._revision, self._started = case, record.get("revision", 0), time.monotonic()
        return case

    def step(self, step: int, status: str | None = None) -> Case | None:
        """Open the next (1) or previous (-1) case (among those with `status`); None when there is none."""
        if self.case is None:
            return self.open_case()
        neighbour = self.worklist.neighbour(self.case.case_id, step, status)
        return self.open_case(neighbour) if neighbour else None

    def labels(self) -> dict[str, str]:
        """The open case's labels as saved, else as its cohort manifest gives them (the lesion kind)."""
        if self.case is None:
            return {}
        record = self.worklist.record(self.case.case_id)
        names = {f.name for f in self.worklist.spec.fields}
        return {**{k: v for k, v in self.case.given.items() if k in names}, **record.get("labels", {})}

    # ---- saving ----

    def keep_proposal(self) -> dict | None:
        """After Segment: keep the AI's proposal of the open case (ai.seg.nrrd) and the model that made it."""
        flow = self.flow
        if self.case is None or flow.ai_segmentation is None:
            return None
        segments = self._segments(flow.ai_segmentation)
        labels = labels_from_segmentation(flow.scene, flow.ai_segmentation, flow.primary, segments)
        node = flow.ai_segmentation
        attributes = {name: node.GetAttribute(name) for name in node.GetAttributeNames() or ()
                      if name.startswith("SmartImaging.") and name != ROLE}
        record = self.worklist.save_proposal(self.case.case_id, labels, volume_node_to_sitk(flow.primary), segments,
                                             proposal_model(node), flow.roi_source or "AI", attributes)
        self._revision = record["revision"]
        self._started = time.monotonic()
        return record

    def save(self, labels: dict[str, str], force: bool = False) -> dict:
        """Save the open case: the reader's ROI as it is now, the labels, the editing time since the case opened (or
        since the last save), the pixel size the reader gave."""
        flow = self.flow
        if self.case is None:
            raise InputError("Open a case of the worklist first")
        corrected = reference = None
        segments: tuple[SegmentSpec, ...] = ()
        if self.worklist.spec.mask_column is not None and flow.segmentation is not None:
            segments = self._segments(flow.segmentation)
            corrected = self._reader_labels(segments)
            reference = volume_node_to_sitk(flow.primary)
        pixel_mm = getattr(flow, "pixel_mm", None)
        elapsed = time.monotonic() - self._started if self._started is not None else None
        record = self.worklist.save(self.case.case_id, labels, corrected, reference, segments, edit_seconds=elapsed,
                                    roi_source=flow.roi_source, options={"pixel_mm": pixel_mm} if pixel_mm else None,
                                    expected_revision=self._revision, force=force)
        self._revision, self._started = record["revision"], time.monotonic()
        return record

    def answer_key(self) -> np.ndarray | None:
        """The open case's reference mask (its cohort manifest's) on the first image's grid, or None."""
        if self.case is None or self.case.key_mask is None:
            return None
        primary = volume_node_to_sitk(self.flow.primary)
        path = self.case.key_mask
        if path.suffix.lower() in (".png", ".pgm", ".tif", ".tiff"):
            from .mammo.features import load_mask
            from .mammo.images import Mammogram

            mask = load_mask(path, Mammogram(path, primary))[None]
        else:
            from .io import read_volume

            image = read_volume(path)
            if not same_geometry(image, primary):
                raise InputError(f"The answer key {path.name} is not on the grid of the case's image")
            mask = sitk.GetArrayFromImage(image)
        if mask.shape != sitk.GetArrayViewFromImage(primary).shape:
            raise InputError(f"The answer key {path.name} does not match the size of the case's image")
        return np.asarray(mask)

    # ---- helpers ----

    def _segments(self, node) -> tuple[SegmentSpec, ...]:
        """The segments of a node: the mammography proposal's own lesion kind, else the module's."""
        if self.flow.module == "MammoRadiomics":
            kind = json.loads(node.GetAttribute(MAMMO_PROPOSAL) or "{}").get("kind") or self.flow.kind
            return (MAMMO_SEGMENTS[kind],)
        return self.flow.drawn_segments

    def _reader_labels(self, segments) -> np.ndarray:
        """The reader's ROI; for the bone scan without the lesions the reader rejected from the count."""
        flow = self.flow
        labels = labels_from_segmentation(flow.scene, flow.segmentation, flow.primary, segments)
        if getattr(flow, "exclude", None):
            from .bonescan import scene as bonescan_scene

            study = bonescan_scene.study_from_volume_nodes([flow.primary], flow.view_names or None)
            labels = bonescan_scene.without_rejected(study, [labels], flow.exclude)[0]
        return labels

    def _restore(self, folder: Path, record: dict) -> None:
        """The saved proposal as the AI's node, the saved correction as the reader's copy of it (or as a drawn ROI
        when the AI proposed none)."""
        flow = self.flow
        ai_path, corrected_path = folder / "ai.seg.nrrd", folder / "corrected.seg.nrrd"
        present = [p.exists() or p.is_symlink() for p in (ai_path, corrected_path)]
        if flow.primary is None or not any(present):
            return
        reference = volume_node_to_sitk(flow.primary)

        def read(path: Path) -> np.ndarray:
            return sitk.GetArrayFromImage(read_roi(path, reference))

        segments = (MAMMO_SEGMENTS[flow.kind],) if flow.module == "MammoRadiomics" else flow.drawn_segments
        name = flow.primary.GetName()
        if present[0]:
            ai_node = segmentation_from_labels(flow.scene, flow.primary, read(ai_path), segments, f"{name} AI ROI",
                                               "AI")
            for attribute, value in (record.get("proposal_attributes") or {}).items():
                if isinstance(value, str) and attribute.startswith("SmartImaging.") and attribute != ROLE:
                    ai_node.SetAttribute(attribute, value)  # the networks' result, as when it was proposed
            flow._keep_segmentation(ai_node)
        else:
            flow.draw_by_hand()
        if present[1]:
            set_segments(flow.scene, flow.segmentation, flow.primary, read(corrected_path), segments)
            if flow.ai_segmentation is not None:
                raise_proposal(flow.ai_segmentation)  # the copy's new segments came last: the AI's outline over them
        if record.get("roi_source") == DRAWN:
            flow.segmentation.SetAttribute(ROI_SOURCE, DRAWN)
