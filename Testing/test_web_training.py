"""Train and Evaluate on the open worklist's cohort in the browser reading station (headless Chromium): a 20-case
mammography phantom worklist whose cases were saved (test_cohort_training.save_cases) is opened; Train writes a
model (progress shown, the card in the Model section), Evaluate shows the held-out table (AUC with its CI, SEN/SPE/ACC
with counts, the training CV estimate, Dice) and the ROC image; the new model chosen in the Model selector shows its
card, and Compute names it in the result table; a Train cancelled midway leaves no model folder. Screenshots go
to $SMARTIMAGING_SCREENSHOTS or to pytest's temporary folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("trame_slicer")
pytest.importorskip("playwright.sync_api")

from test_cohort_training import SEED, save_cases  # noqa: E402
from web_station import (  # noqa: E402
    click_and_wait_idle,
    open_module,
    screenshot_folder,
    station_page,
    table,
    wait_for_case,
)

from smartimaging.mammo.cohort import write_mammo_phantom_cohort  # noqa: E402

MAMMO = "MammoRadiomics"
NAME = "mass-site-1"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("training") / "cohort"
    write_mammo_phantom_cohort(folder, 20, seed=SEED, kind="mass")
    save_cases(folder)
    return folder


def _rows(page, selector: str) -> dict[str, str]:
    rows = page.locator(f"{selector} tr")
    return {cells[0]: cells[1] for cells in (rows.nth(i).locator("td").all_inner_texts()
                                             for i in range(rows.count()))}


def test_train_evaluate_choose_and_compute(cohort, tmp_path_factory):
    shots = screenshot_folder(tmp_path_factory)
    with station_page(tmp_path_factory, ready_timeout_ms=120_000) as (page, _process):
        open_module(page, "Mammography Rad-score", 120_000)
        assert page.locator("#si-tr-train").is_disabled()  # no worklist open yet
        page.locator("#si-wl-folder").fill(str(cohort))
        page.locator("#si-wl-open-folder").click()
        page.wait_for_function("document.querySelector('#si-wl-case')?.innerText.startsWith('Case ')",
                               timeout=60_000)
        wait_for_case(page, 60_000)

        models = cohort / "smartimaging" / MAMMO / "models"
        page.locator("#si-tr-name").fill("cancelled-1")  # Cancel during the features: nothing left behind
        page.locator("#si-tr-train").click()
        page.wait_for_function("document.querySelector('#si-tr-progress')?.innerText.includes('radiomics "
                               "features of')", timeout=60_000)
        page.locator("#si-tr-cancel").click()
        page.wait_for_function("document.querySelector('#si-tr-error')?.innerText === 'Cancelled: no model was "
                               "written'", timeout=30_000)
        assert not any(p.name.startswith((".cancelled-1", "cancelled-1")) for p in models.iterdir())

        page.locator("#si-tr-name").fill(NAME)
        page.locator("#si-tr-train").click()
        page.locator("#si-tr-progress").wait_for(timeout=30_000)  # the job's progress in the page
        page.wait_for_function(f"document.querySelector('#si-tr-info')?.innerText.startsWith('Model {NAME} "
                               "trained')", timeout=240_000)
        card = models / NAME / f"{NAME}.json"
        assert json.loads(card.read_text(encoding="utf-8"))["training"]["data"]["train_cases"] == 13

        page.locator("#si-tr-evaluate").click()
        page.locator("#si-tr-roc").wait_for(timeout=240_000)
        page.wait_for_function("document.querySelector('#si-tr-roc').naturalWidth > 0", timeout=30_000)
        report = json.loads((card.parent / "evaluation" / "evaluation.json").read_text(encoding="utf-8"))
        shown = _rows(page, "#si-tr-table")
        assert shown["AUC (95 % CI, DeLong)"] == dict(report["table"])["AUC (95 % CI, DeLong)"]
        assert shown["Test cases"].startswith("3 benign and 4 malignant cases")
        assert shown["Sensitivity"].endswith("/4)") and shown["Specificity"].endswith("/3)")
        assert "Cross-validated AUC (training, paper pipeline)" in shown and "Dice AI vs corrected" in shown
        page.locator("#si-training").screenshot(path=str(shots / "station_cohort_evaluation.png"))

        page.locator("#si-tr-model").click(force=True)
        page.get_by_role("option").filter(has_text=NAME).first.click()
        page.wait_for_function(f"document.querySelector('#si-tr-card')?.innerText.includes('{NAME}')",
                               timeout=30_000)
        assert "Held-out test" in _rows(page, "#si-tr-card")
        click_and_wait_idle(page, "Compute Rad-score")
        assert table(page)["Classifier"] == [f"{NAME} 1.0.0"]
    shutil.rmtree(card.parent)
