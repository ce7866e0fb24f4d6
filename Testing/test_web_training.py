"""The issue's walk through a phantom worklist in the browser reading station (headless Chromium): a 20-case
mammography phantom cohort whose first 15 cases a reader already read and saved (with the GUI-free Worklist API,
test_cohort_training.save_cases) is opened and resumes at case 16; the browser reads the remaining 5: Segment keeps
the AI's proposal, two proposals are corrected with an eraser stroke and three accepted, the pathology filled, Save /
Save and next (the table, the case records and the manifest follow); the page reloaded keeps the worklist and the
case, the folder opened again resumes there. Then Train writes a model from the 20 done cases (progress shown, the
card in the Model section; a Train cancelled midway leaves no model folder), Evaluate shows the held-out table (AUC
with its CI, SEN/SPE/ACC with counts, the training CV estimate, Dice) and the ROC image, the new model chosen in the
Model selector shows its card, and Compute names it in the result table. Training needs 5 patients of each class in
train + val (cohort_training.MIN_TRAINING_PER_CLASS): hence 20 cases. Screenshots go to $SMARTIMAGING_SCREENSHOTS or
to pytest's temporary folder. Without a browser, the Model selector's callbacks on a
trame state: only the lesion kind's models are offered (the page's kind, even before the flow has it), only an
offered model is chosen and only once its card was read, so the card shown is the one Compute uses; a job's result
is reported for the cohort it ran on when another worklist was opened meanwhile."""

from __future__ import annotations

import base64
import csv
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("trame_slicer")
pytest.importorskip("playwright.sync_api")

from PIL import Image  # noqa: E402
from test_cohort_training import SEED, save_cases  # noqa: E402
from test_web_worklist import _choose, _open_folder, _record, _statuses, _wait_open  # noqa: E402
from web_station import (  # noqa: E402
    choose_effect,
    click_and_wait_idle,
    image_point_on_page,
    open_module,
    reset_views_when_sized,
    screenshot_folder,
    segment_counts,
    station_page,
    table,
)

from smartimaging.cohort_training import card_summary, model_card_path  # noqa: E402
from smartimaging.mammo.cohort import write_mammo_phantom_cohort  # noqa: E402
from smartimaging.models.registry import models_dir  # noqa: E402
from smartimaging.worklist import Worklist  # noqa: E402

MAMMO = "MammoRadiomics"
NAME = "mass-site-1"
READ_BEFORE = 15  # cases the reader saved before the browser walks the other 5
CORRECTED = (0, 1)  # of those 5, the proposals the reader corrects (the others are accepted as proposed)


NO_WORKLIST = SimpleNamespace(worklist={}.get)  # a station's worklist section with no worklist open in any tab


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("training") / "cohort"
    write_mammo_phantom_cohort(folder, 20, seed=SEED, kind="mass")
    save_cases(folder, READ_BEFORE)
    return folder


def _wait_status(page, case_id: str, status: str) -> None:
    page.wait_for_function("([id, status]) => [...document.querySelectorAll('#si-wl-table tbody tr')].some("
                           "r => r.cells[0]?.innerText === id && r.cells[1]?.innerText === status)",
                           arg=[case_id, status], timeout=30_000)


def _key_centre(cohort: Path, case_id: str) -> tuple[np.ndarray, tuple[float, float]]:
    mask = np.asarray(Image.open(cohort / "masks" / f"{case_id}.png")) > 0
    rows, cols = np.nonzero(mask)
    return mask, (cols.mean(), rows.mean())


def _segment_at_key(page, cohort: Path, case_id: str) -> int:
    """Place the lesion point at the centre of the case's key mask and Segment; the ROI's size."""
    mask, centre = _key_centre(cohort, case_id)
    reset_views_when_sized(page)
    page.get_by_role("button", name="Place lesion point").click()
    page.mouse.click(*image_point_on_page(page, mask.shape[::-1], centre))
    page.wait_for_function("!window.trame.state.get('si_placing')", timeout=10_000)
    click_and_wait_idle(page, "Segment")
    return segment_counts(page)["Breast mass"]


def _erase_through_centre(page, cohort: Path, case_id: str, proposed: int) -> int:
    """The reader's correction: one eraser stroke through the lesion's centre; the ROI's size after it."""
    choose_effect(page, "mdi-eraser")
    mask, centre = _key_centre(cohort, case_id)
    x, y = image_point_on_page(page, mask.shape[::-1], centre)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 4, y, steps=3)
    page.mouse.up()
    page.wait_for_function("n => !document.querySelector('#si-segments').innerText.includes(': ' + n + ' ')",
                           arg=proposed, timeout=30_000)
    return segment_counts(page)["Breast mass"]


def _rows(page, selector: str) -> dict[str, str]:
    rows = page.locator(f"{selector} tr")
    return {cells[0]: cells[1] for cells in (rows.nth(i).locator("td").all_inner_texts()
                                             for i in range(rows.count()))}


def test_propose_correct_save_resume_train_evaluate_choose_and_compute(cohort, tmp_path_factory):
    shots = screenshot_folder(tmp_path_factory)
    cases = Worklist(cohort, MAMMO).cases
    ids = [case.case_id for case in cases]
    walked = ids[READ_BEFORE:]
    with station_page(tmp_path_factory, ready_timeout_ms=120_000) as (page, _process):
        open_module(page, "Mammography Rad-score", 120_000)
        assert page.locator("#si-tr-train").is_disabled()  # no worklist open yet
        _open_folder(page, cohort)
        _wait_open(page, walked[0])  # the first case the reader has not read
        assert _statuses(page) == {**dict.fromkeys(ids[:READ_BEFORE], "done"), **dict.fromkeys(walked, "new")}

        for index, (case_id, case) in enumerate(zip(walked, cases[READ_BEFORE:], strict=True)):
            if index == 3:  # the station's page reloaded: the worklist and the case kept; opened again: resumed
                page.reload()
                page.get_by_role("button", name="Load sample").wait_for(timeout=60_000)
                _wait_open(page, case_id)
                _open_folder(page, cohort)
                _wait_open(page, case_id)
            proposed = _segment_at_key(page, cohort, case_id)
            assert proposed > 50
            _wait_status(page, case_id, "AI proposed")
            assert _record(cohort, case_id)["model"]["id"] == "mammo-mass-unet-demo"
            if index in CORRECTED:
                assert 0 < _erase_through_centre(page, cohort, case_id, proposed) < proposed
            _choose(page, "Pathology *", case.key_label)
            if index == 0:  # Save, then Next; the others: Save and next
                page.locator("#si-wl-save").click()
                _wait_status(page, case_id, "done")
                page.locator("#si-wl-folder").scroll_into_view_if_needed()  # the section from its top
                page.screenshot(path=str(shots / "web-worklist-saved.png"))
                page.locator("#si-wl-next").click()
            else:
                page.locator("#si-wl-save-next").click()
            if case_id != walked[-1]:
                _wait_open(page, walked[index + 1])
            _wait_status(page, case_id, "done")
            record = _record(cohort, case_id)
            assert record["labels"] == {"kind": "mass", "pathology": case.key_label}
            if index in CORRECTED:
                assert record["roi_source"] == "reader edited" and 0.5 < record["dice_ai_vs_corrected"] < 1
            else:
                assert record["dice_ai_vs_corrected"] == 1.0  # accepted as proposed
        page.wait_for_function("document.querySelector('#si-wl-info')?.innerText.includes('last case')")
        with open(cohort / "smartimaging" / MAMMO / "manifest.csv", encoding="utf-8", newline="") as f:
            manifest = list(csv.DictReader(f))
        assert [row["case_id"] for row in manifest] == ids
        assert [row["label"] for row in manifest] == [str(int(case.key_label == "malignant")) for case in cases]

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


def test_the_model_selector_chooses_only_an_offered_model_whose_card_was_read(tmp_path):
    from trame.app import get_server

    from smartimaging.mammo.flow import MammoFlow
    from smartimaging.mrml import create_headless_scene
    from smartimaging.web.training_panel import TrainingPanel

    out = tmp_path / "cohort" / "smartimaging" / MAMMO
    demo = models_dir() / "mammo-mass-classifier-demo.json"

    def cohort_card(name: str, kind: str, metrics: dict) -> Path:
        path = model_card_path(out, MAMMO, name)
        path.parent.mkdir(parents=True)
        card = {**json.loads(demo.read_text(encoding="utf-8")), "id": name, "module": MAMMO, "lesion_kind": kind,
                "metrics": metrics}
        path.write_text(json.dumps(card), encoding="utf-8")
        return path

    damaged = cohort_card("mass-site-2", "mass", {"honest_auc": {"auc": 0.8, "sd": "abc"}})
    calcification = cohort_card("calcification-site-1", "calcification", {})
    state = get_server("training-panel-test", client_type="vue3").state
    state.update({"si_module": MAMMO, "si_kind": "mass", "si_wl_open": {MAMMO: str(tmp_path / "cohort")}})
    flow = MammoFlow(create_headless_scene(), "cpu")
    panel = TrainingPanel(SimpleNamespace(state=state, flows={MAMMO: flow}, worklist_panel=NO_WORKLIST))
    assert [item["title"] for item in state.si_tr_models[MAMMO]] == [
        "mammo-mass-classifier-demo (demo weights)", "mass-site-2 (trained on this cohort)"]
    demo_rows = card_summary(demo)
    for value in (str(calcification), "/etc/passwd"):  # not offered: nothing changes
        panel.on_select(MAMMO, value)
        assert flow.classifier_card is None and state.si_tr_model[MAMMO] == "" and state.si_tr_card[MAMMO] == demo_rows

    panel.on_select(MAMMO, str(damaged))  # chosen, its card shown with what is damaged
    assert flow.classifier_card == damaged and state.si_tr_model[MAMMO] == str(damaged)
    assert dict(state.si_tr_card[MAMMO])["Training estimate"] == ("damaged card: honest_auc.sd is 'abc', not a number; "
                                                                     "expected 0 to 1")
    damaged.write_text("{", encoding="utf-8")  # unreadable since it was listed: the demo classifier stays chosen
    panel.on_select(MAMMO, "")
    panel.on_select(MAMMO, str(damaged))
    assert flow.classifier_card is None and state.si_tr_model[MAMMO] == ""
    assert state.si_tr_card[MAMMO] == [
        ["Not chosen", "mass-site-2: Model card mass-site-2.json is not valid JSON (damaged file)"], *demo_rows]

    state.si_kind = "calcification"  # the page's kind: this section hears of it before the flow has it
    panel._on_context_changed()
    assert [item["title"] for item in state.si_tr_models[MAMMO]] == [
        "mammo-calcification-classifier-demo (demo weights)", "calcification-site-1 (trained on this cohort)"]
    assert state.si_tr_card[MAMMO] == card_summary(models_dir() / "mammo-calcification-classifier-demo.json")

    panel._set("si_tr_error", MAMMO, "This cohort has 1 benign and 1 malignant cases ...")  # about the old cohort
    panel._set("si_tr_table", MAMMO, [["Test cases", "3 benign, 4 malignant"]])
    panel._on_cohort_changed()
    assert state.si_tr_error[MAMMO] and state.si_tr_table[MAMMO]  # the same cohort: kept
    (tmp_path / "other").mkdir()
    state.si_wl_open = {MAMMO: str(tmp_path / "other")}  # another worklist opened in the tab
    panel._on_cohort_changed()
    assert state.si_tr_error[MAMMO] == "" and state.si_tr_table[MAMMO] == [] and state.si_tr_roc[MAMMO] == ""


def test_a_reopened_worklist_reads_with_the_models_chosen_for_it_last(tmp_path):
    """The Model and Proposal network choices made in a worklist are remembered by it (worklist.json): a station
    started again (new state, flow and sections) that opens the worklist offers them chosen, the flow uses them; a
    model no longer offered (its folder gone) leaves the demo chosen; the demo chosen is remembered too; a network
    not offered is not chosen; a choice the worklist cannot write is used, with a note that it is not remembered."""
    from trame.app import get_server

    from smartimaging.mammo.flow import MammoFlow
    from smartimaging.mrml import create_headless_scene
    from smartimaging.proposal_networks import demo_id, proposal_card_path
    from smartimaging.web.proposal_panel import ProposalPanel
    from smartimaging.web.training_panel import TrainingPanel

    folder = tmp_path / "cohort"
    write_mammo_phantom_cohort(folder, 3, seed=SEED, kind="mass")
    out = folder / "smartimaging" / MAMMO
    demo = json.loads((models_dir() / "mammo-mass-classifier-demo.json").read_text(encoding="utf-8"))
    classifier = model_card_path(out, MAMMO, NAME)
    classifier.parent.mkdir(parents=True)
    classifier.write_text(json.dumps({**demo, "id": NAME, "module": MAMMO, "lesion_kind": "mass"}), encoding="utf-8")
    unet = proposal_card_path(out, "mass-unet-ft-1")
    unet.parent.mkdir(parents=True)
    unet_demo = json.loads((models_dir() / f"{demo_id(MAMMO, 'mass')}.json").read_text(encoding="utf-8"))
    unet.write_text(json.dumps({**unet_demo, "id": "mass-unet-ft-1"}), encoding="utf-8")

    def station(number: int):
        """A station started afresh with the worklist opened in its mammography tab."""
        state = get_server(f"remembered-choices-{number}", client_type="vue3").state
        state.update({"si_module": MAMMO, "si_kind": "mass", "si_wl_open": {MAMMO: str(folder)}})
        flow = MammoFlow(create_headless_scene(), "cpu")
        opened = SimpleNamespace(state=state, flows={MAMMO: flow},
                                 worklist_panel=SimpleNamespace(worklist={MAMMO: Worklist(folder, MAMMO)}.get))
        return state, flow, TrainingPanel(opened), ProposalPanel(opened)

    state, flow, model, proposal = station(1)
    assert (state.si_tr_model[MAMMO], state.si_pn_model[MAMMO]) == ("", "")  # nothing chosen yet: the demos
    model.on_choose(MAMMO, str(classifier))
    proposal.on_choose(MAMMO, str(unet))
    assert (flow.classifier_card, flow.segmenter_card) == (classifier, unet)
    state, flow, model, proposal = station(2)
    assert (state.si_tr_model[MAMMO], state.si_pn_model[MAMMO]) == (str(classifier), str(unet))
    assert (flow.classifier_card, flow.segmenter_card) == (classifier, unet)
    assert dict(state.si_tr_card[MAMMO])["Model"].startswith(NAME)
    model.on_choose(MAMMO, "")  # the demo classifier chosen again
    shutil.rmtree(unet.parent)  # the fine-tuned network deleted by hand
    state, flow, model, proposal = station(3)
    assert (state.si_tr_model[MAMMO], state.si_pn_model[MAMMO]) == ("", "")
    assert (flow.classifier_card, flow.segmenter_card) == (None, None)
    proposal.on_choose(MAMMO, str(classifier))  # not a network the list offers: nothing chosen, nothing remembered
    assert flow.segmenter_card is None and state.si_pn_model[MAMMO] == ""
    (out / "worklist.json").unlink()
    (out / "worklist.json").mkdir()  # the folder changed since the worklist opened: chosen, not remembered
    model.on_choose(MAMMO, str(classifier))
    assert flow.classifier_card == classifier and state.si_tr_card[MAMMO][-1] == [
        "Note", f"chosen for now, not remembered for the next opening: Is a directory ({out})"]


def test_breast_lvi_model_section_offers_the_networks_and_refuses_an_unknown_one(tmp_path):
    """BreastLVI's Model section: the fused demo networks first, the cohort's models beside them (choosing one is the
    flow's `classifier_card`), and Train's network x sequence chooser, an unknown choice refused without a worker."""
    from trame.app import get_server

    from smartimaging.lvi.flow import LVIFlow
    from smartimaging.mrml import create_headless_scene
    from smartimaging.web.training_panel import TrainingPanel

    lvi = "BreastLVI"
    card = model_card_path(tmp_path / "cohort" / "smartimaging" / lvi, lvi, "lvi-site-1")
    card.parent.mkdir(parents=True)
    demo = json.loads((models_dir() / "lvi-t2-vanilla2d-demo.json").read_text(encoding="utf-8"))
    card.write_text(json.dumps({**demo, "id": "lvi-site-1", "module": lvi}), encoding="utf-8")
    state = get_server("training-panel-lvi-test", client_type="vue3").state
    state.update({"si_module": lvi, "si_kind": None, "si_wl_open": {lvi: str(tmp_path / "cohort")}})
    flow = LVIFlow(create_headless_scene(), "cpu")
    panel = TrainingPanel(SimpleNamespace(state=state, flows={lvi: flow}, worklist_panel=NO_WORKLIST))
    assert [item["title"] for item in state.si_tr_models[lvi]] == [
        "lvi-dce-resnet10-3d-demo + lvi-t2-resnet10-3d-demo (demo weights)", "lvi-site-1 (trained on this cohort)"]
    assert state.si_tr_network == "resnet10-3d:DCE" and len(state.si_tr_networks) == 6
    panel.on_select(lvi, str(card))
    assert flow.classifier_card == card and dict(state.si_tr_card[lvi])["Model"] == "lvi-site-1 1.0.0"
    state.si_tr_network = "resnet50:DCE"
    panel.on_train(lvi)
    assert state.si_tr_error[lvi].startswith("Network 'resnet50'") and not state.si_tr_running


def test_a_jobs_result_is_reported_for_the_cohort_it_ran_on_when_another_worklist_opened_meanwhile(tmp_path):
    """Train / Evaluate capture their cohort at start: the result describes that cohort's model (of the default name
    every cohort shares), saying which cohort, when another worklist was opened or it was closed while it ran."""
    from trame.app import get_server

    from smartimaging.mammo.flow import MammoFlow
    from smartimaging.mrml import create_headless_scene
    from smartimaging.web.training_panel import TrainingPanel

    demo = json.loads((models_dir() / "mammo-mass-classifier-demo.json").read_text(encoding="utf-8"))
    first, second = tmp_path / "first", tmp_path / "second"
    for cohort, trained_on in ((first, "the first cohort's 20 cases"), (second, "the second cohort's 30 cases")):
        card = model_card_path(cohort / "smartimaging" / MAMMO, MAMMO, NAME)
        card.parent.mkdir(parents=True)
        card.write_text(json.dumps({**demo, "id": NAME, "module": MAMMO, "training": {
            **demo["training"], "data": {"description": trained_on}}}), encoding="utf-8")
        (card.parent / "evaluation").mkdir()
        (card.parent / "evaluation" / "roc.png").write_bytes(b"png of " + cohort.name.encode())
    out = first / "smartimaging" / MAMMO
    state = get_server("training-panel-cohort-test", client_type="vue3").state
    state.update({"si_module": MAMMO, "si_kind": "mass", "si_wl_open": {MAMMO: str(first)}})
    panel = TrainingPanel(SimpleNamespace(state=state, flows={MAMMO: MammoFlow(create_headless_scene(), "cpu")},
                                          worklist_panel=NO_WORKLIST))
    panel._trained(MAMMO, NAME, out)  # the cohort still open: as before
    assert state.si_tr_info[MAMMO].startswith(f"Model {NAME} trained on the first cohort's 20 cases") \
        and "Choose it in the Classifier model list" in state.si_tr_info[MAMMO]
    report = {"table": [["Test cases", "3 benign, 4 malignant"]], "cases": 7}
    for opened in (str(second), ""):  # another worklist opened, or the worklist closed, while the job ran
        state.si_wl_open = {MAMMO: opened}
        panel._on_cohort_changed()
        panel._trained(MAMMO, NAME, out)
        assert state.si_tr_info[MAMMO] == (
            f"Model {NAME} trained on the first cohort's 20 cases; it is in the cohort {first}, not the worklist open "
            "now. Open that worklist to choose it in the Classifier model list to compute with it; Evaluate "
            "measures it on the held-out test cases.")
        panel._evaluated(MAMMO, NAME, report, out)
        assert state.si_tr_info[MAMMO] == (f"Model {NAME} on the 7 held-out test cases of the cohort {first} (not "
                                           "the worklist open now):")
        assert state.si_tr_table[MAMMO] == report["table"]
        assert state.si_tr_roc[MAMMO].endswith(base64.b64encode(b"png of first").decode())
