"""The synthetic-DCE reading flow (desktop module DCESynthesis and the reading station): load the T1 (and a real
DCE to compare with) -> synthesize (generator in the worker) -> T1, synthetic DCE, real DCE and the subtraction MIP
side by side, the regions that enhance on the real DCE outlined on the real and the synthetic DCE."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..reading import Flow, Job, Result
from ..result_nodes import domain_check

VIEW_VOLUMES = ("DCE-T1", "DCE-Synthetic", "DCE-Real", "DCE-MIP")  # as dce.scene.VIEWS


class DCEFlow(Flow):
    module = "DCESynthesis"
    worker_jobs = ("dce-synthesize",)
    title = "Synthetic DCE"
    roles = ("T1", "DCE")
    role_labels = {"T1": "T1WI (DICOM series, NRRD, NIfTI)", "DCE": "DCE (DICOM series, NRRD, NIfTI)"}
    needs_segment = False
    compute_label = "Synthesize DCE"
    generator_card = None  # the Model selector's choice (a generator fine-tuned on a cohort); None: the demo one

    def check_volume(self, role, image, name):
        from .volumes import check_mr_volume

        check_mr_volume(image, name, role)

    def _compute(self, progress):
        from . import scene as dce_scene

        self.require("T1")
        for node in self.extra_nodes.values():
            self.scene.RemoveNode(node)
        self.extra_nodes = {}
        if self.result is not None and self.result.table_node is not None:
            self.scene.RemoveNode(self.result.table_node)
        self.result = None  # its volumes are gone: a refused or cancelled synthesis leaves no result behind
        with tempfile.TemporaryDirectory(prefix="smartimaging-dce-") as folder:
            arguments = dce_scene.write_inputs_for_worker(self.primary, self.volumes.get("DCE"), Path(folder))
            chosen = ["--generator", str(self.generator_card)] if self.generator_card else []
            event = yield Job("dce-synthesize", [*arguments, *chosen])
            table, result = dce_scene.import_worker_result(self.scene, self.primary, event)
        self.extra_nodes = dict(result.volumes)
        if table is not None:
            return Result.of_table(f"Synthetic DCE: SSIM {result.ssim:.3f} vs real DCE", table, result.warnings,
                                   result.domain)
        model = result.record["model"]
        rows = [["Real DCE", "not loaded: no similarity metrics"], ["Model", f"{model['id']} {model['version']}"]]
        return Result("Synthetic DCE ready (no real DCE to compare with)", ["Quantity", "Value"], rows, None,
                      result.warnings, domain=result.domain or domain_check(result.volumes["synthetic"], rows))

    @property
    def layout(self) -> str:
        """T1 and real DCE side by side once a real DCE is loaded, the synthetic DCE and its MIP too once made."""
        side_by_side = self.result is not None or (self.primary is not None and "DCE" in self.volumes)
        return "side-by-side" if side_by_side else "axial"

    @property
    def regions(self):
        """The segmentation of the regions that enhance on the real DCE (`dce.scene.add_regions`: outlined on the
        views `dce.scene.REGION_VIEWS`), or None (no real DCE, or nothing focal enhances on it)."""
        return self.extra_nodes.get("regions")

    @property
    def view_volumes(self) -> dict:
        """Volumes by view of the DCESynthesis layout (dce.scene.VIEWS)."""
        return dict(zip(VIEW_VOLUMES, (self.primary, self.extra_nodes.get("synthetic"), self.volumes.get("DCE"),
                                       self.extra_nodes.get("mip")), strict=True))
