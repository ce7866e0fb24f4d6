"""The case report (`report.html`) of a bone-scan result from the command line: BSTBI per sub-image and mean, the
probabilities, the lesion counts and list, and each view with its lesion (red) and bladder (yellow) outlines and the
lesion numbers, uptake dark as read clinically (`record_report`)."""

from __future__ import annotations

import numpy as np

from ..limits import is_dicom
from ..overlays import DASHED
from ..record_report import Explainer, record_report
from ..report import REJECTED_COLOUR, CaseReport, Figure, figure_png, report_header
from ..segments import BONESCAN_SEGMENTS
from .lesions import count_rows, review, view_title
from .pipeline import BLADDER, LESION
from .views import BoneScanStudy

LEGEND = [(spec.name, tuple(round(255 * c) for c in spec.color)) for spec in BONESCAN_SEGMENTS]  # as the station
REJECTED = ("Lesion rejected by the reader (grey, not counted)", REJECTED_COLOUR)
UPPER_PERCENTILE = 99.9  # the grey window's top: the view's 99.9th count percentile


def _number(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def result_rows(record: dict) -> list[list[str]]:
    """The result table (quantity, value) of a record (`BoneScanResult.as_json`)."""
    bstbi = record["bstbi"]
    rows = [[f"BSTBI {name}", f"{value:.3f}"] for name, value in bstbi["per_subimage"].items()]
    rows.append([f"BSTBI (mean of {len(bstbi['per_subimage'])} sub-images)", f"{bstbi['mean']:.3f}"])
    if record.get("metastasis_probability") is None:
        rows.append(["Metastasis probability", "networks not run (BSTBI of the reader's segmentation)"])
    else:
        rows += [["Metastasis probability", _number(record["metastasis_probability"])],
                 ["Metastasis", f"{'suspected' if record['metastasis_suspected'] else 'not suspected'} at the "
                                f"cutoff {record['threshold']:.3f}"],
                 ["Urinary bladder probability", _number(record.get("bladder_probability"))]]
    rows += count_rows(record["lesion_counts"], record.get("unrecorded_views") or [])
    rows += [[f"Dice AI vs edited ({name})", _number(value)]
             for name, value in (record.get("dice_ai_vs_edited") or {}).items()]
    return rows


def lesion_table(record: dict) -> tuple[str, list[str], list[list[str]]]:
    """The numbered lesions (`lesions.review`) as the station lists them."""
    rows = [[f"#{lesion['id']}", group["view"], lesion["site"], lesion["position"], lesion["area"], lesion["uptake"],
             lesion["match"], "rejected" if lesion["rejected"] else "counted"]
            for group in review(record)["views"] for lesion in group["lesions"]]
    return ("Lesions", ["#", "View", "Site (estimated)", "Position", "Area", "Uptake", "Other view", "Status"], rows)


def lesion_labels(record: dict, view: str) -> list[tuple]:
    """The (row, col, text[, RGB]) numbers of a view's lesions as the station's views mark them: a lesion the reader
    rejected grey and labelled "rejected"."""
    rejected = set(record.get("excluded_lesions") or [])
    return [(lesion["row"], lesion["col"], f"{lesion['id']} rejected", REJECTED_COLOUR) if lesion["id"] in rejected
            else (lesion["row"], lesion["col"], lesion["id"])
            for lesion in record.get("lesions") or [] if lesion.get("view") == view]


def view_figures(study: BoneScanStudy, labelmaps: dict[str, np.ndarray], record: dict,
                 proposed: dict[str, np.ndarray] | None = None) -> list[Figure]:
    """Each view with its outlines and lesion numbers, at its physical aspect: `labelmaps` those BSTBI counted,
    `proposed` those before the reader's rejections (a rejected lesion outlined grey, dashed, numbered "rejected",
    as the station's report draws it)."""
    unrecorded = record.get("unrecorded_views") or []
    figures = []
    for view in study.views:
        labels = labelmaps[view.name]
        spacing = study.images[view.source].GetSpacing()
        numbers = lesion_labels(record, view.name)
        outlines = [(labels == LESION, LEGEND[0][1]), (labels == BLADDER, LEGEND[1][1])]
        if proposed is not None:
            outlines.append(((proposed[view.name] == LESION) & (labels != LESION), REJECTED_COLOUR, DASHED))
        png = figure_png(view.counts, outlines,
                         (0.0, float(np.percentile(view.counts, UPPER_PERCENTILE)) or 1.0), dark_is_high=True,
                         aspect=spacing[1] / spacing[0], labels=numbers)
        figures.append(Figure(view_title(view.name, unrecorded).capitalize(), png,
                              f"uptake dark; grey window 0 to the view's {UPPER_PERCENTILE:g}th count percentile; "
                              "lesion numbers as in the lesion table"))
    return figures


def report_page(study: BoneScanStudy, labelmaps: dict[str, np.ndarray], record: dict,
                explain: Explainer, proposed: dict[str, np.ndarray] | None = None) -> CaseReport:
    """The report of a `bonescan predict` (the networks ran) or `bonescan bstbi` result record (`proposed`: the
    label maps before the lesions of --exclude were rejected)."""
    networks = record.get("metastasis_probability") is not None
    unrecorded = record.get("unrecorded_views") or []
    image = study.images[0]
    header = report_header({
        "Modality": study.meta.get("modality"), "Manufacturer": study.meta.get("manufacturer"),
        "Model": study.meta.get("camera_model"),
        "View": ", ".join("not recorded" if view.name in unrecorded else view.name for view in study.views),
        "Pixel size": "{1:.4g} × {0:.4g} mm".format(*image.GetSpacing()),
        "Grid": " × ".join(map(str, image.GetSize()[:3 if image.GetDepth() > 1 else 2])),
        "Format": "DICOM" if is_dicom(study.paths[0]) else study.paths[0].suffix.lstrip(".").upper()})
    return record_report("Bone scan BSTBI", "BoneScanBSTBI", "bonescan predict" if networks else "bonescan bstbi",
                         f"BSTBI {record['bstbi']['mean']:.3f}", record, explain, result_rows(record),
                         view_figures(study, labelmaps, record, proposed), tables=[lesion_table(record)],
                         legend=LEGEND + ([REJECTED] if record.get("excluded_lesions") else []),
                         header=header, roi="AI segmentation, not reviewed by a reader" if networks else
                         "the reader's segmentation (--mask)")
