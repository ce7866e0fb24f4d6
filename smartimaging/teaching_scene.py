"""Teaching mode in the scene (the station's teaching panel drives it; the scoring is `teaching`'s): a teaching set is
the cases of a cohort folder that carry an answer key (reference outline and label), read in a module's flow with
the reader's work kept in a scratch folder, so that a student never writes into the teacher's cohort. The AI's
outline of a case is the proposal the cohort's own worklist saved, else the module's Segment prompted at the key's
centre, run in a second flow so that the student's outline stays untouched. After Check the student's outline, the
key and the AI's outline are shown together as outlines (not fills), each in its own colour: the AI's green and the
student's orange as the AI's proposal and the reader's ROI are everywhere in the station, the key sky blue.

Bone scans are taught lesion-wise (LESION_WISE; `teaching.check_spots`): the key is the metastasis label of the
reference label map (the bladder label places the spots), possibly empty in a negative study (a case labelled
negative without a reference mask has an empty key); the student outlines the hot spots they believe are metastases,
or none; spots are placed at their skeletal site (`bonescan.sites`) on each view. A study whose label and reference
mask disagree (labelled with metastasis, none in the mask, or the reverse) is left out at open, saying why.

A mammogram whose file stores no pixel size (a loose PNG or JPEG of a hand-made set) and whose manifest gives none
(no `pixel_mm`) is not opened until one is given (`pixel_size_request`, `set_pixel_size`; the worklist's checks), so
that areas are never computed at a silent 1 mm. When no case of the set has one, it is asked once for the whole set
(a hand-made set's images come from one export; images of several sizes need the manifest's `pixel_mm` column), else
for each case that lacks one; it is kept in the scratch worklist's case records for the session (the open set)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer
from vtk.util.numpy_support import vtk_to_numpy

from .errors import InputError
from .limits import file_suffix
from .manifest import read_manifest
from .mrml import get_json_attribute, ijk_to_ras_matrix, volume_node_to_sitk
from .segfile import write_seg_nrrd
from .segmentation_nodes import PROPOSAL_COLOR, labels_from_segmentation, segmentation_from_labels
from .segments import SegmentSpec
from .wording import counted
from .worklist import NO_PIXEL_SIZE, OUTPUT_FOLDER, Case, PixelSizeNeededError, read_roi
from .worklist_scene import WorklistReading

TEACHABLE = ("MammoRadiomics", "BreastLVI", "BoneScanBSTBI")
LESION_WISE = ("BoneScanBSTBI",)  # checked spot by spot (the key may be empty); the others' key outlines one lesion
PHANTOM_CASES = 3  # a phantom teaching set's cases
PHANTOM_BONE_SCANS = ("positive", "negative", "positive")  # a bone-scan phantom set: metastases in these studies
MAX_PHANTOM_SPOTS = 12  # a phantom set's positive bone scans have at most this many metastases (a student outlines
# each on two views)
OUTLINE_ROLE = "SmartImaging.TeachingOutline"  # attribute of the outline nodes: "student", "key" or "ai"
OUTLINE_PX = 2  # outline width in the slice views (the segmentation display node's slice intersection thickness)


@dataclass(frozen=True)
class Outline:
    name: str  # OUTLINE_ROLE's value
    title: str  # the legend's words
    color: tuple[float, float, float]

    @property
    def hex(self) -> str:
        return "#" + "".join(f"{round(255 * c):02X}" for c in self.color)


# The AI's outline in the station's proposal green; the student's in Okabe-Ito vermillion (the reader's orange) and
# the key in Okabe-Ito sky blue: the three told apart with protan, deutan and tritan vision (a yellow student's
# outline would not be, beside this green); in drawing order: the key last, on top where the outlines coincide
OUTLINES = (Outline("student", "Your outline", (0.835, 0.369, 0.0)),  # vermillion
            Outline("ai", "AI", PROPOSAL_COLOR),  # green
            Outline("key", "Answer key", (0.337, 0.706, 0.914)))  # sky blue


def write_phantom_set(folder: Path, module: str, seed: int = 0, kind: str | None = None) -> Path:
    """PHANTOM_CASES phantom cases of `module` with their ground truth (a cohort folder whose manifest has masks and
    labels); `kind`: the mammography lesion kind; bone scans: PHANTOM_BONE_SCANS. The folder."""
    if module == "MammoRadiomics":
        from .mammo.cohort import write_mammo_phantom_cohort

        write_mammo_phantom_cohort(folder, PHANTOM_CASES, seed=seed, kind=kind)
    elif module == "BreastLVI":
        from .lvi.cohort import write_lvi_phantom_cohort

        write_lvi_phantom_cohort(folder, PHANTOM_CASES, seed=seed)
    elif module == "BoneScanBSTBI":
        from .bonescan.cohort import write_phantom_cohort

        write_phantom_cohort(folder, PHANTOM_CASES, phantoms=phantom_bone_scans(seed))
    else:
        raise InputError(teachable_refusal(module))
    return Path(folder)


def phantom_bone_scans(seed: int) -> list:
    """Bone-scan phantoms, the first of the seed's series that fit PHANTOM_BONE_SCANS (a positive one with 1 to
    MAX_PHANTOM_SPOTS metastases), in that order."""
    from .phantoms.bonescan import make_bone_scan_phantom

    wanted = {status: PHANTOM_BONE_SCANS.count(status) for status in set(PHANTOM_BONE_SCANS)}
    found: dict[str, list] = {status: [] for status in wanted}
    for number in range(seed * 100_000, seed * 100_000 + 1000):
        phantom = make_bone_scan_phantom(number)
        status = "positive" if phantom.n_lesions else "negative"
        if phantom.n_lesions <= MAX_PHANTOM_SPOTS and len(found[status]) < wanted[status]:
            found[status].append(phantom)
        if all(len(found[status]) == count for status, count in wanted.items()):
            return [found[status].pop(0) for status in PHANTOM_BONE_SCANS]
    raise InputError(f"No bone-scan phantom set from seed {seed}: too few phantoms of each kind")


def teachable_refusal(module: str) -> str:
    """Why a module has no teaching mode."""
    return (f"{module} has no teaching mode: teaching checks the student's outline against an answer key, which the "
            "mammography, LVI and bone-scan modules have")


class TeachingSet:
    """The cases with an answer key of a cohort folder, opened in `flow`; the reader's work goes to `scratch`."""

    def __init__(self, flow, folder: str | Path, scratch: str | Path):
        if flow.module not in TEACHABLE:
            raise InputError(teachable_refusal(flow.module))
        self.folder = Path(folder)
        self.scratch = Path(scratch)
        self.reading = WorklistReading(flow, self.folder, out=self.scratch / "worklist")
        worklist = self.reading.worklist
        self.label_field = worklist.spec.label_field
        self.lesion_wise = flow.module in LESION_WISE
        negative = next((c for c, v in self.label_field.label_of.items() if v == 0), None)
        keyed = [case for case in worklist.cases if case.key_mask is not None
                 or self.lesion_wise and case.key_label is not None and case.key_label == negative]
        no_outline = len(worklist.cases) - len(keyed)
        no_label = sum(case.key_label is None for case in keyed)
        labelled = [case for case in keyed if case.key_label is not None]
        disagree = [(case, why) for case in labelled if (why := self._disagreement(case))]
        self.cases = [case for case in labelled if case not in [c for c, _ in disagree]]
        reasons = [text for count, text in (
            (no_outline, f"{counted(no_outline, 'case')} without a reference outline (the manifest's "
                         f"{worklist.spec.mask_column} column{'; a negative study may have none' * self.lesion_wise})"),
            (no_label, f"{counted(no_label, 'case')} without a label (the manifest's label column)"),
            (len(disagree), f"{counted(len(disagree), 'case')} whose label and reference mask disagree ("
                            f"{', '.join(f'{case.name}: {why}' for case, why in disagree)})"),
            (len(worklist.skipped), f"{counted(len(worklist.skipped), 'row')} whose files are missing")) if count]
        self.left_out = (f"Left out: {'; '.join(reasons)}. Only cases with an answer key (outline and label) are "
                         "taught.") if reasons else ""
        if not self.cases:
            raise InputError(f"{self.folder.name} has no case with an answer key (a reference outline and a label "
                             f"in its manifest.csv); {self.left_out}")
        self._proposals = saved_proposals(self.folder, worklist)
        self._no_pixel_size = [case for case in self.cases if self._waits(case)]
        self.pixel_size_for_set = len(self._no_pixel_size) == len(self.cases)  # asked once for the whole set

    def _disagreement(self, case: Case) -> str:
        """Lesion-wise (a bone scan): why the case's label and its reference mask contradict each other (labelled
        with metastasis and no metastasis in the mask, or the reverse: the check would say both the call and the
        spots are right about opposite answers), else "". A mask that cannot be read is left to the case's opening,
        which says why."""
        if not self.lesion_wise or case.key_mask is None:
            return ""
        from .io import read_volume

        try:
            spots = bool((sitk.GetArrayFromImage(read_volume(case.key_mask)) == self.lesion_label).any())
        except (InputError, OSError, RuntimeError):
            return ""
        positive = self.label_field.label_of.get(case.key_label) != 0
        if positive == spots:
            return ""
        return (f"labelled '{case.key_label}' but its mask outlines {'no' if positive else 'a'} "
                f"{self.reading.flow.drawn_segments[0].name.lower()}")

    def _waits(self, case: Case) -> bool:
        """Whether the case's image stores no pixel size and none is given (manifest, this session)."""
        try:
            self.reading.worklist.require_pixel_size(case.case_id)
        except PixelSizeNeededError:
            return True
        return False

    def pixel_size_request(self, index: int) -> str:
        """What the teacher is asked before the `index`-th case opens: its pixel size (the set's when no case has
        one); "" when it is known (its file, the manifest's pixel_mm, or given this session)."""
        case = self.cases[index]
        if not self._waits(case):
            return ""
        role = next(iter(self.reading.worklist.spec.roles))
        if self.pixel_size_for_set:
            kinds = sorted({_stored_as(c.inputs[role]) for c in self._no_pixel_size})
            return (f"The images of this teaching set ({' and '.join(kinds)} files) store no pixel size and its "
                    "manifest.csv gives none (a pixel_mm column): give the pixel size in mm (e.g. 0.1) of every case "
                    "of the set; it is kept for this session.")
        return (f"Case {case.name}: its {_stored_as(case.inputs[role])} file stores no pixel size and the manifest "
                "gives none: give the pixel size in mm (e.g. 0.1) to open it; it is kept for this session.")

    def set_pixel_size(self, index: int, text: str) -> list[str]:
        """Keep the pixel size (mm) given for the `index`-th case, or for every case of the set when none has one
        (`pixel_size_for_set`), in the scratch worklist's case records (`Worklist.set_pixel_size`'s checks: a size
        mammo extract refuses is refused, nothing kept); the teacher's cohort is not written. The cases' ids."""
        ids = [c.case_id for c in self._no_pixel_size] if self.pixel_size_for_set else [self.cases[index].case_id]
        for case_id in ids:
            self.reading.worklist.set_pixel_size(case_id, text)
        return ids

    @property
    def choices(self) -> tuple[str, ...]:
        """The calls the student chooses from (the module's label field: benign / malignant...)."""
        return self.label_field.choices

    def open(self, index: int) -> Case:
        """Open the set's `index`-th case into the flow: its images only (the AI and the key stay out of the scene);
        PixelSizeNeededError (views emptied) while it waits for its pixel size (`pixel_size_request`)."""
        return self.reading.open_case(self.cases[index].case_id)

    def saved_proposal(self, case: Case) -> Path | None:
        """The AI's proposal the cohort's worklist saved for the case (ai.seg.nrrd), None when it saved none."""
        return self._proposals.get(case.case_id)

    def key(self) -> np.ndarray:
        """The open case's answer key (bool, (k, j, i) on its image's grid): lesion-wise, the metastasis label only
        (empty for a negative case without a reference mask)."""
        labels = self._key_labels()
        return labels == self.lesion_label if self.lesion_wise else labels != 0

    def bladder(self) -> np.ndarray | None:
        """A bone scan's bladder in the open case's key (bool, (k, j, i)), None when the key has none."""
        from .bonescan.lesions import BLADDER

        bladder = self._key_labels() == BLADDER
        return bladder if bladder.any() else None

    @property
    def lesion_label(self) -> int:
        """The label value of the lesion in the key and the outlines (the module's first segment)."""
        return self.reading.flow.drawn_segments[0].label

    def _key_labels(self) -> np.ndarray:
        labels = self.reading.answer_key()
        if labels is None:  # a negative bone scan without a reference mask
            return np.zeros(volume_node_to_sitk(self.reading.flow.primary).GetSize()[::-1], np.uint8)
        return labels

    def keep(self, case: Case, masks: dict[str, np.ndarray], reference: sitk.Image, segment: SegmentSpec) -> Path:
        """The checked outlines of a case (`masks` by OUTLINES name) as .seg.nrrd files in the scratch folder
        (`checked/<case>/student.seg.nrrd`, ...), the session's record of what was scored; their folder."""
        folder = self.scratch / "checked" / case.case_id
        folder.mkdir(parents=True, exist_ok=True)
        for name, mask in masks.items():
            write_seg_nrrd(mask.astype(np.uint8) * segment.label, reference, (segment,), folder / f"{name}.seg.nrrd")
        return folder


def saved_proposals(folder: Path, worklist) -> dict[str, Path]:
    """Case id -> the AI proposal a worklist saved: in the cohort's own worklist (`<folder>/smartimaging/<module>/
    cases/<case>/ai.seg.nrrd`), or, for a worklist's output folder, in its manifest's ai_<mask> column."""
    spec = worklist.spec
    found = {}
    cases = folder / OUTPUT_FOLDER / spec.module / "cases"
    for case in worklist.cases:
        path = cases / case.case_id / "ai.seg.nrrd"
        if path.is_file():
            found[case.case_id] = path
    manifest_path, column = folder / "manifest.csv", f"ai_{spec.mask_column}"
    image_column = next(iter(spec.roles.values()))
    if manifest_path.is_file() and column in _header(manifest_path):
        manifest = read_manifest(manifest_path, required=("patient_id", image_column))
        by_image = {manifest.resolve(row[image_column]): manifest.resolve(row[column]) for row in manifest.rows
                    if row.get(column) and row.get(image_column)}
        first_role = next(iter(spec.roles))
        for case in worklist.cases:
            path = by_image.get(case.inputs.get(first_role))
            if path is not None and path.is_file():
                found[case.case_id] = path
    return found


def _stored_as(image: Path) -> str:
    """The kind of an image file in a pixel-size request: "PNG", "JPEG", "DICOM"."""
    suffix = file_suffix(image)
    return {".jpg": "JPEG", ".tif": "TIFF"}.get(suffix, suffix.lstrip(".").upper()) if suffix in NO_PIXEL_SIZE \
        else "DICOM"


def _header(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return next(csv.reader(f), [])


def read_proposal(path: Path, reference: sitk.Image, label: int | None = None) -> np.ndarray:
    """A saved proposal as a bool mask on the case image's grid (the worklist's checked `read_roi`): its pixels of
    `label`, or all its labelled pixels when None; refused when it is damaged, too large or on another grid."""
    labels = sitk.GetArrayFromImage(read_roi(path, reference, "saved AI proposal"))
    return labels != 0 if label is None else labels == label


def key_centre_lps(key: np.ndarray, reference: sitk.Image) -> tuple[float, float, float]:
    """The key's centroid (LPS, mm): the prompt of the AI's Segment."""
    index = np.argwhere(key).mean(axis=0)[::-1]  # (i, j, k)
    return tuple(float(v) for v in reference.TransformContinuousIndexToPhysicalPoint(index.tolist()))


def proposal_flow(flow, case: Case, point_lps) -> object:
    """A second flow of the module on the same scene, with the case's images, the networks chosen in `flow` (the
    Model and Proposal network selectors), the case's pixel size as `flow` read it (the manifest's or the one given)
    and the prompt at `point_lps` (None: a module without one): its Segment makes the AI's outline without touching
    the student's (clear it afterwards)."""
    scratch = type(flow)(flow.scene, flow.device, flow.models_dir, flow.python)
    scratch.classifier_card, scratch.segmenter_card = flow.classifier_card, flow.segmenter_card
    scratch.set_case_options(kind=case.given.get("kind") or getattr(flow, "kind", None),
                             pixel_mm=getattr(flow, "pixel_mm", None))
    for role in scratch.roles:
        if role in case.inputs:
            scratch.load(role, case.inputs[role], f"teaching AI {role}")
    if scratch.places_point:
        scratch.set_point_lps(point_lps)
    return scratch


def proposal_mask(flow) -> np.ndarray:
    """The AI's outline a `proposal_flow`'s Segment made (bool, on its image's grid): lesion-wise, its lesion segment
    only (not the bladder)."""
    return _outline(flow, flow.ai_segmentation)


def proposal_call(flow) -> str | None:
    """The AI's call on a bone scan whose `proposal_flow` segmented it ("yes" / "no": the networks' metastasis
    suspected, as the result records it), None when not recorded."""
    from .bonescan.scene import RESULT

    suspected = get_json_attribute(flow.ai_segmentation, RESULT, {}).get("metastasis_suspected")
    return None if suspected is None else "yes" if suspected else "no"


def student_mask(flow) -> np.ndarray:
    """The student's outline: every drawn segment of the flow's segmentation, lesion-wise its lesion segment only
    (bool, on the image's grid); lesion-wise, nothing drawn is an empty outline (the student outlined no spot)."""
    if flow.segmentation is None:
        if flow.module in LESION_WISE:
            return np.zeros(volume_node_to_sitk(flow.primary).GetSize()[::-1], bool)
        raise InputError("Draw your outline first: press “Draw ROI by hand” and paint the lesion")
    return _outline(flow, flow.segmentation)


def _outline(flow, node) -> np.ndarray:
    labels = labels_from_segmentation(flow.scene, node, flow.primary, flow.drawn_segments)
    return labels == flow.drawn_segments[0].label if flow.module in LESION_WISE else labels != 0


def spot_sites(flow, bladder: np.ndarray | None):
    """A bone scan's view names and the `where(slice, row, column)` of `teaching.check_spots`: the skeletal site
    (`bonescan.sites`, from the view's counts and the key's bladder), "(if this is the anterior view)" added to a
    side on a view the file does not record; None where no body is found on the view."""
    from .bonescan.scene import study_from_volume_nodes
    from .bonescan.sites import body_frame, skeletal_site

    views = {view.frame: view for view in study_from_volume_nodes([flow.primary], flow.view_names or None).views}
    names = [views[k].name if k in views else f"{k + 1}" for k in range(max(views) + 1)]
    spacing = flow.primary.GetSpacing()
    frames = {k: body_frame(view.counts, None if bladder is None else bladder[k]) for k, view in views.items()}
    recorded = list(flow.recorded_views) + [False] * len(names)

    def where(k: int, row: float, col: float) -> str | None:
        if frames.get(k) is None:
            return None
        site = skeletal_site(row, col, names[k], frames[k], (spacing[1], spacing[0]))
        unsure = not recorded[k] and site.startswith(("left ", "right "))
        return site + (f" (if this is the {names[k]} view)" if unsure else "")

    return names, where


def has_drawing(segmentation_node) -> bool:
    """Whether a segment of the segmentation has a voxel (read from its own labelmap: no export, cheap on every
    brush stroke)."""
    segmentation = segmentation_node.GetSegmentation()
    representation = slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
    for index in range(segmentation.GetNumberOfSegments()):
        segment = segmentation.GetNthSegment(index)
        labelmap = segment.GetRepresentation(representation)
        scalars = labelmap.GetPointData().GetScalars() if labelmap is not None else None
        if scalars is not None and np.any(vtk_to_numpy(scalars) == segment.GetLabelValue()):
            return True
    return False


def show_outlines(scene, volume_node, masks: dict[str, np.ndarray], segment: SegmentSpec) -> list:
    """One segmentation node per outline of `masks` (by OUTLINES name) that has a pixel, drawn as an outline in its
    colour; the nodes, in OUTLINES' order (the last drawn on top)."""
    nodes = []
    for outline in OUTLINES:
        if outline.name not in masks or not np.any(masks[outline.name]):
            continue
        labels = masks[outline.name].astype(np.uint8) * segment.label
        node = segmentation_from_labels(scene, volume_node, labels, (segment,),
                                        f"{volume_node.GetName()} {outline.title}", "teaching")
        node.SetAttribute(OUTLINE_ROLE, outline.name)
        shown = node.GetSegmentation().GetNthSegment(0)
        shown.SetName(outline.title)
        shown.SetColor(*outline.color)
        display = node.GetDisplayNode()
        display.SetVisibility2DFill(False)
        display.SetVisibility2DOutline(True)
        display.SetSliceIntersectionThickness(OUTLINE_PX)
        nodes.append(node)
    return nodes


def ras_bounds(masks, volume_node) -> list[float]:
    """The RAS bounds (xmin, xmax, ymin, ymax, zmin, zmax, mm) of the voxels of some (k, j, i) masks of a volume."""
    union = np.logical_or.reduce([np.asarray(mask, bool) for mask in masks])
    low, high = np.argwhere(union).min(axis=0)[::-1], np.argwhere(union).max(axis=0)[::-1]
    corners = np.array([[i, j, k, 1.0] for i in (low[0] - 0.5, high[0] + 0.5) for j in (low[1] - 0.5, high[1] + 0.5)
                        for k in (low[2] - 0.5, high[2] + 0.5)])
    ras = (ijk_to_ras_matrix(volume_node) @ corners.T)[:3]
    return [float(v) for axis in range(3) for v in (ras[axis].min(), ras[axis].max())]


def slice_centre_ras(masks, volume_node, k: int | None = None) -> list[float]:
    """The RAS point (mm) at the centre of the in-plane box of some (k, j, i) masks of a volume, on slice `k` (the box's
    middle when None): where the views centre to show that slice."""
    union = np.logical_or.reduce([np.asarray(mask, bool) for mask in masks])
    low, high = np.argwhere(union).min(axis=0)[::-1], np.argwhere(union).max(axis=0)[::-1]
    i, j, middle = (low + high) / 2
    return [float(v) for v in (ijk_to_ras_matrix(volume_node) @ [i, j, middle if k is None else k, 1.0])[:3]]


def image_of(mask: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """A (k, j, i) mask as a label image on the reference's grid."""
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(reference)
    return image


def segmentations_shown(scene) -> list[dict]:
    """Every segmentation node of the scene: its name, its teaching outline ("" for another), whether a slice view
    shows it and whether filled: what the student can see."""
    nodes = scene.GetNodesByClass("vtkMRMLSegmentationNode")
    shown = []
    for index in range(nodes.GetNumberOfItems()):
        node = nodes.GetItemAsObject(index)
        displays = [node.GetNthDisplayNode(i) for i in range(node.GetNumberOfDisplayNodes())]
        visible = [d for d in displays if d is not None and d.GetVisibility() and d.GetVisibility2D()]
        shown.append({"name": node.GetName(), "outline": node.GetAttribute(OUTLINE_ROLE) or "",
                      "visible": bool(visible), "filled": any(d.GetVisibility2DFill() for d in visible)})
    return shown
