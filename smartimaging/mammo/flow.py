"""The mammography reading flow (desktop module MammoRadiomics and the reading station): load the mammogram (with
the pixel size the reader gives for files that store none) -> place a point -> Segment (in this process) or draw the
lesion by hand -> the reader edits -> Rad-score."""

from __future__ import annotations

from ..errors import InputError
from ..reading import Flow, Job, Result, Step
from ..segments import MAMMO_SEGMENTS, SegmentSpec
from .images import PIXEL_SIZE_HINTS, parse_pixel_mm

KINDS = ("mass", "calcification")


class MammoFlow(Flow):
    module = "MammoRadiomics"
    title = "Mammography Rad-score"
    roles = ("mammogram",)
    role_labels = {"mammogram": "Mammogram (DICOM, PNG, PGM)"}
    reads_series = False
    places_point = True
    compute_label = "Compute Rad-score"
    draw_hint = "Paint the lesion in the Segment Editor (Paint, then Erase to correct), then compute."
    kinds = KINDS
    takes_pixel_size = True
    pixel_hint = PIXEL_SIZE_HINTS["desktop"]  # where the reader gives a pixel size (the station sets its own)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = "mass"
        self.pixel_mm: float | None = None  # the reader's pixel size for files that store none
        self.mammogram = None  # the last file read, for its pixel-size record
        self.classifier_card = None  # the Model selector's choice (a cohort's model card); None: the kind's demo one
        self.segmenter_card = None  # the Proposal network selector's choice (a fine-tuned card); None: the demo U-Net

    def set_kind(self, kind: str) -> None:
        """The lesion kind the reader chose: the reader's ROI (drawn, or the edited copy) is renamed after it, its
        voxels stay; the AI's proposal keeps the kind it was segmented as."""
        from ..segmentation_nodes import relabel

        if kind != self.kind and self.segmentation is not None:
            relabel(self.segmentation, MAMMO_SEGMENTS[self.kind], MAMMO_SEGMENTS[kind], self.kind, kind)
        self.kind = kind

    def set_case_options(self, kind=None, pixel_mm=None) -> None:
        self.kind = kind or self.kind
        self.pixel_mm = pixel_mm

    def set_pixel_size(self, text) -> None:
        """The pixel size as the reader typed it (`images.parse_pixel_mm`: the worklist's check), used for the next
        file read."""
        self.pixel_mm = parse_pixel_mm(text)

    def select(self, volumes, point_node=None, segmentation=None, table_node=None) -> None:
        """As Flow.select; a mammogram Slicer read from a file that stores no pixel size takes the reader's
        (`set_pixel_size`), or is recorded as of unknown pixel size (`mammo.scene.check_pixel_size`)."""
        from .scene import check_pixel_size

        super().select(volumes, point_node, segmentation, table_node)
        if self.primary is not None and check_pixel_size(self.primary, self.pixel_mm):
            self._replace_segmentation(None, None)  # the grid changed: ROIs and results on the old one are gone

    def read(self, role, path):
        from .images import load_mammogram

        self.mammogram = load_mammogram(path, self.pixel_mm)
        return self.mammogram.image

    def load(self, role, path, name=None, image=None):
        from .scene import record_pixel_size

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

    def segmenter(self):
        """The kind's segmentation network (the demo U-Net, or `segmenter_card`), kept loaded while its card and
        weights are unchanged on disk (changed ones are loaded and checked again, never served stale)."""
        from ..worker import MODELS
        from .segment import SEGMENTER_IDS, MammoSegmenter

        kind, card = self.kind, self.segmenter_card
        return MODELS.get(f"mammo-{kind}", (str(card) if card else SEGMENTER_IDS[kind],), self.models_dir,
                          self.device, lambda: MammoSegmenter.load(kind, self.models_dir, self.device, card))

    def _segment(self, progress, box=None):
        from . import scene as mammo_scene

        self.require("mammogram")
        progress(0.1, f"segmenting the {self.kind}")
        yield  # the GUI shows the progress first
        point = mammo_scene.point_from_markups(self.primary, self.point_node,
                                               self.point_node.GetNumberOfControlPoints() - 1) \
            if self.has_point and box is None else None
        ai_node = mammo_scene.segment(self.scene, self.primary, self.kind, self.segmenter(), point=point, box=box)
        self._keep_segmentation(ai_node)

    def segment_box(self, box, progress=None):
        """The Segment step prompted by a box (row0, col0, row1, col1) instead of the point."""
        return self._step(lambda with_progress: self._segment(with_progress, box), progress)

    def batch(self, folder, output_folder, masks_folder=None, table_node=None, progress=None):
        """The batch step: every mammogram of a folder (with the reader's masks named like the images, if any) in
        the worker; its value: (table node with one row per image, the worker's result event). It runs beside the
        case's steps (the reader may go on reading meanwhile); cancel it through the step."""
        arguments = ["--input", str(folder), "--output-dir", str(output_folder), "--kind", self.kind]
        arguments += (["--masks", str(masks_folder)] if masks_folder else []) + \
            (["--pixel-mm", str(self.pixel_mm)] if self.pixel_mm else [])
        return Step(self, self._batch(arguments, table_node), progress)

    def _batch(self, arguments, table_node):
        from . import scene as mammo_scene

        event = yield Job("mammo-batch", arguments)
        return mammo_scene.batch_table(self.scene, event["results"], table_node), event

    def _compute(self, progress):
        from . import scene as mammo_scene

        if self.segmentation is None:
            raise InputError("Press Segment (or Draw ROI by hand) first: the Rad-score is computed from the ROI")
        progress(0.1, "extracting radiomics features")
        yield
        table, prediction = mammo_scene.classify(self.scene, self.primary, self.segmentation, self.kind,
                                                 self.models_dir, table_node=self.table_to_update,
                                                 pixel_hint=self.pixel_hint, classifier_card=self.classifier_card)
        return Result.of_table(f"Rad-score {prediction.rad_score:.3f} ({prediction.label})", table,
                               prediction.warnings)
