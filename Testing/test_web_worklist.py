"""The worklist in the browser reading station (headless Chromium), beside the issue's walk (propose, correct, save,
resume, train: test_web_training): a 5-case mammography phantom worklist whose first two cases were saved, opened from
its folder (a path that is no folder refused with the core's message, a name the system refuses told in one line) at
the first case not read; unsaved edits ask before moving (Stay, Discard); the keys, and the status filter with Next
and Previous keeping to it, move among the cases shown; a sample case asked for over unsaved edits asks first and ends
the worklist case. A second station on the same folder (its phantom worklist button first, the cohort written into
the user's data folder): the reader's saved ROI restored under the AI's outline; two saves of one case from two pages,
the second refused with the conflict message, then "Save anyway". Screenshots go to
$SMARTIMAGING_SCREENSHOTS or to pytest's temporary folder. Without a browser, the section's callbacks on a trame state:
a folder is read off the event loop, and a failure opening or saving (a system error, an unexpected one) is one plain
line in the section, the case left unsaved."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("trame_slicer")
pytest.importorskip("playwright.sync_api")

from PIL import Image  # noqa: E402
from test_cohort_training import save_cases  # noqa: E402
from web_station import (  # noqa: E402
    VIEWPORT,
    open_module,
    running_station,
    screenshot_folder,
    segment_counts,
    station_page,
    steps_done,
    view_images,
    wait_for_case,
)

from smartimaging.mammo.cohort import write_mammo_phantom_cohort  # noqa: E402
from smartimaging.mammo.flow import MammoFlow  # noqa: E402
from smartimaging.mrml import create_headless_scene  # noqa: E402
from smartimaging.web import worklist_panel  # noqa: E402
from smartimaging.worklist import Worklist  # noqa: E402
from smartimaging.worklist_scene import WorklistReading  # noqa: E402

MAMMO = "MammoRadiomics"
MAMMO_TAB = "Mammography Rad-score"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """A 5-case phantom worklist whose first 2 cases a reader proposed, corrected and saved (the browser's walk
    through propose, correct, save and resume is test_web_training's)."""
    folder = tmp_path_factory.mktemp("cohort")
    write_mammo_phantom_cohort(folder, 5, seed=3, kind="mass")
    save_cases(folder, 2, proposals=2)
    return folder


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    with station_page(tmp_path_factory, ready_timeout_ms=120_000) as (page, _process):
        open_module(page, MAMMO_TAB, 120_000)
        yield page


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return screenshot_folder(tmp_path_factory)


def _case_ids(cohort: Path) -> list[str]:
    return [case.case_id for case in Worklist(cohort, MAMMO).cases]


def _record(cohort: Path, case_id: str) -> dict:
    return json.loads((cohort / "smartimaging" / MAMMO / "cases" / case_id / "case.json").read_text())


def _open_folder(page, folder: Path | str) -> None:
    page.locator("#si-wl-folder").fill(str(folder))
    page.locator("#si-wl-open-folder").click()
    page.wait_for_timeout(300)
    wait_for_case(page, 60_000)


def _wait_open(page, case_id: str) -> None:
    page.wait_for_function("id => document.querySelector('#si-wl-case')?.innerText === 'Case ' + id", arg=case_id,
                           timeout=60_000)
    wait_for_case(page, 60_000)


def _statuses(page) -> dict[str, str]:
    """The table's rows shown: case -> status."""
    rows = page.locator("#si-wl-table tbody tr")
    return {cells[0]: cells[1] for cells in (rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count()))
            if len(cells) == 4}


def _choose(page, label: str, option: str) -> None:
    field = page.locator("#si-wl-labels").get_by_label(label, exact=True)
    field.click(force=True)  # the selected text lies over the field
    page.get_by_role("option", name=option, exact=True).click()
    page.wait_for_timeout(300)  # the page sends the new labels


def _green(page) -> int:
    """Pixels of the AI proposal's green outline in the first view, once the server's new frame has arrived."""
    page.wait_for_timeout(1500)
    view = np.asarray(Image.open(io.BytesIO(view_images(page).first.screenshot())).convert("RGB")).astype(int)
    r, g, b = view[..., 0], view[..., 1], view[..., 2]
    return int(np.count_nonzero((g > 120) & (g > r + 40) & (g > b + 40)))


def test_bad_folders_unsaved_edits_keys_filter_and_a_sample_case(page, cohort, screenshots, tmp_path):
    ids = _case_ids(cohort)
    loose = tmp_path / "studies"  # a loose PNG stores no pixel size: asked before the case opens
    loose.mkdir()
    (loose / "view.png").write_bytes((cohort / "images" / f"{ids[0]}.png").read_bytes())
    page.locator("#si-wl-folder").fill(str(loose))
    page.locator("#si-wl-open-folder").click()
    page.locator("#si-wl-pixel").wait_for(timeout=60_000)
    assert "view.png: its PNG file stores no pixel size" in page.inner_text("#si-wl-pixel")
    assert page.locator("#si-wl-save").count() == 0  # no case open: nothing to save
    page.screenshot(path=str(screenshots / "web-worklist-pixel-size.png"))
    page.locator("#si-wl-pixel-mm").fill("0.2")
    page.wait_for_timeout(300)  # the page sends the field
    page.locator("#si-wl-pixel-open").click()
    page.wait_for_function("document.querySelector('#si-wl-case')?.innerText === 'Case view.png'", timeout=60_000)
    assert page.locator("#si-wl-pixel").count() == 0
    assert page.get_by_label("Pixel size mm (PNG/PGM)").input_value() == "0.2"  # the case read at 0.2 mm

    _open_folder(page, cohort / "no such folder")
    page.locator("#si-wl-error").wait_for()
    assert page.inner_text("#si-wl-error") == (f"The worklist folder {cohort / 'no such folder'} does not exist or "
                                               "is not a folder")
    _open_folder(page, cohort / ("x" * 300))  # a name the system refuses (too long): told in the page, one line
    page.wait_for_function("document.querySelector('#si-wl-error')?.innerText.includes('x'.repeat(300))")
    assert "\n" not in page.inner_text("#si-wl-error").strip()
    _open_folder(page, cohort)
    _wait_open(page, ids[2])  # the first case the reader has not read
    assert page.locator("#si-wl-error").count() == 0
    assert _statuses(page) == {ids[0]: "done", ids[1]: "done", **dict.fromkeys(ids[2:], "new")}
    assert page.inner_text("#si-case") == f"Worklist case {ids[2]}"
    assert page.locator("#si-wl-table tbody tr").first.locator("td").nth(3).inner_text() == (
        f"mass · {_record(cohort, ids[0])['labels']['pathology']}")

    page.locator("#si-wl-label-note").fill("spiculated margin")  # an unsaved edit: moving asks first
    page.locator("#si-wl-next").click()
    page.locator("#si-wl-ask").wait_for()
    assert "unsaved edits (the labels)" in page.inner_text("#si-wl-ask")
    page.wait_for_timeout(500)  # the dialog has faded in
    page.screenshot(path=str(screenshots / "web-worklist-unsaved.png"))
    page.get_by_role("button", name="Stay").click()
    page.locator("#si-wl-ask").wait_for(state="detached")
    assert page.inner_text("#si-wl-case") == f"Case {ids[2]}"
    page.locator("#si-wl-next").click()
    page.get_by_role("button", name="Discard").click()
    _wait_open(page, ids[3])
    assert not (cohort / "smartimaging" / MAMMO / "cases" / ids[2] / "case.json").exists()  # nothing saved

    page.locator("#si-case").click()  # the keys act on the page, not in a text field
    page.keyboard.press("Alt+n")
    _wait_open(page, ids[4])
    page.keyboard.press("Alt+p")
    _wait_open(page, ids[3])
    page.locator("#si-wl-filter").get_by_text("done").click()  # the filter: Next and Previous keep to it
    page.wait_for_function("document.querySelectorAll('#si-wl-table tbody tr').length === 2")
    assert set(_statuses(page)) == {ids[0], ids[1]}
    page.locator("#si-wl-next").click()
    page.wait_for_function("document.querySelector('#si-wl-info')?.innerText.includes('last case')")
    page.locator("#si-wl-previous").click()
    _wait_open(page, ids[1])
    page.screenshot(path=str(screenshots / "web-worklist-filter.png"))

    _choose(page, "BI-RADS", "4a")  # unsaved, then a sample case asked for: the page asks first
    page.get_by_label("Sample case").click(force=True)
    page.get_by_role("option", name="Phantom benign mass").click()
    page.get_by_role("button", name="Load sample", exact=True).click()
    page.locator("#si-wl-ask").wait_for()
    done = steps_done(page)
    page.get_by_role("button", name="Discard").click()
    page.wait_for_function(f"Number(document.querySelector('#si-steps-done').textContent) > {done}",
                           timeout=60_000)
    wait_for_case(page)
    assert not page.inner_text("#si-case").startswith("Worklist case")
    assert page.inner_text("#si-wl-info") == "The views show another case: open a worklist case to go on"
    assert page.locator("#si-wl-save").count() == 0 and "birads" not in _record(cohort, ids[1])["labels"]


def test_two_stations_saving_one_case_the_second_is_told(page, cohort, tmp_path_factory, screenshots):
    ids = _case_ids(cohort)
    data = tmp_path_factory.mktemp("other-station-data")
    environment = {"TMPDIR": str(tmp_path_factory.mktemp("other-station-tmp")),
                   worklist_panel.DATA_DIR_VARIABLE: str(data)}
    with running_station(environment=environment) as (url, _process):
        other = page.context.browser.new_page(viewport=VIEWPORT)
        other.goto(url)
        other.get_by_role("button", name="Load sample").wait_for(timeout=120_000)
        open_module(other, MAMMO_TAB, 120_000)
        other.locator("#si-wl-phantom").click()  # a 20-case phantom worklist in the user's data folder
        other.wait_for_function("document.querySelectorAll('#si-wl-table tbody tr').length === 20", timeout=120_000)
        wait_for_case(other, 60_000)
        other.screenshot(path=str(screenshots / "web-worklist-phantom.png"))
        phantom = other.locator("#si-wl-folder").input_value()
        assert Path(phantom) == data / "phantom-worklists" / "MammoRadiomics-mass"
        assert len(Worklist(phantom, MAMMO).cases) == 20

        _open_folder(other, cohort)
        _wait_open(other, ids[1])  # where the reader of the first station stopped
        other.locator("#si-wl-table tbody tr").first.click()
        _wait_open(other, ids[0])  # opened at the revision saved in the first test
        saved = sitk.GetArrayFromImage(sitk.ReadImage(str(cohort / "smartimaging" / MAMMO / "cases" / ids[0]
                                                           / "corrected.seg.nrrd")))
        assert segment_counts(other)["Breast mass"] == np.count_nonzero(saved)  # the reader's ROI restored
        assert _green(other) > 20  # the restored AI proposal outlined over the reader's corrected copy
        page.locator("#si-wl-table tbody tr").first.click()  # the first station's page shows a sample now
        _wait_open(page, ids[0])
        page.locator("#si-wl-save").click()
        page.wait_for_function("document.querySelector('#si-wl-info')?.innerText.startsWith('Saved case')")

        other.locator("#si-wl-save").click()
        other.locator("#si-wl-conflict").wait_for(timeout=30_000)
        assert other.inner_text("#si-wl-conflict").startswith(
            f"Case {ids[0]} was saved in another window after you opened it")
        other.screenshot(path=str(screenshots / "web-worklist-conflict.png"))
        revision = _record(cohort, ids[0])["revision"]
        other.locator("#si-wl-save-anyway").click()
        other.locator("#si-wl-conflict").wait_for(state="detached", timeout=30_000)
        assert _record(cohort, ids[0])["revision"] == revision + 1
        other.close()


class _Station:
    """The station's side of the Worklist section, without a browser: a trame state and a real mammography flow; a
    step runs as the station's `_run` runs it, its progress messages kept and an exception that escapes the section
    kept in `escaped` (the section must show every failure itself)."""

    def __init__(self, name: str, scratch: Path):
        from trame.app import get_server

        self.server = get_server(name, client_type="vue3")
        self.state = self.server.state
        self.state.update({"si_module": MAMMO, "si_busy": False, "si_steps_done": 0})
        self.flows = {MAMMO: MammoFlow(create_headless_scene(), "cpu")}
        self._scratch = SimpleNamespace(name=str(scratch))
        self.slicer_app = SimpleNamespace(segmentation_editor=SimpleNamespace(clear=lambda: None))
        self.messages: list[str] = []
        self.escaped: list[BaseException] = []
        self.case_line = ""

    async def _run(self, step, module: str | None = None) -> None:
        self.state.si_busy = True
        try:
            await step(lambda _fraction, message: self.messages.append(message))
        except Exception as exc:
            self.escaped.append(exc)
        finally:
            self.state.si_busy = False

    def _release_uploads(self, module: str, role: str) -> None:
        pass

    def _set_case(self, module: str, line: str, notes: list[str]) -> None:
        self.case_line = line

    def _case_loaded(self, flow, name, typed_pixel_size) -> None:
        pass

    def _show(self, flow, fit: bool = False) -> None:
        pass


def _run_apart(coroutine) -> None:
    """Run a coroutine to its end in a thread of its own (the module's browser page holds this thread's loop)."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


async def _settled() -> None:
    """Wait until every step the section started is over."""
    while steps := [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]:
        await asyncio.wait(steps)


def test_the_panel_reads_a_folder_off_the_event_loop_and_says_why_opening_or_saving_failed(tmp_path, monkeypatch,
                                                                                           caplog):
    cohort = tmp_path / "cohort"
    write_mammo_phantom_cohort(cohort, 2, seed=3, kind="mass")
    station = _Station("worklist-panel-test", tmp_path)
    state, panel = station.state, worklist_panel.WorklistPanel(station)
    first = _case_ids(cohort)[0]

    def slow_reading(flow, folder):  # a large folder: discovery takes a second
        time.sleep(1.0)
        return WorklistReading(flow, folder)

    async def scenario() -> None:
        panel.on_open(str(tmp_path / ("x" * 300)))  # the system refuses the name (too long): one plain line
        await _settled()
        error = state.si_wl_error[MAMMO]
        assert error and "\n" not in error and "Traceback" not in error and state.si_wl_open[MAMMO] == ""

        monkeypatch.setattr(worklist_panel, "WorklistReading", slow_reading)
        ticks = []

        async def tick() -> None:
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.05)

        ticker = asyncio.create_task(tick())
        started = time.monotonic()
        panel.on_open(str(cohort), {})
        assert time.monotonic() - started < 0.5  # the callback returns at once
        while not state.si_wl_case[MAMMO]:
            await asyncio.sleep(0.05)
        ticker.cancel()
        assert max(b - a for a, b in zip(ticks, ticks[1:], strict=False)) < 0.5  # the loop kept answering
        assert f"Worklist: reading the cases in {cohort}" in station.messages
        assert state.si_wl_case[MAMMO] == first and state.si_wl_error[MAMMO] == ""

        def broken(flow, folder):
            raise RuntimeError("a bug")

        monkeypatch.setattr(worklist_panel, "WorklistReading", broken)
        with caplog.at_level(logging.ERROR):
            panel.on_open(str(cohort))
            await _settled()
        assert state.si_wl_error[MAMMO] == (f"The folder {cohort} was not opened: an unexpected error (the station's "
                                            "log has the details)")
        assert "RuntimeError: a bug" in caplog.text and state.si_wl_open[MAMMO] == str(cohort)  # the open one kept

    _run_apart(scenario())
    assert not station.escaped

    def failing_save(self, labels, force=False):
        raise RuntimeError("a bug")

    monkeypatch.setattr(WorklistReading, "save", failing_save)
    panel.on_save({"pathology": "benign"})
    assert state.si_wl_error[MAMMO] == (f"Case {first} was not saved: an unexpected error (the station's log has "
                                        "the details)")
    assert panel._unsaved(MAMMO) == ["the labels"] and not state.si_wl_info[MAMMO].startswith("Saved")


def test_a_students_open_teaching_case_keeps_the_worklist_still_and_a_conflict_refreshes_the_table(tmp_path):
    cohort = tmp_path / "cohort"
    write_mammo_phantom_cohort(cohort, 3, seed=3, kind="mass")
    station = _Station("worklist-teaching-test", tmp_path)
    state, panel = station.state, worklist_panel.WorklistPanel(station)
    first, second, _ = _case_ids(cohort)

    async def opened() -> None:
        panel.on_open(str(cohort), {})
        await _settled()

    _run_apart(opened())
    assert state.si_wl_case[MAMMO] == first
    state.si_teach_active = {MAMMO: True}  # the teaching panel's flag: a student's outline not yet checked
    panel.on_step(1, {})
    panel.on_row(second, {})
    assert state.si_wl_case[MAMMO] == first and state.si_wl_info[MAMMO] == worklist_panel.TEACHING
    state.si_teach_active = {MAMMO: False}

    reading = panel._readings[MAMMO]
    reading.flow.draw_by_hand()
    mask = Worklist(cohort, MAMMO).case(first)
    from smartimaging.mammo.features import load_mask
    from smartimaging.mammo.images import load_mammogram
    from smartimaging.segments import MAMMO_SEGMENTS
    from smartimaging.worklist_scene import set_segments

    mammogram = load_mammogram(mask.inputs["mammogram"], float(mask.given["pixel_mm"]))
    key = load_mask(mask.key_mask, mammogram)[None].astype("uint8")
    set_segments(reading.flow.scene, reading.flow.segmentation, reading.flow.primary, key, (MAMMO_SEGMENTS["mass"],))
    Worklist(cohort, MAMMO).save(first, {"kind": "mass", "pathology": "malignant", "birads": "5"}, key,
                                 mammogram.image, (MAMMO_SEGMENTS["mass"],))  # another window saves the case
    panel.on_save({"pathology": "benign"})
    assert state.si_wl_conflict[MAMMO], state.si_wl_error[MAMMO]
    row = next(r for r in state.si_wl_rows[MAMMO] if r["case"] == first)
    assert row["status"] == "done" and "malignant" in row["labels"]  # the other window's save, shown

    assert state.si_wl_filter[MAMMO] == worklist_panel.ALL  # the page shows "done", its own update not yet here
    panel.on_step(1, {}, "done")
    assert state.si_wl_info[MAMMO] == f"Case {first} is the last case with the status “done” of the worklist"
    assert state.si_wl_filter[MAMMO] == "done" and state.si_wl_case[MAMMO] == first


def test_a_loose_png_waits_for_its_pixel_size_and_the_phantom_worklist_outlives_the_station(tmp_path, monkeypatch):
    folder = tmp_path / "studies"
    folder.mkdir()
    cohort = tmp_path / "cohort"
    write_mammo_phantom_cohort(cohort, 2, seed=3, kind="mass")
    for index, image in enumerate(sorted((cohort / "images").iterdir())):
        (folder / f"view{index}.png").write_bytes(image.read_bytes())
    station = _Station("worklist-pixel-test", tmp_path)
    state, panel = station.state, worklist_panel.WorklistPanel(station)
    async def open_folder() -> None:
        panel.on_open(str(folder), {})
        await _settled()

    _run_apart(open_folder())
    first = state.si_wl_rows[MAMMO][0]["case"]
    assert state.si_wl_pixel[MAMMO] == first and state.si_wl_case[MAMMO] == ""  # not read at 1 mm
    assert "view0.png: its PNG file stores no pixel size" in state.si_wl_pixel_message[MAMMO]
    assert station.flows[MAMMO].primary is None and station.case_line == ""
    panel.on_pixel_size("0")
    assert state.si_wl_error[MAMMO] == "Pixel size 0 is not a mammogram pixel size (expected 0.02 to 10 mm)"

    async def give(text: str) -> None:
        panel.on_pixel_size(text)
        await _settled()

    _run_apart(give("0.2"))
    assert state.si_wl_case[MAMMO] == first and state.si_wl_pixel[MAMMO] == "" and state.si_wl_error[MAMMO] == ""
    assert station.case_line == f"Worklist case {first} · view0.png"  # the file the table names
    assert station.flows[MAMMO].primary.GetSpacing()[:2] == (0.2, 0.2)
    assert Worklist(folder, MAMMO).pixel_size(first) == "0.2"  # kept with the case: asked once
    other = state.si_wl_rows[MAMMO][1]["case"]

    async def open_row(case_id: str) -> None:
        panel.on_row(case_id)
        await _settled()

    _run_apart(open_row(other))  # the size given before is offered for the next image, not applied unasked
    assert state.si_wl_pixel[MAMMO] == other and state.si_wl_pixel_mm[MAMMO] == "0.2"
    assert state.si_wl_pixel_message[MAMMO].endswith(f"The field holds the size you gave case {first} (0.2 mm): "
                                                     "check that it is this image's, then Open the case.")
    assert Worklist(folder, MAMMO).pixel_size(other) == "" and station.flows[MAMMO].primary is None

    monkeypatch.setenv(worklist_panel.DATA_DIR_VARIABLE, str(tmp_path / "data"))
    monkeypatch.setattr(worklist_panel, "PHANTOM_CASES", 3)

    async def phantom(panel_) -> None:
        panel_.on_phantom({})
        await _settled()

    _run_apart(phantom(panel))
    phantoms = tmp_path / "data" / "phantom-worklists" / "MammoRadiomics-mass"
    assert state.si_wl_open[MAMMO] == str(phantoms) and len(state.si_wl_rows[MAMMO]) == 3
    assert [p.name for p in phantoms.parent.iterdir()] == [phantoms.name]  # no partial copy left
    second = state.si_wl_rows[MAMMO][1]["case"]
    Worklist(phantoms, MAMMO).open(second)  # the reader stopped at the second case
    written = (phantoms / "manifest.csv").stat().st_mtime_ns
    restarted = _Station("worklist-phantom-restarted", tmp_path / "scratch-2")  # a new station, a new scratch folder
    panel_2 = worklist_panel.WorklistPanel(restarted)
    _run_apart(phantom(panel_2))
    assert restarted.state.si_wl_open[MAMMO] == str(phantoms) and restarted.state.si_wl_case[MAMMO] == second
    assert (phantoms / "manifest.csv").stat().st_mtime_ns == written  # opened again, not written again
    assert not station.escaped and not restarted.escaped


def test_a_module_without_starred_labels_or_an_roi_shows_neither_the_note_nor_the_dice_column(tmp_path):
    """DCE synthesis has no required label and no ROI: the page shows the '* needed for done' note and the Dice
    column only for a module that has them (mammography)."""
    from trame.widgets import html

    from smartimaging.dce.flow import DCEFlow

    station = _Station("worklist-columns-test", tmp_path)
    station.flows["DCESynthesis"] = DCEFlow(create_headless_scene(), "cpu")
    state, panel = station.state, worklist_panel.WorklistPanel(station)
    assert state.si_wl_starred == {MAMMO: True, "DCESynthesis": False}
    assert state.si_wl_roi == {MAMMO: True, "DCESynthesis": False}
    with html.Div(trame_server=station.server) as page:
        panel.build()
    template = page.html

    def tag_of(text: str) -> str:  # the opening tag of the element whose content holds `text`
        end = template.index(text)
        return template[template.rindex("<", 0, template.rindex(">", 0, end)):end]

    assert 'v-if="si_wl_starred[si_module]"' in tag_of("* needed for “done”")
    assert tag_of("\nDice\n</th>").startswith("<th") and 'v-if="si_wl_roi[si_module]"' in tag_of("\nDice\n</th>")
    assert tag_of("row.dice === null").startswith("<td") and 'v-if="si_wl_roi[si_module]"' in tag_of("row.dice ===")
