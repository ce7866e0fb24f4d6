"""The case report of a command-line result: `report.html` beside result.json, the same page as the station's
(`report.render_html`: domain verdict beside the score, warnings, images with their outlines, result table, model
cards, provenance, demo disclaimer), built from the result record and the images the command has in hand (each
task's `report_page`), without MRML.

The explanations and model cards come from the caller (the command passes `explain.explain_record`, which reads the
cards; this layer may not import it). No patient identifier is shown: the header rows are the record's acquisition
fields, the figure titles the view or sequence names, never a file name.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import __version__
from .feature_names import plain_domain
from .report import CaseReport, Figure, created_text, render_html

REPORT_FILE = "report.html"
AXIAL_EDGES = {"left": "R", "right": "L", "top": "A", "bottom": "P"}  # an axial slice of an LPS-ordered volume
HEAT_FROM = 0.2  # heat-map values below this are left transparent, as the station's views show them
Explainer = Callable[[dict], list[dict]]  # a result record -> its explanations and model cards


def models_of(record: dict) -> list[dict]:
    """{"id", "version", "sha256"} of each model a result record names."""
    models = record.get("models") or ([record["model"]] if isinstance(record.get("model"), dict) else [])
    models = [m["model"] if isinstance(m.get("model"), dict) else m for m in models if isinstance(m, dict)]
    return [{"id": m.get("id", ""), "version": m.get("version", ""), "sha256": m.get("sha256", "")} for m in models]


def record_report(title: str, module: str, command: str, headline: str, record: dict, explain: Explainer,
                  rows: list[list[str]], figures: list[Figure], columns: tuple[str, ...] = ("Quantity", "Value"),
                  tables: list[tuple[str, list[str], list[list[str]]]] = (), legend=(), heat_colours=(),
                  header=(), roi: str | None = None, created: datetime | None = None) -> CaseReport:
    """The report of one result record: the rows and figures the task gives, the record's domain check (feature
    names in plain words, as the station shows them) and warnings, the explanations `explain` gives (a warning one
    with a summary is flagged under the score, as the station does; the cutoff's title goes under the headline),
    the models and the provenance."""
    explanations = explain(record)
    flags = [e for e in explanations if e.get("tone") == "warning" and e.get("summary")
             and not str(e.get("key", "")).startswith("card")]
    created = created or datetime.now().astimezone()
    version = str(record.get("smartimaging_version") or __version__)
    provenance = [("SmartImaging", __version__ + ("" if version == __version__ else
                                                 f" (the result was computed with {version})")),
                  ("Written by", f"smartimaging {command} (command line)"),
                  ("Computed on", str(record.get("device") or "not recorded")),
                  ("ROI", roi or "no ROI: the whole volume"),
                  ("Report created", created_text(created))]
    sublines = [e["title"] for e in explanations if e.get("key") == "cutoff"]
    sublines += [f"ROI of this result: {roi}"] if roi else []
    return CaseReport(title=title, module=module, headline=headline, created=created, sublines=sublines,
                      domain=plain_domain(record.get("domain") or None),
                      warnings=[*map(str, record.get("warnings") or []),
                                *(f"{e['title']}. {e['summary']}" for e in flags)],
                      columns=list(columns), rows=rows, tables=list(tables), header=list(header), figures=figures,
                      legend=list(legend), heat_colours=list(heat_colours), explanations=explanations,
                      models=models_of(record), provenance=provenance)


def write_report(folder: Path, report: CaseReport) -> Path:
    """`report.html` in `folder` (the command's scratch folder)."""
    path = Path(folder) / REPORT_FILE
    path.write_text(render_html(report), encoding="utf-8")
    return path


def rainbow(count: int = 64) -> list[str]:
    """The heat-map colours (#rrggbb) over [0, 1] as the station's views show them: Slicer 5.12's "Rainbow" colour
    table (vtkMRMLColorTableNode: hue 0 to 0.8, full saturation and value, linear ramp)."""
    colours = [colorsys.hsv_to_rgb(0.8 * i / (count - 1), 1.0, 1.0) for i in range(count)]
    return [f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}" for r, g, b in colours]


# ---- volumes as axial slices ---------------------------------------------------------------------------------------

def lps(image: sitk.Image) -> sitk.Image:
    """The image re-ordered so that its array runs (S, P, L): slice k is axial, rows run anterior to posterior,
    columns the patient's right to left (as an axial view shows them)."""
    return sitk.DICOMOrient(image, "LPS")


def on_grid(image: sitk.Image, reference: sitk.Image, nearest: bool = False) -> np.ndarray:
    """`image` resampled onto `reference`'s grid, as a (k, j, i) array."""
    interpolator = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    same = (image.GetSize() == reference.GetSize() and np.allclose(image.GetSpacing(), reference.GetSpacing())
            and np.allclose(image.GetOrigin(), reference.GetOrigin())
            and np.allclose(image.GetDirection(), reference.GetDirection()))
    resampled = image if same else sitk.Resample(image, reference, sitk.Transform(), interpolator, 0.0,
                                                 image.GetPixelID())
    return sitk.GetArrayFromImage(resampled)


def aspect(image: sitk.Image) -> float:
    """Row spacing / column spacing of an image's slices."""
    spacing = image.GetSpacing()
    return spacing[1] / spacing[0]
