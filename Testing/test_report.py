"""The per-case report (`report.py`) and its export from a reading flow (`case_report.py`): every text escaped (card
fields, file contents and table cells are hostile), the images embedded as PNG data URIs with their overlays, the
domain verdict beside the score, no patient identifier even when the DICOM file and its name hold them, the CSV
safe for spreadsheets; all four modules' sample cases end to end; a stale or missing result is refused."""

from __future__ import annotations

import base64
import csv
import html
import io
import re
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from smartimaging.errors import InputError
from smartimaging.report import CaseReport, Figure, figure_png, render_html

HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'
CREATED = datetime(2026, 12, 7, 10, 30, tzinfo=timezone.utc)
TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "div", "span", "b", "br", "ul", "li",
        "table", "thead", "tbody", "tr", "th", "td", "figure", "figcaption", "img", "footer"}


class Page(HTMLParser):
    """The tags, attributes and data URIs of a page."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.attributes, self.images = [], [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [name for name, _ in attrs]
        if tag == "img":
            self.images.append(dict(attrs)["src"])


def _png(data_uri: str) -> np.ndarray:
    assert data_uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_uri.split(",", 1)[1]))).convert("RGB"))


def _report(**changes) -> CaseReport:
    image = np.tile(np.linspace(0, 100, 64), (32, 1))
    mask = np.zeros(image.shape, bool)
    mask[8:24, 20:40] = True
    fields = dict(
        title="Mammography Rad-score", module="MammoRadiomics", headline="Rad-score 0.812 (malignant)",
        created=CREATED, domain={"verdict": "inside", "reasons": [], "text": "inside the model's training data"},
        warnings=["Pixel size not recorded"], columns=["Quantity", "Value"], rows=[["Rad-score", "0.812"]],
        header=[("Modality", "MG")], figures=[Figure("R CC", figure_png(image, [(mask, (255, 0, 0))], (0, 100)),
                                                     "hung chest wall right", {"left": "A"})],
        legend=[("Breast mass (AI)", (242, 115, 38))],
        explanations=[{"key": "card mammo-mass-classifier-demo", "title": "Model card: mammo 1.0 (demo weights)",
                       "tone": "warning", "text": ["Training data: phantoms"], "rows": [["AUC (validation)", "0.9",
                                                                                       ""]]}],
        models=[{"id": "mammo-mass-classifier-demo", "version": "1.0", "sha256": {"a.skops": "ab" * 32}}],
        provenance=[("SmartImaging", "0.1.0"), ("ROI", "AI")])
    return CaseReport(**{**fields, **changes})


def test_every_hostile_text_is_escaped():
    hostile_card = {"key": "card x", "title": HOSTILE, "tone": "info", "text": [HOSTILE], "rows": [[HOSTILE, HOSTILE]]}
    report = _report(title=HOSTILE, module=HOSTILE, headline=HOSTILE, warnings=[HOSTILE], columns=[HOSTILE, "V"],
                     rows=[[HOSTILE, HOSTILE]], comparison=[[HOSTILE, HOSTILE]], tables=[(HOSTILE, [HOSTILE],
                                                                                          [[HOSTILE]])],
                     header=[(HOSTILE, HOSTILE)], legend=[(HOSTILE, (1, 2, 3))],
                     heat_colours=['#ff0000', 'red); background: url("https://x.test/leak")'],
                     figures=[Figure(HOSTILE, figure_png(np.zeros((4, 4)), [], (0, 1)), HOSTILE,
                                     {"left": HOSTILE, HOSTILE: "R"})],
                     domain={"verdict": "outside", "reasons": [HOSTILE], "text": HOSTILE},
                     explanations=[hostile_card], models=[{"id": HOSTILE, "version": HOSTILE, "sha256": HOSTILE}],
                     provenance=[(HOSTILE, HOSTILE)])
    text = render_html(report)
    page = Page(text)
    assert "<script" not in text and "onerror=" not in text.replace("onerror=&quot;", "")
    assert set(page.tags) <= TAGS and not {a for a in page.attributes if a.startswith("on")}
    assert text.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 15  # every field shows the text, inert
    assert "x.test" not in text  # a heat colour that is not #rrggbb is left out
    assert "default-src 'none'" in text  # nothing outside the page loads even if something slipped through


def test_the_images_are_embedded_pngs_with_their_overlays():
    text = render_html(_report())
    (uri,) = Page(text).images
    picture = _png(uri)
    assert picture.shape[:2] == (400, 800)  # 32 x 64 pixels fitted to the figure box, aspect kept
    red = np.all(picture == (255, 0, 0), axis=2)
    rows, cols = np.nonzero(red)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (100, 299, 250, 499)  # the mask's outline only,
    assert red[100:102, 300].all() and not red[102:298, 252:498].any()  # 2 pixels wide
    assert 'class="edge left">A<' in text and "R CC" in text and "hung chest wall right" in text


def test_figure_aspect_heat_map_and_labels():
    image = np.full((10, 20), 50.0)
    tall = _png("data:image/png;base64," + base64.b64encode(figure_png(image, [], (0, 100), aspect=4.0)).decode())
    assert tall.shape[:2] == (1200, 600)  # rows 4x the columns' spacing: 40 x 20 mm
    heat = np.zeros((10, 20))
    heat[:, 10:] = 1.0
    mapped = _png("data:image/png;base64," + base64.b64encode(figure_png(
        image, [], (0, 100), heat=heat, heat_colours=["#0000ff", "#ff0000"], heat_opacity=0.5)).decode())
    assert tuple(mapped[100, 50]) == (128, 128, 128)  # below the shown threshold: the grey image
    assert tuple(mapped[100, 700]) == (192, 64, 64)  # half grey, half the map's strongest colour
    labelled = _png("data:image/png;base64," + base64.b64encode(figure_png(
        image, [], (0, 100), labels=[(5, 2, 7)])).decode())
    assert (np.abs(labelled.astype(int) - 128).sum(axis=2) > 60).sum() > 20  # the number is drawn


@pytest.mark.parametrize("verdict, label", [("inside", "Inside the model's training data"),
                                            ("outside", "OUTSIDE the model's training data"),
                                            ("unknown", "Training data not checked"),
                                            (None, "No domain check recorded")])
def test_the_domain_verdict_stands_beside_the_score(verdict, label):
    domain = {"verdict": verdict, "reasons": ["Perimeter (mm) 41.2 is outside the training range 3.1-30.4"],
              "text": "outside"} if verdict else None
    text = render_html(_report(domain=domain))
    result = text[text.index('<div class="result">'):text.index("</div></div>", text.index('id="domain"'))]
    assert 'id="headline"' in result and "Rad-score 0.812" in result and f"Domain check: {html.escape(label)}" in result
    assert ("Do not rely on it" in result) == (verdict == "outside")
    assert ('class=" doubtful" id="headline"' in result) == (verdict == "outside")  # the score struck through
    assert ("Perimeter (mm) 41.2" in result) == (verdict is not None)


@pytest.mark.parametrize("verdict", ["inside", "outside"])
def test_outside_the_domain_every_score_and_verdict_is_struck(verdict):
    """Not only the headline: the cutoff line under it and the table's scores and labels (the metastasis probability
    and verdict, a Rad-score label, an LVI sequence's row) are greyed and struck; the other rows are not."""
    rows = [["BSTBI (mean of 4 sub-images)", "0.052"], ["Metastasis probability", "0.997"],
            ["Metastasis", "suspected at the cutoff 0.968"], ["Label", "malignant"], ["fused", "mean", "0.7"],
            ["Lesions, anterior", "5"], ["Reader edited", "no"]]
    text = render_html(_report(domain={"verdict": verdict, "reasons": [], "text": verdict}, rows=rows,
                               sublines=["Metastasis probability 0.997 · cutoff 0.968"]))
    table = text[text.index('id="result-table"'):]
    struck = re.findall(r'<tr class="doubtful"><td>([^<]*)</td>', table)
    assert struck == (["BSTBI (mean of 4 sub-images)", "Metastasis probability", "Metastasis", "Label", "fused"]
                      if verdict == "outside" else [])
    assert ('<p class="meta doubtful">Metastasis probability 0.997' in text) == (verdict == "outside")


def test_the_report_says_what_it_is():
    text = render_html(_report())
    assert "not a medical device and not for clinical use" in text and 'id="disclaimer"' in text
    assert "report created in 2026 (the day is left out" in text and "2026-12-07" not in text  # no full date
    assert "Model card: mammo 1.0 (demo weights)" in text and "AUC (validation)" in text
    assert "a.skops: " + "ab" * 32 in text and "@page { size: A4" in text


# ---- from the reading flows ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cases():
    from smartimaging.web.cases import sample_cases

    return sample_cases()


def _computed(scene, module: str, case, folder: Path, edit=None):
    """A flow of `module` with the sample case loaded, segmented (edited by `edit(flow)`) and computed."""
    from smartimaging.web.app import FLOWS

    flow = FLOWS[module](scene)
    files = case.write(folder)
    flow.set_case_options(files.kind, files.pixel_mm)
    for role, path in files.volumes.items():
        flow.load(role, path)
    if files.point_lps is not None:
        flow.set_point_lps(files.point_lps)
    if flow.needs_segment:
        flow.run(flow.segment())
    if edit is not None:
        edit(flow)
    flow.run(flow.compute())
    return flow


def _erase_half(flow) -> None:
    """The reader erases half of the ROI's voxels."""
    import slicer
    from vtk.util.numpy_support import vtk_to_numpy

    segment = flow.segmentation.GetSegmentation().GetNthSegment(0)
    labelmap = segment.GetRepresentation(slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName())
    voxels = vtk_to_numpy(labelmap.GetPointData().GetScalars())
    inside = np.nonzero(voxels == segment.GetLabelValue())[0]
    voxels[inside[: len(inside) // 2]] = 0
    labelmap.Modified()


@pytest.mark.parametrize("module, figures", [("BoneScanBSTBI", 2), ("MammoRadiomics", 2), ("BreastLVI", 4),
                                             ("DCESynthesis", 4)])
def test_every_modules_result_exports_a_report_and_a_csv(scene, cases, tmp_path, module, figures):
    from smartimaging.case_report import export_csv, export_report
    from smartimaging.explain import record_of
    from smartimaging.result_csv import csv_rows

    flow = _computed(scene, module, cases[module][0], tmp_path / "case")
    result = flow.result
    path = export_report(flow, tmp_path / "out", CREATED)
    assert path == tmp_path / "out" / f"{module}_report.html"
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    assert len(page.images) == figures and all(_png(uri).size > 0 for uri in page.images)
    assert f'id="headline">{result.headline}<' in text.replace("&#x27;", "'")
    assert "Domain check: Inside the model&#x27;s training data" in text
    record = record_of(module, [result.table_node, *flow.extra_nodes.values()])
    models = record.get("models") or [record["model"]]
    for model in (m.get("model", m) for m in models):
        assert f"Model card: {model['id']}" in text
        digests = model["sha256"].values() if isinstance(model["sha256"], dict) else [model["sha256"]]
        assert all(digest in text for digest in digests)
    assert "Computed on</td><td>cpu" in text and "not a medical device" in text
    assert ("ROI</td><td>AI<" in text) == flow.needs_segment
    if module == "DCESynthesis":  # the lesion-level warning stands with the result, as in the station
        assert 'id="warnings"' in text and "Enhancing regions faint on the synthetic DCE. 2 of 2" in text
    with open(export_csv(flow, tmp_path / "out"), newline="", encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert table[0] == result.columns and table[1:] == csv_rows(result.columns, result.rows, result.domain,
                                                                     result.comparison)
    assert not any(cell.startswith("'") for row in table for cell in row)  # no cell starts like a formula here


def test_a_bone_scan_reports_its_lesions_numbered_on_the_images(scene, cases, tmp_path):
    from smartimaging.case_report import case_report

    flow = _computed(scene, "BoneScanBSTBI", cases["BoneScanBSTBI"][0], tmp_path / "case")
    report = case_report(flow, CREATED)
    assert [f.title for f in report.figures] == ["ANT", "POST"]
    assert report.figures[0].edges == {"left": "R", "right": "L"}
    (title, columns, rows), = report.tables
    assert title == "Lesion table" and len(rows) == len(flow.result_record["lesions"])
    ant = _png("data:image/png;base64," + base64.b64encode(report.figures[0].png).decode())
    red, green, blue = (ant[..., i].astype(int) for i in range(3))
    orange = (red > 200) & (green > 90) & (green < 190) & (blue < 80)
    assert orange.sum() > 40  # the six lesion numbers (none of the image or the outlines is orange)
    assert np.all(ant == (230, 41, 41), axis=2).any()  # the metastases' outlines, in their segment's red


def test_where_the_readers_outline_coincides_with_the_ais_both_stay_visible():
    """U2 finding 13: the AI's proposal (dashed, outside its mask) drawn first, the reader's outline (solid, inside
    its mask) over it: where they coincide neither hides the other."""
    from smartimaging.overlays import DASHED, outlined_rgb

    image = np.zeros((40, 40))
    mask = np.zeros(image.shape, bool)
    mask[10:30, 10:30] = True
    alone = outlined_rgb(image, [(mask, (242, 115, 38))], (40, 40), (0, 1), thickness=2)
    both = outlined_rgb(image, [(mask, (64, 255, 64), DASHED), (mask, (242, 115, 38))], (40, 40), (0, 1),
                        thickness=2)
    orange, green = (np.all(both == colour, axis=2) for colour in ((242, 115, 38), (64, 255, 64)))
    assert np.array_equal(orange, np.all(alone == (242, 115, 38), axis=2))  # the reader's outline whole
    assert green.sum() > 40 and not (green & mask).any()  # the AI's dashes around it, outside the mask
    assert 0.3 < green.sum() / (~mask[8:32, 8:32]).sum() < 0.7  # dashed: about half of the ring


def test_an_edited_roi_shows_the_ai_proposal_beside_it(scene, cases, tmp_path):
    from smartimaging.case_report import case_report, export_report, roi_outlines
    from smartimaging.overlays import DASHED

    flow = _computed(scene, "MammoRadiomics", cases["MammoRadiomics"][0], tmp_path / "case", _erase_half)
    report = case_report(flow, CREATED)
    assert flow.result.roi_source == "reader edited" and len(report.comparison) == 2
    assert report.legend == [("AI proposal, before the reader's edits (dashed, just outside its outline)",
                              (64, 255, 64)),
                             ("Breast mass (reader's ROI, solid, just inside its outline)", (242, 115, 38))]
    zoom = _png("data:image/png;base64," + base64.b64encode(report.figures[1].png).decode())
    assert np.all(zoom == (64, 255, 64), axis=2).sum() > 20 and np.all(zoom == (242, 115, 38), axis=2).sum() > 20
    outlines, _ = roi_outlines(flow, flow.segmentation, flow.primary)  # the AI's drawn first, the reader's over it
    assert [item[1:] for item in outlines] == [((64, 255, 64), DASHED), ((242, 115, 38),)]
    text = export_report(flow, tmp_path / "out").read_text(encoding="utf-8")
    assert "AI proposal vs reader-edited ROI" in text and "ROI of this result: reader edited" in text


def test_a_stale_or_missing_result_is_not_exported(scene, cases, tmp_path):
    from smartimaging.case_report import export_csv, export_report

    flow = _computed(scene, "MammoRadiomics", cases["MammoRadiomics"][0], tmp_path / "case")
    _erase_half(flow)
    assert flow.result_is_stale
    for export in (export_report, export_csv):
        with pytest.raises(InputError, match="edited after this result"):
            export(flow, tmp_path / "out")
    flow.clear()
    with pytest.raises(InputError, match="compute a result first"):
        export_report(flow, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_no_patient_identifier_reaches_the_report_or_the_csv(scene, cases, tmp_path):
    """A DICOM bone scan whose header and file name name the patient: the report shows the header panel's
    patient-free fields only (a field that repeats the name is withheld), never the file or node names."""
    import pydicom

    from smartimaging.case_report import export_csv, export_report

    case = cases["BoneScanBSTBI"][0]
    files = case.write(tmp_path / "case")
    (source,) = files.volumes.values()
    ds = pydicom.dcmread(source)
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "QUIXBY^ZELDA", "MRN998877", "19500304"
    ds.SeriesDescription = "Bone scan Zelda Quixby 04.03.1950"
    ds.StudyDate = "20260101"
    named = tmp_path / "named" / "QUIXBY_ZELDA_MRN998877.dcm"
    named.parent.mkdir()
    ds.save_as(named)

    from smartimaging.web.app import FLOWS

    flow = FLOWS["BoneScanBSTBI"](scene)
    flow.load("scan", named)
    flow.run(flow.segment())
    flow.run(flow.compute())
    assert "QUIXBY" in flow.primary.GetName()  # the node is named after the file: the report must not use it
    text = export_report(flow, tmp_path / "out").read_text(encoding="utf-8")
    text += export_csv(flow, tmp_path / "out").read_text(encoding="utf-8")
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)  # the pictures, which hold no text
    for identifier in ("quixby", "zelda", "998877", "19500304", "04.03.1950"):
        assert identifier not in text.lower(), identifier
    assert "withheld (may identify the patient)" in text  # the series description names the patient
    assert "2026-01-01" not in text and "20260101" not in text  # a full date identifies (HIPAA Safe Harbor)
    from smartimaging.case_report import case_report
    from smartimaging.report import HEADER_FIELDS

    labels = [label for label, _ in case_report(flow).header]  # the one list of the CLI's report too
    assert labels == [label for label in HEADER_FIELDS if label in labels] and "Modality" in labels


def test_csv_cells_a_spreadsheet_would_run_are_quoted():
    from smartimaging.case_report import spreadsheet_safe

    assert spreadsheet_safe("=HYPERLINK(\"http://x.test\")") == "'=HYPERLINK(\"http://x.test\")"
    assert [spreadsheet_safe(v) for v in ("-0.105", "+0.065", "1e-5", "@SUM(A1)", "-x")] == \
        ["-0.105", "+0.065", "1e-5", "'@SUM(A1)", "'-x"]
    assert re.fullmatch(r"[^=+@-].*", spreadsheet_safe("Rad-score"))
