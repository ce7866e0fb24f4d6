"""Downloads in the reading station (headless Chromium): after a compute, the page offers the result's report
(HTML), CSV, DICOM SEG and SR and all DICOM objects zipped; each is downloaded through the page and holds that result
(the headline, the domain verdict, the images, the table's numbers; a SEG and an SR pydicom reads); the report
opened in Chromium is screenshotted for a reader to judge. A new case takes the
downloads away, and a click that still carries the previous result's token is refused with a message, nothing
sent. Screenshots go to $SMARTIMAGING_SCREENSHOTS or to pytest's temporary folder."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("trame_slicer")
pytest.importorskip("playwright.sync_api")

from web_station import (  # noqa: E402
    click_and_wait_idle,
    load_sample,
    open_module,
    screenshot_folder,
    station_page,
    table,
    wait_for_case,
)


@pytest.fixture(scope="module")
def station(tmp_path_factory):
    with station_page(tmp_path_factory, ready_timeout_ms=120_000) as (page, _process):
        wait_for_case(page, 120_000)
        yield page


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return screenshot_folder(tmp_path_factory)


def download(page, kind: str, folder: Path) -> Path:
    """Click a download button; the file saved under its suggested name."""
    with page.expect_download(timeout=60_000) as info:
        page.locator(f"#si-download-{kind}").click()
    path = folder / info.value.suggested_filename
    info.value.save_as(path)
    return path


def _computed_by_hand(scene, path: Path):
    """A bone-scan flow whose reader drew a metastasis on `path` and computed BSTBI."""
    import numpy as np
    from test_dicom_export import _replace_segment

    from smartimaging.bonescan.flow import BoneScanFlow
    from smartimaging.segments import BONE_METASTASIS

    flow = BoneScanFlow(scene, device="cpu")
    flow.load("scan", path)
    flow.draw_by_hand()
    drawn = np.zeros(flow.primary.GetImageData().GetDimensions()[::-1], np.uint8)
    drawn[0, 300:330, 100:130] = 1
    _replace_segment(flow, BONE_METASTASIS.name, drawn)
    flow.run(flow.compute())
    return flow


def test_seg_sr_and_zip_of_one_shown_result_are_one_export(scene, tmp_path):
    """The SEG, SR and zip buttons of one result deliver the objects of one export (the SR names the downloaded SEG;
    a second click sends the same objects); separate SEG and SR are offered only for an image read from DICOM (for
    a PNG they reference a derived series that only the zip holds)."""
    from types import SimpleNamespace

    import numpy as np
    import pydicom
    from conftest import GE_BONE_SCAN
    from PIL import Image
    from trame.app import get_server

    from smartimaging.phantoms.bonescan import make_bone_scan_phantom
    from smartimaging.web.downloads_panel import DownloadsPanel

    flow = _computed_by_hand(scene, GE_BONE_SCAN)
    server = get_server("downloads-one-export", client_type="vue3")
    panel = DownloadsPanel(SimpleNamespace(state=server.state, server=server, flows={flow.module: flow}),
                           tmp_path / "downloads")
    panel.publish(flow)
    token = server.state.si_download_token[flow.module]
    assert token and server.state.si_download_separate[flow.module]
    files = {kind: panel.download(kind, flow.module, token)["content"] for kind in ("seg", "sr", "zip")}
    seg, sr = (pydicom.dcmread(io.BytesIO(files[kind])) for kind in ("seg", "sr"))
    evidence = {item.ReferencedSOPInstanceUID for study in sr.CurrentRequestedProcedureEvidenceSequence
                for series in study.ReferencedSeriesSequence for item in series.ReferencedSOPSequence}
    assert seg.SOPInstanceUID in evidence
    archive = zipfile.ZipFile(io.BytesIO(files["zip"]))
    assert (archive.read("seg.dcm"), archive.read("sr.dcm")) == (files["seg"], files["sr"])
    assert panel.download("sr", flow.module, token)["content"] == files["sr"]  # clicked again: the same SR
    assert not list((tmp_path / "downloads").rglob("*.dcm"))  # nothing kept on disk

    views = make_bone_scan_phantom(seed=3).views
    Image.fromarray((views["anterior"] / views["anterior"].max() * 255).astype(np.uint8)).save(tmp_path / "ant.png")
    flow = _computed_by_hand(scene, tmp_path / "ant.png")
    panel.station.flows[flow.module] = flow
    panel.publish(flow)
    token = server.state.si_download_token[flow.module]
    assert token and not server.state.si_download_separate[flow.module]  # the zip only: SEG, SR and their series
    names = zipfile.ZipFile(io.BytesIO(panel.download("zip", flow.module, token)["content"])).namelist()
    assert {"seg.dcm", "sr.dcm", "image_dicom/0001.dcm"} <= set(names)


def test_bone_scan_report_and_csv_downloaded_through_the_page(station, screenshots, tmp_path):
    page = station
    assert not page.locator("#si-downloads").count()  # no result yet: nothing to download
    click_and_wait_idle(page, "Segment")
    click_and_wait_idle(page, "Compute BSTBI")
    headline = page.inner_text("#si-headline")
    page.locator("#si-downloads").wait_for()
    page.locator("#si-downloads").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / "downloads-bonescan.png"))

    report = download(page, "report", tmp_path)
    assert report.name == "BoneScanBSTBI_report.html"
    text = report.read_text(encoding="utf-8")
    assert f'id="headline">{headline}<' in text and "Domain check: Inside the model&#x27;s training data" in text
    assert text.count('src="data:image/png;base64,') == 2 and "Model card: bonescan-resnet34-demo" in text
    assert "not a medical device" in text

    rows = list(csv.reader(io.StringIO(download(page, "csv", tmp_path).read_text(encoding="utf-8"))))
    assert rows[0] == ["Quantity", "Value"]
    assert dict(rows[1:])["BSTBI (mean)"] == table(page)["BSTBI (mean)"][0] == headline.split()[-1]

    import pydicom

    seg, sr = (pydicom.dcmread(download(page, kind, tmp_path)) for kind in ("seg", "sr"))
    assert (seg.Modality, sr.Modality) == ("SEG", "SR")
    assert [(s.SegmentLabel, s.SegmentAlgorithmType) for s in seg.SegmentSequence] == [
        ("Bone metastasis (AI proposal)", "AUTOMATIC"), ("Urinary bladder (AI proposal)", "AUTOMATIC")]
    archive = zipfile.ZipFile(download(page, "zip", tmp_path))
    assert {"seg.dcm", "sr.dcm"} <= set(archive.namelist())

    viewer = page.context.browser.new_page(viewport={"width": 1000, "height": 1400})
    viewer.goto(report.as_uri())
    assert viewer.locator("figure img").count() == 2
    assert all(viewer.evaluate("[...document.images].map((i) => i.naturalWidth > 0)"))  # every picture decodes
    viewer.screenshot(path=str(screenshots / "report-bonescan.png"), full_page=True)
    viewer.pdf(path=str(screenshots / "report-bonescan.pdf"), format="A4", print_background=True)
    viewer.close()


def test_a_new_case_takes_the_downloads_away_and_an_old_token_is_refused(station):
    page = station
    token = page.evaluate("window.trame.state.get('si_download_token')['BoneScanBSTBI']")
    assert token > 0
    load_sample(page)
    assert not page.locator("#si-downloads").count()
    answer = page.evaluate(f"window.trame.trigger('si_download', ['report', 'BoneScanBSTBI', {token}])")
    assert answer is None
    click_and_wait_idle(page, "Segment")
    click_and_wait_idle(page, "Compute BSTBI")
    page.locator("#si-downloads").wait_for()
    answer = page.evaluate(f"window.trame.trigger('si_download', ['report', 'BoneScanBSTBI', {token}])")
    assert answer is None  # a result was shown again, but not the one that token named
    error = page.locator("#si-download-error")
    error.wait_for()
    assert "no longer the current one" in error.inner_text()


def test_mammography_csv_holds_the_rad_score(station, tmp_path):
    page = station
    open_module(page, "Mammography Rad-score")
    load_sample(page, "Phantom benign mass")
    click_and_wait_idle(page, "Segment")
    click_and_wait_idle(page, "Compute Rad-score")
    rows = dict(row[:2] for row in csv.reader(io.StringIO(
        download(page, "csv", tmp_path).read_text(encoding="utf-8"))))
    assert rows["Rad-score"] == re.search(r"Rad-score ([0-9.]+)", page.inner_text("#si-headline"))[1]
    assert "original_shape2D_Perimeter" in rows  # the CSV keeps every feature under its pyradiomics name
    text = download(page, "report", tmp_path).read_text(encoding="utf-8")
    assert text.count('src="data:image/png;base64,') == 2 and "ROI enlarged" in text
    names = zipfile.ZipFile(download(page, "zip", tmp_path)).namelist()  # a PNG: the image as a derived series
    assert {"seg.dcm", "sr.dcm", "image_dicom/0001.dcm"} <= set(names)
