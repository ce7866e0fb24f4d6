"""The breast-MRI LVI reading flow (desktop module BreastLVI and the reading station): load the DCE (and the T2) ->
place a point on the lesion -> Segment (in this process) or draw the VOI by hand -> the reader edits -> LVI
probabilities and Grad-CAM maps (networks in the worker)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import InputError
from ..reading import Flow, Job, Result
from ..segments import BREAST_MASS


class LVIFlow(Flow):
    module = "BreastLVI"
    worker_jobs = ("lvi-predict",)
    title = "Breast MRI LVI"
    roles = ("DCE", "T2")
    role_labels = {"DCE": "DCE (DICOM series, NRRD, NIfTI)", "T2": "FS-T2WI (DICOM series, NRRD, NIfTI)"}
    places_point = True
    compute_label = "Predict LVI"
    draw_hint = "Paint the lesion on every slice it covers in the Segment Editor, then compute."
    roi_name = "lesion VOI"
    drawn_segments = (BREAST_MASS,)
    segmenter_card = None  # the Proposal network selector's choice (a fine-tuned card); None: the demo U-Net
    classifier_card = None  # the Model selector's choice (a cohort's model card); None: the demo networks, fused

    @property
    def primary(self):
        """The sequence that is shown and segmented: the DCE, else the T2 (the desktop may select the T2 alone)."""
        return self.volumes["DCE"] if "DCE" in self.volumes else self.volumes.get("T2")

    def check_volume(self, role, image, name):
        from .preprocess import check_mr_volume

        check_mr_volume(image, name)

    def _segment(self, progress):
        from ..worker import MODELS
        from . import scene as lvi_scene
        from .segment import SEGMENTER_ID, LesionSegmenter

        if self.primary is None:
            raise InputError("Load the DCE image first")
        if not self.has_point:
            raise InputError("Place a point on the lesion first")  # before the network is loaded
        progress(0.1, "segmenting the lesion around the point")
        yield
        model = str(self.segmenter_card) if self.segmenter_card else SEGMENTER_ID
        segmenter = MODELS.get("lvi-segment", (model,), self.models_dir, self.device,
                               lambda: LesionSegmenter.load(self.models_dir, self.device, model))  # reloaded if changed
        self._keep_segmentation(lvi_scene.segment(self.scene, self.primary, self.point_node, segmenter,
                                                  self.point_node.GetNumberOfControlPoints() - 1))

    def _compute(self, progress):
        from . import scene as lvi_scene

        if self.segmentation is None:
            raise InputError("Press Segment (or Draw ROI by hand) first: the networks look at the lesion box")
        chosen = []
        if self.classifier_card:  # this network alone, on its sequence
            from .worklist_training import chosen_model

            sequence, network = chosen_model(self.classifier_card)
            if sequence not in self.volumes:
                raise InputError(f"The chosen model {Path(self.classifier_card).stem} ({network}) reads the "
                                 f"{sequence}: load the {sequence} series, or choose another model")
            chosen = ["--models", str(self.classifier_card)]
        with tempfile.TemporaryDirectory(prefix="smartimaging-lvi-") as folder:
            arguments = lvi_scene.write_inputs_for_worker(self.scene, self.volumes, self.segmentation, Path(folder))
            event = yield Job("lvi-predict", arguments + chosen)
            table, result = lvi_scene.import_worker_result(self.scene, self.volumes, event, self.segmentation,
                                                           self.table_to_update)
        for node in self.extra_nodes.values():  # the previous result's heat maps stay until this one succeeds
            self.scene.RemoveNode(node)
        self.extra_nodes = {f"Grad-CAM {model_id}": node for model_id, node in result.heat_maps.items()}
        fused = result.fused
        used = "" if not chosen else f"; {network}, model {Path(self.classifier_card).stem}"
        return Result.of_table(f"LVI probability {fused['probability']:.3f} ({fused['label']}{used})", table,
                               result.warnings, result.domain)

    @property
    def layout(self) -> str:
        """DCE and T2 side by side when both are loaded: the T2 model reads the T2 and the result may say that the
        sequences disagree, so the reader sees both."""
        return "side-by-side" if "DCE" in self.volumes and "T2" in self.volumes else "axial"

    @property
    def view_volumes(self) -> dict:
        """The DCE and the T2, by view (named as their captions say: the sequence each shows)."""
        return {"DCE": self.volumes.get("DCE"), "FS-T2WI": self.volumes.get("T2")}

    @property
    def overlay(self):
        """The Grad-CAM volume on the DCE grid (the first DCE model's)."""
        return next((node for name, node in self.extra_nodes.items() if "-dce-" in name), None)
