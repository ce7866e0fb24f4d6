"""Result files of a bone-scan analysis: result.json, segmentation (.seg.nrrd + NIfTI) per input, overlay PNGs,
with `dicom` a DICOM SEG + SR per input (`bonescan.dicom`) and with `report` the case report (`report.html`). File
names are neutral (segmentation.seg.nrrd, segmentation_labels.nii.gz; _2, _3... for further inputs), never the
input's, which may name the patient."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io import atomic_output_dir, disk_errors, write_image, write_json
from ..overlays import outline_png
from ..privacy import input_record
from ..record_report import REPORT_FILE, Explainer, write_report
from ..segfile import labelmap_image, write_seg_nrrd
from ..segments import BONESCAN_SEGMENTS
from .followup import acquisition
from .pipeline import BLADDER, LESION, BoneScanResult
from .report_page import report_page
from .views import IDENTIFIERS, BoneScanStudy


def source_labelmaps(study: BoneScanStudy, labelmaps: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Per source image, the (frames, rows, cols) label array on that image's grid."""
    arrays = [np.zeros((image.GetSize()[2], image.GetSize()[1], image.GetSize()[0]), np.uint8)
              for image in study.images]
    for view in study.views:
        arrays[view.source][view.frame] = labelmaps[view.name]
    return arrays


def overlay_png(counts: np.ndarray, labels: np.ndarray, path: str | os.PathLike, title: str) -> None:
    """Grey bone scan (uptake dark, as read clinically) with lesion (red) and bladder (yellow) outlines."""
    upper = float(np.percentile(counts, 99.9)) or 1.0
    outline_png(counts, [(labels == LESION, (255, 0, 0)), (labels == BLADDER, (255, 215, 0))], path, title,
                width=220, window=(0.0, upper), dark_is_high=True)


def study_record(study: BoneScanStudy, keep_identifiers: bool = False) -> dict:
    """The study's metadata for result.json: the patient's identifiers only when the user asks for them."""
    record = {key: value for key, value in study.meta.items() if key != IDENTIFIERS}
    return {**record, **study.meta.get(IDENTIFIERS, {})} if keep_identifiers else record


def write_result(study: BoneScanStudy, result: BoneScanResult, out_dir: str | os.PathLike,
                 keep_identifiers: bool = False, dicom: bool = False, report: Explainer | None = None) -> Path:
    """Write everything into `out_dir` at once (nothing is left behind on failure); no patient identifiers unless
    `keep_identifiers` (else the inputs are recorded by their sha256 only; the DICOM objects of `dicom` keep the
    source's patient module, as PACS needs; the report of `report`, which gives the record's explanations, never holds
    any). The DICOM segments are the AI's when the networks ran (beside them the reader's, without the lesions of
    --exclude, when some were rejected), else the reader's (`bonescan bstbi`)."""
    per_source = source_labelmaps(study, result.labelmaps)
    with atomic_output_dir(out_dir) as scratch:
        outputs = []
        if dicom:
            from .dicom import dicom_parts, write_bonescan_dicom

            record = result.as_json()
            views = [[view.name for view in study.views if view.source == index] for index in range(len(study.paths))]
            networks = bool(result.models)  # the AI's proposal (every lesion) and the reader's rejections apart
            proposed = source_labelmaps(study, result.proposed_labelmaps) if result.proposed_labelmaps else per_source
            parts = dicom_parts(study.images, study.paths, views, record, proposed if networks else None,
                                per_source if not networks or result.excluded_lesions else None)
            outputs += [path.name for path in write_bonescan_dicom(scratch, parts).values()]
        for index, (image, labels) in enumerate(zip(study.images, per_source, strict=True)):
            stem = f"segmentation_{index + 1}" if index else "segmentation"
            with disk_errors(scratch / f"{stem}.seg.nrrd"):
                write_seg_nrrd(labels, image, BONESCAN_SEGMENTS, scratch / f"{stem}.seg.nrrd")
            write_image(labelmap_image(labels, image), scratch / f"{stem}_labels.nii.gz")
            outputs += [f"{stem}.seg.nrrd", f"{stem}_labels.nii.gz"]
        for view in study.views:
            name = f"overlay_{view.name.replace(' ', '_')}.png"
            view_bstbi = [v for k, v in result.bstbi["per_subimage"].items() if k.startswith(view.name + " /")]
            overlay_png(view.counts, result.labelmaps[view.name], scratch / name,
                        f"{view.name}: BSTBI {np.mean(view_bstbi):.3f}")
            outputs.append(name)
        outputs += [REPORT_FILE] if report is not None else []
        record = {**result.as_json(), "inputs": [input_record(p, keep_identifiers) for p in study.paths],
                  "outputs": outputs, "acquisition": acquisition(study), "study": study_record(study, keep_identifiers)}
        if report is not None:
            write_report(scratch, report_page(study, result.labelmaps, record, report, result.proposed_labelmaps))
        write_json(scratch / "result.json", record)
    return Path(out_dir) / "result.json"
