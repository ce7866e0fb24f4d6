"""DICOM outputs of whole results: `--dicom` on every task's predict command and `exports.export_dicom` from a reading
flow's scene. The SEG references the source's SOP instances and study (or the derived series written for a source
that is not DICOM), its segments are AUTOMATIC with the model's id and version or MANUAL for the reader's ROI; the
SR's numbers are those of result.json (or of the result table's record); dciodvfy finds no error; outputs are
written all or nothing."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from conftest import GE_BONE_SCAN
from dicom_series import write_dicom_series
from PIL import Image
from realdata import cbis_ddsm_views
from test_dicom_outputs import dciodvfy, on_grid_of, seg_image

from smartimaging.cli import main
from smartimaging.dicom_outputs import DOMAIN_VERDICTS
from smartimaging.dicom_series import derived_series, write_series
from smartimaging.io import read_series_or_volume, same_geometry
from smartimaging.models.registry import models_dir

SR_DIGITS = 1e-12  # an SR number is a decimal string of 16 characters


def sr_content(path: Path) -> tuple[dict[str, tuple[float, int | None]], dict[str, str]]:
    """({measurement name: (value, referenced SEG segment number or None)}, {evaluation name: value}) of an SR."""
    numbers, texts = {}, {}

    def walk(items, segment):
        for item in items:
            name = item.ConceptNameCodeSequence[0].CodeMeaning if "ConceptNameCodeSequence" in item else ""
            if item.ValueType == "NUM":
                numbers[name] = (float(item.MeasuredValueSequence[0].NumericValue), segment)
            elif item.ValueType == "CODE":
                texts[name] = item.ConceptCodeSequence[0].CodeMeaning
            elif item.ValueType == "TEXT":
                texts[name] = item.TextValue
            if "ContentSequence" in item:
                children = item.ContentSequence
                referenced = [child.ReferencedSOPSequence[0].ReferencedSegmentNumber for child in children
                              if child.ValueType == "IMAGE" and "ReferencedSegmentNumber" in
                              child.ReferencedSOPSequence[0]]
                walk(children, referenced[0] if referenced else segment)

    walk(pydicom.dcmread(path).ContentSequence, None)
    return numbers, texts


def domain_verdicts(path: Path) -> dict[int | None, str]:
    """{referenced SEG segment number (None: the image's group): the "Domain verdict" beside its numbers} of an SR."""
    verdicts = {}
    for group in pydicom.dcmread(path).ContentSequence[-1].ContentSequence:  # the measurement groups
        items = group.ContentSequence
        referenced = [item.ReferencedSOPSequence[0].ReferencedSegmentNumber for item in items
                      if item.ValueType == "IMAGE" and "ReferencedSegmentNumber" in item.ReferencedSOPSequence[0]]
        for item in items:
            if item.ValueType == "CODE" and item.ConceptNameCodeSequence[0].CodeMeaning == "Domain verdict":
                verdicts[referenced[0] if referenced else None] = item.ConceptCodeSequence[0].CodeMeaning
    return verdicts


def segments_of(seg: hd.seg.Segmentation) -> list[tuple[str, str, tuple[str, str] | None]]:
    """(label, AUTOMATIC/MANUAL, (algorithm name, version) or None) of each segment."""
    described = []
    for item in seg.SegmentSequence:
        algorithm = item.get("SegmentationAlgorithmIdentificationSequence")
        described.append((item.SegmentLabel, item.SegmentAlgorithmType,
                          (algorithm[0].AlgorithmName, algorithm[0].AlgorithmVersion) if algorithm else None))
    return described


def referenced_instances(seg: pydicom.Dataset) -> set[str]:
    return {item.ReferencedSOPInstanceUID for series in seg.ReferencedSeriesSequence
            for item in series.ReferencedInstanceSequence}


def check_sr_references(sr_path: Path, seg: pydicom.Dataset | None, sources: list[pydicom.Dataset]) -> None:
    """The SR is filed with the sources' study and patient, and names the SEG and the sources as its evidence."""
    sr = pydicom.dcmread(sr_path)
    assert sr.StudyInstanceUID == sources[0].StudyInstanceUID and sr.PatientID == sources[0].get("PatientID", "")
    evidence = {item.ReferencedSOPInstanceUID for study in sr.CurrentRequestedProcedureEvidenceSequence
                for series in study.ReferencedSeriesSequence for item in series.ReferencedSOPSequence}
    assert {ds.SOPInstanceUID for ds in sources} | ({seg.SOPInstanceUID} if seg is not None else set()) <= evidence


def model(model_id: str) -> tuple[str, str]:
    """(id, version) of a bundled model, as a SEG's algorithm identification names it."""
    return model_id, json.loads((models_dir() / f"{model_id}.json").read_text(encoding="utf-8"))["version"]


def approx(value: float):
    return pytest.approx(value, rel=SR_DIGITS, abs=SR_DIGITS)


# --- CLI: bone scan ----------------------------------------------------------------------------------------------

def test_bonescan_predict_dicom_on_the_real_ge_scan(tmp_path):
    out = tmp_path / "out"
    assert main(["bonescan", "predict", str(GE_BONE_SCAN), "--out", str(out), "--device", "cpu", "--dicom"]) == 0
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert {"seg.dcm", "sr.dcm"} <= set(record["outputs"]) and not (out / "image_dicom").exists()
    source = pydicom.dcmread(GE_BONE_SCAN, stop_before_pixels=True)
    assert source.PatientID not in (out / "result.json").read_text(encoding="utf-8")  # identifiers: DICOM only
    seg = hd.seg.segread(out / "seg.dcm")
    assert (seg.StudyInstanceUID, seg.PatientID) == (source.StudyInstanceUID, source.PatientID)
    assert referenced_instances(seg) == {source.SOPInstanceUID}
    assert segments_of(seg) == [(f"{name} (AI proposal)", "AUTOMATIC", model("bonescan-unet-demo"))
                                for name in ("Bone metastasis", "Urinary bladder")]
    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "segmentation_labels.nii.gz")))
    pixels = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1, 2])
    for number in (1, 2):
        np.testing.assert_array_equal(pixels[..., number - 1], labels == number)
    numbers, texts = sr_content(out / "sr.dcm")
    for name, value in record["bstbi"]["per_subimage"].items():
        assert numbers[f"BSTBI {name}"] == (approx(value), 1)  # on the AI's metastasis segment
    assert numbers["BSTBI (mean of 2 sub-images)"] == (approx(record["bstbi"]["mean"]), 1)
    assert numbers["Lesions, anterior"] == (record["lesion_counts"]["per_view"]["anterior"], 1)
    assert numbers["Metastasis probability"] == (approx(record["metastasis_probability"]), None)
    assert numbers["Metastasis probability cutoff"] == (approx(record["threshold"]), None)
    assert texts["Metastasis"] == ("suspected" if record["metastasis_suspected"] else "not suspected")
    assert texts["Domain check"] == record["domain"]["text"]  # UTF-8: the en dash of its ranges kept
    assert record["domain"]["verdict"] == "outside"  # the verdict beside BSTBI (segment 1) and the probability
    assert domain_verdicts(out / "sr.dcm") == {1: DOMAIN_VERDICTS["outside"], None: DOMAIN_VERDICTS["outside"]}
    check_sr_references(out / "sr.dcm", seg, [source])
    dciodvfy(out / "seg.dcm")
    dciodvfy(out / "sr.dcm")


def test_bonescan_predict_exclude_files_the_rejections_as_the_readers(tmp_path):
    """`--exclude` is the reader's rejection: the SEG holds the AI's proposal (every lesion, AUTOMATIC) and the
    reader's segment without the rejected lesion (MANUAL), the SR's BSTBI refers to the reader's and counts the
    rejection, the report draws the rejected lesion grey and dashed, numbered "rejected"."""
    from smartimaging.report import REJECTED_COLOUR

    out = tmp_path / "out"
    assert main(["bonescan", "predict", str(GE_BONE_SCAN), "--out", str(out), "--device", "cpu", "--dicom",
                 "--exclude", "1"]) == 0
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    seg = hd.seg.segread(out / "seg.dcm")
    unet = model("bonescan-unet-demo")
    assert segments_of(seg) == [("Bone metastasis (AI proposal)", "AUTOMATIC", unet),
                                ("Urinary bladder (AI proposal)", "AUTOMATIC", unet),
                                ("Bone metastasis (reader-edited)", "MANUAL", None),
                                ("Urinary bladder (reader-edited)", "MANUAL", None)]
    source = pydicom.dcmread(GE_BONE_SCAN, stop_before_pixels=True)
    pixels = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1, 3])
    first = record["lesions"][0]
    removed = pixels[..., 0].astype(bool) & ~pixels[..., 1].astype(bool)
    assert removed[0, round(first["row"]), round(first["col"])] and not (pixels[..., 1] & ~pixels[..., 0]).any()
    numbers, texts = sr_content(out / "sr.dcm")
    assert numbers["BSTBI (mean of 2 sub-images)"] == (approx(record["bstbi"]["mean"]), 3)
    assert numbers["Lesions rejected by the reader"] == (1, 3) and texts["Reader edited"] == "yes"
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Lesion rejected by the reader (grey, not counted)" in page
    uri = re.search(r'src="data:image/png;base64,([^"]+)"', page)[1]
    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri))).convert("RGB"))
    assert np.all(picture == REJECTED_COLOUR, axis=2).sum() > 40  # its dashed outline and its number


def test_bonescan_bstbi_dicom_of_the_readers_mask_is_manual(tmp_path, metastatic_case):
    out = tmp_path / "out"
    assert main(["bonescan", "bstbi", str(metastatic_case["image"]), "--mask", str(metastatic_case["mask"]),
                 "--out", str(out), "--dicom"]) == 0
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    seg = hd.seg.segread(out / "seg.dcm")
    source = pydicom.dcmread(metastatic_case["image"], stop_before_pixels=True)
    assert int(source.NumberOfFrames) == 2 and referenced_instances(seg) == {source.SOPInstanceUID}
    assert segments_of(seg) == [(f"{name} (reader-edited)", "MANUAL", None)
                                for name in ("Bone metastasis", "Urinary bladder")]
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(metastatic_case["mask"])))
    pixels = seg.get_pixels_by_source_frame(source.SOPInstanceUID, [1, 2], segment_numbers=[1])
    np.testing.assert_array_equal(pixels[..., 0], mask.reshape(pixels.shape[:3]) == 1)
    numbers, texts = sr_content(out / "sr.dcm")
    assert {name for name in numbers if name.startswith("BSTBI ")} == \
        {f"BSTBI {name}" for name in record["bstbi"]["per_subimage"]} | {"BSTBI (mean of 4 sub-images)"}
    for view, count in record["lesion_counts"]["per_view"].items():
        assert numbers[f"Lesions, {view}"] == (count, 1)
    assert "Metastasis probability" not in numbers and texts["Reader edited"] == "yes"  # no networks ran
    dciodvfy(out / "seg.dcm")
    dciodvfy(out / "sr.dcm")


def test_bonescan_predict_dicom_of_one_file_per_view_writes_a_pair_per_file(tmp_path):
    from smartimaging.bonescan.views import write_nm_dicom
    from smartimaging.phantoms.bonescan import make_bone_scan_phantom

    views = make_bone_scan_phantom(seed=3).views
    write_nm_dicom(tmp_path / "anterior.dcm", {"anterior": views["anterior"]}, "P9")  # NM, no frame of reference
    posterior = views["posterior"]
    Image.fromarray((posterior / posterior.max() * 255).astype(np.uint8)).save(tmp_path / "posterior.png")
    out = tmp_path / "out"
    assert main(["bonescan", "predict", str(tmp_path / "anterior.dcm"), str(tmp_path / "posterior.png"), "--views",
                 "anterior,posterior", "--out", str(out), "--device", "cpu", "--dicom"]) == 0
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert {"seg.dcm", "sr.dcm", "seg_2.dcm", "sr_2.dcm", "image_dicom_2"} <= set(record["outputs"])
    anterior = pydicom.dcmread(tmp_path / "anterior.dcm", stop_before_pixels=True)
    derived = pydicom.dcmread(out / "image_dicom_2" / "0001.dcm", stop_before_pixels=True)
    for name, source, view in (("", anterior, "anterior"), ("_2", derived, "posterior")):
        seg = hd.seg.segread(out / f"seg{name}.dcm")
        assert referenced_instances(seg) == {source.SOPInstanceUID} and seg.StudyInstanceUID == source.StudyInstanceUID
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"segmentation{name}_labels.nii.gz")))
        pixels = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1]) if name else \
            seg.get_pixels_by_source_frame(source.SOPInstanceUID, [1], segment_numbers=[1])
        np.testing.assert_array_equal(pixels[..., 0], labels == 1)
        numbers, _ = sr_content(out / f"sr{name}.dcm")
        assert {key for key in numbers if key.startswith("BSTBI ")} == {
            f"BSTBI {sub}" for sub in record["bstbi"]["per_subimage"] if sub.startswith(view)} | \
            {"BSTBI (mean of 4 sub-images)"}  # this file's views, and the study's mean
        assert numbers[f"Lesions, {view}"] == (record["lesion_counts"]["per_view"][view], 1)
        dciodvfy(out / f"seg{name}.dcm")
        dciodvfy(out / f"sr{name}.dcm")


# --- CLI: mammography --------------------------------------------------------------------------------------------

def test_mammo_predict_dicom_on_a_real_cbis_ddsm_film_with_the_readers_roi(tmp_path):
    view = cbis_ddsm_views()[4]  # P_00820 left CC
    source = pydicom.dcmread(view.path, stop_before_pixels=True)
    rows, columns = int(source.Rows), int(source.Columns)
    mask = np.zeros((rows, columns), np.uint8)
    r, c = np.ogrid[:rows, :columns]
    mask[(r - rows // 2) ** 2 + (c - columns // 2) ** 2 <= 120 ** 2] = 255
    Image.fromarray(mask).save(tmp_path / "roi.png")
    out = tmp_path / "out"
    assert main(["mammo", "predict", str(view.path), "--kind", "mass", "--mask", str(tmp_path / "roi.png"),
                 "--pixel-mm", "0.05", "--out", str(out), "--dicom"]) == 0
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    seg = hd.seg.segread(out / "seg.dcm")
    assert (seg.StudyInstanceUID, seg.PatientID) == (source.StudyInstanceUID, source.PatientID)
    assert referenced_instances(seg) == {source.SOPInstanceUID}
    assert segments_of(seg) == [("Breast mass (reader-edited)", "MANUAL", None)]
    pixels = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1])
    np.testing.assert_array_equal(pixels[0, ..., 0], mask > 0)
    numbers, texts = sr_content(out / "sr.dcm")
    assert numbers["Rad-score"] == (approx(record["rad_score"]), 1)
    assert numbers["Rad-score cutoff"] == (approx(record["cutoff"]), None)
    assert (texts["Rad-score label"], texts["ROI"]) == (record["label"], "reader mask")
    check_sr_references(out / "sr.dcm", seg, [source])
    dciodvfy(out / "seg.dcm")
    dciodvfy(out / "sr.dcm")


def test_mammo_predict_dicom_of_a_png_references_a_derived_series(tmp_path):
    from smartimaging.mammo.cohort import write_mammo_phantom_cohort
    from smartimaging.manifest import read_manifest

    manifest = read_manifest(write_mammo_phantom_cohort(tmp_path / "cohort", 1, 1, "mass", {}))
    row = manifest.rows[0]
    out = tmp_path / "out"
    assert main(["mammo", "predict", str(manifest.resolve(row["image"])), "--kind", "mass", "--point",
                 f"{row['centre_col']},{row['centre_row']}", "--pixel-mm", row["pixel_mm"], "--out", str(out),
                 "--device", "cpu", "--dicom"]) == 0
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert "image_dicom" in record["outputs"]
    derived = [pydicom.dcmread(path) for path in sorted((out / "image_dicom").iterdir())]
    assert len(derived) == 1 and derived[0].Modality == "MG" and derived[0].PatientID == ""
    seg = hd.seg.segread(out / "seg.dcm")
    assert seg.StudyInstanceUID == derived[0].StudyInstanceUID
    assert referenced_instances(seg) == {derived[0].SOPInstanceUID}
    assert segments_of(seg) == [("Breast mass (AI proposal)", "AUTOMATIC", model("mammo-mass-unet-demo"))]
    assert record["roi_source"] == "AI (point)"
    roi = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "roi_labels.nii.gz")))[0]
    pixels = seg.get_pixels_by_source_instance([derived[0].SOPInstanceUID], segment_numbers=[1])
    np.testing.assert_array_equal(pixels[0, ..., 0], roi > 0)
    assert sr_content(out / "sr.dcm")[0]["Rad-score"] == (approx(record["rad_score"]), 1)
    dciodvfy(out / "image_dicom" / "0001.dcm")
    dciodvfy(out / "seg.dcm")
    dciodvfy(out / "sr.dcm")


# --- CLI: breast MRI ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mri_case(tmp_path_factory) -> dict[str, Path]:
    """A phantom breast MRI: the DCE and the T1 as DICOM MR series (as from PACS), the T2, the real DCE and the VOI
    as NRRD."""
    from smartimaging.phantoms.breast_mri import make_breast_mri_phantom, phantom_image

    folder = tmp_path_factory.mktemp("mri")
    case = make_breast_mri_phantom(990_007, (12, 80, 80), lvi=1)
    origin = (-80.0, -60.0, -15.0)
    images = {name: phantom_image(getattr(case, name), case.spacing, origin) for name in ("dce2", "t2", "t1", "dce")}
    paths = {}
    for name in ("dce2", "t1"):
        stored = sitk.Cast(sitk.Round(sitk.RescaleIntensity(images[name], 0, 1000)), sitk.sitkInt16)  # as scanners
        write_series(derived_series(stored, "MR", name), folder / name)
        paths[name] = folder / name
    for name in ("t2", "dce"):
        paths[name] = folder / f"{name}.nrrd"
        sitk.WriteImage(images[name], str(paths[name]))
    voi = sitk.GetImageFromArray((case.lesions > 0).astype(np.uint8))
    voi.CopyInformation(images["dce2"])
    paths["voi"] = folder / "voi.nrrd"
    sitk.WriteImage(voi, str(paths["voi"]))
    return paths


def test_lvi_predict_dicom_on_a_dicom_dce_series(tmp_path, mri_case):
    out = tmp_path / "out"
    assert main(["lvi", "predict", "--dce", str(mri_case["dce2"]), "--t2", str(mri_case["t2"]), "--voi",
                 str(mri_case["voi"]), "--out", str(out), "--dicom"]) == 0
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert {"seg.dcm", "sr.dcm"} <= set(record["outputs"]) and not (out / "image_dicom").exists()
    sources = [pydicom.dcmread(path, stop_before_pixels=True) for path in sorted(mri_case["dce2"].iterdir())]
    seg = hd.seg.segread(out / "seg.dcm")
    assert seg.StudyInstanceUID == sources[0].StudyInstanceUID
    assert referenced_instances(seg) == {ds.SOPInstanceUID for ds in sources}
    assert segments_of(seg) == [("Breast mass (reader-edited)", "MANUAL", None)]
    dce = read_series_or_volume(mri_case["dce2"])
    voi = sitk.GetArrayFromImage(sitk.ReadImage(str(mri_case["voi"])))
    on_dce = on_grid_of(seg_image(seg.get_volume(segment_numbers=[1]), 0), dce)  # placed by the SEG's own geometry
    np.testing.assert_array_equal(on_dce, voi)
    numbers, texts = sr_content(out / "sr.dcm")
    for model in record["models"]:
        name = f"{model['model']['id']} ({model['sequence']}, {model['network']})"
        assert numbers[f"LVI probability, {name}"] == (approx(model["probability"]), 1)
        assert numbers[f"LVI cutoff, {name}"] == (approx(model["cutoff"]), None)
        assert texts[f"LVI label, {name}"] == model["label"]
    assert numbers["LVI probability, fused"] == (approx(record["fused"]["probability"]), 1)
    assert texts["LVI label, fused"] == record["fused"]["label"]
    check_sr_references(out / "sr.dcm", seg, sources)
    dciodvfy(out / "seg.dcm")
    dciodvfy(out / "sr.dcm")


def test_a_dicom_source_without_frame_of_reference_is_refused_and_nothing_is_written(tmp_path, mri_case, capsys):
    dce = read_series_or_volume(mri_case["dce2"])
    write_dicom_series(dce, tmp_path / "itk", "1.2.826.0.1.3680043.2.1.41")  # ITK writes no FrameOfReferenceUID
    out = tmp_path / "out"
    assert main(["lvi", "predict", "--dce", str(tmp_path / "itk"), "--voi", str(mri_case["voi"]), "--out", str(out),
                 "--dicom"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "Frame of Reference" in error and len(error.splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".smartimaging-*"))  # all or nothing


def test_dce_synthesize_dicom_puts_the_synthetic_series_in_the_t1_study(tmp_path, mri_case):
    out = tmp_path / "out"
    assert main(["dce", "synthesize", str(mri_case["t1"]), "--dce", str(mri_case["dce"]), "--out", str(out),
                 "--device", "cpu", "--quiet", "--dicom"]) == 0
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert {"synthetic_dce_dicom", "sr.dcm"} <= set(record["outputs"]) and not (out / "seg.dcm").exists()
    t1 = [pydicom.dcmread(path, stop_before_pixels=True) for path in sorted(mri_case["t1"].iterdir())]
    synthetic = [pydicom.dcmread(path) for path in sorted((out / "synthetic_dce_dicom").iterdir())]
    assert {ds.StudyInstanceUID for ds in synthetic} == {t1[0].StudyInstanceUID}
    assert {ds.FrameOfReferenceUID for ds in synthetic} == {t1[0].FrameOfReferenceUID}
    assert synthetic[0].SeriesInstanceUID != t1[0].SeriesInstanceUID
    assert list(synthetic[0].ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert "SYNTHETIC" in synthetic[0].SeriesDescription
    image = read_series_or_volume(out / "synthetic_dce_dicom")
    assert same_geometry(image, read_series_or_volume(mri_case["t1"]), 1e-3)
    nrrd = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "synthetic_dce.nrrd")))
    np.testing.assert_allclose(sitk.GetArrayFromImage(image), nrrd, atol=float(synthetic[0].RescaleSlope))
    numbers, texts = sr_content(out / "sr.dcm")
    assert numbers["SSIM vs real DCE (mean of slices)"] == (approx(record["metrics"]["ssim_mean"]), None)
    assert numbers["PSNR vs real DCE (mean of slices)"] == (approx(record["metrics"]["psnr_mean"]), None)
    assert texts["Real DCE"] == "compared" and record["model"]["id"] in texts["Synthetic DCE"]
    regions = record["lesion_contrast"]["regions"]
    assert regions  # the lesion-level check: each enhancing region's ratio and whether it is faint
    for number, region in enumerate(regions, start=1):
        if region["ratio"] is not None:
            assert numbers[f"Enhancing region {number}: contrast ratio synthetic / real"] == \
                (approx(region["ratio"]), None)
        assert texts[f"Enhancing region {number}: faint on synthetic DCE"].startswith(
            ("yes" if region["faint"] else "no") + f" (real DCE slices {region['slices'][0] + 1}-")
    check_sr_references(out / "sr.dcm", None, synthetic)
    dciodvfy(out / "synthetic_dce_dicom" / "0001.dcm")
    dciodvfy(out / "sr.dcm")


def test_dce_synthesize_dicom_of_a_nrrd_t1_is_a_new_anonymous_study(tmp_path, mri_case):
    out = tmp_path / "out"
    sitk.WriteImage(read_series_or_volume(mri_case["t1"]), str(tmp_path / "t1.nrrd"))
    assert main(["dce", "synthesize", str(tmp_path / "t1.nrrd"), "--out", str(out), "--device", "cpu", "--quiet",
                 "--dicom"]) == 0
    synthetic = pydicom.dcmread(sorted((out / "synthetic_dce_dicom").iterdir())[0])
    t1 = pydicom.dcmread(sorted(mri_case["t1"].iterdir())[0], stop_before_pixels=True)
    assert synthetic.StudyInstanceUID != t1.StudyInstanceUID and synthetic.PatientID == ""
    numbers, texts = sr_content(out / "sr.dcm")
    assert not numbers and texts["Real DCE"] == "not given: no similarity metrics"
    dciodvfy(out / "sr.dcm")


# --- scene: exports.export_dicom of a reading flow ----------------------------------------------------------------

def _replace_segment(flow, name: str, mask: np.ndarray) -> None:
    """Replace the voxels of the reader's segment `name` with `mask` ((k, j, i) on the primary volume's grid), as
    the Segment Editor's Paint and Erase write them."""
    import slicer
    from vtk.util.numpy_support import vtk_to_numpy

    logic = slicer.vtkSlicerSegmentationsModuleLogic
    labelmap = logic.CreateOrientedImageDataFromVolumeNode(flow.primary)
    labelmap.AllocateScalars(3, 1)  # VTK_UNSIGNED_CHAR
    vtk_to_numpy(labelmap.GetPointData().GetScalars())[:] = mask.ravel().astype(np.uint8)
    segmentation = flow.segmentation.GetSegmentation()
    logic.SetBinaryLabelmapToSegment(labelmap, flow.segmentation, segmentation.GetSegmentIdBySegmentName(name),
                                     logic.MODE_REPLACE)


def test_export_of_an_edited_mammo_roi_has_the_ai_and_the_readers_segments(tmp_path, scene):
    from smartimaging.errors import InputError
    from smartimaging.exports import export_dicom
    from smartimaging.mammo import scene as mammo_scene
    from smartimaging.mammo.cohort import write_mammo_phantom_cohort
    from smartimaging.mammo.flow import MammoFlow
    from smartimaging.mammo.images import load_mammogram
    from smartimaging.manifest import read_manifest
    from smartimaging.mrml import get_json_attribute
    from smartimaging.segmentation_nodes import labels_from_segmentation
    from smartimaging.segments import BREAST_CALCIFICATION, BREAST_MASS

    manifest = read_manifest(write_mammo_phantom_cohort(tmp_path / "cohort", 1, 1, "mass", {}))
    row = manifest.rows[0]
    pixel_mm = float(row["pixel_mm"])
    image = load_mammogram(manifest.resolve(row["image"]), pixel_mm).image
    path = write_series(derived_series(image, "MG", "mammogram"), tmp_path / "mg")[0]  # a DICOM MG as from PACS
    flow = MammoFlow(scene, device="cpu")
    flow.load("mammogram", path)
    with pytest.raises(InputError, match="Compute Rad-score first"):
        export_dicom(flow, tmp_path / "early")
    flow.set_point_lps((float(row["centre_col"]) * pixel_mm, float(row["centre_row"]) * pixel_mm, 0.0))
    flow.run(flow.segment())
    ai_mask = labels_from_segmentation(scene, flow.ai_segmentation, flow.primary, (BREAST_MASS,)) > 0
    edited = ai_mask.copy()
    edited[..., int(row["centre_col"]):] = False  # the reader erases the lesion's right half
    _replace_segment(flow, BREAST_MASS.name, edited)
    flow.set_kind("calcification")  # the reader calls it a calcification: the AI proposed a mass
    result = flow.run(flow.compute())
    record = get_json_attribute(result.table_node, mammo_scene.RESULT)
    written = export_dicom(flow, tmp_path / "export")
    assert set(written) == {"seg", "sr"} and all(path.is_file() for path in written.values())
    source = pydicom.dcmread(path, stop_before_pixels=True)
    seg = hd.seg.segread(written["seg"])
    assert referenced_instances(seg) == {source.SOPInstanceUID} and seg.StudyInstanceUID == source.StudyInstanceUID
    assert segments_of(seg) == [("Breast mass (AI proposal)", "AUTOMATIC", model("mammo-mass-unet-demo")),
                                ("Breast calcification (reader-edited)", "MANUAL", None)]
    pixels = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1, 2])
    np.testing.assert_array_equal(pixels[0, ..., 0], ai_mask[0])
    np.testing.assert_array_equal(pixels[0, ..., 1], edited[0])
    numbers, texts = sr_content(written["sr"])
    assert numbers["Rad-score"] == (approx(record["rad_score"]), 2)  # computed from the reader's ROI
    assert texts["ROI"] == record["roi_source"] == "reader edited" and record["kind"] == "calcification"
    dciodvfy(written["seg"])
    dciodvfy(written["sr"])
    _replace_segment(flow, BREAST_CALCIFICATION.name, ai_mask)  # edited after compute: the SR would not match
    with pytest.raises(InputError, match="edited after the result was computed"):
        export_dicom(flow, tmp_path / "stale")
    assert not (tmp_path / "stale").exists()


def test_export_of_metastases_drawn_by_hand_on_the_real_ge_scan(tmp_path, scene):
    from smartimaging.bonescan.flow import BoneScanFlow
    from smartimaging.display import SOURCE_FILE
    from smartimaging.errors import InputError
    from smartimaging.exports import export_dicom
    from smartimaging.segments import BONE_METASTASIS

    flow = BoneScanFlow(scene, device="cpu")
    flow.load("scan", GE_BONE_SCAN)
    flow.draw_by_hand()
    drawn = np.zeros((1, 1024, 256), np.uint8)  # the scan's one view: 256 × 1024 pixels
    drawn[0, 300:330, 100:130] = 1
    _replace_segment(flow, BONE_METASTASIS.name, drawn)
    flow.run(flow.compute())
    record = flow.result_record
    written = export_dicom(flow, tmp_path / "export")
    source = pydicom.dcmread(GE_BONE_SCAN, stop_before_pixels=True)
    seg = hd.seg.segread(written["seg"])
    assert referenced_instances(seg) == {source.SOPInstanceUID} and seg.PatientID == source.PatientID
    assert segments_of(seg) == [(f"{name} (reader-edited)", "MANUAL", None)
                                for name in ("Bone metastasis", "Urinary bladder")]
    pixels = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1])
    np.testing.assert_array_equal(pixels[..., 0], drawn)
    numbers, _ = sr_content(written["sr"])
    assert numbers["BSTBI (mean of 2 sub-images)"] == (approx(record["bstbi"]["mean"]), 1)
    assert record["bstbi"]["mean"] > 0
    dciodvfy(written["seg"])
    dciodvfy(written["sr"])
    flow.primary.SetAttribute(SOURCE_FILE, str(tmp_path / "moved.dcm"))  # the file the scan was read from is gone
    with pytest.raises(InputError, match="moved.dcm, which .* was loaded from, is no longer there"):
        export_dicom(flow, tmp_path / "again")


def test_export_of_an_edited_ai_segmentation_of_the_real_ge_scan(tmp_path, scene):
    from smartimaging.bonescan import scene as bonescan_scene
    from smartimaging.bonescan.flow import BoneScanFlow
    from smartimaging.exports import export_dicom
    from smartimaging.segments import BONE_METASTASIS

    flow = BoneScanFlow(scene, device="cpu")
    flow.load("scan", GE_BONE_SCAN)
    flow.run(flow.segment())  # the networks, in the worker
    ai = bonescan_scene.labels_from_segmentation(scene, flow.ai_segmentation, flow.primary)
    edited = (ai == 1).astype(np.uint8)
    edited[:, :200] = 0  # the reader erases the two uppermost metastases (rows 145 and 161)
    _replace_segment(flow, BONE_METASTASIS.name, edited)
    flow.run(flow.compute())
    record = flow.result_record
    assert record["reader_edited"] and record["bstbi"]["mean"] > 0
    written = export_dicom(flow, tmp_path / "export")
    source = pydicom.dcmread(GE_BONE_SCAN, stop_before_pixels=True)
    seg = hd.seg.segread(written["seg"])
    unet = model("bonescan-unet-demo")
    assert segments_of(seg) == [("Bone metastasis (AI proposal)", "AUTOMATIC", unet),
                                ("Urinary bladder (AI proposal)", "AUTOMATIC", unet),
                                ("Bone metastasis (reader-edited)", "MANUAL", None),
                                ("Urinary bladder (reader-edited)", "MANUAL", None)]
    pixels = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1, 3])
    np.testing.assert_array_equal(pixels[..., 0], ai == 1)
    np.testing.assert_array_equal(pixels[..., 1], edited)
    numbers, texts = sr_content(written["sr"])
    assert numbers["BSTBI (mean of 2 sub-images)"] == (approx(record["bstbi"]["mean"]), 3)  # the reader's segment
    assert numbers["Metastasis probability"] == (approx(record["metastasis_probability"]), None)
    assert texts["Reader edited"] == "yes"
    dciodvfy(written["seg"])


def test_lesions_rejected_on_the_ai_segmentation_are_filed_as_the_readers(tmp_path, scene):
    """The reader rejects a lesion of the networks' segmentation (no pixel edited): the SEG keeps the AI's proposal
    (AUTOMATIC, every lesion) and adds the reader's segment (MANUAL, without the rejected lesion); the SR's numbers
    refer to the reader's segment, say the reader edited and rejected it, and read the probability at the
    classifier card's cutoff, as the CLI does; the case report draws the rejected lesion grey, labelled rejected."""
    from smartimaging.bonescan import scene as bonescan_scene
    from smartimaging.bonescan.flow import BoneScanFlow
    from smartimaging.bonescan.pipeline import BoneScanModels
    from smartimaging.case_report import case_report
    from smartimaging.exports import export_dicom
    from smartimaging.report import REJECTED_COLOUR

    flow = BoneScanFlow(scene, device="cpu")
    flow.load("scan", GE_BONE_SCAN)
    flow.run(flow.segment())
    flow.run(flow.compute())
    first = flow.result_record["lesions"][0]
    flow.toggle_lesion(first["id"])
    flow.run(flow.compute())
    record = flow.result_record
    cutoff = BoneScanModels.load(device="cpu").case_threshold
    assert cutoff != 0.5 and record["threshold"] == cutoff  # the card's cutoff, not the paper's default
    assert record["metastasis_suspected"] == (record["metastasis_probability"] >= cutoff)
    assert record["excluded_lesions"] == [first["id"]] and record["reader_edited"]
    written = export_dicom(flow, tmp_path / "export")
    seg = hd.seg.segread(written["seg"])
    unet = model("bonescan-unet-demo")
    assert segments_of(seg) == [("Bone metastasis (AI proposal)", "AUTOMATIC", unet),
                                ("Urinary bladder (AI proposal)", "AUTOMATIC", unet),
                                ("Bone metastasis (reader-edited)", "MANUAL", None),
                                ("Urinary bladder (reader-edited)", "MANUAL", None)]
    source = pydicom.dcmread(GE_BONE_SCAN, stop_before_pixels=True)
    ai = bonescan_scene.labels_from_segmentation(scene, flow.ai_segmentation, flow.primary)
    pixels = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1, 3])
    np.testing.assert_array_equal(pixels[..., 0], ai == 1)
    removed = (ai == 1) & (pixels[..., 1] == 0)
    assert removed.any() and removed[0, round(first["row"]), round(first["col"])]  # the rejected lesion, and only it
    assert not ((pixels[..., 1] == 1) & (ai != 1)).any()
    numbers, texts = sr_content(written["sr"])
    assert numbers["BSTBI (mean of 2 sub-images)"] == (approx(record["bstbi"]["mean"]), 3)  # the reader's segment
    assert numbers["Lesions rejected by the reader"] == (1, 3)
    assert texts["Reader edited"] == "yes" and texts["Lesions rejected by the reader"].startswith(f"#{first['id']} ")
    assert numbers["Metastasis probability cutoff"] == (approx(cutoff), None)
    assert texts["Metastasis"] == ("suspected" if record["metastasis_suspected"] else "not suspected")
    dciodvfy(written["sr"])

    report = case_report(flow)
    assert ("Lesion rejected by the reader (grey, not counted)", REJECTED_COLOUR) in report.legend
    picture = np.asarray(Image.open(io.BytesIO(report.figures[0].png)).convert("RGB"))
    assert np.all(picture == REJECTED_COLOUR, axis=2).sum() > 20  # its outline and its "rejected" number


def test_export_of_the_mri_flows_read_from_dicom_series(tmp_path, scene, mri_case):
    from smartimaging.dce.flow import DCEFlow
    from smartimaging.exports import export_dicom
    from smartimaging.lvi import scene as lvi_scene
    from smartimaging.lvi.flow import LVIFlow
    from smartimaging.mrml import get_json_attribute

    flow = LVIFlow(scene, device="cpu")
    flow.load("DCE", mri_case["dce2"])
    flow.load("T2", mri_case["t2"])
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(sitk.ReadImage(str(mri_case["voi"])))
    flow.set_point_lps(statistics.GetCentroid(1))
    flow.run(flow.segment())
    record = get_json_attribute(flow.run(flow.compute()).table_node, lvi_scene.RESULT)
    written = export_dicom(flow, tmp_path / "lvi")
    sources = [pydicom.dcmread(path, stop_before_pixels=True) for path in sorted(mri_case["dce2"].iterdir())]
    seg = hd.seg.segread(written["seg"])
    assert referenced_instances(seg) == {ds.SOPInstanceUID for ds in sources}
    assert segments_of(seg) == [("Breast mass (AI proposal)", "AUTOMATIC", model("lvi-lesion-unet-demo"))]
    assert sr_content(written["sr"])[0]["LVI probability, fused"] == (approx(record["fused"]["probability"]), 1)
    dciodvfy(written["seg"])

    flow = DCEFlow(scene, device="cpu")
    flow.load("T1", mri_case["t1"])
    flow.load("DCE", mri_case["dce"])
    flow.run(flow.compute())
    record = get_json_attribute(flow.extra_nodes["synthetic"], "SmartImaging.DCESynthesis")
    written = export_dicom(flow, tmp_path / "dce")
    assert set(written) == {"series", "sr"}
    t1 = pydicom.dcmread(sorted(mri_case["t1"].iterdir())[0], stop_before_pixels=True)
    synthetic = pydicom.dcmread(sorted(written["series"].iterdir())[0], stop_before_pixels=True)
    assert synthetic.StudyInstanceUID == t1.StudyInstanceUID and "SYNTHETIC" in synthetic.SeriesDescription
    assert same_geometry(read_series_or_volume(written["series"]), read_series_or_volume(mri_case["t1"]), 1e-3)
    numbers, _ = sr_content(written["sr"])
    assert numbers["SSIM vs real DCE (mean of slices)"] == (approx(record["metrics"]["ssim_mean"]), None)
    dciodvfy(written["sr"])


@pytest.mark.parametrize("name", ["BoneScanBSTBI", "MammoRadiomics", "BreastLVI", "DCESynthesis"])
def test_each_desktop_module_has_an_export_dicom_button(name):
    """The button in the .ui, connected to a slot that hands the module's flow to smartimaging.desktop.export_dicom,
    which asks for a folder and writes exports.export_dicom's files inside tryWithErrorDisplay (desktop widgets are
    not run here: export_dicom itself is tested on real scenes above)."""
    import ast
    import xml.etree.ElementTree as ET

    repo = Path(__file__).resolve().parents[1]
    ui = ET.parse(repo / name / "Resources" / "UI" / f"{name}.ui").getroot()
    button = next(w for w in ui.iter("widget") if w.get("name") == "exportDicomButton")
    assert button.get("class") == "QPushButton"
    source = (repo / name / f"{name}.py").read_text(encoding="utf-8")
    assert 'self.ui.exportDicomButton.connect("clicked(bool)", self.onExportDicomButton)' in source
    assert "self.ui.exportDicomButton.enabled = self.logic.flow.result is not None" in source
    slot = next(node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.FunctionDef)
                and node.name == "onExportDicomButton")
    assert "export_dicom(self.logic.flow, self.parent)" in ast.unparse(slot)
    desktop = ast.parse((repo / "smartimaging" / "desktop.py").read_text(encoding="utf-8"))
    helper = ast.unparse(next(n for n in desktop.body if isinstance(n, ast.FunctionDef) and n.name == "export_dicom"))
    assert "from .exports import export_dicom as write" in helper and "tryWithErrorDisplay" in helper
    assert "getExistingDirectory" in helper and "Slicer 5.12" in helper


def test_the_lvi_sr_of_one_network_alone_has_no_fused_items():
    """A cohort's network runs alone: its own probability, cutoff and label are the result; the demo pair's fusion
    is named as such."""
    from smartimaging.lvi.dicom import sr_content as lvi_sr_content
    from smartimaging.lvi.report_page import ONE_MODEL

    def record(count, method):
        models = [{"model": {"id": f"net{i}"}, "sequence": "DCE", "network": "ResNet10 3D", "probability": 0.7,
                   "cutoff": 0.5, "label": "LVI positive"} for i in range(count)]
        return {"models": models, "fused": {"probability": 0.7, "cutoff": 0.5, "label": "LVI positive",
                                            "method": method}}

    measurements, qualitatives = lvi_sr_content(record(1, ONE_MODEL), 1)
    names = [item.name for item in [*measurements, *qualitatives]]
    assert names == ["LVI probability, net0 (DCE, ResNet10 3D)", "LVI cutoff, net0 (DCE, ResNet10 3D)",
                     "LVI label, net0 (DCE, ResNet10 3D)"]
    measurements, qualitatives = lvi_sr_content(record(2, "mean of the models' probabilities"), 1)
    names = [item.name for item in [*measurements, *qualitatives]]
    assert "LVI probability, fused" in names and "Fusion" in names
