"""Screenshots of the real cases in the reading station (headless Debian Chromium): each module's real sample case
loaded, segmented (or, when the AI finds nothing, the page as the reader sees it) and computed, saved as
Resources/Screenshots/real-station-<module>.png (palette PNG, at most 300 KB), with what the page says printed as
JSON (headline, domain check, ROI source, warnings, errors), for the README.

    .venv/bin/python tools/station_screenshots.py            # needs ../shared/realdata (see its README.md)
"""

from __future__ import annotations

import argparse
import json
import sys
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

MAX_BYTES = 300 * 1024
DCE_T1 = "breast_mri_pyradiomics/breast1_image.nrrd"  # the real breast MRI, uploaded as the T1 of DCESynthesis
CASES = {  # file stem: (tab, sample case name or None to upload DCE_T1, segment first)
    "bonescan": ("Bone scan BSTBI", "Real GE whole-body scan", True),
    "mammo-nyu": ("Mammography Rad-score", "Real NYU mammogram (benign mass)", True),
    "mammo-cddcesm": ("Mammography Rad-score", "Real CDD-CESM P121 L-CC (malignant mass)", True),
    "lvi": ("Breast MRI LVI", "Real breast MRI (pyradiomics breast1)", True),
    "dce": ("Synthetic DCE", None, False),
}
COMPUTE = {"Bone scan BSTBI": "Compute BSTBI", "Mammography Rad-score": "Compute Rad-score",
           "Breast MRI LVI": "Predict LVI", "Synthetic DCE": "Synthesize DCE"}


def _text(page, selector: str) -> str:
    return page.inner_text(selector).strip() if page.locator(selector).count() else ""


def page_report(page) -> dict:
    """What the reader sees about the result."""
    return {name: _text(page, selector) for name, selector in (
        ("case", "#si-case"), ("segments", "#si-segments"), ("roi_source", "#si-roi-source"),
        ("error", "#si-error"), ("warnings", "#si-warnings"), ("headline", "#si-headline"),
        ("domain_chip", "#si-domain-chip"), ("domain", "#si-domain"), ("domain_text", "#si-domain-text"),
        ("result_roi_source", "#si-result-roi-source"))}


def save_small_png(png: bytes, path: Path) -> int:
    """The screenshot as a palette PNG (fewer colours until it fits MAX_BYTES); its size in bytes."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    for colours in (256, 128, 64):
        buffer = io.BytesIO()
        image.quantize(colours, method=Image.Quantize.MEDIANCUT).save(buffer, "PNG", optimize=True)
        if buffer.tell() <= MAX_BYTES:
            break
    path.write_bytes(buffer.getvalue())
    return buffer.tell()


def shoot(page, stem: str, tab: str, sample: str | None, segment: bool, realdata: Path, out: Path) -> dict:
    open_module(page, tab, timeout_ms=120_000)
    if sample is None:
        page.locator("input[type=file]").set_input_files(str(realdata / DCE_T1))
        page.wait_for_function("document.querySelector('#si-case').innerText.includes('Uploaded:')",
                               timeout=120_000)
        page.wait_for_function("!document.querySelector('#si-progress')", timeout=120_000)
    else:
        load_sample(page, sample, timeout_ms=120_000)
    wait_for_views_rendered(page, 1)
    if segment:
        click_and_wait_idle(page, "Segment", 300_000)
    if not segment or page.locator("#si-segments").count():
        click_and_wait_idle(page, COMPUTE[tab], 600_000)
    page.wait_for_timeout(1500)  # views re-rendered, transitions over
    size = save_small_png(page.screenshot(), out / f"real-station-{stem}.png")
    return {"file": f"Resources/Screenshots/real-station-{stem}.png", "bytes": size, **page_report(page)}


def main() -> int:
    from playwright.sync_api import sync_playwright

    from smartimaging.web.cases import realdata_folder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "Resources" / "Screenshots")
    parser.add_argument("--only", choices=sorted(CASES), action="append", help="one module (repeatable)")
    arguments = parser.parse_args()
    realdata = realdata_folder()
    if not (realdata / DCE_T1).is_file():
        parser.error(f"{realdata} does not hold the real cases (see ../shared/realdata/README.md)")
    arguments.out.mkdir(parents=True, exist_ok=True)
    reports = []
    with running_station() as (url, _process), sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(url)
        page.get_by_role("button", name="Load sample").wait_for(timeout=120_000)
        for stem, (tab, sample, segment) in CASES.items():
            if not arguments.only or stem in arguments.only:
                reports.append(shoot(page, stem, tab, sample, segment, realdata, arguments.out))
                print(json.dumps(reports[-1], ensure_ascii=False), flush=True)
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
