"""The command line's mammography report (`mammo predict` report.html, `mammo.report_page`) shows the mammogram as
the station does (U2 finding 6): hung by its laterality (DICOM header, else the file name) with the chest wall right
for a right breast, windowed on the breast (the station's presets: the file's DICOM window where sensible, else the
breast tissue's range), plain feature names, and sizes in mm only at a pixel size the file or the reader gave; else
in pixels, with what the segmenter assumed, as its warning says."""

from __future__ import annotations

import io
import json

import numpy as np
import pydicom
from PIL import Image
from test_display import _hostile_mammogram

from smartimaging.mammo.images import load_mammogram
from smartimaging.mammo.report_page import report_page

ORANGE = (242, 115, 38)  # the mass segment's colour


def _record(mammogram, roi, **changes) -> dict:
    record = {"kind": "mass", "roi_source": "AI (point)", "roi_pixels": int(roi.sum()), "rad_score": 0.6,
              "cutoff": 0.46, "label": "malignant", "models": [], "warnings": [], "domain": {},
              "top_features": [{"feature": "original_shape2D_MaximumDiameter", "value": 20.0, "score_change": 0.1}],
              "image": mammogram.meta}
    return {**record, **changes}


def _png(figure) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(figure.png)).convert("RGB"))


def _breast_against_the_left_edge(rows: int = 200, cols: int = 120) -> np.ndarray:
    """Background 0 on most of the image, the breast a half disc against the left edge (its chest wall), its pixels
    a ramp from 2000 there to 1000 at the nipple."""
    row, col = np.mgrid[:rows, :cols]
    breast = ((row - rows / 2) / (0.4 * rows)) ** 2 + (col / 48) ** 2 <= 1
    return np.where(breast, 2000 - 1000 * col / 48, 0).astype(np.uint16)


def test_a_right_breast_without_pixel_size_is_hung_windowed_on_the_breast_and_measured_in_pixels(tmp_path):
    path = tmp_path / "P7_R_CC.png"  # the laterality and the view in the name, as the station reads them
    Image.fromarray(_breast_against_the_left_edge()).save(path)
    mammogram = load_mammogram(path)
    roi = np.zeros(mammogram.pixels.shape, bool)
    roi[90:110, 10:30] = True
    domain = {"verdict": "outside", "reasons": ["classifier: 1 of 102 radiomics features outside their training "
                                                "range (original_firstorder_Energy)"]}
    report = report_page(mammogram, roi, _record(mammogram, roi, segmenter_pixel_mm=0.082, domain=domain),
                         lambda record: [])
    assert report.domain["reasons"] == ["classifier: 1 of 102 radiomics features outside their training range "
                                        "(Intensity energy (sum of squares))"]
    whole, zoom = report.figures
    assert whole.title == "R CC: whole image" and whole.note.startswith("hung chest wall right (mirrored); Tissue:")
    picture = _png(whole)
    cols = np.nonzero(np.all(picture == ORANGE, axis=2))[1]
    assert cols.size and cols.min() > picture.shape[1] / 2  # mirrored: the ROI by the chest wall, on the right
    grey = picture[..., 0][np.all(picture == picture[..., :1], axis=2)]
    breast = grey[grey > 0]
    assert np.percentile(breast, 5) < 30 and np.percentile(breast, 95) > 220  # the breast over the whole grey range
    assert zoom.title == "R CC: ROI enlarged"
    assert zoom.note == ("78 × 116 pixels (the file records no pixel size; about 6 × 10 mm at the 0.082 mm the "
                         "segmenter assumed) around the ROI; window: the crop's own range")
    assert ("Pixel size", "not recorded in the file: the classifier's features read it as 1 × 1 mm; the segmenter "
                          "assumed 0.082 mm from the image size") in report.header
    assert ["Contribution: Largest diameter (mm)", "+0.100"] in report.rows


def test_a_dicom_mammogram_is_hung_by_its_header_in_its_dicom_window_and_measured_in_mm(tmp_path):
    path = tmp_path / "R_CC.dcm"  # the name says right: the header's left laterality wins
    _hostile_mammogram(path, ViewPosition="MLO", WindowCenter="2000", WindowWidth="3000", PixelSpacing=[0.1, 0.1])
    ds = pydicom.dcmread(path)
    ds.PixelData = _breast_against_the_left_edge(ds.Rows, ds.Columns).tobytes()  # a breast the hanging can place
    ds.save_as(path)
    mammogram = load_mammogram(path)
    roi = np.zeros(mammogram.pixels.shape, bool)
    roi[30:34, 4:8] = True
    report = report_page(mammogram, roi, _record(mammogram, roi, roi_source="reader mask"), lambda record: [])
    whole, zoom = report.figures
    assert whole.title == "L MLO: whole image"
    assert whole.note == "hung chest wall left; DICOM window: the file's window: centre 2000, width 3000"
    cols = np.nonzero(np.all(_png(whole) == ORANGE, axis=2))[1]
    assert cols.max() < _png(whole).shape[1] / 2  # a left breast as stored: chest wall left, not mirrored
    assert zoom.note == "5 × 6 mm around the ROI; window: the crop's own range"  # 48 × 64 pixels of 0.1 mm
    assert ("Laterality", "L") in report.header and ("View", "MLO") in report.header
    assert ("Pixel size", "0.1 × 0.1 mm (header)") in report.header


def test_mammo_predict_records_the_segmenters_pixel_size_and_its_report_measures_with_it(tmp_path):
    from smartimaging.cli import main
    from smartimaging.mammo.cohort import write_mammo_phantom_cohort
    from smartimaging.mammo.segment import estimated_pixel_mm
    from smartimaging.manifest import read_manifest

    manifest = read_manifest(write_mammo_phantom_cohort(tmp_path / "cohort", 1, 1, "mass", {}))
    row = manifest.rows[0]
    image = manifest.resolve(row["image"])
    out = tmp_path / "out"  # no --pixel-mm: the PNG records none
    assert main(["mammo", "predict", str(image), "--kind", "mass", "--point",
                 f"{row['centre_col']},{row['centre_row']}", "--out", str(out), "--device", "cpu"]) == 0
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assumed = estimated_pixel_mm(np.asarray(Image.open(image)).shape)
    assert record["segmenter_pixel_mm"] == assumed
    assert f"the segmenter assumed {assumed:.2g} mm" in record["warnings"][0]
    page = (out / "report.html").read_text(encoding="utf-8")
    assert f"the {assumed:.2g} mm the segmenter assumed) around the ROI" in page and " mm around the ROI" not in page
    assert "original_shape2D" not in page.split("About this result")[0]  # plain names above the explanations
