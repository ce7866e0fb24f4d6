"""pyradiomics extraction: IBSI digital phantom, pyradiomics' breast1 baseline, 2D vs one-slice identity."""

import ast
import csv
import math

import numpy as np
import pytest
import SimpleITK as sitk

from smartimaging.errors import InputError
from smartimaging.radiomics import MAMMO_PARAMS, as_one_slice_volume, extract, extract_2d

DOCUMENTED_IBSI_DEVIATIONS = {"3D_original_firstorder_Kurtosis", "3D_original_shape_MinorAxisLength",
                              "3D_original_shape_LeastAxisLength"}


def _ibsi_parameters(mode: str, names: list[str]) -> dict:
    """pyradiomics parameters of one IBSI mode ("3D", "2D", "3D_Combined", "2D_Combined") enabling `names`."""
    setting = {"binWidth": 1, "label": 1, "voxelArrayShift": 0, "force2D": mode.startswith("2D")}
    if mode.endswith("Combined"):
        setting["weightingNorm"] = "no_weighting"
    classes: dict[str, list[str]] = {}
    for name in names:
        feature_class, feature = name.split("_original_", 1)[1].split("_", 1)
        classes.setdefault(feature_class, []).append(feature)
    return {"imageType": {"Original": {}}, "featureClass": classes, "setting": setting}


def _rounding(text: str) -> float:
    """Half a unit of the third significant digit: IBSI reports its consensus values to 3 significant digits."""
    value = abs(float(text))
    return 0.5 * 10.0 ** (math.floor(math.log10(value)) - 2) if value else 0.0


def test_ibsi_phantom_matches_reference_except_the_documented_deviations(ibsi_dir):
    image = sitk.ReadImage(str(ibsi_dir / "Phantom.nrrd"))
    mask = sitk.ReadImage(str(ibsi_dir / "Phantom-label.nrrd"))
    with open(ibsi_dir / "ibsi_phantom_reference.csv", encoding="utf-8") as f:
        reference = list(csv.DictReader(f))
    by_mode: dict[str, list[str]] = {}
    for row in reference:
        by_mode.setdefault(row["pyradiomics_feature"].split("_original_")[0], []).append(row["pyradiomics_feature"])
    computed = {}
    for mode, names in by_mode.items():
        for name, value in extract(image, mask, _ibsi_parameters(mode, names)).items():
            computed[f"{mode}_{name}"] = value
    failures = {row["pyradiomics_feature"] for row in reference
                if abs(computed[row["pyradiomics_feature"]] - float(row["reference_value"]))
                > float(row["tolerance"]) + _rounding(row["reference_value"])}
    assert len(reference) == 267
    assert failures == DOCUMENTED_IBSI_DEVIATIONS


def _baseline(folder, column: str) -> tuple[dict, dict]:
    """Expected features and the settings of one column of pyradiomics' baseline tables."""
    expected, settings = {}, None
    for path in sorted((folder / "baseline").glob("baseline_*.csv")):
        with open(path, encoding="utf-8") as f:
            rows = list(csv.reader(f))
        if column not in rows[0]:
            continue
        index = rows[0].index(column)
        for row in rows[1:]:
            if row[0] == "diagnostics_Configuration_Settings":
                settings = ast.literal_eval(row[index])
            elif not row[0].startswith("diagnostics_") and row[index] != "":
                expected[row[0]] = float(row[index])
    return expected, settings


@pytest.mark.parametrize("column", ["breast1", "breast1_2d"])
def test_breast1_baseline_within_three_percent(breast1_dir, column):
    folder = breast1_dir
    expected, settings = _baseline(folder, column)
    classes = sorted({name.split("_")[1] for name in expected})
    parameters = {"imageType": {"Original": {}}, "featureClass": {c: None for c in classes}, "setting": settings}
    computed = extract(sitk.ReadImage(str(folder / "breast1_image.nrrd")),
                       sitk.ReadImage(str(folder / "breast1_label.nrrd")), parameters)
    assert len(expected) > 70
    off = {name: (computed.get(name), value) for name, value in expected.items()
           if name not in computed or abs(computed[name] - value) > 0.03 * abs(value) + 1e-9}
    assert not off


@pytest.fixture(scope="module")
def textured_roi():
    rng = np.random.default_rng(3)
    image = (rng.normal(2000, 300, (80, 90)) + np.linspace(0, 500, 90)).astype(np.float32)
    rows, cols = np.mgrid[:80, :90]
    mask = (((rows - 40) / 22) ** 2 + ((cols - 45) / 30) ** 2 < 1).astype(np.uint8)
    return image, mask


def test_2d_array_and_one_slice_volume_give_identical_features(textured_roi):
    image, mask = textured_roi
    from_array = extract_2d(image, mask, spacing=(0.07, 0.07))
    volume = as_one_slice_volume(image, spacing=(0.07, 0.07))
    volume.SetOrigin((12.0, -30.0, 5.0))
    label = as_one_slice_volume(mask, spacing=(0.07, 0.07))
    label.CopyInformation(volume)
    from_volume = extract_2d(volume, label)
    assert len(from_array) == 102
    assert from_array.keys() == from_volume.keys()
    assert all(from_array[k] == from_volume[k] for k in from_array)
    assert not [k for k in from_array if "_shape_" in k]
    assert from_array["original_shape2D_PixelSurface"] == pytest.approx(mask.sum() * 0.07 * 0.07)


def test_cropping_to_the_roi_changes_no_feature(textured_roi):
    image, mask = textured_roi
    volume = as_one_slice_volume(image)
    label = as_one_slice_volume(mask)
    label.CopyInformation(volume)
    uncropped = extract(volume, label, MAMMO_PARAMS)
    cropped = extract_2d(image, mask)
    assert cropped.keys() == uncropped.keys()
    assert all(cropped[k] == pytest.approx(uncropped[k], rel=1e-9, abs=1e-12) for k in cropped)


def test_a_true_2d_image_gets_2d_texture_not_pyradiomics_row_wise_texture(textured_roi):
    image, mask = textured_roi
    flat_image, flat_mask = sitk.GetImageFromArray(image), sitk.GetImageFromArray(mask)
    ours = extract_2d(flat_image, flat_mask)
    assert ours == extract_2d(image, mask)
    # pyradiomics given the 2D image itself drops axis 0 (the rows): its "zones" are row runs, so GLSZM == GLRLM.
    raw = extract(flat_image, flat_mask, MAMMO_PARAMS)
    assert raw["original_glszm_ZonePercentage"] == pytest.approx(raw["original_glrlm_RunPercentage"])
    assert ours["original_glszm_ZonePercentage"] != pytest.approx(ours["original_glrlm_RunPercentage"], rel=0.02)


@pytest.mark.parametrize("case, message", [("empty", "empty"), ("tiny", "at least 11"), ("constant", "constant"),
                                           ("nan", "NaN")])
def test_bad_rois_are_refused(textured_roi, case, message):
    image, mask = textured_roi
    image, mask = image.copy(), mask.copy()
    if case == "empty":
        mask[:] = 0
    elif case == "tiny":
        mask[:] = 0
        mask[10:12, 10:13] = 1
    elif case == "constant":
        image[:] = 100.0
    else:
        image[40, 45] = np.nan
    with pytest.raises(InputError, match=message):
        extract_2d(image, mask)


def test_three_dimensional_parameters_are_refused_for_2d(tmp_path, textured_roi):
    params = tmp_path / "bad.yaml"
    params.write_text("featureClass:\n  shape:\nsetting:\n  force2D: false\n", encoding="utf-8")
    with pytest.raises(ValueError, match="force2D"):
        extract_2d(*textured_roi, parameters=params)
