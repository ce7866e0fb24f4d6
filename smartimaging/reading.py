"""The reading flow every module shares, GUI-free, over a vtkMRMLScene: load -> Segment (or draw the ROI by hand) ->
(the reader edits) -> compute, with the flow's state, messages and the layout it wants. The desktop widget and the
browser station both drive it; each module's flow (`<task>/flow.py`) adds its steps.

Long steps are generators run by a :class:`Step`: the step runs until it yields, either a :class:`Job` (a worker
job: the step waits for its result event, which the generator receives) or None (a pause that lets the GUI show the
progress). The GUI calls `Step.poll()` from its own loop (a qt.QTimer in the widget through :class:`StepRunner`, an
asyncio loop in the station) until it returns True; errors of the step (InputError, CancelledError) come out of
`poll()`, after the generator has cleaned up (scratch folders are `with` blocks inside it).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer
import vtk
from vtk.util.numpy_support import vtk_to_numpy

from .dicom_series import IDENTITY, check_selected_together, identity_for_case
from .display import SOURCE_FILE
from .errors import CancelledError, InputError
from .explain import explain
from .geometry import ras_point_from_lps
from .io import describe_geometry
from .mrml import sitk_to_volume_node, volume_node_to_sitk
from .result_nodes import domain_check
from .segmentation_nodes import AI_REFERENCE, ROLE, drawn_segmentation, editable_copy, roi_source
from .segments import SegmentSpec
from .warm_worker import warm_job, warm_up
from .wording import counted
from .worker import WorkerProcess

CANCELLED = "Cancelled: nothing was added to the scene"
COMPARISON = ("Result from the AI's ROI", "Result from the edited ROI")  # first cells of the AI-vs-edited rows


def _no_progress(fraction: float, message: str) -> None:
    """The progress callback of a step run without one."""


def _labelled(progress, label: str):
    """`progress` with every message prefixed by the step's name ("Segment: anterior view 1 of 2, ...")."""
    return lambda fraction, message: progress(fraction, f"{label}: {message}")


@dataclass
class Job:
    """A worker job a step waits for (`python -m smartimaging.worker <name> <arguments>`); the flow adds its device
    and models folder."""
    name: str
    arguments: list[str]


class JobError(InputError):
    """A worker job failed: the worker's message; `details`: its error output when the process died."""

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.details = details


class Step:
    """One step of a flow, run by polling: `poll()` advances it without blocking and returns True once it is over
    (`value`: what the step returned); it raises the step's error. `cancel()` stops the worker job it waits for;
    the next `poll()` then raises CancelledError."""

    def __init__(self, flow: Flow, generator, progress=None):
        self.flow, self.progress = flow, progress or _no_progress
        self.worker: WorkerProcess | None = None
        self.value = None
        self.over = False
        self._generator = generator

    def poll(self) -> bool:
        if self.over:
            return True
        sent, error = None, None
        if self.worker is not None:
            outcome: dict = {}
            if not self.worker.dispatch(self.progress, lambda event: outcome.update(result=event),
                                        lambda message, details: outcome.update(error=JobError(message, details))):
                return False
            worker, self.worker = self.worker, None
            if worker.cancelled:
                error = CancelledError(CANCELLED)
            else:
                sent, error = outcome.get("result"), outcome.get("error")
        while True:
            try:
                request = self._generator.throw(error) if error is not None else self._generator.send(sent)
            except StopIteration as stop:
                self.over, self.value = True, stop.value
                return True
            except BaseException:
                self.over = True
                raise
            if not isinstance(request, Job):
                return False
            try:
                self.worker = self.flow.start_worker(request)
            except OSError as exc:  # the step hears it as a failed job, and cleans up as for one
                sent, error = None, JobError(f"The background process could not be started: {exc}")
                continue
            self.progress(0.0, "starting")  # cancellable from now on: the worker's first step may take a while
            return False

    def cancel(self) -> bool:
        """Stop the worker job the step waits for; False when it waits for none (nothing to cancel)."""
        if self.worker is None:
            return False
        self.worker.cancel()
        return True

    def abandon(self) -> None:
        """Stop the step for good (its case is gone): the worker is stopped and the step's scratch is removed."""
        if self.worker is not None:
            self.worker.cancel()
            self.worker = None
        self._generator.close()
        self.over = True


class StepRunner:
    """Runs one flow step at a time from a GUI timer (any object with start() and stop(), e.g. a qt.QTimer whose
    timeout calls `poll`): `on_done(value)` or `on_error(exception)` when the step ends (`on_error` also when
    `on_done` fails), then always `on_over()`, so the buttons come back whatever happened. The timer is stopped while
    the step runs and the callbacks show their dialogs: no poll runs inside another."""

    def __init__(self, timer, on_done, on_error, on_over):
        self.timer, self.on_done, self.on_error, self.on_over = timer, on_done, on_error, on_over
        self.step: Step | None = None

    @property
    def busy(self) -> bool:
        return self.step is not None

    def start(self, step: Step) -> None:
        if self.step is not None:
            raise InputError("Wait until the running step is over (or cancel it)")
        self.step = step
        self.timer.start()
        self.poll()

    def poll(self) -> None:
        step = self.step
        if step is None:
            return
        self.timer.stop()
        over = True
        try:
            over = step.poll()
            if over:
                self.step = None
                self.on_done(step.value)
        except (Exception, CancelledError) as exc:
            self.step = None
            self.on_error(exc)
        finally:
            if over:
                self.on_over()
            else:
                self.timer.start()

    def cancel(self) -> bool:
        """Stop the running step's worker (it ends with CancelledError at the next poll)."""
        return self.step is not None and self.step.cancel()

    def abandon(self) -> None:
        """Stop the running step at once, without callbacks (the widget or its scene goes away)."""
        if self.step is not None:
            self.step.abandon()
            self.step = None
            self.timer.stop()


@dataclass
class Result:
    """What the reader sees after compute: a headline, the result table node's rows and every warning that came
    with the result (given, and the table's "warning" rows); `fingerprint`: the segmentation it was computed from;
    `roi_source`: where that segmentation came from; `domain`: the domain check of the result (`domain_check`);
    `comparison`: the AI-vs-edited rows (`COMPARISON`: the AI ROI's headline, then this one's), also in `rows` and the
    table, when the reader computed the AI's proposal before editing it."""
    headline: str
    columns: list[str]
    rows: list[list[str]]
    table_node: object = None
    warnings: list[str] = field(default_factory=list)
    fingerprint: str | None = None
    roi_source: str | None = None
    domain: dict | None = None
    comparison: list[list[str]] = field(default_factory=list)
    explanations: list[dict] = field(default_factory=list)  # `explain.explain`: what the numbers mean, model cards

    def __post_init__(self) -> None:
        self.warnings = list(dict.fromkeys([*self.warnings, *(row[1] for row in self.rows if is_warning_row(row))]))
        if self.domain is None:
            self.domain = domain_check(self.table_node, self.rows)

    def compare_with(self, ai_result: Result) -> None:
        """Add the AI-vs-edited rows (the AI ROI's headline beside this one's) to `comparison`, `rows` and the
        table node."""
        self.comparison = [[COMPARISON[0], ai_result.headline], [COMPARISON[1], self.headline]]
        for first, headline in self.comparison:
            self.rows.append([first, headline, *[""] * (len(self.columns) - 2)])
            if self.table_node is not None:
                index = self.table_node.AddEmptyRow()
                self.table_node.SetCellText(index, 0, first)
                self.table_node.SetCellText(index, 1, headline)

    @classmethod
    def of_table(cls, headline: str, table_node, warnings=(), domain: dict | None = None) -> Result:
        columns, rows = table_rows(table_node)
        return cls(headline, columns, rows, table_node, list(warnings), domain=domain)


def is_warning_row(row: list[str]) -> bool:
    """A result table row that carries a warning ("Warning" | text, or LVI's "warning" | text | ...)."""
    return len(row) > 1 and str(row[0]).strip().lower() == "warning"


def table_rows(table_node) -> tuple[list[str], list[list[str]]]:
    """Column titles and cell texts of a vtkMRMLTableNode."""
    table = table_node.GetTable()
    columns = [table.GetColumnName(c) for c in range(table.GetNumberOfColumns())]
    rows = [[table_node.GetCellText(r, c) for c in range(len(columns))] for r in range(table.GetNumberOfRows())]
    return columns, rows


def _segment_voxels(segment) -> tuple[tuple, np.ndarray] | None:
    """(extent, flat boolean mask) of a segment in its binary labelmap (shared with other segments: its own label
    value only), or None when it has no labelmap yet."""
    labelmap = segment.GetRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName())
    scalars = labelmap.GetPointData().GetScalars() if labelmap is not None else None
    if scalars is None:
        return None
    return labelmap.GetExtent(), vtk_to_numpy(scalars) == segment.GetLabelValue()


class Flow:
    """One module's case in the scene and its reading steps.

    Description for the GUIs: `module`, `title`; `roles`: the volumes a case has (`role_labels`: what each is), the
    first one is shown and segmented; `needs_segment`: whether compute needs a segmentation first; `places_point`:
    whether Segment starts from a lesion point the reader places; `reads_series`: whether an image can be a DICOM
    series (a folder) rather than one file; `compute_label`; `draw_hint`: how to draw the ROI by hand; `kinds`,
    `takes_pixel_size`: the options the reader sets; `layout`, `view_volumes` and `overlay`: what the views show;
    `worker_jobs`: the worker jobs whose models `warm_up` loads ahead."""

    module = ""
    title = ""
    roles: tuple[str, ...] = ()
    role_labels: dict[str, str] = {}
    needs_segment = True
    places_point = False
    reads_series = True
    compute_label = "Compute"
    draw_hint = ""
    kinds: tuple[str, ...] = ()  # lesion kinds the reader chooses between (mammography)
    takes_pixel_size = False  # whether the reader may give the pixel size of files that store none
    roi_name = "ROI"  # what the reader draws by hand, in the segmentation's name
    worker_jobs: tuple[str, ...] = ()

    def __init__(self, scene, device: str = "cpu", models_dir: str | None = None, python: str | None = None):
        """`python`: the interpreter of the worker process (default: this one; Slicer's PythonSlicer in Slicer)."""
        self.scene, self.device, self.models_dir, self.python = scene, device, models_dir, python
        self.volumes: dict[str, object] = {}
        self.geometry: dict[str, str] = {}  # role -> grid as read, shown to the reader
        self.point_node = None
        self.ai_segmentation = None
        self.segmentation = None
        self._proposal_fingerprint: str | None = None  # the reader's segmentation as proposed, before any edit
        self.result: Result | None = None
        self.ai_result: Result | None = None  # from the AI's proposal as proposed: kept beside an edited ROI's result
        self.extra_nodes: dict[str, object] = {}
        self.selected_table = None  # the result table the desktop's selector names, updated by the next compute
        self.step: Step | None = None  # the step running now

    # ---- case ---------------------------------------------------------------------------------------------------

    @property
    def primary(self):
        return self.volumes.get(self.roles[0])

    def read(self, role: str, path: Path) -> sitk.Image:
        from .io import read_series_or_volume

        image = read_series_or_volume(path)
        self.check_volume(role, image, Path(path).name)
        return image

    def check_volume(self, role: str, image: sitk.Image, name: str) -> None:
        """Refuse an image that cannot be the `role` of this module, with the CLI's own check and message (`name`:
        the file or node); a file read, or a volume selected in the desktop module. Most flows check only reading."""

    def set_case_options(self, kind: str | None = None, pixel_mm: float | None = None) -> None:
        """Options a case brings with its files (the mammography lesion kind and pixel size); most flows take none."""

    def load(self, role: str, path: Path, name: str | None = None, image: sitk.Image | None = None):
        """Read a file (or a DICOM series folder) as the volume of `role`, unless `image` was already read from it;
        loading the first role starts a new case."""
        if role not in self.roles:
            raise InputError(f"{self.module} takes {', '.join(self.roles)} images, not {role}")
        image = self.read(role, Path(path)) if image is None else image
        others = [] if role == self.roles[0] else [node for other, node in self.volumes.items() if other != role]
        identity = identity_for_case(path, others)  # refused: another patient's or study's image than the case's
        if role == self.roles[0]:
            self.clear()
        elif role in self.volumes:
            self.scene.RemoveNode(self.volumes.pop(role))
        self.geometry[role] = describe_geometry(image)
        node = self.scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name or f"{Path(path).stem} {role}")
        sitk_to_volume_node(image, node)
        node.CreateDefaultDisplayNodes()
        node.GetDisplayNode().SetAndObserveColorNodeID("vtkMRMLColorTableNodeGrey")
        node.SetAttribute(SOURCE_FILE, str(path))  # the header panel reads what the file records
        node.SetAttribute(IDENTITY, identity)  # compared at export: the files may have been replaced since
        self.volumes[role] = node
        self.result = self.ai_result = None
        return node

    def clear(self) -> None:
        """Remove this flow's nodes from the scene (a running step is stopped first)."""
        if self.step is not None:
            self.step.abandon()
            self.step = None
        nodes = [*self.volumes.values(), self.point_node, self.ai_segmentation, self.segmentation,
                 *self.extra_nodes.values(), self.result.table_node if self.result else None]
        for node in nodes:
            if node is not None and self.scene.IsNodePresent(node):
                self.scene.RemoveNode(node)
        self.volumes, self.extra_nodes, self.geometry = {}, {}, {}
        self.point_node = self.ai_segmentation = self.segmentation = self.result = self.ai_result = None

    def select(self, volumes: dict, point_node=None, segmentation=None, table_node=None) -> None:
        """Take the nodes chosen in the desktop module's selectors as the case: volumes by role, the lesion point,
        the reader's segmentation (its AI proposal found through its reference) and the result table to update."""
        selected = {role: node for role, node in volumes.items() if node is not None and role in self.selectable_roles}
        for role, node in selected.items():
            image = node.GetImageData()
            if image is None or image.GetNumberOfPoints() == 0:
                raise InputError(f"The {role} volume '{node.GetName()}' holds no image (0 pixels); select another")
            self.check_volume(role, volume_node_to_sitk(node), node.GetName())
        check_selected_together(list(selected.values()), SOURCE_FILE)  # one patient's study; its sources recorded
        self.volumes = selected
        self.point_node = point_node
        if segmentation is not self.segmentation:
            self.segmentation = segmentation
            self.ai_segmentation = segmentation.GetNodeReference(AI_REFERENCE) if segmentation is not None else None
            self._proposal_fingerprint = self.segmentation_fingerprint()
            self.result = self.ai_result = None
        if self.result is not None and self.result.table_node is not table_node:
            self.result = self.ai_result = None
        self.selected_table = table_node

    @property
    def selectable_roles(self) -> tuple[str, ...]:
        """The volumes the desktop module may select (`roles`, and for some modules more)."""
        return self.roles

    @property
    def table_to_update(self):
        """The table node the next result goes into (the current result's, or the selected one), or None."""
        return self.result.table_node if self.result is not None else self.selected_table

    def notes(self) -> list[str]:
        """Lines about the loaded case for the reader: each image's grid."""
        return [f"{role}: {geometry}" for role, geometry in self.geometry.items()]

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

    @property
    def has_point(self) -> bool:
        return self.point_node is not None and self.point_node.GetNumberOfControlPoints() > 0

    def point_on_image(self, ras) -> bool:
        """Whether a point (RAS mm) lies on the first volume's voxels (within half a voxel of its edge)."""
        if self.primary is None:
            return False
        to_ijk = vtk.vtkMatrix4x4()
        self.primary.GetRASToIJKMatrix(to_ijk)
        index = to_ijk.MultiplyPoint((*ras, 1.0))[:3]
        size = self.primary.GetImageData().GetDimensions()
        return all(-0.5 <= i <= n - 0.5 for i, n in zip(index, size, strict=True))

    def require(self, *roles: str) -> None:
        missing = [role for role in roles if role not in self.volumes]
        if missing:
            raise InputError(f"Load the {' and '.join(missing)} image first")

    # ---- segmentation -------------------------------------------------------------------------------------------

    @property
    def segmentations(self) -> list:
        """The reader's segmentations the result is computed from (one; the bone scan's: one per view)."""
        return [self.segmentation] if self.segmentation is not None else []

    def segmentation_fingerprint(self) -> str | None:
        """A digest of the reader's segmentations (segments, names, label values, extents, voxels): it changes with
        every edit, so a result computed from another segmentation is told apart."""
        if self.segmentation is None:
            return None
        digest = hashlib.blake2b(digest_size=16)
        for node in self.segmentations:
            segmentation = node.GetSegmentation()
            for index in range(segmentation.GetNumberOfSegments()):
                segment = segmentation.GetNthSegment(index)
                digest.update(f"{segmentation.GetNthSegmentID(index)}|{segment.GetName()}|{segment.GetLabelValue()}|"
                              .encode())
                voxels = _segment_voxels(segment)
                if voxels is not None:
                    digest.update(repr(voxels[0]).encode())
                    digest.update(np.packbits(voxels[1]).tobytes())
                digest.update(b"\0")
            digest.update(b"\1")
        return digest.hexdigest()

    @property
    def result_is_stale(self) -> bool:
        """Whether the result was computed from another segmentation than the current one (the reader edited it
        since, or a later compute was refused after an edit): the GUI must not show it as current."""
        return (self.result is not None and self.needs_segment
                and self.result.fingerprint != self.segmentation_fingerprint())

    def segment_summary(self) -> str:
        """Size of each segment of the reader's (edited) segmentation, e.g. "Bone metastasis: 812 pixels"."""
        if self.segmentation is None:
            return ""
        unit = "pixel" if self.primary.GetImageData().GetDimensions()[2] <= 2 else "voxel"
        segmentation = self.segmentation.GetSegmentation()
        parts = []
        for index in range(segmentation.GetNumberOfSegments()):
            segment = segmentation.GetNthSegment(index)
            voxels = _segment_voxels(segment)
            count = int(np.count_nonzero(voxels[1])) if voxels is not None else 0
            parts.append(f"{segment.GetName()}: {counted(count, unit)}")
        return " · ".join(parts)

    @property
    def drawn_segments(self) -> tuple[SegmentSpec, ...]:
        """The segments the reader draws by hand (empty at first)."""
        raise InputError(f"{self.module} has no ROI to draw")

    def draw_by_hand(self) -> None:
        """Replace the segmentation with an empty one to draw the ROI into (the way forward when the AI finds
        nothing, or finds the wrong thing): named, coded segments on the image's geometry."""
        if self.primary is None:
            raise InputError(f"Load the {self.roles[0]} image first")
        segments = self.drawn_segments
        self._replace_segmentation(None, drawn_segmentation(self.scene, self.primary, segments,
                                                            f"{self.primary.GetName()} drawn {self.roi_name}"))

    def _keep_segmentation(self, ai_node) -> None:
        """The AI's proposal is kept, hidden; the reader edits a copy of it."""
        self._replace_segmentation(ai_node, editable_copy(self.scene, ai_node))
        ai_node.GetDisplayNode().SetVisibility(False)

    def _replace_segmentation(self, ai_node, segmentation) -> None:
        for node in (self.ai_segmentation, self.segmentation):  # SmartImaging's own nodes; the reader's stay
            if node is not None and node.GetAttribute(ROLE) and self.scene.IsNodePresent(node):
                self.scene.RemoveNode(node)
        self.ai_segmentation, self.segmentation = ai_node, segmentation
        self._proposal_fingerprint = self.segmentation_fingerprint()
        self.result = self.ai_result = None

    @property
    def roi_source(self) -> str | None:
        """Where the reader's segmentation came from ("AI", "classical (AI found none)", "drawn by the reader"),
        and whether the reader edited a proposal since."""
        if self.segmentation is None:
            return None
        return roi_source(self.segmentation, self.segmentation_fingerprint() != self._proposal_fingerprint)

    # ---- steps --------------------------------------------------------------------------------------------------

    @property
    def worker(self) -> WorkerProcess | None:
        """The worker process the running step waits for (what Cancel stops)."""
        return self.step.worker if self.step is not None else None

    def _worker_options(self) -> list[str]:
        return ["--device", self.device] + (["--models-dir", self.models_dir] if self.models_dir else [])

    def start_worker(self, job: Job) -> WorkerProcess:
        """The job on the session's warm worker (`warm_worker`: models stay loaded between clicks)."""
        return warm_job(job.name, [*job.arguments, *self._worker_options()], python=self.python)

    def warm_up(self) -> None:
        """Load this module's worker models ahead, in the background (when the module opens), so that the reader's
        first click does not wait for them."""
        for name in self.worker_jobs:
            warm_up(name, self._worker_options(), python=self.python)

    def _forget_removed_nodes(self) -> None:
        """Drop the nodes the reader deleted from the scene since they were loaded or selected."""
        def present(node):
            return node is not None and self.scene.IsNodePresent(node)

        self.volumes = {role: node for role, node in self.volumes.items() if present(node)}
        self.point_node = self.point_node if present(self.point_node) else None
        if not present(self.segmentation):
            self.segmentation = self.ai_segmentation = None
        elif not present(self.ai_segmentation):
            self.ai_segmentation = None

    def _step(self, steps, progress=None, label: str = "") -> Step:
        """The flow's next step: `steps(progress)` is its generator (one step at a time); `label` names the step in
        its progress messages."""
        if self.step is not None and not self.step.over:
            raise InputError("Wait until the running step is over (or cancel it)")
        self._forget_removed_nodes()
        progress = _labelled(progress, label) if progress and label else progress or _no_progress
        self.step = Step(self, steps(progress), progress)
        return self.step

    def run_steps(self, steps, progress=None, label: str = "") -> Step:
        """A step that another reading of this flow's case makes (teaching's Check): one step at a time with the
        flow's own, cancelled as they are; `steps(progress)` is its generator."""
        return self._step(steps, progress, label)

    def cancel(self) -> bool:
        """Stop the running step's worker job; False when no job runs."""
        return self.step is not None and self.step.cancel()

    def segment(self, progress=None) -> Step:
        """The Segment step: the AI's proposal (kept, hidden) and the reader's editable copy of it."""
        return self._step(self._segment, progress, "Segment")

    def compute(self, progress=None) -> Step:
        """The compute step, from the current segmentation; a refused compute (InputError) keeps the previous
        result, which `result_is_stale` then tells apart from the current segmentation."""
        return self._step(self._computed, progress, self.compute_label)

    def _segment(self, progress):
        raise InputError(f"{self.module} has no segmentation step")
        yield  # a generator, as every step

    def _computed(self, progress):
        fingerprint = self.segmentation_fingerprint()  # what the result is computed from (edits may come meanwhile)
        source = self.roi_source
        if (self.ai_result is None and self.ai_segmentation is not None and self.segmentations == [self.segmentation]
                and fingerprint != self._proposal_fingerprint):  # edited before the AI's ROI was computed
            self.ai_result = yield from self._proposal_result(progress)
        result = yield from self._compute(progress)
        result.fingerprint, result.roi_source = fingerprint, source
        result.explanations = explain(self.module, [result.table_node, *self.extra_nodes.values()], self.models_dir)
        if self.ai_segmentation is not None and fingerprint == self._proposal_fingerprint:
            self.ai_result = result  # the AI's ROI as proposed
        elif self.ai_result is not None:
            result.compare_with(self.ai_result)
        self.result = result
        return result

    def _proposal_result(self, progress):
        """The result from the AI's proposal as proposed, for the AI-vs-edited rows: computed as the reader's would be,
        in a table that leaves the scene at once (the rows stay in the result); None when it is refused."""
        kept = self.segmentation, self.result, self.selected_table
        self.segmentation, self.result, self.selected_table = self.ai_segmentation, None, None
        try:
            result = yield from self._compute(progress)
        except InputError:
            return None
        finally:
            self.segmentation, self.result, self.selected_table = kept
        if result.table_node is not None and self.scene.IsNodePresent(result.table_node):
            self.scene.RemoveNode(result.table_node)
        result.table_node, result.fingerprint = None, self._proposal_fingerprint
        result.roi_source = roi_source(self.ai_segmentation, False)
        return result

    def _compute(self, progress):
        raise NotImplementedError  # every module's flow defines its compute step

    def run(self, step: Step, interval_s: float = 0.01):
        """Run a step to its end in this thread (scripts and tests; a GUI polls instead); its value."""
        while not step.poll():
            time.sleep(interval_s if step.worker is not None else 0)
        return step.value

    # ---- views --------------------------------------------------------------------------------------------------

    @property
    def layout(self) -> str:
        """"axial" (one slice view), "frames" (the first two frames side by side) or "side-by-side" (the volumes of
        `view_volumes` that are not None, in linked views)."""
        return "axial"

    @property
    def view_volumes(self) -> dict[str, object]:
        """Volumes by view of the "side-by-side" layout."""
        return {}

    @property
    def overlay(self):
        """A volume shown over the image (styled with `style_overlay`), or None."""
        return None


HEAT_MAP_SHOWN_FROM = 0.2  # heat-map values below this are transparent: the image stays readable under the map


def style_heat_map(node) -> None:
    """A heat map in [0, 1] over an image: rainbow colours, fixed window, cold voxels transparent."""
    if node.GetDisplayNode() is None:  # volumes made from arrays have no display node yet
        node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    display.SetAndObserveColorNodeID("vtkMRMLColorTableNodeRainbow")
    display.SetAutoWindowLevel(False)
    display.SetWindowLevelMinMax(0.0, 1.0)
    display.SetApplyThreshold(True)
    display.SetThreshold(HEAT_MAP_SHOWN_FROM, 1.0)


def heat_map_colours(node, values) -> list[str]:
    """The colours (#rrggbb) a heat map styled by `style_heat_map` shows at each value in [0, 1]: its colour
    table sampled over the display window, for a colour bar that matches the views."""
    table = node.GetDisplayNode().GetColorNode().GetLookupTable()
    last = table.GetNumberOfTableValues() - 1
    colours = []
    for value in values:
        red, green, blue, _ = table.GetTableValue(round(float(np.clip(value, 0.0, 1.0)) * last))
        colours.append(f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}")
    return colours
