"""Hostile DICOM sources of the DICOM SEG and SR (as an attacker or a careless PACS export makes them): header values
highdicom or dciodvfy refuse are normalised or left out (and logged), or the source is refused in plain words;
a source replaced after loading, an image of another patient joining a case and an export into the source's folder
are refused; the site's identifiers stay out of the objects. CLI refusals of the same kind are rows of
`cases_dicom.py` (run by test_bad_input.py)."""

from __future__ import annotations

import io
import json
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace

import highdicom as hd
import pydicom
import pytest
import SimpleITK as sitk
from cases_dicom import mr_series
from conftest import GE_BONE_SCAN
from test_dicom_outputs import MODEL, dciodvfy

from smartimaging.cli import main
from smartimaging.dicom_seg import SegSegment, seg_dataset
from smartimaging.dicom_series import IDENTITY, SITE_KEYWORDS, source_datasets
from smartimaging.dicom_sr import Measurement, Qualitative, sr_dataset
from smartimaging.errors import InputError
from smartimaging.io import read_series_or_volume
from smartimaging.segments import BREAST_MASS

SITE = {"InstitutionName": "St Elsewhere Hospital", "StationName": "MR-ROOM-3", "DeviceSerialNumber": "10.0.4.17",
        "InstitutionAddress": "1 Main Street"}


def _set(**values):
    def edit(datasets):
        for ds in datasets:
            for keyword, value in values.items():
                setattr(ds, keyword, value)
    return edit


# (what the source holds, the header edit, what the SEG and SR must hold instead: keyword -> value, None = absent)
VARIANTS = {
    "PatientSex W": (_set(PatientSex="W"), {"PatientSex": ""}),
    "PatientSex FEMALE": (_set(PatientSex="FEMALE"), {"PatientSex": "F"}),
    "StudyTime 18:50:59": (_set(StudyTime="18:50:59"), {"StudyTime": "185059"}),
    "PatientBirthDate 1960-01-01": (_set(PatientBirthDate="1960-01-01"), {"PatientBirthDate": "19600101"}),
    "StudyDate 2004.08.26": (_set(StudyDate="2004.08.26"), {"StudyDate": "20040826"}),
    "StudyDate 2026-13-45": (_set(StudyDate="2026-13-45"), {"StudyDate": ""}),
    "PatientAge 45": (_set(PatientAge="45"), {"PatientAge": None}),
    "character set ISO 2022 IR 87": (_set(SpecificCharacterSet=["", "ISO 2022 IR 87"],
                                          PatientName="Yamada^Tarou=山田^太郎=やまだ^たろう"),
                                     {"PatientName": "Yamada^Tarou=山田^太郎=やまだ^たろう"}),
    "character set unknown": (_set(SpecificCharacterSet="FOO_BAR"), {"PatientName": "Doe^Jane"}),
    "PatientName with two values": (_set(PatientName=["Doe^Jane", "Roe^Rick"]), {"PatientName": ""}),
    "PatientName of 300 characters": (_set(PatientName="A" * 300), {"PatientName": ""}),
    "StudyDescription of 5000 characters": (_set(StudyDescription="B" * 5000), {"StudyDescription": None}),
    "AccessionNumber of 300 characters": (_set(AccessionNumber="D" * 300), {"AccessionNumber": ""}),
    "StudyID of 40 characters": (_set(StudyID="X" * 40), {"StudyID": ""}),
    "ReferringPhysicianName with two values": (_set(ReferringPhysicianName=["Dr^Who", "Dr^No"]),
                                               {"ReferringPhysicianName": ""}),
}


def _objects(tmp_path: Path, edit) -> tuple[pydicom.Dataset, pydicom.Dataset, list]:
    """The SEG and SR (written and read back) of a VOI on an MR series with `edit`ed headers."""
    series = mr_series(tmp_path, "dce", edit=edit)
    image = read_series_or_volume(series)
    sources = source_datasets(image, series)
    voi = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "voi.nrrd")))
    seg = seg_dataset(sources, [SegSegment(voi, BREAST_MASS, MODEL)], "LVI segmentation")
    sr = sr_dataset(sources, seg, [Measurement("LVI probability", 0.4, "1", segment_number=1)],
                    [Qualitative("LVI label", "negative")], "Breast MRI LVI", MODEL)
    seg.save_as(tmp_path / "seg.dcm", enforce_file_format=True)
    sr.SpecificCharacterSet = "ISO_IR 192"
    sr.save_as(tmp_path / "sr.dcm", enforce_file_format=True)
    return pydicom.dcmread(tmp_path / "seg.dcm"), pydicom.dcmread(tmp_path / "sr.dcm"), sources


def _keywords(ds: pydicom.Dataset) -> set[str]:
    found = set()
    ds.walk(lambda _, element: found.add(element.keyword))
    return found


@pytest.mark.parametrize("variant", VARIANTS)
def test_nonconformant_header_values_are_normalised_or_left_out(variant, tmp_path, caplog):
    edit, expected = VARIANTS[variant]
    with caplog.at_level(logging.WARNING, logger="smartimaging.dicom_series"):
        seg, sr, _ = _objects(tmp_path, edit)
    for ds in (seg, sr):
        for keyword, value in expected.items():
            if value is None:
                assert keyword not in _keywords(ds), (variant, keyword)
            else:
                assert str(ds[keyword].value) == value, (variant, keyword)
        assert ds.PatientID == "PID12345"  # still filed under the patient
        dciodvfy(tmp_path / ("seg.dcm" if ds is seg else "sr.dcm"))
    left_out = [keyword for keyword, value in expected.items() if value in (None, "")]
    for keyword in left_out:  # recorded (its name, never its value)
        assert keyword in caplog.text
    assert "Roe^Rick" not in caplog.text and "AAAA" not in caplog.text


def test_the_site_stays_out_of_the_contributing_equipment(tmp_path):
    seg, sr, _ = _objects(tmp_path, _set(Manufacturer="ACME", **SITE))
    for ds in (seg, sr):
        for item in ds.ContributingEquipmentSequence:
            assert not set(SITE_KEYWORDS) & set(item.dir()), item
        assert not any(value.encode() in Path(ds.filename).read_bytes() for value in SITE.values())
    assert "ACME" in [item.Manufacturer for item in seg.ContributingEquipmentSequence]  # the scanner still named


def test_a_value_highdicom_refuses_is_our_plain_refusal(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise ValueError("'W' is not a valid PatientSexValues")

    monkeypatch.setattr(hd.seg, "Segmentation", refuse)
    with pytest.raises(InputError, match="does not conform to DICOM") as refused:
        _objects(tmp_path, None)
    assert "PatientSexValues" not in str(refused.value)


def test_a_model_version_a_dicom_object_cannot_hold_is_refused(tmp_path):
    series = mr_series(tmp_path, "dce")
    sources = source_datasets(read_series_or_volume(series), series)
    voi = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "voi.nrrd")))
    for version in ("1.0.0\\2.0", "1." + "9" * 70):
        with pytest.raises(InputError, match="cannot name the algorithm"):
            seg_dataset(sources, [SegSegment(voi, BREAST_MASS, ("lvi-model", version))], "ROI")
        with pytest.raises(InputError, match="cannot name the algorithm"):
            sr_dataset(sources, None, [], [Qualitative("x", "y")], "t", ("lvi-model", version))


def test_cli_dicom_of_a_nonconformant_ge_bone_scan_passes_dciodvfy(tmp_path, caplog):
    ds = pydicom.dcmread(GE_BONE_SCAN)
    ds.PatientSex, ds.StudyTime, ds.PatientAge = "W", "18:50:59", "45"
    scan = tmp_path / "scan.dcm"
    ds.save_as(scan)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="smartimaging.dicom_series"):
        assert main(["bonescan", "predict", str(scan), "--out", str(out), "--dicom", "--device", "cpu"]) == 0
    assert "PatientAge" in caplog.text and "PatientSex" in caplog.text
    seg = pydicom.dcmread(out / "seg.dcm")
    assert (seg.PatientSex, seg.StudyTime, seg.PatientID) == ("", "185059", ds.PatientID)
    site = [str(ds[keyword].value) for keyword in SITE_KEYWORDS if ds.get(keyword)]
    assert site and not any(value.encode() in (out / name).read_bytes() for value in site for name in ("seg.dcm",
                                                                                                        "sr.dcm"))
    dciodvfy(out / "seg.dcm")
    dciodvfy(out / "sr.dcm")


# --- the station's and the desktop's export (exports.export_dicom) --------------------------------------------------

def _lvi_flow(scene, series: Path):
    from smartimaging.lvi.flow import LVIFlow

    flow = LVIFlow(scene, device="cpu")
    flow.load("DCE", series)
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(sitk.ReadImage(str(series.parent / "voi.nrrd")))
    flow.set_point_lps(statistics.GetCentroid(1))
    flow.run(flow.segment())
    flow.run(flow.compute())
    return flow


def test_export_refuses_a_source_replaced_by_another_patients_series(tmp_path, scene):
    from smartimaging.exports import export_dicom

    series = mr_series(tmp_path, "dce")
    flow = _lvi_flow(scene, series)
    identity = flow.primary.GetAttribute(IDENTITY)
    assert identity and "PID12345" not in identity and "Doe" not in identity  # digests only
    study = pydicom.uid.generate_uid()
    for path in series.iterdir():  # the next patient's series on the same grid, exported into the same folder
        ds = pydicom.dcmread(path)
        ds.PatientName, ds.PatientID, ds.StudyInstanceUID = "Roe^Richard", "OTHER999", study
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(path)
    with pytest.raises(InputError, match="changed since the image was loaded"):
        export_dicom(flow, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    before = {path.name for path in series.iterdir()}
    with pytest.raises(InputError, match="the folder of the DICOM images dce"):  # and never into its own folder
        export_dicom(flow, series)
    with pytest.raises(InputError, match="is in the folder of the DICOM images dce"):
        export_dicom(flow, series / "sub")
    assert {path.name for path in series.iterdir()} == before


def test_the_export_of_an_unchanged_source_still_works(tmp_path, scene):
    from smartimaging.exports import export_dicom

    series = mr_series(tmp_path, "dce")
    written = export_dicom(_lvi_flow(scene, series), tmp_path / "out")
    assert pydicom.dcmread(written["seg"]).PatientID == "PID12345"
    dciodvfy(written["seg"])


def test_an_image_of_another_patient_or_study_does_not_join_the_case(tmp_path, scene):
    from smartimaging.lvi.flow import LVIFlow

    flow = LVIFlow(scene, device="cpu")
    flow.load("DCE", mr_series(tmp_path / "a", "dce"))
    with pytest.raises(InputError, match="These images belong to two patients"):
        flow.load("T2", mr_series(tmp_path / "b", "t2", ("OTHER999", "Roe^Richard")))
    with pytest.raises(InputError, match="These images belong to two studies"):  # same patient, another study
        flow.load("T2", mr_series(tmp_path / "c", "t2"))
    assert set(flow.volumes) == {"DCE"}
    shutil.rmtree(tmp_path / "c")
    study = pydicom.dcmread(next((tmp_path / "a" / "dce").iterdir())).StudyInstanceUID
    flow.load("T2", mr_series(tmp_path / "c", "t2", edit=_set(StudyInstanceUID=study)))  # its own study: joins
    assert set(flow.volumes) == {"DCE", "T2"}


def test_a_forged_download_trigger_gets_a_plain_message():
    from smartimaging.web.downloads_panel import DownloadsPanel

    class State(SimpleNamespace):
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    station = SimpleNamespace(state=State(si_module="BoneScanBSTBI"), flows={"BoneScanBSTBI": None},
                              server=SimpleNamespace(trigger=lambda name: lambda function: function))
    panel = DownloadsPanel(station, Path("/nonexistent"))
    for kind, module in (("nosuch", "BoneScanBSTBI"), ("report", "NoModule"), (["seg"], {"a": 1})):
        assert panel.download(kind, module, 1) is None
        message = station.state.si_download_error["BoneScanBSTBI"]
        assert message.startswith("Download refused: This download is not one the page offers"), message
        assert "'" not in message and "NoModule" not in json.dumps(station.state.si_download_error)


def test_volumes_selected_in_the_desktop_are_of_one_patient_and_recorded(tmp_path, scene):
    from smartimaging.display import SOURCE_FILE
    from smartimaging.lvi.flow import LVIFlow
    from smartimaging.mrml import sitk_to_volume_node

    nodes = {}
    for role, series in (("DCE", mr_series(tmp_path / "a", "dce")),
                         ("T2", mr_series(tmp_path / "b", "t2", ("OTHER999", "Roe^Richard")))):
        nodes[role] = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", role)  # as the desktop loads a file
        sitk_to_volume_node(read_series_or_volume(series), nodes[role])
        nodes[role].SetAttribute(SOURCE_FILE, str(series))
    flow = LVIFlow(scene, device="cpu")
    with pytest.raises(InputError, match="These images belong to two patients"):
        flow.select(nodes)
    flow.select({"DCE": nodes["DCE"]})
    assert flow.volumes == {"DCE": nodes["DCE"]} and nodes["DCE"].GetAttribute(IDENTITY)


def test_the_stations_downloads_say_why_a_hostile_source_is_refused(tmp_path, scene):
    """The station's downloads (downloads_panel over exports.export_dicom, as the desktop's Export DICOM): a
    non-conformant sex is left out (before: highdicom's ValueError escaped the trigger and nothing happened); a
    source replaced since loading is refused in the downloads area."""
    from trame.app import get_server

    from smartimaging.web.downloads_panel import DownloadsPanel

    series = mr_series(tmp_path, "dce", edit=_set(PatientSex="W", StudyTime="18:50:59"))
    flow = _lvi_flow(scene, series)
    server = get_server("downloads-hostile", client_type="vue3")
    panel = DownloadsPanel(SimpleNamespace(state=server.state, server=server, flows={flow.module: flow}),
                           tmp_path / "downloads")
    panel.publish(flow)
    token = server.state.si_download_token[flow.module]
    seg = pydicom.dcmread(io.BytesIO(panel.download("seg", flow.module, token)["content"]))
    assert (seg.PatientSex, seg.StudyTime, seg.PatientID) == ("", "185059", "PID12345")

    flow.run(flow.compute())  # a new result: a new export
    panel.publish(flow)
    token = server.state.si_download_token[flow.module]
    for path in series.iterdir():
        ds = pydicom.dcmread(path)
        ds.PatientID = "OTHER999"
        ds.save_as(path)
    assert panel.download("zip", flow.module, token) is None
    assert "changed since the image was loaded" in server.state.si_download_error[flow.module]
