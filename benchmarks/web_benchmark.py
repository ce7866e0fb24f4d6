"""Reading-station benchmark: app start to first rendered view, memory with one case of each module, and the latency
from a "Segment" click to the segment drawn in the browser's views (the first view image after the step's result
text appeared; the text's own time beside it), per module, beside the same step run directly on a scene in this
process (the web layer's overhead as a ratio).

    .venv/bin/python benchmarks/web_benchmark.py --repeats 3 --out benchmarks/results/web_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "Testing"))

from web_station import (  # noqa: E402
    VIEWPORT,
    click_and_wait_idle,
    launch_chromium,
    load_sample,
    open_module,
    running_station,
    wait_for_views_rendered,
)

MODULES = {"BoneScanBSTBI": ("Bone scan BSTBI", "Segment"), "MammoRadiomics": ("Mammography Rad-score", "Segment"),
           "BreastLVI": ("Breast MRI LVI", "Segment"), "DCESynthesis": ("Synthetic DCE", "Synthesize DCE")}


def _memory_mib(pid: int) -> dict[str, float]:
    """Resident and peak resident memory of a process (Linux /proc)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return {"rss_mib": round(values["VmRSS"], 1), "peak_rss_mib": round(values["VmHWM"], 1)}


# Records, in the page, the last click, when the step's result text appeared (the step over) and every view image
# that finished loading after it.
RECORDER = """
() => {
  window.siT = { click: 0, result: 0, images: [], selector: '' };
  document.addEventListener('click', () => { Object.assign(window.siT, { click: performance.now(), result: 0,
                                                                          images: [] }); }, true);
  document.addEventListener('load', (event) => {
    if (event.target.matches?.('img.image-display-area')) window.siT.images.push(performance.now());
  }, true);
  new MutationObserver(() => {
    const t = window.siT, shown = document.querySelector(t.selector);
    if (t.click && !t.result && shown && shown.innerText.trim() && !document.querySelector('#si-progress'))
      t.result = performance.now();
  }).observe(document.body, { subtree: true, childList: true, characterData: true });
}
"""
RESULT_TEXT = {"DCESynthesis": "#si-headline"}  # the others: the segment sizes
SETTLE_MS = 1200


def _shown_s(page, timeout_ms: int = 180_000) -> tuple[float, float]:
    """Seconds from the click to the step's result text on the page and to the first view image after it (the
    result drawn in the views), once the views stayed unchanged for SETTLE_MS."""
    page.wait_for_function(f"""() => {{
        const t = window.siT, last = t.images.at(-1) || 0;
        return t.result && last > t.result && performance.now() - last > {SETTLE_MS}; }}""", timeout=timeout_ms)
    return tuple(page.evaluate("() => { const t = window.siT; "
                               "return [t.result - t.click, t.images.find(x => x > t.result) - t.click]"
                               ".map(x => x / 1000); }"))


def browser_measurements(repeats: int) -> dict:
    from playwright.sync_api import sync_playwright

    results: dict = {"latency_s": {}, "result_text_s": {}}
    started = time.perf_counter()
    with running_station() as (url, process), sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(url)
        wait_for_views_rendered(page, 2, timeout_ms=120_000)
        results["start_to_first_view_s"] = round(time.perf_counter() - started, 2)
        results["memory_idle"] = _memory_mib(process.pid)
        page.evaluate(RECORDER)
        for module, (title, button) in MODULES.items():
            open_module(page, title)
            page.evaluate(f"window.siT.selector = '{RESULT_TEXT.get(module, '#si-segments')}'")
            texts, images = [], []
            for _ in range(repeats + 1):  # the first click is cold (imports, model loading)
                load_sample(page)
                page.wait_for_timeout(SETTLE_MS)  # the sample's views drawn: they are not the step's
                page.get_by_role("button", name=button, exact=True).click()
                text, image = _shown_s(page)
                texts.append(text)
                images.append(image)
            if module != "DCESynthesis":
                click_and_wait_idle(page, {"BoneScanBSTBI": "Compute BSTBI", "MammoRadiomics": "Compute Rad-score",
                                           "BreastLVI": "Predict LVI"}[module], 180_000)
            for key, times in (("latency_s", images), ("result_text_s", texts)):
                warm = times[1:]
                results[key][module] = {"cold": round(times[0], 3), "warm_mean": round(statistics.mean(warm), 3),
                                        "warm_sd": round(statistics.stdev(warm), 3) if repeats > 1 else 0.0}
        results["memory_one_case_per_module"] = _memory_mib(process.pid)
        browser.close()
    return results


def direct_measurements(repeats: int) -> dict:
    """The same steps on a SlicerApp scene in this process, no server and no browser."""
    from trame_slicer.core import SlicerApp

    from smartimaging.web.app import FLOWS
    from smartimaging.web.cases import sample_cases

    app, cases = SlicerApp(), sample_cases()
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / "smartimaging-web-benchmark"
    timings = {}
    for module, flow_class in FLOWS.items():
        flow = flow_class(app.scene)
        times = []
        for _ in range(repeats + 1):
            files = cases[module][0].write(folder / module)
            flow.set_case_options(files.kind, files.pixel_mm)
            for role, path in files.volumes.items():
                flow.load(role, path)
            if files.point_lps is not None:
                flow.set_point_lps(files.point_lps)
            started = time.perf_counter()
            flow.run(flow.segment() if flow.needs_segment else flow.compute())
            times.append(time.perf_counter() - started)
        timings[module] = {"cold": round(times[0], 3), "warm_mean": round(statistics.mean(times[1:]), 3)}
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="warm clicks per module (after one cold click)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    browser = browser_measurements(args.repeats)
    direct = direct_measurements(args.repeats)
    overhead = {module: round(browser["latency_s"][module]["warm_mean"] / direct[module]["warm_mean"], 2)
                for module in MODULES}
    import torch

    record = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "system": f"{platform.system()} {platform.release()}", "torch": torch.__version__,
                          "browser": "Debian chromium, headless"},
              "browser": browser, "direct_step_s": direct, "web_over_direct_warm": overhead}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
