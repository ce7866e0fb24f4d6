"""The per-case report: one self-contained HTML page (no script, no outside resource; images embedded as PNG data
URIs) that prints on A4: the result with its domain-check verdict beside the score, the warnings, the images with
their overlays, the result tables, what the numbers mean, the model cards, the provenance and the demo disclaimer.

It shows only what it is given: the caller (`case_report`) passes the image header as the patient-free header panel
shows it, never file or node names. Every text is HTML-escaped: card fields, table cells and warnings come from
files anyone can edit.
"""

from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import __version__
from .overlays import outlined_rgb

FIGURE_BOX = (800, 1200)  # the largest figure, width x height in pixels (two side by side on A4: ~200 dpi)
OUTLINE_PX = 2  # outlines stay visible at that resolution
LABEL_PX = 20  # lesion numbers drawn in a figure
LABEL_COLOUR = (255, 140, 0)  # a lesion number, orange as the station's (an accepted lesion)
REJECTED_COLOUR = (100, 100, 100)  # a lesion the reader rejected: its outline and number grey, as the station's
DISCLAIMER = ("Research software with demo models trained on synthetic phantoms: not a medical device and not for "
              "clinical use. The numbers on this page must not be used for diagnosis or treatment.")
VERDICTS = {  # domain verdict -> (label beside the score, explanation, css class)
    "inside": ("Inside the model's training data", "The image resembles the images the model was trained on.",
               "inside"),
    "outside": ("OUTSIDE the model's training data",
                "This image is unlike the images the model was trained on: the score may be meaningless for it. "
                "Do not rely on it.", "outside"),
    "unknown": ("Training data not checked",
                "Nothing tells whether this image resembles the images the model learned from.", "unknown")}
# The image header a report shows, station and command line alike: what the file records about the acquisition,
# never a name, an ID or a date (a full date identifies a patient under HIPAA Safe Harbor; the study date stays in
# the station's header panel and, with --keep-identifiers, in result.json)
HEADER_FIELDS = ("Modality", "Manufacturer", "Model", "Body part", "Series", "Laterality", "View", "Pixel size",
                 "Voxel size", "Grid", "Format")
SCORE_ROW = re.compile(r"(BSTBI|Metastasis|Urinary bladder probability|Rad-score|Label|DCE|T2|fused)\b")
NO_DOMAIN = ("No domain check recorded", "This result records no check against the model's training data.", "unknown")

CSS = """
@page { size: A4; margin: 14mm 12mm; }
* { box-sizing: border-box; }
body { font: 10.5pt/1.35 "DejaVu Sans", Arial, sans-serif; color: #111; margin: 0 auto; max-width: 190mm;
       -webkit-print-color-adjust: exact; print-color-adjust: exact; }
h1 { font-size: 16pt; margin: 0 0 2mm; }
h2 { font-size: 12.5pt; margin: 6mm 0 2mm; border-bottom: 1px solid #999; padding-bottom: 1mm;
     break-after: avoid; }
h3 { font-size: 10.5pt; margin: 3mm 0 1mm; break-after: avoid; }
p { margin: 1mm 0; }
.meta { color: #444; font-size: 9.5pt; }
.demo { border: 2px solid #b35900; background: #fff3e0; color: #5c2e00; padding: 2mm 3mm; margin: 3mm 0;
        font-weight: bold; }
.result { display: flex; gap: 4mm; align-items: stretch; margin: 3mm 0; break-inside: avoid; }
.headline { flex: 1; padding: 3mm; border: 1px solid #999; }
#headline { font-size: 17pt; font-weight: bold; margin-bottom: 1mm; }
.doubtful, tr.doubtful td { color: #777; text-decoration: line-through; text-decoration-thickness: 1px; }
.verdict { flex: 1; padding: 3mm; border: 2px solid; }
.verdict .label { font-size: 12.5pt; font-weight: bold; }
.verdict.inside { border-color: #1b7f3a; background: #e8f5ec; }
.verdict.outside { border-color: #b00020; background: #fde8eb; color: #7a0016; }
.verdict.unknown { border-color: #777; background: #f1f1f1; }
.warnings { border: 2px solid #b35900; background: #fff8ec; padding: 2mm 3mm; margin: 2mm 0; break-inside: avoid; }
.warnings li { margin: 1mm 0; }
table { border-collapse: collapse; width: 100%; margin: 1mm 0 2mm; font-size: 9.5pt; }
thead { display: table-header-group; }
tr { break-inside: avoid; }
th, td { border: 1px solid #bbb; padding: 1mm 2mm; text-align: left; vertical-align: top; }
th { background: #eee; }
td.hash { font-family: "DejaVu Sans Mono", monospace; font-size: 7.5pt; word-break: break-all; }
.figures { display: grid; grid-template-columns: 1fr 1fr; gap: 4mm 3mm; }
figure { margin: 0; break-inside: avoid; text-align: center; }
figcaption { text-align: left; }
figure .frame { position: relative; display: inline-block; line-height: 0; }
figure img { display: block; border: 1px solid #888; width: auto; height: auto; max-width: 100%; max-height: 170mm; }
figure .edge { position: absolute; color: #ff8c00; font-weight: bold; font-size: 10pt;
               text-shadow: 0 0 2px #000, 0 0 2px #000; }
.edge.left { left: 1mm; top: 50%; } .edge.right { right: 1mm; top: 50%; }
.edge.top { top: 0.5mm; left: 50%; } .edge.bottom { bottom: 0.5mm; left: 50%; }
figcaption { font-size: 9pt; margin-top: 1mm; }
figcaption b { font-size: 10pt; }
.legend span.swatch { display: inline-block; width: 3.5mm; height: 3.5mm; border: 1px solid #333;
                      vertical-align: -0.5mm; margin: 0 1mm 0 3mm; }
.card { border: 1px solid #bbb; padding: 2mm 3mm; margin: 2mm 0; break-inside: avoid; }
.card.warning { border: 2px solid #b35900; }
.card.warning h3 { color: #8a4500; }
.colourbar { height: 3mm; width: 60mm; display: inline-block; vertical-align: middle; border: 1px solid #333; }
footer { margin-top: 6mm; border-top: 1px solid #999; padding-top: 2mm; font-size: 9pt; color: #333; }
@media screen { body { padding: 8mm; } }
"""


@dataclass
class Figure:
    """One image of the report: a PNG (`figure_png`), its title and note, and the patient's directions at its
    edges ({"left": "R", ...})."""
    title: str
    png: bytes
    note: str = ""
    edges: dict[str, str] = field(default_factory=dict)


@dataclass
class CaseReport:
    """What a case report shows; every text is escaped when rendered. `header`: the image header rows as the
    patient-free header panel shows them; `domain`: {"verdict", "text", "reasons"}; `explanations`: as
    `explain.explain` gives them (model cards are those whose key starts with "card"); `models`: {"id", "version",
    "sha256" (a digest, or file -> digest)}; `tables`: further tables (title, columns, rows); `legend`: what the
    overlay colours are; `provenance`: (label, value) rows."""
    title: str
    module: str
    headline: str
    created: datetime
    sublines: list[str] = field(default_factory=list)  # under the headline: its cutoff, the ROI it came from
    domain: dict | None = None
    warnings: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    comparison: list[list[str]] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)
    header: list[tuple[str, str]] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    legend: list[tuple[str, tuple[int, int, int]]] = field(default_factory=list)
    heat_colours: list[str] = field(default_factory=list)  # colour bar of the heat maps, weakest shown first
    explanations: list[dict] = field(default_factory=list)
    models: list[dict] = field(default_factory=list)
    provenance: list[tuple[str, str]] = field(default_factory=list)


# ---- figures ------------------------------------------------------------------------------------------------------

def window_of(image: np.ndarray, percentiles: tuple[float, float] = (0.5, 99.5)) -> tuple[float, float]:
    """A grey window over an image's pixels (low, high percentiles), never empty."""
    low, high = (float(v) for v in np.percentile(np.asarray(image, np.float32), percentiles))
    return (low, high) if high > low else (low, low + 1.0)


def figure_png(image: np.ndarray, outlines: list[tuple[np.ndarray, tuple[int, int, int]]],
               window: tuple[float, float], dark_is_high: bool = False, aspect: float = 1.0,
               heat: np.ndarray | None = None, heat_colours: list[str] | None = None,
               heat_from: float = 0.2, heat_opacity: float = 0.45, labels=(), box: tuple[int, int] = FIGURE_BOX
               ) -> bytes:
    """A PNG of a 2-D image (rows, cols) fitted into `box` with its physical `aspect` (row spacing / column
    spacing): windowed grey, the outline of each (mask, RGB[, DASHED]) as `overlays.outlined_rgb` draws them and,
    when given, a heat map in [0, 1] over it (its
    colours (#rrggbb) sampled evenly from `heat_colours`, values below `heat_from` transparent) and (row, col,
    text[, RGB]) labels (orange unless given)."""
    rows, cols = image.shape
    scale = min(box[0] / cols, box[1] / (rows * aspect))
    size = (max(1, round(cols * scale)), max(1, round(rows * aspect * scale)))
    rgb = outlined_rgb(image, outlines, size, window, dark_is_high, OUTLINE_PX)
    if heat is not None and heat_colours:
        values = np.clip(np.asarray(Image.fromarray(np.asarray(heat, np.float32)).resize(size,
                                                                                         Image.Resampling.BILINEAR)),
                         0, 1)
        table = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in heat_colours], np.float32)
        colours = table[np.round(values * (len(table) - 1)).astype(int)]
        shown = (values >= heat_from)[..., None]
        blended = (1 - heat_opacity) * rgb + heat_opacity * colours
        rgb = np.where(shown, np.round(blended), rgb).astype(np.uint8)
    picture = Image.fromarray(rgb)
    if labels:
        draw, font = ImageDraw.Draw(picture), ImageFont.load_default(size=LABEL_PX)
        for row, col, text, *colour in labels:
            x, y = (col + 0.5) * scale, (row + 0.5) * aspect * scale
            right = x + 8 + draw.textlength(str(text), font=font) <= size[0]  # else left of the point, not cut off
            draw.text((x + 8 if right else x - 8, y), str(text), fill=tuple(colour[0]) if colour else LABEL_COLOUR,
                      font=font, anchor="lm" if right else "rm", stroke_width=2, stroke_fill=(0, 0, 0))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


# ---- HTML ---------------------------------------------------------------------------------------------------------

def _e(value) -> str:
    return html.escape(str(value), quote=True)


def report_header(fields: dict[str, str]) -> list[tuple[str, str]]:
    """The report's header rows: the `fields` (label -> value) of HEADER_FIELDS that are given, in its order."""
    return [(label, str(fields[label])) for label in HEADER_FIELDS if fields.get(label)]


def created_text(created: datetime) -> str:
    """When a report was made, without a full date (on the reading day it would date the study)."""
    return f"in {created.year} (the day is left out: a full date may identify the patient)"


def is_score_row(row) -> bool:
    """Whether a result-table row holds a model's number or verdict (BSTBI, metastasis probability and verdict,
    Rad-score and its label, an LVI sequence's or the fused probability and label), greyed and struck through,
    as the headline, when the image is outside the model's training data."""
    return bool(row) and SCORE_ROW.match(str(row[0])) is not None


def _table(columns: list[str], rows: list[list[str]], hash_columns: tuple[int, ...] = (),
           doubtful: bool = False) -> str:
    """An HTML table; `doubtful`: its score rows (`is_score_row`) greyed and struck through."""
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    cells = ['<td class="hash">' if i in hash_columns else "<td>" for i in range(len(columns))]
    body = "".join(('<tr class="doubtful">' if doubtful and is_score_row(row) else "<tr>")
                   + "".join(f"{cell}{_e(value)}</td>" for cell, value in zip(cells, row, strict=False))
                   + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(figure: Figure) -> str:
    data = base64.b64encode(figure.png).decode("ascii")
    edges = "".join(f'<span class="edge {_e(edge)}">{_e(letter)}</span>' for edge, letter in figure.edges.items()
                    if edge in ("left", "right", "top", "bottom") and letter)
    note = f"<br>{_e(figure.note)}" if figure.note else ""
    return (f'<figure><div class="frame"><img alt="{_e(figure.title)}" src="data:image/png;base64,{data}">{edges}'
            f"</div><figcaption><b>{_e(figure.title)}</b>{note}</figcaption></figure>")


def _explanation(item: dict) -> str:
    tone = "warning" if item.get("tone") == "warning" else "info"
    text = "".join(f"<p>{_e(line)}</p>" for line in item.get("text") or [])
    rows = [[row[0], row[1]] for row in item.get("rows") or [] if isinstance(row, (list, tuple)) and len(row) > 1]
    table = _table(["", ""], rows).replace("<thead><tr><th></th><th></th></tr></thead>", "") if rows else ""
    return f'<div class="card {tone}"><h3>{_e(item.get("title", ""))}</h3>{text}{table}</div>'


def _digests(sha256) -> str:
    if isinstance(sha256, dict):
        return "; ".join(f"{name}: {digest}" for name, digest in sha256.items())
    return str(sha256 or "not recorded")


def render_html(report: CaseReport) -> str:
    """The report as one self-contained HTML page (A4 print styles, images inline, no script)."""
    domain = report.domain or {}
    label, meaning, css = VERDICTS.get(domain.get("verdict"), NO_DOMAIN) if report.domain else NO_DOMAIN
    reasons = [str(r) for r in domain.get("reasons") or []] or (
        [str(domain["text"])] if domain.get("text") and domain.get("verdict") != "inside" else [])
    doubtful = " doubtful" if domain.get("verdict") == "outside" else ""
    created = created_text(report.created)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">",
        f"<title>SmartImaging report: {_e(report.title)}</title><style>{CSS}</style></head><body>",
        f"<h1>SmartImaging case report: {_e(report.title)}</h1>",
        f'<p class="meta">Module {_e(report.module)} · report created {_e(created)} · SmartImaging '
        f"{_e(__version__)} · no patient identifiers</p>",
        f'<div class="demo" id="disclaimer">{_e(DISCLAIMER)}</div>',
        '<h2>Result</h2><div class="result">',
        f'<div class="headline"><div class="{doubtful}" id="headline">{_e(report.headline)}</div>'
        + "".join(f'<p class="meta{doubtful}">{_e(line)}</p>' for line in report.sublines) + "</div>",
        f'<div class="verdict {css}" id="domain"><div class="label">Domain check: {_e(label)}</div>'
        f"<p>{_e(meaning)}</p>" + "".join(f"<p>{_e(r)}</p>" for r in reasons) + "</div></div>"]
    if report.warnings:
        parts.append('<div class="warnings" id="warnings"><b>Warnings about this result</b><ul>'
                     + "".join(f"<li>{_e(w)}</li>" for w in report.warnings) + "</ul></div>")
    if report.comparison:
        parts.append("<h3>AI proposal vs reader-edited ROI</h3>" + _table(["ROI", "Result"], report.comparison))
    if report.header:
        parts.append("<h2>Image</h2><p class=\"meta\">What the file records about the acquisition (no names, IDs "
                     "or birth dates).</p>" + _table(["Field", "Value"], [list(r) for r in report.header]))
    if report.figures:
        legend = "".join(f'<span class="swatch" style="background: rgb{tuple(int(c) for c in colour)}"></span>'
                         f"{_e(name)}" for name, colour in report.legend)
        colours = [c for c in report.heat_colours if re.fullmatch(r"#[0-9a-fA-F]{6}", str(c))]
        heat = (f' · Grad-CAM: <span class="colourbar" style="background: linear-gradient(to right, '
                f'{", ".join(colours)})"></span> weak → strong (where the network looked,'
                " not a lesion outline)") if colours else ""
        parts.append('<h2>Images</h2><div class="figures" id="figures">'
                     + "".join(_figure(f) for f in report.figures) + "</div>"
                     + (f'<p class="legend meta">Overlays:{legend}{heat}</p>' if legend or heat else ""))
    if report.rows:
        parts.append('<h2>Result table</h2><div id="result-table">'
                     + _table(report.columns, report.rows, doubtful=bool(doubtful)) + "</div>")
    for title, columns, rows in report.tables:
        parts.append(f"<h3>{_e(title)}</h3>" + _table(columns, rows))
    notes = [e for e in report.explanations if not str(e.get("key", "")).startswith("card")]
    cards = [e for e in report.explanations if str(e.get("key", "")).startswith("card")]
    if notes:
        parts.append("<h2>About this result</h2>" + "".join(_explanation(e) for e in notes))
    if cards:
        parts.append('<h2>Model cards</h2><div id="cards">' + "".join(_explanation(e) for e in cards) + "</div>")
    parts.append('<h2>Provenance</h2><div id="provenance">'
                 + _table(["", ""], [list(r) for r in report.provenance]).replace(
                     "<thead><tr><th></th><th></th></tr></thead>", ""))
    if report.models:
        parts.append(_table(["Model", "Version", "Weights sha256"],
                            [[m.get("id", ""), m.get("version", ""), _digests(m.get("sha256"))]
                             for m in report.models], hash_columns=(2,)))
    parts.append(f"</div><footer>{_e(DISCLAIMER)} Made with SmartImaging {_e(__version__)}.</footer></body></html>")
    return "\n".join(parts)
