"""The reading station's flows, one per module: load -> Segment (or draw the ROI by hand) -> (reader edits) ->
compute, over a vtkMRMLScene.

Every step calls the module's MRML adapter (`<module>.scene`), the same Logic as the desktop module. Long steps
(bone-scan networks, LVI networks, DCE synthesis) run in the background worker process and are awaited without
blocking the web server; progress goes to a callback `progress(fraction, message)`.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from vtk.util.numpy_support import vtk_to_numpy

from ..errors import CancelledError, InputError
from ..geometry import ras_point_from_lps
from ..io import describe_geometry
from ..mrml import sitk_to_volume_node
from ..result_nodes import domain_check
from ..segmentation_nodes import drawn_segmentation, editable_copy, roi_source
from ..segments import BONESCAN_SEGMENTS, BREAST_MASS, MAMMO_SEGMENTS, SegmentSpec
from ..worker import WorkerProcess


@dataclass
class Result:
    """What the page shows after compute: a headline, the result table node's rows and every warning that came with
    the result (given, and the table's "warning" rows); `fingerprint`: the segmentation it was computed from;
    `roi_source`: where that segmentation came from; `domain`: the domain check of the result (`domain_check`)."""
    headline: str
    columns: list[str]
    rows: list[list[str]]
    table_node: object = None
    warnings: list[str] = field(default_factory=list)
    fingerprint: str | None = None
    roi_source: str | None = None
    domain: dict | None = None

    def __post_init__(self) -> None:
        self.warnings = list(dict.fromkeys([*self.warnings, *(row[1] for row in self.rows if is_warning_row(row))]))
        if self.domain is None:
            self.domain = domain_check(self.table_node, self.rows)


def is_warning_row(row: list[str]) -> bool:
    """A result table row that carries a warning ("Warning" | text, or LVI's "warning" | text | ...)."""
    return len(row) > 1 and str(row[0]).strip().lower() == "warning"


def table_rows(table_node) -> tuple[list[str], list[list[str]]]:
    """Column titles and cell texts of a vtkMRMLTableNode."""
    table = table_node.GetTable()
    columns = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
    rows = [[table_node.GetCellText(r, c) for c in range(len(columns))] for r in range(table.GetNumberOfRows())]
    return columns, rows


def _cell(rows: list[list[str]], quantity: str) -> str:
    return next((row[1] for row in rows if row[0] == quantity), "n/a")


class Flow:
    """State of one module's case in the scene. `roles`: the volumes a case has, the first one is shown and
    segmented; `needs_segment`: whether compute needs a segmentation first; `reads_series`: whether an image can be
    a DICOM series (a folder of files) rather than one file."""

    module = ""
    roles: tuple[str, ...] = ()
    needs_segment = True
    reads_series = True
    roi_name = "ROI"  # what the reader draws by hand, in the segmentation's name

    def __init__(self, scene, device: str = "cpu", models_dir: str | None = None):
        self.scene, self.device, self.models_dir = scene, device, models_dir
        self.volumes: dict[str, object] = {}
        self.geometry: dict[str, str] = {}  # role -> grid as read, shown to the reader
        self.point_node = None
        self.ai_segmentation = None
        self.segmentation = None
        self._proposal_fingerprint: str | None = None  # the reader's segmentation as proposed, before any edit
        self.result: Result | None = None
        self.extra_nodes: dict[str, object] = {}
        self.worker: WorkerProcess | None = None

    @property
    def primary(self):
        return self.volumes.get(self.roles[0])

    def read(self, role: str, path: Path) -> sitk.Image:
        from ..io import read_series_or_volume

        return read_series_or_volume(path)

    def load(self, role: str, path: Path, name: str | None = None, image: sitk.Image | None = None):
        """Read a file (or a DICOM series folder) as the volume of `role`, unless `image` was already read from it;
        loading the first role starts a new case."""
        if role not in self.roles:
            raise InputError(f"{self.module} takes {', '.join(self.roles)} images, not {role}")
        image = self.read(role, Path(path)) if image is None else image
        if role == self.roles[0]:
            self.clear()
        elif role in self.volumes:
            self.scene.RemoveNode(self.volumes.pop(role))
        self.geometry[role] = describe_geometry(image)
        node = self.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name or f"{Path(path).stem} {role}")
        sitk_to_volume_node(image, node)
        node.CreateDefaultDisplayNodes()
        node.GetDisplayNode().SetAndObserveColorNodeID("vtkMRMLColorTableNodeGrey")
        self.volumes[role] = node
        self.result = None
        return node

    def clear(self) -> None:
        """Remove this flow's nodes from the scene."""
        nodes = [*self.volumes.values(), self.point_node, self.ai_segmentation, self.segmentation,
                 *self.extra_nodes.values(), self.result.table_node if self.result else None]
        for node in nodes:
            if node is not None and self.scene.IsNodePresent(node):
                self.scene.RemoveNode(node)
        self.volumes, self.extra_nodes, self.geometry = {}, {}, {}
        self.point_node = self.ai_segmentation = self.segmentation = self.result = None

    def set_point_lps(self, point_lps) -> None:
        """The lesion prompt as a one-point markups node (the reader can also place it in a view)."""
        node = self.ensure_point_node()
        node.RemoveAllControlPoints()
        node.AddControlPointWorld(vtk.vtkVector3d(*ras_point_from_lps(point_lps)), "lesion")

    def ensure_point_node(self):
        if self.point_node is None:
            self.point_node = self.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", f"{self.module} lesion point")
            self.point_node.CreateDefaultDisplayNodes()
        return self.point_node

    def require(self, *roles: str) -> None:
        missing = [role for role in roles if role not in self.volumes]
        if missing:
            raise InputError(f"Load the {' and '.join(missing)} image first")

    def segmentation_fingerprint(self) -> str | None:
        """A digest of the reader's segmentation (segments, names, label values, extents, voxels): it changes with
        every edit, so a result computed from another segmentation is told apart."""
        if self.segmentation is None:
            return None
        segmentation = self.segmentation.GetSegmentation()
        representation = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
        digest = hashlib.blake2b(digest_size=16)
        for index in range(segmentation.GetNumberOfSegments()):
            segment = segmentation.GetNthSegment(index)
            digest.update(f"{segmentation.GetNthSegmentID(index)}|{segment.GetName()}|{segment.GetLabelValue()}|"
                          .encode())
            labelmap = segment.GetRepresentation(representation)
            scalars = labelmap.GetPointData().GetScalars() if labelmap is not None else None
            if scalars is not None:
                digest.update(repr(labelmap.GetExtent()).encode())
                digest.update(np.packbits(vtk_to_numpy(scalars) == segment.GetLabelValue()).tobytes())
            digest.update(b"\0")
        return digest.hexdigest()

    @property
    def result_is_stale(self) -> bool:
        """Whether the result was computed from another segmentation than the current one (the reader edited it
        since, or a later compute was refused after an edit): the page must not show it as current."""
        return (self.result is not None and self.needs_segment
                and self.result.fingerprint != self.segmentation_fingerprint())

    def segment_summary(self) -> str:
        """Size of each segment of the reader's (edited) segmentation, e.g. "Bone metastasis: 812 pixels"."""
        if self.segmentation is None:
            return ""
        unit = "pixels" if self.primary.GetImageData().GetDimensions()[2] <= 2 else "voxels"
        segmentation = self.segmentation.GetSegmentation()
        representation = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
        parts = []
        for index in range(segmentation.GetNumberOfSegments()):
            segment = segmentation.GetNthSegment(index)
            labelmap = segment.GetRepresentation(representation)
            scalars = labelmap.GetPointData().GetScalars() if labelmap is not None else None
            count = int(np.count_nonzero(vtk_to_numpy(scalars) == segment.GetLabelValue())) if scalars else 0
            parts.append(f"{segment.GetName()}: {count} {unit}")
        return " · ".join(parts)

    @property
    def drawn_segments(self) -> tuple[SegmentSpec, ...]:
        """The segments the reader draws by hand (empty at first)."""
        raise InputError(f"{self.module} has no ROI to draw")

    def draw_by_hand(self) -> None:
        """Replace the segmentation with an empty one to draw the ROI into (the way forward when the AI finds
        nothing, or finds the wrong thing): named, coded segments on the image's geometry."""
        self.require(self.roles[0])
        segments = self.drawn_segments
        self._replace_segmentation(None, drawn_segmentation(self.scene, self.primary, segments,
                                                            f"{self.primary.GetName()} drawn {self.roi_name}"))

    def _keep_segmentation(self, ai_node) -> None:
        self._replace_segmentation(ai_node, editable_copy(self.scene, ai_node))
        ai_node.GetDisplayNode().SetVisibility(False)

    def _replace_segmentation(self, ai_node, segmentation) -> None:
        for node in (self.ai_segmentation, self.segmentation):
            if node is not None:
                self.scene.RemoveNode(node)
        self.ai_segmentation, self.segmentation = ai_node, segmentation
        self._proposal_fingerprint = self.segmentation_fingerprint()
        self.result = None

    @property
    def roi_source(self) -> str | None:
        """Where the reader's segmentation came from ("AI", "classical (AI found none)", "drawn by the reader"),
        and whether the reader edited a proposal since."""
        if self.segmentation is None:
            return None
        return roi_source(self.segmentation, self.segmentation_fingerprint() != self._proposal_fingerprint)

    async def run_worker(self, job: str, arguments: list[str], progress) -> dict:
        """Run a worker job, polling it between other server work; its result event, or InputError/CancelledError."""
        self.worker = WorkerProcess(job, [*arguments, "--device", self.device]
                                    + (["--models-dir", self.models_dir] if self.models_dir else []))
        progress(0.0, "starting")  # cancellable from now on: the worker's first step may take a while
        outcome: dict = {}
        try:
            while not self.worker.dispatch(progress, lambda event: outcome.update(result=event),
                                           lambda message, details: outcome.update(error=message)):
                await asyncio.sleep(0.05)
            cancelled = self.worker.cancelled
        finally:
            self.worker = None
        if cancelled:
            raise CancelledError("Cancelled: nothing was added to the scene")
        if "error" in outcome:
            raise InputError(outcome["error"])
        return outcome["result"]

    def cancel(self) -> bool:
        if self.worker is None:
            return False
        self.worker.cancel()
        return True

    async def segment(self, progress) -> None:
        raise InputError(f"{self.module} has no segmentation step")

    async def compute(self, progress) -> Result:
        """Compute the result from the current segmentation; a refused compute (InputError) keeps the previous
        result, which `result_is_stale` then tells apart from the current segmentation."""
        fingerprint = self.segmentation_fingerprint()  # what the result is computed from (edits may come meanwhile)
        source = self.roi_source
        result = await self._compute(progress)
        result.fingerprint, result.roi_source = fingerprint, source
        self.result = result
        return result

    async def _compute(self, progress) -> Result:
        raise NotImplementedError  # every module's flow defines its compute step


class BoneScanFlow(Flow):
    module = "BoneScanBSTBI"
    roles = ("scan",)
    reads_series = False
    roi_name = "metastases"
    drawn_segments = BONESCAN_SEGMENTS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.view_names: list[str] = []

    def read(self, role, path):
        from ..bonescan.views import load_bone_scan

        study = load_bone_scan([path])  # checks modality, frames and polarity as the CLI does
        self.view_names = [view.name for view in study.views]
        return study.images[0]

    async def segment(self, progress) -> None:
        from ..bonescan import scene as bonescan_scene

        self.require("scan")
        with tempfile.TemporaryDirectory(prefix="smartimaging-web-") as folder:
            inputs = bonescan_scene.write_volumes_for_worker([self.primary], Path(folder))
            event = await self.run_worker("bonescan-segment", ["--input", *map(str, inputs), "--output-dir",
                                                               str(Path(folder) / "out"),
                                                               "--views", ",".join(self.view_names)], progress)
            (ai_node,) = bonescan_scene.import_worker_result(self.scene, [self.primary], event)
        self._keep_segmentation(ai_node)

    async def _compute(self, progress) -> Result:
        from ..bonescan import scene as bonescan_scene

        if self.segmentation is None:
            raise InputError("Press Segment (or Draw ROI by hand) first: BSTBI is computed from the segmentation")
        progress(0.1, "computing BSTBI")
        table, result = bonescan_scene.compute_bstbi(self.scene, [self.primary], [self.segmentation],
                                                     table_node=self.result.table_node if self.result else None,
                                                     view_names=self.view_names)
        columns, rows = table_rows(table)
        self.result = Result(f"BSTBI {result.bstbi['mean']:.3f}", columns, rows, table)
        return self.result


class MammoFlow(Flow):
    module = "MammoRadiomics"
    roles = ("mammogram",)
    reads_series = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = "mass"
        self.pixel_mm: float | None = None
        self.mammogram = None  # the last file read, for its pixel-size record
        self._segmenters: dict = {}

    def read(self, role, path):
        from ..mammo.images import load_mammogram

        self.mammogram = load_mammogram(path, self.pixel_mm)
        return self.mammogram.image

    def load(self, role, path, name=None, image=None):
        from ..mammo.scene import record_pixel_size

        node = super().load(role, path, name, image)
        if self.mammogram is not None and (image is None or image is self.mammogram.image):
            record_pixel_size(node, self.mammogram)
        return node

    @property
    def roi_name(self) -> str:
        return self.kind

    @property
    def drawn_segments(self) -> tuple[SegmentSpec, ...]:
        return (MAMMO_SEGMENTS[self.kind],)

    async def segment(self, progress) -> None:
        from ..mammo import scene as mammo_scene
        from ..mammo.segment import MammoSegmenter

        self.require("mammogram")
        progress(0.1, f"segmenting the {self.kind}")
        await asyncio.sleep(0)  # let the page show the progress first
        if self.kind not in self._segmenters:
            self._segmenters[self.kind] = MammoSegmenter.load(self.kind, self.models_dir, self.device)
        placed = self.point_node is not None and self.point_node.GetNumberOfControlPoints() > 0
        point = mammo_scene.point_from_markups(self.primary, self.point_node,
                                               self.point_node.GetNumberOfControlPoints() - 1) if placed else None
        ai_node = mammo_scene.segment(self.scene, self.primary, self.kind, self._segmenters[self.kind], point=point)
        self._keep_segmentation(ai_node)

    async def _compute(self, progress) -> Result:
        from ..mammo import scene as mammo_scene

        if self.segmentation is None:
            raise InputError("Press Segment (or Draw ROI by hand) first: the Rad-score is computed from the ROI")
        progress(0.1, "extracting radiomics features")
        await asyncio.sleep(0)
        table, prediction = mammo_scene.classify(self.scene, self.primary, self.segmentation, self.kind,
                                                 self.models_dir,
                                                 table_node=self.result.table_node if self.result else None)
        columns, rows = table_rows(table)
        self.result = Result(f"Rad-score {prediction.rad_score:.3f} ({prediction.label})", columns, rows, table,
                             list(prediction.warnings))
        return self.result


class LVIFlow(Flow):
    module = "BreastLVI"
    roles = ("DCE", "T2")
    roi_name = "lesion VOI"
    drawn_segments = (BREAST_MASS,)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._segmenter = None

    async def segment(self, progress) -> None:
        from ..lvi import scene as lvi_scene
        from ..lvi.segment import LesionSegmenter

        self.require("DCE")
        if self.point_node is None or self.point_node.GetNumberOfControlPoints() == 0:
            raise InputError("Place a point on the lesion first")  # before the network is loaded
        progress(0.1, "segmenting the lesion around the point")
        await asyncio.sleep(0)
        if self._segmenter is None:
            self._segmenter = LesionSegmenter.load(self.models_dir, self.device)
        ai_node, edited = lvi_scene.segment(self.scene, self.primary, self.point_node, self._segmenter)
        self.scene.RemoveNode(edited)  # the flow makes its own editable copy
        self._keep_segmentation(ai_node)

    async def _compute(self, progress) -> Result:
        from ..lvi import scene as lvi_scene

        if self.segmentation is None:
            raise InputError("Press Segment (or Draw ROI by hand) first: the networks look at the lesion box")
        with tempfile.TemporaryDirectory(prefix="smartimaging-web-") as folder:
            arguments = lvi_scene.write_inputs_for_worker(self.scene, self.volumes, self.segmentation, Path(folder))
            event = await self.run_worker("lvi-predict", arguments, progress)
            nodes = lvi_scene.import_worker_result(self.scene, self.volumes, event, self.segmentation,
                                                   self.result.table_node if self.result else None)
        for node in self.extra_nodes.values():  # the previous result's heat maps stay until this one succeeds
            self.scene.RemoveNode(node)
        self.extra_nodes = {f"Grad-CAM {model_id}": node for model_id, node in nodes["heat_maps"].items()}
        columns, rows = table_rows(nodes["table"])
        fused = next(row for row in rows if row[0] == "fused")
        self.result = Result(f"LVI probability {fused[2]} ({fused[4]})", columns, rows, nodes["table"],
                             [row[1] for row in rows if row[0] == "warning"])
        return self.result

    @property
    def heat_map(self):
        """The Grad-CAM volume on the DCE grid (the first DCE model's), for the overlay."""
        return next((node for name, node in self.extra_nodes.items() if "-dce-" in name), None)


class DCEFlow(Flow):
    module = "DCESynthesis"
    roles = ("T1", "DCE")
    needs_segment = False

    async def _compute(self, progress) -> Result:
        from ..dce import scene as dce_scene

        self.require("T1")
        for node in self.extra_nodes.values():
            self.scene.RemoveNode(node)
        self.extra_nodes = {}
        if self.result is not None and self.result.table_node is not None:
            self.scene.RemoveNode(self.result.table_node)
        self.result = None  # its volumes are gone: a refused or cancelled synthesis leaves no result behind
        with tempfile.TemporaryDirectory(prefix="smartimaging-web-") as folder:
            arguments = dce_scene.write_inputs_for_worker(self.primary, self.volumes.get("DCE"), Path(folder))
            event = await self.run_worker("dce-synthesize", arguments, progress)
            nodes = dce_scene.import_worker_result(self.scene, self.primary, event)
        table = nodes.pop("table", None)
        self.extra_nodes = nodes
        if table is not None:
            columns, rows = table_rows(table)
            headline = f"Synthetic DCE: SSIM {_cell(rows, 'SSIM (mean of slices)')} vs real DCE"
        else:
            columns, rows = ["Quantity", "Value"], [["Real DCE", "not loaded: no similarity metrics"]]
            headline = "Synthetic DCE ready (no real DCE to compare with)"
        self.result = Result(headline, columns, rows, table, domain=domain_check(table or nodes["synthetic"], rows))
        return self.result

    @property
    def side_by_side(self) -> dict:
        """Volumes by view of the DCESynthesis layout (dce.scene.VIEWS)."""
        return {"DCE-T1": self.primary, "DCE-Synthetic": self.extra_nodes.get("synthetic"),
                "DCE-Real": self.volumes.get("DCE"), "DCE-MIP": self.extra_nodes.get("mip")}


FLOWS = {flow.module: flow for flow in (BoneScanFlow, MammoFlow, LVIFlow, DCEFlow)}
