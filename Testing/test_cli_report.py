"""report.html of every predict command (`bonescan predict`, `bonescan bstbi`, `mammo predict`, `lvi predict`,
`dce synthesize`): written with the other outputs, all or nothing; its headline and table hold result.json's numbers,
the domain verdict beside the score, the model cards of the models the record names; no patient identifier although
the DICOM header and the file or folder name hold them (`--keep-identifiers` puts them in result.json only); every
text from the input escaped. And the desktop modules' Export report button."""

from __future__ import annotations

import ast
import html
import json
import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from smartimaging.cli import main
from smartimaging.errors import InputError
from smartimaging.report import VERDICTS

REPO = Path(__file__).resolve().parents[1]
HOSTILE = '<script>alert(1)</script><img src=x onerror="alert(2)">'
NAMED = "QUIXBY_ZELDA_MRN998877"  # a file or folder named after the patient
PATIENT = {"PatientName": "QUIXBY^ZELDA", "PatientID": "MRN998877", "PatientBirthDate": "19500304"}
IDENTIFIERS = ("quixby", "zelda", "998877", "19500304")
VOID = {"img", "meta", "br", "hr", "input", "link"}


class Report(HTMLParser):
    """A report page: the text of each element with an id, its tables (rows of cell texts) and its images."""

    def __init__(self, path: Path):
        super().__init__()
        self.source = path.read_text(encoding="utf-8")
        self.by_id: dict[str, str] = {}
        self.tables: list[list[list[str]]] = []
        self.images = 0
        self._open: list[str | None] = []
        self._cell: list[str] | None = None
        self.feed(self.source)
        self.text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", self.source)  # the pictures hold no text

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.images += tag == "img" and attrs.get("src", "").startswith("data:image/png;base64,")
        if tag in VOID:
            return
        self._open.append(attrs.get("id"))
        if attrs.get("id"):
            self.by_id[attrs["id"]] = ""
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        self._open.pop()
        if tag in ("td", "th"):
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        for name in filter(None, self._open):
            self.by_id[name] += data
        if self._cell is not None:
            self._cell.append(data)

    def rows(self) -> list[list[str]]:
        return [row for table in self.tables for row in table]


def _report(out: Path) -> tuple[dict, Report]:
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert "report.html" in record["outputs"]
    return record, Report(out / "report.html")


def _check_common(record: dict, page: Report, headline: str) -> None:
    """The headline, the domain verdict beside it, the disclaimer, the model cards; no identifier, nothing unescaped."""
    assert page.by_id["headline"].strip() == headline
    label = VERDICTS[record["domain"]["verdict"]][0]
    assert f"Domain check: {label}" in html.unescape(page.by_id["domain"])
    assert "not a medical device" in page.by_id["disclaimer"]
    for model in record["models"] if "models" in record else [record["model"]]:
        provenance = model.get("model", model)
        assert f"Model card: {provenance['id']}" in page.by_id["cards"]
        assert [provenance["id"], provenance["version"]] in [row[:2] for row in page.rows()]  # provenance table
    for identifier in IDENTIFIERS:
        assert identifier not in page.text.lower(), identifier
    assert "<script" not in page.source and "onerror=" not in page.source.replace("onerror=&quot;", "")


def _name_the_patient(ds: pydicom.Dataset) -> pydicom.Dataset:
    for keyword, value in PATIENT.items():
        setattr(ds, keyword, value)
    return ds


# --- bone scan ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def named_bone_scan(tmp_path_factory) -> Path:
    """A two-view NM bone scan whose header and file name name the patient; its Manufacturer is hostile HTML."""
    from smartimaging.bonescan.views import write_nm_dicom
    from smartimaging.phantoms.bonescan import make_bone_scan_phantom

    folder = tmp_path_factory.mktemp("bonescan")
    write_nm_dicom(folder / "scan.dcm", make_bone_scan_phantom(seed=3).views, PATIENT["PatientID"])
    ds = _name_the_patient(pydicom.dcmread(folder / "scan.dcm"))
    ds.Manufacturer, ds.StudyDate = HOSTILE, "20040826"
    ds.save_as(folder / f"{NAMED}.dcm")
    return folder / f"{NAMED}.dcm"


@pytest.mark.parametrize("keep", [False, True], ids=["default", "keep-identifiers"])
def test_bonescan_predict_report(tmp_path, named_bone_scan, keep):
    out = tmp_path / "out"
    assert main(["bonescan", "predict", str(named_bone_scan), "--out", str(out), "--device", "cpu",
                 *(["--keep-identifiers"] if keep else [])]) == 0
    record, page = _report(out)
    _check_common(record, page, f"BSTBI {record['bstbi']['mean']:.3f}")
    rows = page.rows()
    for name, value in record["bstbi"]["per_subimage"].items():
        assert [f"BSTBI {name}", f"{value:.3f}"] in rows
    assert ["BSTBI (mean of 4 sub-images)", f"{record['bstbi']['mean']:.3f}"] in rows
    assert ["Metastasis probability", f"{record['metastasis_probability']:.3f}"] in rows
    for view, count in record["lesion_counts"]["per_view"].items():
        assert [f"Lesions, {view} view", str(count)] in rows
    assert sorted(row[0] for row in rows if re.fullmatch(r"#\d+", row[0])) == \
        sorted(f"#{lesion['id']}" for lesion in record["lesions"])  # the lesion list
    assert page.images == 2  # the two views
    assert ["Manufacturer", HOSTILE] in rows and html.escape(HOSTILE) in page.source  # shown, escaped
    assert "2004-08-26" not in page.text and "20040826" not in page.text  # no date, even with --keep-identifiers
    header = page.source[page.source.index("<h2>Image</h2>"):page.source.index("</table>", page.source.index(
        "<h2>Image</h2>"))]
    labels = re.findall(r"<tr><td>([^<]*)</td>", header)  # the station report's list (report.HEADER_FIELDS)
    assert labels == ["Modality", "Manufacturer", "View", "Pixel size", "Grid", "Format"]
    assert (record["study"].get("patient_id") == PATIENT["PatientID"]) == keep  # in result.json; the report: never


def test_bonescan_bstbi_report_of_the_readers_segmentation(tmp_path, metastatic_case):
    out = tmp_path / "out"
    assert main(["bonescan", "bstbi", str(metastatic_case["image"]), "--mask", str(metastatic_case["mask"]),
                 "--out", str(out)]) == 0
    record, page = _report(out)
    assert not record["models"] and "cards" not in page.by_id  # no network ran: no model card
    _check_common(record, page, f"BSTBI {record['bstbi']['mean']:.3f}")
    assert ["Metastasis probability", "networks not run (BSTBI of the reader's segmentation)"] in page.rows()
    assert "ROI of this result: the reader's segmentation (--mask)" in page.source.replace("&#x27;", "'")


# --- mammography -------------------------------------------------------------------------------------------------

def test_mammo_predict_report(tmp_path):
    from smartimaging.mammo.cohort import write_mammo_phantom_cohort
    from smartimaging.manifest import read_manifest

    manifest = read_manifest(write_mammo_phantom_cohort(tmp_path / "cohort", 1, 1, "mass", {}))
    row = manifest.rows[0]
    image = tmp_path / f"{NAMED}.png"
    shutil.copy(manifest.resolve(row["image"]), image)
    out = tmp_path / "out"
    assert main(["mammo", "predict", str(image), "--kind", "mass", "--point",
                 f"{row['centre_col']},{row['centre_row']}", "--pixel-mm", row["pixel_mm"], "--out", str(out),
                 "--device", "cpu"]) == 0
    record, page = _report(out)
    assert len(record["models"]) == 2  # the segmenter and the classifier
    _check_common(record, page, f"Rad-score {record['rad_score']:.3f} ({record['label']})")
    rows = page.rows()
    assert ["Rad-score", f"{record['rad_score']:.3f}"] in rows and ["Label", record["label"]] in rows
    assert ["Cutoff (Youden, training)", f"{record['cutoff']:.3f}"] in rows
    assert f'<p class="meta">Rad-score {record["rad_score"]:.3f} · cutoff {record["cutoff"]:.3f}</p>' in page.source
    assert page.images == 2  # whole and enlarged


def test_a_report_that_fails_leaves_nothing_behind(tmp_path, monkeypatch):
    """The report is written inside the command's all-or-nothing write: when it fails, no file is left."""
    from smartimaging import record_report
    from smartimaging.mammo.cohort import write_mammo_phantom_cohort
    from smartimaging.manifest import read_manifest

    manifest = read_manifest(write_mammo_phantom_cohort(tmp_path / "cohort", 1, 1, "mass", {}))
    row = manifest.rows[0]

    def refuse(report):
        raise InputError("the report could not be written")

    monkeypatch.setattr(record_report, "render_html", refuse)
    out = tmp_path / "out"
    assert main(["mammo", "predict", str(manifest.resolve(row["image"])), "--kind", "mass", "--point",
                 f"{row['centre_col']},{row['centre_row']}", "--pixel-mm", row["pixel_mm"], "--out", str(out),
                 "--device", "cpu"]) == 2
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["cohort"]


# --- breast MRI --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def named_mri(tmp_path_factory) -> dict[str, Path]:
    """A phantom breast MRI: the DCE and the T1 as DICOM MR series whose headers and folder names name the patient,
    the T2, the real DCE and the VOI as NRRD."""
    from smartimaging.dicom_series import derived_series, write_series
    from smartimaging.phantoms.breast_mri import make_breast_mri_phantom, phantom_image

    folder = tmp_path_factory.mktemp("mri")
    case = make_breast_mri_phantom(990_007, (12, 80, 80), lvi=1)
    origin = (-80.0, -60.0, -15.0)
    images = {name: phantom_image(getattr(case, name), case.spacing, origin) for name in ("dce2", "t2", "t1", "dce")}
    paths = {}
    for name in ("dce2", "t1"):
        stored = sitk.Cast(sitk.Round(sitk.RescaleIntensity(images[name], 0, 1000)), sitk.sitkInt16)
        paths[name] = folder / f"{NAMED}_{name}"
        write_series([_name_the_patient(ds) for ds in derived_series(stored, "MR", name)], paths[name])
    for name in ("t2", "dce"):
        paths[name] = folder / f"{name}.nrrd"
        sitk.WriteImage(images[name], str(paths[name]))
    voi = sitk.GetImageFromArray((case.lesions > 0).astype(np.uint8))
    voi.CopyInformation(images["dce2"])
    paths["voi"] = folder / "voi.nrrd"
    sitk.WriteImage(voi, str(paths["voi"]))
    assert pydicom.dcmread(next(paths["t1"].iterdir())).PatientID == PATIENT["PatientID"]
    return paths


def test_lvi_predict_report(tmp_path, named_mri):
    out = tmp_path / "out"
    assert main(["lvi", "predict", "--dce", str(named_mri["dce2"]), "--t2", str(named_mri["t2"]), "--voi",
                 str(named_mri["voi"]), "--out", str(out)]) == 0
    record, page = _report(out)
    fused = record["fused"]
    _check_common(record, page, f"LVI probability {fused['probability']:.3f} ({fused['label']})")
    rows = page.rows()
    for model in record["models"]:
        assert [model["sequence"], model["network"], f"{model['probability']:.3f}", f"{model['cutoff']:.3f}",
                model["label"], f"{model['model']['id']} {model['model']['version']}"] in rows
    assert ["fused", fused["method"], f"{fused['probability']:.3f}", f"{fused['cutoff']:.3f}", fused["label"],
            ""] in rows
    assert page.images == 4  # each sequence with the VOI, and its model's Grad-CAM


@pytest.mark.parametrize("real", [True, False], ids=["with-real-dce", "t1-only"])
def test_dce_synthesize_report(tmp_path, named_mri, real):
    out = tmp_path / "out"
    assert main(["dce", "synthesize", str(named_mri["t1"]), *(["--dce", str(named_mri["dce"])] if real else []),
                 "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    record, page = _report(out)
    if not real:
        _check_common(record, page, "Synthetic DCE ready (no real DCE to compare with)")
        assert ["Real DCE", "not given: no similarity metrics"] in page.rows()
        assert page.images == 3  # T1, synthetic DCE, MIP
        return
    metrics = record["metrics"]
    _check_common(record, page, f"Synthetic DCE: SSIM {metrics['ssim_mean']:.3f} vs real DCE")
    rows = page.rows()
    assert ["SSIM (mean of slices)", f"{metrics['ssim_mean']:.3f}"] in rows
    assert ["PSNR (dB, mean of slices)", f"{metrics['psnr_mean']:.2f}"] in rows
    assert ["Pearson r", f"{metrics['pearson_r']:.3f}"] in rows
    assert page.images == 4  # T1, synthetic, real DCE, MIP
    for number, region in enumerate(record["lesion_contrast"]["regions"], start=1):  # outlined as the station's
        assert f"Region {number}: enhances on real DCE, {'faint' if region['faint'] else 'shows'} on synthetic" \
            in page.text
    assert page.text.count("enhancing regions of the real DCE outlined and numbered") == 2
    i, j, k = record["lesion_contrast"]["regions"][0]["centre_voxel"]  # on the T1's grid (axial, LPS)
    shown = re.findall(r"axial slice (\d+) of 12 \(through the most enhancing region", page.text)
    assert shown == [str(k + 1)] * 3 and i != k  # T1, synthetic and real DCE through the region's centre


def test_the_station_report_shows_the_most_enhancing_region(scene, tmp_path):
    """case_report's DCE figures pass through the region's centre voxel (recorded i, j, k), as the CLI's do."""
    from smartimaging.case_report import case_report
    from smartimaging.explain import record_of
    from smartimaging.web.app import FLOWS
    from smartimaging.web.cases import sample_cases

    flow = FLOWS["DCESynthesis"](scene)
    for role, path in sample_cases()["DCESynthesis"][0].write(tmp_path / "case").volumes.items():
        flow.load(role, path)
    flow.run(flow.compute())
    record = record_of("DCESynthesis", [flow.result.table_node, *flow.extra_nodes.values()])
    i, j, k = record["lesion_contrast"]["regions"][0]["centre_voxel"]
    assert flow.primary.GetImageData().GetDimensions()[2] == 24 and i != k  # an axial T1: slice k, i elsewhere
    notes = [figure.note for figure in case_report(flow).figures if "most enhancing" in figure.note]
    assert [note.split(" (")[0] for note in notes] == [f"axial slice {k + 1} of 24"] * 3

    # U2 finding 16: the synthetic and the real DCE outline and number the enhancing regions as the station does
    import io

    import numpy as np
    from PIL import Image

    from smartimaging.dce.lesion_contrast import REGION_KINDS, region_name

    report = case_report(flow)
    regions = record["lesion_contrast"]["regions"]
    colours = [tuple(round(255 * c) for c in REGION_KINDS[m["faint"]][1]) for m in regions]
    assert report.legend == [(region_name(n, m), colours[n - 1]) for n, m in enumerate(regions, start=1)]
    for figure in report.figures[:3]:
        picture = np.asarray(Image.open(io.BytesIO(figure.png)).convert("RGB"))
        drawn = np.all(picture == colours[0], axis=2).sum()  # region 1 lies on this slice
        assert (drawn > 40) == (figure.title != "T1 (pre-contrast)"), figure.title
        assert ("outlined and numbered" in figure.note) == (figure.title != "T1 (pre-contrast)")


# --- bad input -----------------------------------------------------------------------------------------------------

COMMANDS = {
    "bonescan predict": ["bonescan", "predict", "{bad}", "--device", "cpu"],
    "bonescan bstbi": ["bonescan", "bstbi", "{bad}", "--mask", "{bad}"],
    "mammo predict": ["mammo", "predict", "{bad}", "--kind", "mass"],
    "lvi predict": ["lvi", "predict", "--dce", "{bad}", "--voi", "{bad}"],
    "dce synthesize": ["dce", "synthesize", "{bad}", "--device", "cpu", "--quiet"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_input_writes_no_report(tmp_path, capsys, command):
    bad = tmp_path / "scan.nrrd"
    bad.write_text("not an image\n", encoding="utf-8")
    out = tmp_path / "out"
    arguments = [str(bad) if item == "{bad}" else item for item in COMMANDS[command]]
    assert main([*arguments, "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.nrrd"]  # no output folder, no scratch folder


# --- desktop -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["BoneScanBSTBI", "MammoRadiomics", "BreastLVI", "DCESynthesis"])
def test_each_desktop_module_has_an_export_report_button(name):
    """The button in the .ui, under Export DICOM, connected to a slot that hands the module's flow to
    smartimaging.desktop.export_report, which asks for a folder and writes case_report's report and CSV inside
    tryWithErrorDisplay (desktop widgets are not run here: export_report and export_csv are tested on real scenes in
    test_report.py)."""
    ui = ET.parse(REPO / name / "Resources" / "UI" / f"{name}.ui").getroot()
    items = {item.find("widget").get("name"): item for item in ui.iter("item") if item.find("widget") is not None}
    button = items["exportReportButton"].find("widget")
    assert button.get("class") == "QPushButton" and button.find("property[@name='enabled']/bool").text == "false"
    assert int(items["exportReportButton"].get("row")) == int(items["exportDicomButton"].get("row")) + 1
    source = (REPO / name / f"{name}.py").read_text(encoding="utf-8")
    assert 'self.ui.exportReportButton.connect("clicked(bool)", self.onExportReportButton)' in source
    assert "self.ui.exportReportButton.enabled = self.logic.flow.result is not None" in source
    slot = next(node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.FunctionDef)
                and node.name == "onExportReportButton")
    assert "export_report(self.logic.flow, self.parent)" in ast.unparse(slot)
    desktop = ast.parse((REPO / "smartimaging" / "desktop.py").read_text(encoding="utf-8"))
    helper = ast.unparse(next(n for n in desktop.body if isinstance(n, ast.FunctionDef) and n.name == "export_report"))
    assert "from .case_report import export_report as write" in helper and "export_csv(flow, folder)" in helper
    assert "tryWithErrorDisplay" in helper and "getExistingDirectory" in helper and "Slicer 5.12" in helper
