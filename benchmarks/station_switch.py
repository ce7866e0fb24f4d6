"""Reading-station responsiveness in headless Chromium: from a module tab's click to its views rendered, and from
"Load sample" to the case shown, per module.

    .venv/bin/python benchmarks/station_switch.py --repeats 3 --out benchmarks/results/station_switch_cpu.json

Times are taken in the page (performance.now()): from the click to the last view image that arrived before the views
stayed unchanged for SETTLE_MS (the server's last render of the step: trame-rca sends each frame at interactive JPEG
quality, then again at still quality a few frame periods later), and never before the step is over (the station's
finished-step counter for "Load sample"; the tab selected and no step running for a tab switch); `first_image`: the
first view image after the click (the new content, at interactive quality). The first
opening of a module also loads its first sample case (reported apart); the later switches only show the case it has.
`--url` drives a station that is already running (e.g. one started under cProfile).
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

from web_station import VIEWPORT, launch_chromium, running_station, steps_done, wait_for_views_rendered  # noqa: E402

MODULES = {"BoneScanBSTBI": "Bone scan BSTBI", "MammoRadiomics": "Mammography Rad-score",
           "BreastLVI": "Breast MRI LVI", "DCESynthesis": "Synthetic DCE"}
SETTLE_MS = 1000

# Records, in the page, the time of the last click and of every view image that finished loading.
RECORDER = """
() => {
  window.siTimes = { click: 0, images: [] };
  document.addEventListener("click", () => { window.siTimes.click = performance.now(); window.siTimes.images = []; },
                            true);
  document.addEventListener("load", (event) => {
    if (event.target.matches?.("img.image-display-area")) window.siTimes.images.push(performance.now());
  }, true);
}
"""


def _settled_s(page, timeout_ms: int = 60_000) -> tuple[float, float]:
    """Seconds from the last click to the last view image that loaded, once no image has loaded for SETTLE_MS, and
    to the first one."""
    page.wait_for_function(
        f"""() => {{
          const t = window.siTimes, last = t.images.length ? t.images[t.images.length - 1] : 0;
          return last > t.click && performance.now() - last > {SETTLE_MS};
        }}""", timeout=timeout_ms)
    times = page.evaluate("[window.siTimes.images.at(-1), window.siTimes.images[0]].map(t => "
                          "(t - window.siTimes.click) / 1000)")
    return round(times[0], 3), round(times[1], 3)


def _idle(page, timeout_ms: int = 120_000) -> None:
    page.wait_for_function("document.querySelector('#si-case').innerText !== 'No case loaded' "
                           "&& !document.querySelector('#si-progress')", timeout=timeout_ms)


def _switch(page, title: str) -> tuple[float, float]:
    page.get_by_role("tab", name=title).click()
    page.wait_for_function(f"document.querySelector('.v-tab--selected')?.innerText.toLowerCase() === "
                           f"'{title.lower()}' && window.trame.state.get('si_switching') == null")
    _idle(page)
    return _settled_s(page)


def _load_sample(page) -> tuple[float, float]:
    done = steps_done(page)
    page.get_by_role("button", name="Load sample", exact=True).click()
    page.wait_for_function(f"Number(document.querySelector('#si-steps-done').textContent) > {done}",
                           timeout=120_000)
    return _settled_s(page)


def _choose_real_case(page) -> None:
    """Select the open module's first real sample case (its name starts with "Real"), if it has one."""
    page.get_by_role("combobox", name="Sample case").click(force=True)  # the selected text lies over the field
    options = page.get_by_role("option")
    options.first.wait_for()
    real = [name for name in options.all_inner_texts() if name.startswith("Real")]
    if real:
        options.filter(has_text=real[0]).first.click()
    else:
        page.keyboard.press("Escape")
    page.get_by_role("listbox").wait_for(state="hidden")


def measure(url: str, repeats: int, real: bool) -> dict:
    from playwright.sync_api import sync_playwright

    first_open, switch, load = {}, {m: [] for m in MODULES}, {m: [] for m in MODULES}  # (settled, first image)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(url)
        wait_for_views_rendered(page, 2, timeout_ms=120_000)
        _idle(page)
        page.evaluate(RECORDER)
        for module, title in list(MODULES.items())[1:]:  # the bone scan's tab is open at start
            first_open[module] = _switch(page, title)
        for _ in range(repeats):
            for module, title in MODULES.items():
                switch[module].append(_switch(page, title))
                if real:
                    _choose_real_case(page)
                load[module].append(_load_sample(page))
        browser.close()

    def summary(times):
        settled, first = zip(*times, strict=True)
        return {"median": round(statistics.median(settled), 3), "max": round(max(settled), 3), "all": settled,
                "first_image_median": round(statistics.median(first), 3)}

    return {"first_open_s": {m: t[0] for m, t in first_open.items()},
            "switch_s": {m: summary(t) for m, t in switch.items()},
            "load_sample_s": {m: summary(t) for m, t in load.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="rounds over the four tabs")
    parser.add_argument("--url", help="a running station (default: start one)")
    parser.add_argument("--real", action="store_true", help="load each module's first real sample case (a module "
                        "without one: its first sample), so that the switches show real cases")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    load_before = os.getloadavg()
    started = time.perf_counter()
    if args.url:
        results = measure(args.url, args.repeats, args.real)
    else:
        with running_station() as (url, _process):
            results = measure(url, args.repeats, args.real)
    record = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "system": f"{platform.system()} {platform.release()}", "browser": "Debian chromium, headless",
                          "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]},
              "seconds": round(time.perf_counter() - started, 1), **results}
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
