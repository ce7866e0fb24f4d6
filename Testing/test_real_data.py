"""Each module's whole flow on every real case (Testing/realdata.py): decoding, the CLI into temporary folders, and
the MRML adapter on a real scene (slicer-core).

What is asserted must hold today: pixels decoded exactly, geometry kept end to end, outputs written, no patient
identifiers, exit code 0 or one honest line. How good the proposals are on these cases (lesion found, Dice) is
collected by `*_quality_row` helpers and only printed; the segmentation work tightens those tests to its targets.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import realdata
import SimpleITK as sitk

from smartimaging.cli import main
from smartimaging.errors import InputError
from smartimaging.evaluation import dice
from smartimaging.io import dicom_pixels, read_series_or_volume, same_geometry

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")

LOSSLESS_COPIES = ("JPEG lossless", "JPEG 2000 reversible")
CLI_NO_LESION = "The model found no lesion there"  # the honest answer while the prompted segmenter misses


def _geometry(image: sitk.Image) -> tuple:
    return image.GetSize(), image.GetSpacing(), image.GetOrigin(), image.GetDirection()


def _assert_same_grid(output: sitk.Image, reference: sitk.Image, what: str) -> None:
    assert same_geometry(output, reference, 1e-6), f"{what}: {_geometry(output)} != {_geometry(reference)}"


def _assert_no_identifiers(folder: Path, identifiers: list[str]) -> None:
    """No identifier of the input appears in any text the run wrote (JSON, CSV, NRRD headers)."""
    for path in folder.rglob("*"):
        if path.suffix in (".json", ".csv", ".txt", ".nrrd"):
            text = path.read_bytes()[:200_000].decode("latin-1")
            for identifier in identifiers:
                assert identifier not in text, f"{identifier!r} written into {path.name}"


# ---- decoding ------------------------------------------------------------------------------------------------------

def test_lossless_copies_of_the_ge_bone_scan_decode_to_identical_pixels():
    from smartimaging.bonescan.views import read_nm_dicom

    images = {copy: read_nm_dicom(realdata.bone_scan(copy))[0] for copy in realdata.BONE_SCAN_COPIES}
    syntaxes = {copy: pydicom.dcmread(realdata.bone_scan(copy), stop_before_pixels=True).file_meta.TransferSyntaxUID
                for copy in images}
    assert [syntaxes[c].name for c in LOSSLESS_COPIES] == [
        "JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])",
        "JPEG 2000 Image Compression (Lossless Only)"]
    lossless = [sitk.GetArrayFromImage(images[c]) for c in LOSSLESS_COPIES]
    assert lossless[0].shape == (1, 1024, 256) and np.array_equal(lossless[0], lossless[1])
    assert float(lossless[0].max()) == 278  # counts as stored, not rescaled to 8 bits
    for image in images.values():
        assert image.GetSpacing()[:2] == pytest.approx((2.26, 2.26))
    # the "uncompressed" copy is the decoded lossy JPEG 2000 file that pydicom ships: the same pixels exactly, and
    # the same scan as the lossless copies up to compression noise
    lossy = pydicom.data.get_testdata_file("JPEG2000.dcm")
    ds, pixels = dicom_pixels(Path(lossy))
    assert ds.file_meta.TransferSyntaxUID.name == "JPEG 2000 Image Compression"
    uncompressed = sitk.GetArrayFromImage(images["uncompressed (from lossy JPEG 2000)"])[0]
    assert np.array_equal(pixels, uncompressed)
    assert np.corrcoef(uncompressed.ravel(), lossless[0].ravel())[0, 1] > 0.9


def test_cbis_ddsm_film_mammograms_decode_from_rle_and_say_their_pixel_size_is_unknown():
    from smartimaging.mammo.images import PIXEL_SIZE_GIVEN, PIXEL_SIZE_UNKNOWN, load_mammogram

    for view in realdata.cbis_ddsm_views():
        mammogram = load_mammogram(view.path)
        columns, rows, _ = mammogram.image.GetSize()
        assert 4400 <= rows <= 4800 and 2500 <= columns <= 3000, view.path.name
        assert float(mammogram.pixels.max()) > 50_000  # 16-bit film scans, decoded (not blank)
        assert mammogram.meta["pixel_size_source"] == PIXEL_SIZE_UNKNOWN
        assert "digitised film" in mammogram.meta["pixel_size_note"]
        assert mammogram.meta["laterality"] in ("L", "R")
    given = load_mammogram(view.path, pixel_mm=0.05)
    assert given.image.GetSpacing()[:2] == (0.05, 0.05)
    assert given.meta["pixel_size_source"] == PIXEL_SIZE_GIVEN and "pixel_size_note" not in given.meta


def test_a_compression_without_decoder_is_refused_in_one_line(tmp_path):
    source = realdata.bone_scan("JPEG lossless")
    ds = pydicom.dcmread(source)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.MPEG2MPML  # a real transfer syntax no installed plugin decodes
    path = tmp_path / "mpeg2.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(InputError, match="cannot decode") as caught:
        dicom_pixels(path)
    assert "\n" not in str(caught.value) and "MPEG2" in str(caught.value)
    assert main(["bonescan", "predict", str(path), "--out", str(tmp_path / "out")]) == 2


@pytest.mark.parametrize("syntax", ["RLELossless", "JPEG2000Lossless"])
def test_compressed_mr_series_reads_with_its_pixels_and_geometry(tmp_path, syntax):
    from dicom_series import write_dicom_series

    image_path, _ = realdata.breast1()
    volume = sitk.ReadImage(str(image_path))
    folder = tmp_path / "series"
    write_dicom_series(volume, folder, "1.2.826.0.1.3680043.2.1.7")
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        ds.compress(getattr(pydicom.uid, syntax))
        ds.save_as(path)
    assert pydicom.dcmread(next(folder.iterdir())).file_meta.TransferSyntaxUID.name.startswith(("RLE", "JPEG 2000"))
    read = read_series_or_volume(folder)
    assert np.array_equal(sitk.GetArrayFromImage(read), sitk.GetArrayFromImage(volume))
    assert read.GetSpacing() == pytest.approx(volume.GetSpacing(), abs=1e-4)
    assert read.GetOrigin() == pytest.approx(volume.GetOrigin(), abs=1e-4)
    assert read.GetDirection() == pytest.approx(volume.GetDirection(), abs=1e-6)


# ---- bone scan: three copies of the GE scan ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bone_scan_runs(tmp_path_factory) -> dict[str, dict]:
    """`bonescan predict` on each copy: exit code, output folder and result."""
    runs = {}
    for copy in realdata.BONE_SCAN_COPIES:
        out = tmp_path_factory.mktemp("bonescan") / "out"
        code = main(["bonescan", "predict", str(realdata.bone_scan(copy)), "--out", str(out), "--device", "cpu"])
        runs[copy] = {"code": code, "out": out,
                      "result": json.loads((out / "result.json").read_text(encoding="utf-8")) if code == 0 else None}
    return runs


@pytest.mark.parametrize("copy", list(realdata.BONE_SCAN_COPIES))
def test_bone_scan_cli_on_each_copy_keeps_geometry_and_identifiers_out(bone_scan_runs, copy):
    from smartimaging.bonescan.views import read_nm_dicom

    run = bone_scan_runs[copy]
    assert run["code"] == 0
    source, _, meta = read_nm_dicom(realdata.bone_scan(copy))
    labels = sitk.ReadImage(str(next(run["out"].glob("*_labels.nii.gz"))))
    _assert_same_grid(labels, source, f"{copy} labels")
    result = run["result"]
    assert 0 <= result["metastasis_probability"] <= 1 and result["bstbi"]["mean"] >= 0
    assert (run["out"] / "overlay_anterior.png").stat().st_size > 0
    identifiers = [v for v in meta["identifiers"].values() if len(v) >= 4]
    assert identifiers, "the GE scan carries a patient name and ID: the check below would be vacuous"
    _assert_no_identifiers(run["out"], identifiers)


def test_bone_scan_lossless_copies_give_the_same_result(bone_scan_runs):
    first, second = (bone_scan_runs[c]["result"] for c in LOSSLESS_COPIES)
    assert first["bstbi"] == second["bstbi"] and first["lesions"] == second["lesions"]
    assert first["metastasis_probability"] == second["metastasis_probability"]


def test_bone_scan_scene_on_the_jpeg2000_copy_matches_the_cli(scene, bone_scan_runs):
    from smartimaging.bonescan import scene as bonescan_scene
    from smartimaging.bonescan.pipeline import BoneScanModels
    from smartimaging.bonescan.views import read_nm_dicom
    from smartimaging.mrml import sitk_to_volume_node, volume_node_to_sitk
    from smartimaging.segmentation_nodes import labels_from_segmentation
    from smartimaging.segments import BONESCAN_SEGMENTS

    image = read_nm_dicom(realdata.bone_scan("JPEG 2000 reversible"))[0]
    image.SetOrigin((-289.0, -120.0, 40.0))
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "GE bone scan")
    sitk_to_volume_node(image, volume)
    segmentations = bonescan_scene.segment(scene, [volume], BoneScanModels.load(device="cpu"))
    _assert_same_grid(volume_node_to_sitk(volume), image, "volume node")
    labels = labels_from_segmentation(scene, segmentations[0], volume, BONESCAN_SEGMENTS)
    assert labels.shape == (1, 1024, 256)
    cli = bone_scan_runs["JPEG 2000 reversible"]["result"]
    cli_labels = sitk.GetArrayFromImage(sitk.ReadImage(str(next(
        bone_scan_runs["JPEG 2000 reversible"]["out"].glob("*_labels.nii.gz")))))
    assert np.array_equal(labels, cli_labels)
    _, recomputed = bonescan_scene.compute_bstbi(scene, [volume], segmentations)
    assert recomputed.bstbi["mean"] == pytest.approx(cli["bstbi"]["mean"], abs=1e-9)
    assert recomputed.metastasis_probability == pytest.approx(cli["metastasis_probability"], abs=1e-6)


# ---- mammography ---------------------------------------------------------------------------------------------------

def mammo_quality_row(name: str, reference: np.ndarray, roi: np.ndarray | None) -> dict:
    """Lesion found (non-empty ROI whose centroid lies inside the reference) and Dice, for the segmentation work."""
    if roi is None or not roi.any():
        return {"case": name, "found": False, "dice": 0.0}
    row, col = (int(round(v)) for v in np.argwhere(roi).mean(axis=0))
    return {"case": name, "found": bool(reference[row, col]), "dice": round(float(dice(roi > 0, reference > 0)), 3)}


def _read_png_mask(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as mask:
        return np.asarray(mask.convert("L")) > 0


def test_nyu_mammogram_cli_with_the_reader_mask_scores_and_flags_the_unknown_pixel_size(tmp_path):
    image, mask = realdata.nyu_mammogram()
    out = tmp_path / "nyu"
    assert main(["mammo", "predict", str(image), "--kind", "mass", "--mask", str(mask), "--out", str(out)]) == 0
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert record["roi_source"] == "reader mask" and record["roi_pixels"] == int(_read_png_mask(mask).sum())
    assert 0 <= record["rad_score"] <= 1 and record["label"] in ("benign", "malignant")
    assert record["image"]["pixel_size_source"] == "unknown (assumed 1 mm)"
    assert any("pixel" in warning for warning in record["warnings"])
    roi = sitk.ReadImage(str(out / "roi_labels.nii.gz"))
    assert roi.GetSize()[:2] == (1920, 2944)
    assert np.array_equal(sitk.GetArrayFromImage(roi)[0] > 0, _read_png_mask(mask))


def test_nyu_mammogram_cli_point_at_the_mask_centre_gives_a_roi_or_one_honest_line(tmp_path, capsys):
    image, mask = realdata.nyu_mammogram()
    reference = _read_png_mask(mask)
    row, col = np.argwhere(reference).mean(axis=0)
    out = tmp_path / "point"
    code = main(["mammo", "predict", str(image), "--kind", "mass", "--point", f"{col:.0f},{row:.0f}", "--out",
                 str(out)])
    assert code in (0, 2)
    if code == 2:
        assert CLI_NO_LESION in capsys.readouterr().err
        roi = None
    else:
        roi = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "roi_labels.nii.gz")))[0]
    print(mammo_quality_row("NYU 0_R-CC", reference, roi))


def test_cdd_cesm_batch_with_the_reader_masks_scores_every_view(tmp_path):
    """One batch over a quarter of the 24 views (both classes, DM and CM; pyradiomics takes seconds per view)."""
    views = realdata.cdd_cesm_views()
    assert len(views) == 24
    chosen = views[::4]
    assert {view.lesion()[1] for view in chosen} == {0, 1} and {view.name.split("_")[3] for view in chosen} == \
        {"DM", "CM"}
    images, masks = tmp_path / "images", tmp_path / "masks"
    for view in chosen:
        for folder, source in ((images, view.image), (masks, view.mask)):
            folder.mkdir(exist_ok=True)
            (folder / source.name).symlink_to(source)
    out = tmp_path / "batch"
    assert main(["mammo", "batch", str(images), "--kind", "mass", "--masks", str(masks), "--out", str(out),
                 "--keep-identifiers"]) == 0
    with open(out / "results.csv", encoding="utf-8", newline="") as f:
        rows = {Path(row["image"]).stem: row for row in csv.DictReader(f)}
    assert sorted(rows) == sorted(view.name for view in chosen)
    for view in chosen:
        row = rows[view.name]
        assert row["error"] == "" and row["roi_source"] == "reader mask", row
        lesion = int(view.lesion()[0].sum())  # the README's colour rule; load_mask counts a few mixed edge pixels
        assert lesion > 0 and abs(int(row["roi_pixels"]) - lesion) <= 0.01 * lesion + 2, (row["roi_pixels"], lesion)
        assert 0 <= float(row["rad_score"]) <= 1


def test_cbis_ddsm_point_at_the_image_centre_gives_a_roi_or_one_honest_line(tmp_path, capsys):
    for view in realdata.cbis_ddsm_views()[4:5]:  # one view (P_00820 left CC, the station sample): seconds each
        out = tmp_path / view.path.stem
        header = pydicom.dcmread(view.path, stop_before_pixels=True)
        columns, rows = int(header.Columns), int(header.Rows)
        code = main(["mammo", "predict", str(view.path), "--kind", "mass", "--point", f"{columns // 2},{rows // 2}",
                     "--pixel-mm", "0.05", "--out", str(out)])
        assert code in (0, 2)
        if code == 2:
            assert CLI_NO_LESION in capsys.readouterr().err
            continue
        record = json.loads((out / "result.json").read_text(encoding="utf-8"))
        assert record["image"]["pixel_size_source"] == "given by the reader"
        assert sitk.ReadImage(str(out / "roi_labels.nii.gz")).GetSize()[:2] == (columns, rows)
        _assert_no_identifiers(out, [str(header.PatientID)])


def test_nyu_mammogram_scene_classifies_the_reader_roi_on_the_volume_grid(scene):
    from smartimaging.mammo import scene as mammo_scene
    from smartimaging.mammo.images import load_mammogram
    from smartimaging.mrml import get_json_attribute, sitk_to_volume_node, volume_node_to_sitk
    from smartimaging.segmentation_nodes import labels_from_segmentation, segmentation_from_labels
    from smartimaging.segments import MAMMO_SEGMENTS

    image, mask = realdata.nyu_mammogram()
    mammogram = load_mammogram(image)
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "NYU R-CC")
    sitk_to_volume_node(mammogram.image, volume)
    reference = _read_png_mask(mask)
    spec = MAMMO_SEGMENTS["mass"]
    reader = segmentation_from_labels(scene, volume, reference[None].astype(np.uint8) * spec.label, (spec,),
                                      "reader ROI", "edited")
    assert np.array_equal(labels_from_segmentation(scene, reader, volume, (spec,))[0] > 0, reference)
    table, prediction = mammo_scene.classify(scene, volume, reader, "mass")
    rows = {table.GetCellText(r, 0): table.GetCellText(r, 1) for r in range(table.GetNumberOfRows())}
    assert rows["ROI pixels"] == str(int(reference.sum())) and 0 <= float(rows["Rad-score"]) <= 1
    assert get_json_attribute(table, mammo_scene.RESULT)["rad_score"] == pytest.approx(prediction.rad_score)
    _assert_same_grid(volume_node_to_sitk(volume), mammogram.image, "mammogram volume node")


# ---- breast MRI: pyradiomics breast1 (LVI, and DCE synthesis as if it were a T1) -----------------------------------

def _label_centroid_lps(label: sitk.Image) -> tuple[float, float, float]:
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(sitk.Cast(label > 0, sitk.sitkUInt8))
    return stats.GetCentroid(1)


def lvi_quality_row(voi: sitk.Image, label: sitk.Image) -> dict:
    """Voxels and Dice of a click-seeded VOI against breast1's lesion label, for the segmentation work."""
    proposed, reference = sitk.GetArrayFromImage(voi) > 0, sitk.GetArrayFromImage(label) > 0
    return {"case": "breast1", "voxels": int(proposed.sum()), "dice": round(float(dice(proposed, reference)), 3)}


def test_lvi_cli_with_the_reader_voi_and_with_a_click_at_the_lesion_centre(tmp_path):
    image_path, label_path = realdata.breast1()
    image, label = sitk.ReadImage(str(image_path)), sitk.ReadImage(str(label_path))
    out = tmp_path / "predict"
    assert main(["lvi", "predict", "--dce", str(image_path), "--voi", str(label_path), "--out", str(out)]) == 0
    record = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert 0 <= record["fused"]["probability"] <= 1
    for heat_map in out.glob("gradcam_*.nrrd"):
        _assert_same_grid(sitk.ReadImage(str(heat_map)), image, heat_map.name)
    assert list(out.glob("gradcam_*.nrrd"))

    click = tmp_path / "segment"
    point = ",".join(f"{v:.3f}" for v in _label_centroid_lps(label))
    assert main(["lvi", "segment", str(image_path), f"--point={point}", "--out", str(click)]) == 0
    voi = sitk.ReadImage(str(click / "voi.nrrd"))
    _assert_same_grid(voi, image, "click-seeded VOI")
    print(lvi_quality_row(voi, label))


def test_lvi_scene_on_breast1_with_the_reader_voi(scene):
    import slicer

    from smartimaging.lvi import scene as lvi_scene
    from smartimaging.mrml import sitk_to_volume_node, volume_node_to_sitk

    image_path, label_path = realdata.breast1()
    image, label = sitk.ReadImage(str(image_path)), sitk.ReadImage(str(label_path))
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "breast1")
    sitk_to_volume_node(image, volume)
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    sitk_to_volume_node(sitk.Cast(label > 0, sitk.sitkUInt8), labelmap)
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "reader VOI")
    slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, segmentation)
    voi = lvi_scene.voi_image(scene, segmentation, volume)
    assert np.array_equal(sitk.GetArrayFromImage(voi) > 0, sitk.GetArrayFromImage(label) > 0)
    table, result = lvi_scene.predict(scene, {"DCE": volume}, segmentation, ["lvi-dce-resnet10-3d-demo"])
    assert table.GetNumberOfRows() >= 2 and 0 <= float(table.GetCellText(0, 2)) <= 1
    for heat_map in result.heat_maps.values():
        _assert_same_grid(volume_node_to_sitk(heat_map), image, heat_map.GetName())


def test_dce_synthesis_on_breast1_as_if_it_were_a_t1_keeps_the_grid(tmp_path, scene):
    """breast1 is a fat-suppressed post-contrast crop, not a T1: the flow must complete on its grid (the domain check
    is to mark such a result)."""
    from smartimaging.dce import scene as dce_scene
    from smartimaging.dce.synthesis import DCESynthesizer
    from smartimaging.mrml import sitk_to_volume_node, volume_node_to_sitk

    image_path, _ = realdata.breast1()
    image = sitk.ReadImage(str(image_path))
    out = tmp_path / "dce"
    assert main(["dce", "synthesize", str(image_path), "--out", str(out), "--quiet"]) == 0
    outputs = [p for p in out.iterdir() if p.suffix in (".nrrd", ".gz") and "mip" not in p.name]
    assert outputs
    for path in outputs:
        _assert_same_grid(sitk.ReadImage(str(path)), image, path.name)

    t1 = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "breast1 as T1")
    sitk_to_volume_node(image, t1)
    _, result = dce_scene.synthesize(scene, t1, DCESynthesizer.load(device="cpu"))
    for name in ("synthetic", "subtraction"):
        _assert_same_grid(volume_node_to_sitk(result.volumes[name]), image, name)


# ---- reading station: the real mammography samples ----------------------------------------------------------------

def test_station_real_mammogram_samples_load_with_their_pixel_size_stated(tmp_path):
    from smartimaging.mammo.images import PIXEL_SIZE_GIVEN, PIXEL_SIZE_UNKNOWN, load_mammogram
    from smartimaging.web.cases import sample_cases

    realdata.cdd_cesm_views()  # skips without the real data
    samples = [case for case in sample_cases()["MammoRadiomics"] if case.name.startswith("Real")]
    assert {case.name.split()[1] for case in samples} >= {"NYU", "CDD-CESM"}
    for index, case in enumerate(samples):
        files = case.write(tmp_path / str(index))
        mammogram = load_mammogram(files.volumes["mammogram"], files.pixel_mm)
        source = mammogram.meta["pixel_size_source"]
        assert source == (PIXEL_SIZE_GIVEN if files.pixel_mm else PIXEL_SIZE_UNKNOWN), case.name
        assert any("ixel size" in note for note in files.notes), case.name
        if files.point_lps is not None:  # the point lies in the lesion of the dataset's mask
            col, row, _ = mammogram.image.TransformPhysicalPointToIndex(files.point_lps)
            image = files.volumes["mammogram"]
            mask = _read_png_mask(image.with_name("0_R-CC_benign_mask.png")) if "gmic" in str(image) else \
                realdata.CddCesmView(image, realdata.CDD_CESM_FOLDER / "masks" / f"{image.stem}.png").lesion()[0]
            assert mask[row, col], case.name


def test_jpeg_baseline_mammogram_decodes_like_the_jpeg_itself(tmp_path):
    """An 8-bit JPEG baseline DICOM MG (as some archives send them), built from a real CDD-CESM view."""
    import io

    from PIL import Image
    from pydicom.dataset import FileMetaDataset
    from pydicom.encaps import encapsulate

    from smartimaging.mammo.images import load_mammogram

    view = realdata.cdd_cesm_views()[0]
    buffer = io.BytesIO()
    with Image.open(view.image) as image:
        image.convert("L").save(buffer, format="JPEG", quality=90)
    expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())), dtype=np.float32)
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEGBaseline8Bit
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"  # digital mammography
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.Modality, ds.PhotometricInterpretation, ds.ImagerPixelSpacing = "MG", "MONOCHROME2", [0.1, 0.1]
    ds.Rows, ds.Columns = expected.shape
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 8, 8, 7, 0
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    path = tmp_path / "jpeg_baseline_mg.dcm"
    ds.save_as(path, enforce_file_format=True)
    mammogram = load_mammogram(path)
    assert mammogram.meta["pixel_size_source"] == "header" and mammogram.image.GetSpacing()[:2] == (0.1, 0.1)
    assert np.abs(mammogram.pixels - expected).max() <= 2  # JPEG decoders may round the inverse DCT differently
