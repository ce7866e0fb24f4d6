"""`smartimaging bonescan ...` on real files: predict, bstbi (edited mask), compare, evaluate, train, bad inputs."""

import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from smartimaging.cli import main
from smartimaging.models.registry import models_dir
from smartimaging.segments import BONESCAN_SEGMENTS


@pytest.fixture(scope="module")
def predicted(metastatic_case, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict") / "out"
    assert main(["bonescan", "predict", str(metastatic_case["image"]), "--out", str(out), "--device", "cpu"]) == 0
    return out


def test_predict_writes_segmentation_json_and_overlays(predicted, metastatic_case):
    result = json.loads((predicted / "result.json").read_text(encoding="utf-8"))
    assert set(result["outputs"]) == {"segmentation.seg.nrrd", "segmentation_labels.nii.gz", "overlay_anterior.png",
                                      "overlay_posterior.png", "report.html"}  # neutral names, never the input's
    assert result["inputs"] == [{"sha256": file_digest(metastatic_case["image"])}]
    assert len(result["bstbi"]["per_subimage"]) == 4
    assert 0.0 <= result["bstbi"]["mean"] <= 1.0
    assert {m["id"] for m in result["models"]} == {"bonescan-resnet34-demo", "bonescan-unet-demo"}
    assert all(len(m["sha256"]) == 64 for m in result["models"])
    assert 0.0 <= result["metastasis_probability"] <= 1.0
    assert len(result["crop_probabilities"]["anterior"]) == 7
    assert set(result["timings_s"]) >= {"load", "classify", "segment", "bstbi", "total"}
    assert result["device"] == "cpu" and result["parameters"]["k"] == 5 and result["reader_edited"] is False
    labels = sitk.ReadImage(str(predicted / "segmentation_labels.nii.gz"))
    source = sitk.ReadImage(str(metastatic_case["mask"]))
    assert labels.GetSize() == source.GetSize()
    assert np.allclose(labels.GetSpacing(), source.GetSpacing())
    assert np.allclose(labels.GetOrigin(), source.GetOrigin())


def test_recompute_from_the_same_mask_reproduces_bstbi(predicted, metastatic_case, tmp_path):
    out = tmp_path / "recomputed"
    assert main(["bonescan", "bstbi", str(metastatic_case["image"]), "--mask",
                 str(predicted / "segmentation.seg.nrrd"), "--out", str(out)]) == 0
    original = json.loads((predicted / "result.json").read_text(encoding="utf-8"))
    recomputed = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert recomputed["bstbi"]["mean"] == pytest.approx(original["bstbi"]["mean"], abs=1e-12)
    assert recomputed["reader_edited"] is True


def test_excluding_a_lesion_lowers_bstbi(metastatic_case, tmp_path):
    image, mask = str(metastatic_case["image"]), str(metastatic_case["mask"])
    assert main(["bonescan", "bstbi", image, "--mask", mask, "--out", str(tmp_path / "all")]) == 0
    assert main(["bonescan", "bstbi", image, "--mask", mask, "--exclude", "1", "--out", str(tmp_path / "less")]) == 0
    everything = json.loads((tmp_path / "all" / "result.json").read_text(encoding="utf-8"))
    fewer = json.loads((tmp_path / "less" / "result.json").read_text(encoding="utf-8"))
    assert len(everything["lesions"]) >= 2
    assert 0 < fewer["bstbi"]["mean"] < everything["bstbi"]["mean"]
    assert fewer["excluded_lesions"] == [1]


def test_compare_reports_change(metastatic_case, tmp_path, capsys):
    image, mask = str(metastatic_case["image"]), str(metastatic_case["mask"])
    main(["bonescan", "bstbi", image, "--mask", mask, "--out", str(tmp_path / "before")])
    main(["bonescan", "bstbi", image, "--mask", mask, "--exclude", "1", "--out", str(tmp_path / "after")])
    assert main(["bonescan", "compare", str(tmp_path / "before"), str(tmp_path / "after"), "--out",
                 str(tmp_path / "cmp")]) == 0
    change = json.loads((tmp_path / "cmp" / "compare.json").read_text(encoding="utf-8"))
    assert change["change"] == pytest.approx(change["followup"]["bstbi"] - change["baseline"]["bstbi"])
    assert change["change"] < 0
    assert "BSTBI baseline" in capsys.readouterr().out
    assert (change["baseline"]["source"], change["followup"]["source"]) == ("baseline", "follow-up")
    assert str(tmp_path) not in (tmp_path / "cmp" / "compare.json").read_text(encoding="utf-8")
    assert main(["bonescan", "compare", str(tmp_path / "before"), str(tmp_path / "after"), "--out",
                 str(tmp_path / "cmp"), "--keep-identifiers"]) == 0
    kept = json.loads((tmp_path / "cmp" / "compare.json").read_text(encoding="utf-8"))
    assert kept["baseline"]["source"] == str(tmp_path / "before")
    assert main(["bonescan", "trend", str(tmp_path / "before"), str(tmp_path / "after"), "--out",
                 str(tmp_path / "trend")]) == 0
    trend = (tmp_path / "trend" / "trend.json").read_text(encoding="utf-8")
    svg = (tmp_path / "trend" / "trend.svg").read_text(encoding="utf-8")
    assert str(tmp_path) not in trend + svg and "study 2" in trend


def test_seg_nrrd_opens_in_mrml_with_names_terminology_and_geometry(predicted, metastatic_case, scene):
    import slicer

    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = node.CreateDefaultStorageNode()
    storage.SetFileName(str(predicted / "segmentation.seg.nrrd"))
    assert storage.ReadData(node)
    segmentation = node.GetSegmentation()
    assert [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())] == [
        s.name for s in BONESCAN_SEGMENTS]
    assert "SCT^94222008^Secondary malignant neoplasm of bone" in segmentation.GetNthSegment(0).GetTerminology()
    assert "SCT^89837001^Urinary bladder" in segmentation.GetNthSegment(1).GetTerminology()
    reference = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    from smartimaging.mrml import sitk_to_volume_node

    sitk_to_volume_node(sitk.ReadImage(str(metastatic_case["mask"])), reference)
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
    slicer.vtkSlicerSegmentationsModuleLogic.ExportAllSegmentsToLabelmapNode(
        node, labelmap, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY)
    written = sitk.GetArrayFromImage(sitk.ReadImage(str(predicted / "segmentation_labels.nii.gz")))
    exported = slicer.util.arrayFromVolume(labelmap)
    assert exported.shape == written.shape
    assert np.array_equal(exported > 0, written > 0)
    from smartimaging.mrml import ijk_to_ras_matrix

    assert np.allclose(ijk_to_ras_matrix(labelmap), ijk_to_ras_matrix(reference))


def file_digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_cli(*args):
    return subprocess.run([sys.executable, "-m", "smartimaging.cli", *args], capture_output=True, text=True,
                          timeout=300)


def test_wrong_modality_exits_2_without_outputs_and_leaves_input_untouched(metastatic_case, tmp_path):
    ct = tmp_path / "ct.dcm"
    ds = pydicom.dcmread(metastatic_case["image"])
    ds.Modality = "CT"
    ds.save_as(ct)
    before = file_digest(ct)
    completed = _run_cli("bonescan", "predict", str(ct), "--out", str(tmp_path / "out"))
    assert completed.returncode == 2
    assert "nuclear-medicine" in completed.stderr and "Traceback" not in completed.stderr
    assert not (tmp_path / "out").exists()
    assert file_digest(ct) == before


def test_mask_with_other_geometry_exits_2(metastatic_case, tmp_path):
    mask = sitk.ReadImage(str(metastatic_case["mask"]))
    mask.SetSpacing((1.0, 1.0, 1.0))
    sitk.WriteImage(mask, str(tmp_path / "shifted.nii.gz"))
    code = main(["bonescan", "bstbi", str(metastatic_case["image"]), "--mask", str(tmp_path / "shifted.nii.gz"),
                 "--out", str(tmp_path / "out")])
    assert code == 2
    assert not (tmp_path / "out").exists()


def test_tampered_weights_exit_2(metastatic_case, tmp_path, capsys):
    models = tmp_path / "models"
    shutil.copytree(models_dir(), models)
    weights = models / "bonescan-unet-demo.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    code = main(["bonescan", "predict", str(metastatic_case["image"]), "--out", str(tmp_path / "out"),
                 "--models-dir", str(models)])
    assert code == 2
    assert "modified or damaged" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_unknown_lesion_id_exits_2(metastatic_case, tmp_path):
    code = main(["bonescan", "bstbi", str(metastatic_case["image"]), "--mask", str(metastatic_case["mask"]),
                 "--exclude", "99", "--out", str(tmp_path / "out")])
    assert code == 2


def test_evaluate_prints_the_paper_tables(phantom_cohort, tmp_path, capsys):
    assert main(["bonescan", "evaluate", "--manifest", str(phantom_cohort), "--split", "all", "--out",
                 str(tmp_path / "eval"), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "overall" in printed and "time per case" in printed
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text(encoding="utf-8"))
    overall = report["overall"]
    assert overall["n"] == 6
    assert overall["tp"] + overall["fp"] + overall["tn"] + overall["fn"] == 6
    assert sum(group["n"] for group in report["age_groups"].values()) == 6
    assert (tmp_path / "eval" / "cases.csv").is_file()


def test_train_command_writes_loadable_cards(phantom_cohort, tmp_path):
    from smartimaging.manifest import read_manifest, write_manifest
    from smartimaging.models import load_model

    manifest = read_manifest(phantom_cohort)
    rows = [{**r, "split": "train" if i < 4 else "val"} for i, r in enumerate(manifest.rows)]
    write_manifest(phantom_cohort.parent / "train_manifest.csv", rows)
    assert main(["bonescan", "train", "--manifest", str(phantom_cohort.parent / "train_manifest.csv"), "--out",
                 str(tmp_path / "models"), "--epochs", "1", "--lr", "0.001", "--name", "tiny", "--quiet",
                 "--device", "cpu"]) == 0
    for model_id in ("bonescan-resnet34-tiny", "bonescan-unet-tiny"):
        loaded = load_model(model_id, tmp_path / "models")
        assert loaded.card["training"]["epochs_run"] == 1
        assert "not for clinical use" not in loaded.card["intended_use"]


def test_a_second_patient_into_the_same_out_replaces_the_first_ones_result(metastatic_case, tmp_path):
    out = tmp_path / "result"
    first, second = tmp_path / "patient_a.dcm", tmp_path / "patient_b.dcm"
    shutil.copy(metastatic_case["image"], first)
    shutil.copy(metastatic_case["image"], second)
    assert main(["bonescan", "predict", str(first), "--out", str(out), "--device", "cpu", "--dicom"]) == 0
    (out / "my notes.txt").write_text("the reader's own file", encoding="utf-8")
    (out / "sr.dcm").write_bytes(b"changed by the reader")  # changed since: the reader's now
    assert main(["bonescan", "predict", str(second), "--out", str(out), "--device", "cpu"]) == 0
    names = {p.name for p in out.iterdir()}
    assert "seg.dcm" not in names  # the first patient's result, unchanged: removed
    assert {"segmentation.seg.nrrd", "segmentation_labels.nii.gz", "result.json", "my notes.txt", "sr.dcm"} <= names
    assert (out / "my notes.txt").read_text(encoding="utf-8") == "the reader's own file"
    outputs = json.loads((out / "result.json").read_text(encoding="utf-8"))["outputs"]
    assert "segmentation.seg.nrrd" in outputs and "seg.dcm" not in outputs


def test_a_planted_run_record_deletes_nothing_it_did_not_write(tmp_path):
    from smartimaging.io import RUN_RECORD, atomic_output_dir

    out = tmp_path / "result"
    out.mkdir()
    (out / "victim.txt").write_text("the reader's file", encoding="utf-8")
    (tmp_path / "outside.txt").write_text("elsewhere", encoding="utf-8")
    outside = (tmp_path / "outside.txt").stat()
    (out / RUN_RECORD).write_text(json.dumps({"victim.txt": [0, 0],
                                              "../outside.txt": [outside.st_size, outside.st_mtime_ns]}),
                                  encoding="utf-8")
    with atomic_output_dir(out) as scratch:
        (scratch / "result.json").write_text("{}", encoding="utf-8")
    assert (out / "victim.txt").exists() and (tmp_path / "outside.txt").exists()
    written = (out / "result.json").stat()
    assert json.loads((out / RUN_RECORD).read_text(encoding="utf-8")) == {
        "result.json": [written.st_size, written.st_mtime_ns]}
