"""Helpers to drive the reading station in headless Debian Chromium (tests and benchmarks/web_benchmark.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]
VIEWPORT = {"width": 1600, "height": 900}
REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_station(*arguments: str, port: int | None = None, ready_timeout: float = 120,
                    environment: dict[str, str] | None = None):
    """Start `smartimaging app` in a subprocess, with `environment` added to this process's; yields (url, process);
    stops it afterwards."""
    port = port or free_port()
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(environment or {})}
    log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # a file, not a pipe: VTK logs a lot
    process = subprocess.Popen([sys.executable, "-m", "smartimaging.cli", "app", "--port", str(port), "--no-browser",
                                *arguments], stdout=log, stderr=subprocess.STDOUT, env=environment)
    process.log = log
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_for_http(url, process, ready_timeout)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def wait_for_http(url: str, process: subprocess.Popen | None = None, timeout: float = 120) -> float:
    """Seconds until the URL answers 200."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the station exited with code {process.returncode}: {station_log(process)[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.perf_counter() - started
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def station_log(process) -> str:
    process.log.seek(0)
    return process.log.read()


def launch_chromium(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)


@contextmanager
def station_page(tmp_path_factory, ready_timeout_ms: int = 60_000):
    """A station started for one test module (its temporary files under pytest's folder) and a headless Chromium
    page on it, once the page offers "Load sample": yields (page, station process); both stopped afterwards."""
    import pytest
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (tools/system-packages.sh)")
    with (running_station(environment={"TMPDIR": str(tmp_path_factory.mktemp("station-tmp"))}) as (url, process),
          sync_playwright() as playwright):
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(url)
        page.get_by_role("button", name="Load sample").wait_for(timeout=ready_timeout_ms)
        yield page, process
        browser.close()


def screenshot_folder(tmp_path_factory) -> Path:
    """$SMARTIMAGING_SCREENSHOTS (the README's screenshots come from there), else a folder of pytest's."""
    folder = Path(os.environ.get("SMARTIMAGING_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def open_module(page, title: str, timeout_ms: int = 60_000) -> None:
    """Select a module's tab and wait until its case is loaded (a module opened for the first time loads its first
    sample case) and no step runs."""
    page.get_by_role("tab", name=title).click()
    page.wait_for_function(f"document.querySelector('.v-tab--selected')?.innerText.toLowerCase() === "
                           f"'{title.lower()}' && window.trame.state.get('si_switching') == null")  # server opened it
    wait_for_case(page, timeout_ms)
    wait_for_layout(page)


def wait_for_case(page, timeout_ms: int = 60_000) -> None:
    """Wait until the open module has a case loaded and no step runs."""
    page.wait_for_function("document.querySelector('#si-case').innerText !== 'No case loaded' "
                           "&& !document.querySelector('#si-progress')", timeout=timeout_ms)


def load_sample(page, name: str | None = None, timeout_ms: int = 60_000) -> str:
    """Load a sample case of the open module (the one chosen, or its first one when an upload left none chosen);
    returns the case line."""
    page.wait_for_function("!document.querySelector('#si-progress')", timeout=timeout_ms)  # no step running
    if name or page.get_by_role("button", name="Load sample", exact=True).is_disabled():
        page.get_by_label("Sample case").click(force=True)  # the selected text lies over the field
        options = page.get_by_role("option")
        (options.filter(has_text=name) if name else options).first.click()
    click_and_wait_idle(page, "Load sample", timeout_ms)
    return page.inner_text("#si-case")


def click_and_wait_idle(page, button: str, timeout_ms: int = 120_000) -> None:
    """Click a step button and wait until the step is over (the station counts finished steps)."""
    target = page.get_by_role("button", name=button, exact=True)
    target.wait_for()
    page.wait_for_function("!document.querySelector('#si-progress')", timeout=timeout_ms)  # no step running
    done = steps_done(page)
    target.click()
    page.wait_for_function(f"Number(document.querySelector('#si-steps-done').textContent) > {done}",
                           timeout=timeout_ms)


def steps_done(page) -> int:
    return int(page.text_content("#si-steps-done"))


def segment_counts(page) -> dict[str, int]:
    """Segment sizes shown in the panel, e.g. {"Bone metastasis": 1033, ...}."""
    text = page.inner_text("#si-segments")
    return {part.split(": ")[0].strip(): int(part.split(": ")[1].split()[0]) for part in text.split("·")}


def table(page) -> dict[str, list[str]]:
    """The result table: first cell -> the other cells."""
    rows = page.locator("#si-result-table tbody tr")
    return {cells[0]: cells[1:] for cells in (rows.nth(i).locator("td").all_inner_texts()
                                              for i in range(rows.count()))}


def view_images(page):
    return page.locator("img.image-display-area")


def view_centre(page, index: int = 0) -> tuple[float, float]:
    box = view_images(page).nth(index).bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def wait_for_views_rendered(page, count: int, timeout_ms: int = 30_000) -> None:
    """Wait until `count` views show a rendered image (a non-empty src)."""
    page.wait_for_function(
        "n => [...document.querySelectorAll('img.image-display-area')].filter(i => i.naturalWidth > 0).length >= n",
        arg=count, timeout=timeout_ms)


def wait_for_views_sized(page, timeout_ms: int = 30_000) -> None:
    """Wait until the server renders every view at its size in the page (after a layout change, which re-renders
    the page: an open menu would be detached)."""
    page.wait_for_function("[...document.querySelectorAll('img.image-display-area')].every(i => i.naturalWidth > 0 "
                           "&& Math.abs(i.naturalWidth - i.clientWidth) <= 2 "
                           "&& Math.abs(i.naturalHeight - i.clientHeight) <= 2)", timeout=timeout_ms)


def wait_for_layout(page, timeout_ms: int = 30_000) -> None:
    """Wait until the page shows the open module's layout (`si_layout`), each view rendered at its size: a layout
    change re-renders the whole page a moment after the state that asks for it (an open menu would be detached)."""
    from smartimaging.web.app import LAYOUTS

    counts = {name: len(layout.get_views(is_recursive=True)) for name, layout in LAYOUTS.items()}
    page.wait_for_function("counts => { const state = window.trame.state;"
                           "const layout = state.get('si_layout')[state.get('si_module')];"
                           "return document.querySelectorAll('img.image-display-area').length === counts[layout]; }",
                           arg=counts, timeout=timeout_ms)
    wait_for_views_sized(page, timeout_ms)


def reset_views_when_sized(page, timeout_ms: int = 30_000) -> None:
    """Wait until the server renders every view at its size in the page, then fit the views to the image."""
    wait_for_views_sized(page, timeout_ms)
    page.get_by_role("button", name="Reset views").click()
    page.wait_for_timeout(500)


def sample_lesion(module: str, case: int = 0) -> tuple[tuple[int, int], tuple[float, float]]:
    """Size (columns, rows) of a sample case's first image and the pixel index (column, row) of its lesion point."""
    from smartimaging.io import read_series_or_volume
    from smartimaging.mammo.images import load_mammogram
    from smartimaging.web.cases import sample_cases

    with tempfile.TemporaryDirectory() as folder:
        files = sample_cases()[module][case].write(Path(folder))
        path = next(iter(files.volumes.values()))
        image = load_mammogram(path, files.pixel_mm).image if files.kind else read_series_or_volume(path)
        index = image.TransformPhysicalPointToContinuousIndex(files.point_lps)
    return image.GetSize()[:2], index[:2]


def image_point_on_page(page, size: tuple[int, int], index: tuple[float, float], view: int = 0):
    """Where the pixel index (column, row) of an image of `size` (columns, rows) lies on the page, in a view fitted
    to the whole image (`reset_views_when_sized`): the image fills the box the fit kept clear of the slider, the
    letters and the caption (`si_view_free`), centred in it."""
    from smartimaging.web.app import LAYOUTS

    layout = page.evaluate("() => window.trame.state.get('si_layout')[window.trame.state.get('si_module')]")
    tag = LAYOUTS[layout].get_views(is_recursive=True)[view].singleton_tag
    free = page.evaluate("tag => window.trame.state.get('si_view_free')[tag]", tag)
    box = view_images(page).nth(view).bounding_box()
    width, height = box["width"] - free["left"] - free["right"], box["height"] - free["top"] - free["bottom"]
    scale = min(width / size[0], height / size[1])
    return (box["x"] + free["left"] + width / 2 + (index[0] - (size[0] - 1) / 2) * scale,
            box["y"] + free["top"] + height / 2 + (index[1] - (size[1] - 1) / 2) * scale)


def choose_effect(page, icon: str) -> None:
    """Select a Segment Editor effect by its icon (mdi-eraser, mdi-scatter-plot, ...)."""
    page.locator(f"button:has(i.{icon})").first.click()
    page.locator(f"button.v-btn--active:has(i.{icon})").first.wait_for(timeout=30_000)
