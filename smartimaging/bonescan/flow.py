"""The bone-scan reading flow (desktop module BoneScanBSTBI and the reading station): load the scan (one file
with both views as frames; the desktop may select the posterior view in a volume of its own) -> Segment (networks
in the worker) or draw the metastases by hand -> the reader edits -> BSTBI (lesions the reader excludes left out)
-> change from a baseline."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import InputError
from ..reading import Flow, Job, Result
from ..segmentation_nodes import AI_REFERENCE, ROLE, SOURCE_VOLUME, drawn_segmentation, editable_copy
from ..segments import BONESCAN_SEGMENTS


class BoneScanFlow(Flow):
    module = "BoneScanBSTBI"
    worker_jobs = ("bonescan-segment",)
    title = "Bone scan BSTBI"
    roles = ("scan",)
    selectable_roles = ("scan", "posterior")  # the desktop may hold the posterior view in a volume of its own
    role_labels = {"scan": "Bone scan (NM DICOM, NRRD, PNG)"}
    reads_series = False
    compute_label = "Compute BSTBI"
    draw_hint = ("Paint the metastases (and the bladder, which BSTBI leaves out) in the Segment Editor, then "
                 "compute.")
    roi_name = "metastases"
    drawn_segments = BONESCAN_SEGMENTS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.view_names: list[str] = []  # of the scan's frames, as read from its file
        self.recorded_views: list[bool] = []  # per frame: whether the file records its view (else a default name)
        self.exclude: list[int] = []  # lesion numbers left out of BSTBI
        self._rejected_on: str | None = None  # the segmentation the reader rejected lesions of by click
        self.study_date: str | None = None  # of the loaded file (DICOM StudyDate), shown and kept in memory only
        self.patient_key: str | None = None  # a digest of the file's PatientID (in memory only), None when absent
        self.acquisition: dict = {}  # of the loaded file, what a follow-up compares (`followup.acquisition`)
        self.other_views: list[tuple] = []  # (AI node or None, reader's segmentation) of each further scan volume
        self.classifier_card = None  # the Model selector's choice (a cohort's model card); None: the demo classifier
        self.segmenter_card = None  # the Proposal network selector's choice (a fine-tuned card); None: the demo U-Net

    def read(self, role, path):
        from ..display import read_header
        from .followup import acquisition, patient_key
        from .views import IDENTIFIERS, load_bone_scan

        study = load_bone_scan([path])  # checks modality, frames and polarity as the CLI does
        self.view_names = [view.name for view in study.views]
        recorded = read_header(path).get("nm_views") or []
        self.recorded_views = [name in recorded[i:i + 1] for i, name in enumerate(self.view_names)]
        self.study_date = study.meta.get(IDENTIFIERS, {}).get("study_date")
        self.patient_key = patient_key(study.meta.get(IDENTIFIERS, {}).get("patient_id"))
        self.acquisition = acquisition(study)
        return study.images[0]

    def set_exclude(self, text: str) -> None:
        """Lesion numbers the reader leaves out of BSTBI, as typed ("2, 5")."""
        from .pipeline import parse_lesion_ids

        self.exclude = parse_lesion_ids(text or "")

    def toggle_lesion(self, lesion_id: int) -> None:
        """The reader's click on a lesion of the list: rejected (left out of BSTBI and the counts) or accepted again;
        compute applies it."""
        from .lesions import toggled

        if self.result is None or self.result_is_stale:
            raise InputError("Compute BSTBI first: lesions are rejected from the list of the current result (the "
                             "segmentation was edited since, or nothing was computed)")
        self.exclude = toggled(self.exclude, lesion_id)
        self._rejected_on = self.segmentation_fingerprint()

    def _computed(self, progress):
        """The base compute step; the result's ROI source also says how many lesions the reader rejected (their
        BSTBI and counts are the reader's, as the table and the SR say)."""
        from ..wording import counted

        result = yield from super()._computed(progress)
        rejected = (self.result_record or {}).get("excluded_lesions") or []
        if rejected and result.roi_source:
            result.roi_source = f"{result.roi_source}; {counted(len(rejected), 'lesion')} rejected by the reader"
        return result

    @property
    def result_record(self) -> dict | None:
        """The result as result.json holds it (`BoneScanResult.as_json`), or None."""
        from ..mrml import get_json_attribute
        from .scene import RESULT

        return get_json_attribute(self.result.table_node, RESULT) if self.result is not None else None

    @property
    def scan_volumes(self) -> list:
        return [node for node in (self.primary, self.volumes.get("posterior")) if node is not None]

    @property
    def segmentations(self) -> list:
        """The reader's segmentation of each scan volume."""
        return [self.segmentation, *(edited for _, edited in self.other_views)] if self.segmentation else []

    def notes(self) -> list[str]:
        """Each image's grid, and which view is shown where; a view the file does not record is said to be analysed
        under the default name it was given."""
        names = self.view_names
        if not names or self.primary is None:
            return super().notes()
        recorded = self.recorded_views + [False] * (len(names) - len(self.recorded_views))
        shown = [name if known else f"not recorded in the file (analysed as {name})"
                 for name, known in zip(names, recorded, strict=True)]
        return [*super().notes(), f"Left view: {shown[0]} · right view: {shown[1]}" if len(names) > 1
                else f"One view: {names[0]}" if recorded[0]
                else f"One view (not recorded in the file; analysed as {names[0]})"]

    @property
    def layout(self) -> str:
        return "frames" if len(self.view_names) > 1 else "axial"

    def select(self, volumes, point_node=None, segmentation=None, table_node=None) -> None:
        """As Flow.select; the further views' segmentations are found through their source volume."""
        changed = (segmentation is not self.segmentation
                   or [node for node in volumes.values() if node is not None] != self.scan_volumes)
        super().select(volumes, point_node, segmentation, table_node)
        if changed and segmentation is not None:
            role = segmentation.GetAttribute(ROLE)
            nodes = self.scene.GetNodesByClass("vtkMRMLSegmentationNode")
            nodes = [nodes.GetItemAsObject(index) for index in range(nodes.GetNumberOfItems())]
            others = []
            for volume in self.scan_volumes[1:]:
                match = [node for node in nodes if node.GetNodeReferenceID(SOURCE_VOLUME) == volume.GetID()
                         and node.GetAttribute(ROLE) == role]
                if match:
                    others.append((match[-1].GetNodeReference(AI_REFERENCE), match[-1]))
            self.other_views = others  # a view without one is refused by compute, with its name
            self._proposal_fingerprint = self.segmentation_fingerprint()
        elif changed:
            self.other_views = []

    def _set_other_views(self, pairs: list[tuple]) -> None:
        for pair in self.other_views:
            for node in pair:
                if node is not None and self.scene.IsNodePresent(node):
                    self.scene.RemoveNode(node)
        self.other_views = pairs
        self._proposal_fingerprint = self.segmentation_fingerprint()  # every view's segmentation, as proposed

    def clear(self) -> None:
        self._set_other_views([])
        self.exclude, self._rejected_on = [], None
        super().clear()

    def _forget_lesion_numbers(self) -> None:
        """A new segmentation numbers its lesions anew: the rejections, the numbers in the views and the lesion
        table go."""
        self.exclude, self._rejected_on = [], None
        for name in ("lesion numbers", "lesion table"):
            node = self.extra_nodes.pop(name, None)
            if node is not None and self.scene.IsNodePresent(node):
                self.scene.RemoveNode(node)

    def draw_by_hand(self) -> None:
        super().draw_by_hand()
        self._forget_lesion_numbers()
        self._set_other_views([(None, drawn_segmentation(self.scene, volume, BONESCAN_SEGMENTS,
                                                         f"{volume.GetName()} drawn {self.roi_name}"))
                               for volume in self.scan_volumes[1:]])

    def _segment(self, progress):
        from . import scene as bonescan_scene

        self.require("scan")
        volumes = self.scan_volumes
        with tempfile.TemporaryDirectory(prefix="smartimaging-bonescan-") as folder:
            inputs = bonescan_scene.write_volumes_for_worker(volumes, Path(folder))
            chosen = ["--classifier", str(self.classifier_card)] if self.classifier_card else []
            chosen += ["--segmenter", str(self.segmenter_card)] if self.segmenter_card else []
            event = yield Job("bonescan-segment", ["--input", *map(str, inputs), "--output-dir",
                                                   str(Path(folder) / "out"), "--views", ",".join(self.view_names),
                                                   *chosen])
            ai_nodes = bonescan_scene.import_worker_result(self.scene, volumes, event)
        self._keep_segmentation(ai_nodes[0])
        self._forget_lesion_numbers()
        for ai_node in ai_nodes[1:]:
            ai_node.GetDisplayNode().SetVisibility(False)
        self._set_other_views([(ai_node, editable_copy(self.scene, ai_node)) for ai_node in ai_nodes[1:]])

    def _compute(self, progress):
        from . import scene as bonescan_scene

        if self.segmentation is None:
            raise InputError("Press Segment (or Draw ROI by hand) first: BSTBI is computed from the segmentation")
        missing = self.scan_volumes[len(self.segmentations):]
        if missing:
            raise InputError(f"{missing[0].GetName()} has no segmentation: press Segment (or Draw ROI by hand) "
                             "with both views selected")
        progress(0.1, "computing BSTBI")
        yield
        warnings = []
        if self._rejected_on is not None and self._rejected_on != self.segmentation_fingerprint():
            self.exclude, self._rejected_on = [], None
            warnings.append("The segmentation was edited after lesions were rejected: its lesions are numbered anew "
                            "and all are counted; reject them again in the list")
        unrecorded = [name for i, name in enumerate(self.view_names) if True not in self.recorded_views[i:i + 1]]
        table, result = bonescan_scene.compute_bstbi(self.scene, self.scan_volumes, self.segmentations, self.exclude,
                                                     self.table_to_update, self.view_names or None, unrecorded)
        record = result.as_json()
        self.extra_nodes["lesion numbers"] = bonescan_scene.mark_lesions(
            self.scene, self.scan_volumes, record, self.extra_nodes.get("lesion numbers"))
        self.extra_nodes["lesion table"] = bonescan_scene.lesion_table(self.scene, record, self.primary,
                                                                       self.extra_nodes.get("lesion table"))
        return Result.of_table(f"BSTBI {result.bstbi['mean']:.3f}", table, [*warnings, *result.warnings],
                               result.domain)

    def compare(self, baseline_table, followup_table=None):
        """Baseline vs follow-up BSTBI (default: this result's) and the change, as a table node."""
        from . import scene as bonescan_scene

        followup_table = followup_table or (self.result.table_node if self.result is not None else None)
        return bonescan_scene.compare(self.scene, baseline_table, followup_table)
