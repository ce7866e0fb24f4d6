"""The proposal network a module's Segment uses (issue 16): the U-Nets fine-tuned on a worklist's cohort are listed
beside the demo one (`proposal_networks`), a flow given one (`segmenter_card`) segments with its weights and the kept
proposal names it, a tampered or mismatched card is refused with a message (no silent fallback), and too few
corrected cases are refused saying what minimum applies. Scene-level (a real MRML scene), no GUI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from smartimaging.errors import InputError, ModelError
from smartimaging.models import load_model, save_model
from smartimaging.models.registry import models_dir, sha256_of
from smartimaging.mrml import create_headless_scene, ijk_to_ras_matrix
from smartimaging.proposal_networks import (
    MIN_HELD_OUT,
    MIN_TRAINING,
    check_finetune_data,
    next_name,
    proposal_card_path,
    proposal_choices,
    proposal_summary,
)
from smartimaging.segmentation_nodes import labels_from_segmentation
from smartimaging.worklist_scene import WorklistReading

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
MAMMO, LVI, BONESCAN = "MammoRadiomics", "BreastLVI", "BoneScanBSTBI"
NAME = "mass-unet-ft-1"


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """An 8-case mammography phantom worklist, every case saved as done (3 train, 2 val, 3 test), and a mass U-Net
    fine-tuned on it for one epoch where the station puts it."""
    from test_cohort_training import save_cases

    from smartimaging.mammo.cohort import write_mammo_phantom_cohort
    from smartimaging.mammo.segment import finetune_segmenter
    from smartimaging.training import TrainConfig

    folder = tmp_path_factory.mktemp("proposal") / "cohort"
    write_mammo_phantom_cohort(folder, 8, seed=5, kind="mass")
    worklist = save_cases(folder)
    config = TrainConfig(epochs=1, batch_size=16, learning_rate=None, device="cpu", show_progress=False)
    result = finetune_segmenter(worklist.manifest_path, models_dir() / "mammo-mass-unet-demo.json",
                                proposal_card_path(worklist.out, NAME).parent, NAME, config, phantom=True)
    assert result.card == proposal_card_path(worklist.out, NAME)
    return folder


def _out(cohort: Path, module: str = MAMMO) -> Path:
    return cohort / "smartimaging" / module


def _open_at_key(flow, folder: Path, index: int = 0) -> WorklistReading:
    """A case of the worklist open in `flow`, the lesion point at the centre of its answer key."""
    reading = WorklistReading(flow, folder)
    reading.open_case(reading.worklist.cases[index].case_id)
    z, y, x = np.nonzero(reading.answer_key())
    ras = ijk_to_ras_matrix(flow.primary) @ [x.mean(), y.mean(), z.mean(), 1.0]
    flow.ensure_point_node().AddControlPoint(*ras[:3])
    return reading


def _renamed_demo(demo_id: str, folder: Path, name: str) -> Path:
    """The demo U-Net saved under another id (a card of its own, with its sha256), as a fine-tuning writes one."""
    model = load_model(demo_id)
    return save_model(model.network, {**model.card, "id": name, "version": "1.0.0"}, folder)


def test_the_fine_tuned_networks_are_listed_beside_the_demo_one(cohort, tmp_path):
    from smartimaging.cohort_training import cohort_models

    out = _out(cohort)
    card = proposal_card_path(out, NAME)
    assert [(title, path, demo) for title, path, demo in proposal_choices(MAMMO, out, "mass")] == [
        ("mammo-mass-unet-demo (demo weights)", models_dir() / "mammo-mass-unet-demo.json", True),
        (f"{NAME} (fine-tuned on this cohort)", card, False)]
    assert len(proposal_choices(MAMMO, out, "calcification")) == 1  # a mass U-Net is not a calcification one
    assert len(proposal_choices(LVI, out)) == 1 and len(proposal_choices(MAMMO, None, "mass")) == 1
    assert cohort_models(out, MAMMO, "mass") == []  # the Model selector's classifiers never list it
    assert next_name(MAMMO, out, "mass") == "mass-unet-ft-2" and next_name(BONESCAN, None) == "bonescan-unet-ft-1"

    rows = dict(proposal_summary(card))
    metrics = json.loads(card.read_text(encoding="utf-8"))["metrics"]
    assert rows["Model"] == f"{NAME} 1.0.0"
    assert rows["Trained on"] == ("the corrected ROIs of manifest.csv: 3 train cases, 2 val cases, "
                                  "3 held-out cases")
    assert rows["Dice before → after"] == (f"{metrics['dice_before']:.3f} → {metrics['dice_after']:.3f} on "
                                           "3 held-out mammograms ('test' split)")
    assert rows["Fine-tuned from"].startswith("mammo-mass-unet-demo 2.0.0 (sha256 ")
    assert rows["Fine-tuned from"].endswith("…), 1 epoch")
    assert rows["Phantom"].startswith("yes") and "synthetic phantoms" in rows["Intended use"]
    assert dict(proposal_summary(models_dir() / "mammo-mass-unet-demo.json"))["Dice"].startswith("0.944 on 40 fresh")
    five = json.loads(card.read_text(encoding="utf-8"))
    five["training"]["epochs"] = 5
    (tmp_path / "five.json").write_text(json.dumps(five), encoding="utf-8")
    assert dict(proposal_summary(tmp_path / "five.json"))["Fine-tuned from"].endswith("…), 5 epochs")


def test_the_phantom_label_comes_from_the_cohorts_marker(cohort, tmp_path):
    """A phantom cohort's own manifest and its worklist's are phantom (SYNTHETIC_PHANTOMS.txt); without the
    marker they are not."""
    from smartimaging.manifest import PHANTOM_MARKER
    from smartimaging.proposal_networks import phantom_manifest

    assert phantom_manifest(cohort / "manifest.csv") and phantom_manifest(_out(cohort) / "manifest.csv")
    plain = tmp_path / "plain"
    shutil.copytree(_out(cohort), _out(plain))
    shutil.copy(cohort / "manifest.csv", plain / "manifest.csv")
    assert not phantom_manifest(plain / "manifest.csv") and not phantom_manifest(_out(plain) / "manifest.csv")
    (plain / PHANTOM_MARKER).write_text("phantoms", encoding="utf-8")
    assert phantom_manifest(_out(plain) / "manifest.csv")


def test_a_mammo_flow_segments_with_the_chosen_network_and_the_proposal_names_it(cohort):
    from smartimaging.mammo import scene as mammo_scene
    from smartimaging.mammo.flow import MammoFlow
    from smartimaging.mammo.segment import MammoSegmenter
    from smartimaging.segments import MAMMO_SEGMENTS

    card = proposal_card_path(_out(cohort), NAME)
    flow = MammoFlow(create_headless_scene(), "cpu")
    reading = _open_at_key(flow, cohort)
    flow.segmenter_card = card
    flow.run(flow.segment())
    record = reading.keep_proposal()
    weights = card.with_suffix(".safetensors")
    assert record["model"] == {"id": NAME, "version": "1.0.0", "sha256": sha256_of(weights)}
    shown = labels_from_segmentation(flow.scene, flow.ai_segmentation, flow.primary, (MAMMO_SEGMENTS["mass"],))
    point = mammo_scene.point_from_markups(flow.primary, flow.point_node)
    segmenter = MammoSegmenter(load_model(card), torch.device("cpu"))  # the fine-tuned model, called directly
    direct = mammo_scene.segment(flow.scene, flow.primary, "mass", segmenter, point=point)
    assert shown.any() and np.array_equal(
        shown, labels_from_segmentation(flow.scene, direct, flow.primary, (MAMMO_SEGMENTS["mass"],)))

    flow.segmenter_card = None  # the demo U-Net again
    flow.run(flow.segment())
    assert reading.keep_proposal()["model"]["id"] == "mammo-mass-unet-demo"


@pytest.mark.parametrize("damage, expected", [
    (lambda card: card.with_suffix(".safetensors").write_bytes(card.with_suffix(".safetensors").read_bytes()[:-4]
                                                               + b"\0\0\0\1"),
     "do not match the checksum in their model card"),
    (lambda card: card.write_text(json.dumps({**json.loads(card.read_text(encoding="utf-8")),
                                              "task": "bonescan-segmenter"}), encoding="utf-8"),
     "task is 'bonescan-segmenter'"),
], ids=["tampered weights", "another task"])
def test_a_damaged_chosen_network_is_refused_with_a_message(cohort, tmp_path, damage, expected):
    from smartimaging.mammo.flow import MammoFlow

    card = tmp_path / NAME / f"{NAME}.json"
    shutil.copytree(proposal_card_path(_out(cohort), NAME).parent, card.parent)
    damage(card)
    flow = MammoFlow(create_headless_scene(), "cpu")
    _open_at_key(flow, cohort, -1)  # a case saved without an AI proposal
    flow.segmenter_card = card
    with pytest.raises(ModelError, match=expected):
        flow.run(flow.segment())
    assert flow.ai_segmentation is None  # no proposal by another network


def test_a_network_of_another_lesion_kind_is_refused(cohort):
    from smartimaging.mammo.flow import MammoFlow

    flow = MammoFlow(create_headless_scene(), "cpu")
    _open_at_key(flow, cohort, -1)
    flow.set_kind("calcification")
    flow.segmenter_card = proposal_card_path(_out(cohort), NAME)
    with pytest.raises(InputError, match=f"The proposal network {NAME} segments mass lesions, not calcification "
                                         "lesions: choose a calcification network"):
        flow.run(flow.segment())
    assert flow.ai_segmentation is None


def test_lvi_and_bone_scan_flows_segment_with_the_chosen_network(tmp_path):
    from smartimaging.bonescan.cohort import write_phantom_cohort
    from smartimaging.bonescan.flow import BoneScanFlow
    from smartimaging.lvi.cohort import write_lvi_phantom_cohort
    from smartimaging.lvi.flow import LVIFlow
    from smartimaging.reading import JobError

    write_lvi_phantom_cohort(tmp_path / "lvi", 1, seed=3)
    flow = LVIFlow(create_headless_scene(), "cpu")
    reading = _open_at_key(flow, tmp_path / "lvi")
    flow.segmenter_card = _renamed_demo("lvi-lesion-unet-demo", proposal_card_path(tmp_path, "lvi-unet-ft-1").parent,
                                        "lvi-unet-ft-1")
    flow.run(flow.segment())
    assert reading.keep_proposal()["model"]["id"] == "lvi-unet-ft-1"

    write_phantom_cohort(tmp_path / "bonescan", 1, seed=4)
    flow = BoneScanFlow(create_headless_scene(), "cpu")
    reading = WorklistReading(flow, tmp_path / "bonescan")
    reading.open_case()
    flow.segmenter_card = _renamed_demo("bonescan-unet-demo", tmp_path / "bonescan-ft", "bonescan-unet-ft-1")
    flow.run(flow.segment())  # the worker job `bonescan-segment --segmenter CARD`
    assert reading.keep_proposal()["model"]["id"] == "bonescan-resnet34-demo + bonescan-unet-ft-1"
    weights = flow.segmenter_card.with_suffix(".safetensors")
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\1")  # tampered: the job refuses it, with the reason
    with pytest.raises(JobError, match="weights of model 'bonescan-unet-ft-1' do not match the checksum"):
        flow.run(flow.segment())


def test_too_few_corrected_cases_say_what_minimum_applies(cohort, tmp_path):
    manifest = _out(cohort) / "manifest.csv"
    assert check_finetune_data(MAMMO, manifest, "mass") == {"train": 3, "val": 2, "test": 3}
    with pytest.raises(InputError, match="No case of this worklist is done yet"):
        check_finetune_data(MAMMO, tmp_path / "manifest.csv", "mass")
    lines = manifest.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    only_train = [line for line in lines[1:] if line.split(",")[header.index("split")] == "train"]
    (tmp_path / "manifest.csv").write_text("\n".join([lines[0], *only_train]) + "\n", encoding="utf-8")
    assert (MIN_TRAINING, MIN_HELD_OUT) == (1, 1)
    with pytest.raises(InputError) as refused:
        check_finetune_data(MAMMO, tmp_path / "manifest.csv", "mass")
    assert str(refused.value).startswith(
        "Too few corrected cases to fine-tune: it needs at least 1 done mass case in the train split (to learn from) "
        "and 1 mass case in the test or val split (held out: Dice before and after is measured there); this "
        "worklist has 3 train, 0 val and 0 test mass cases done.")
    with pytest.raises(InputError, match="has 0 train, 0 val and 0 test calcification cases done"):
        check_finetune_data(MAMMO, manifest, "calcification")


def test_station_fine_tunes_on_the_worklist_and_segments_with_the_new_network(tmp_path_factory, tmp_path):
    """Headless Chromium on an 8-case mammography phantom worklist: Fine-tune (1 epoch) shows Dice before → after on
    the held-out cases as the new card records them, selects the new network, and Segment's kept proposal names it.
    The Model section's name field (same page) is wide enough for the longest default name.
    Its screenshot goes to $SMARTIMAGING_SCREENSHOTS or to pytest's temporary folder."""
    pytest.importorskip("trame_slicer")
    pytest.importorskip("playwright.sync_api")
    from PIL import Image
    from test_cohort_training import save_cases
    from web_station import (
        click_and_wait_idle,
        image_point_on_page,
        open_module,
        reset_views_when_sized,
        screenshot_folder,
        station_page,
        wait_for_case,
    )

    from smartimaging.mammo.cohort import write_mammo_phantom_cohort

    cohort = tmp_path / "cohort"
    write_mammo_phantom_cohort(cohort, 8, seed=5, kind="mass")
    save_cases(cohort)
    card = proposal_card_path(_out(cohort), NAME)
    shots = screenshot_folder(tmp_path_factory)
    with station_page(tmp_path_factory, ready_timeout_ms=120_000) as (page, _process):
        open_module(page, "Mammography Rad-score", 120_000)
        page.locator("#si-wl-folder").fill(str(cohort))
        page.locator("#si-wl-open-folder").click()
        page.wait_for_function("document.querySelector('#si-wl-case')?.innerText.startsWith('Case ')",
                               timeout=60_000)
        wait_for_case(page, 60_000)
        assert page.locator("#si-pn-name").input_value() == NAME
        assert "mammo-mass-unet-demo" in page.inner_text("#si-pn-card")
        # the Model section's name field shows its default name whole (it was cut to "mass-cohort-"), the Method too
        assert page.locator("#si-tr-name").input_value() == "mass-cohort-1"
        for field in ("#si-tr-name", "#si-tr-method"):
            assert page.eval_on_selector(field, "e => e.scrollWidth <= e.clientWidth && e.clientWidth >= 150"), field
        width = page.eval_on_selector("#si-tr-name", "e => e.clientWidth")
        assert width >= page.eval_on_selector("#si-tr-name", "e => { const c = document.createElement('canvas')"
                                              ".getContext('2d'); c.font = getComputedStyle(e).font; "
                                              "return c.measureText('calcification-cohort-1').width; }")

        page.locator("#si-pn-epochs").fill("1")
        assert page.inner_text("#si-pn-phantom").startswith("Synthetic phantoms (the cohort's marker file)")
        page.locator("#si-pn-finetune").click()
        page.locator("#si-pn-dice").wait_for(timeout=180_000)
        metrics = json.loads(card.read_text(encoding="utf-8"))["metrics"]
        rows = page.locator("#si-pn-dice tr")
        shown = dict(rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count()))
        assert metrics["dice_after"] >= metrics["dice_before"]  # else it is not chosen (test_a_worse_network...)
        assert shown["Fine-tuned"] == f"{NAME} (chosen for Segment)"
        assert shown["Dice before → after"] == (f"{metrics['dice_before']:.3f} → {metrics['dice_after']:.3f} "
                                                "(PHANTOM numbers)")
        assert shown["Measured on"] == "3 held-out mammograms ('test' split)" and metrics["phantom"]
        assert page.evaluate("window.trame.state.get('si_pn_model').MammoRadiomics") == str(card)
        assert f"{NAME} 1.0.0" in page.inner_text("#si-pn-card")
        assert page.locator("#si-pn-name").input_value() == "mass-unet-ft-2"
        page.locator("#si-proposal").screenshot(path=str(shots / "station_proposal_network.png"))

        case_id = page.inner_text("#si-wl-case").removeprefix("Case ")
        mask = np.asarray(Image.open(cohort / "masks" / f"{case_id}.png")) > 0
        rows_, cols = np.nonzero(mask)
        reset_views_when_sized(page)
        page.get_by_role("button", name="Place lesion point").click()
        page.mouse.click(*image_point_on_page(page, mask.shape[::-1], (cols.mean(), rows_.mean())))
        page.wait_for_function("!window.trame.state.get('si_placing')", timeout=10_000)
        click_and_wait_idle(page, "Segment")
        record = _out(cohort) / "cases" / case_id / "case.json"
        page.wait_for_function("document.querySelector('#si-segments')?.innerText.length > 0", timeout=10_000)
        assert json.loads(record.read_text(encoding="utf-8"))["model"]["id"] == NAME


def test_the_panel_refuses_too_few_cases_and_a_cancel_leaves_no_model_folder(cohort, tmp_path):
    """The section's callbacks on a trame state, without a browser: a worklist with no done case is refused with the
    core's message; a fine-tuning cancelled while it trains leaves no model folder and says so."""
    import asyncio
    from types import SimpleNamespace

    pytest.importorskip("trame_slicer")
    from trame.app import get_server

    from smartimaging.mammo.flow import MammoFlow
    from smartimaging.web.proposal_panel import ProposalPanel

    state = get_server("proposal-panel-test", client_type="vue3").state
    empty = tmp_path / "empty"
    empty.mkdir()
    state.si_wl_open = {MAMMO: str(empty)}
    station = SimpleNamespace(state=state, flows={MAMMO: MammoFlow(create_headless_scene(), "cpu")},
                              _scratch=SimpleNamespace(name=str(tmp_path)),
                              worklist_panel=SimpleNamespace(worklist={}.get))  # no worklist open in a tab
    panel = ProposalPanel(station)
    assert state.si_pn_name[MAMMO] == "mass-unet-ft-1" and not state.si_pn_phantom[MAMMO]  # no marker
    panel.on_finetune(MAMMO)
    assert state.si_pn_error[MAMMO].startswith("No case of this worklist is done yet") and not state.si_pn_running

    state.si_wl_open = {MAMMO: str(cohort)}
    panel.refresh(MAMMO)
    assert state.si_pn_phantom[MAMMO]  # the phantom cohort's marker
    name = state.si_pn_name[MAMMO]
    assert name == "mass-unet-ft-2" and [item["title"] for item in state.si_pn_models[MAMMO]][1:] == [
        f"{NAME} (fine-tuned on this cohort)"]
    state.si_pn_epochs = {MAMMO: "200"}

    async def cancel_while_training() -> None:
        panel.on_finetune(MAMMO)
        assert state.si_pn_running == MAMMO
        for _ in range(1200):
            if state.si_pn_message.startswith("fine-tuning for 200 epochs"):
                break
            await asyncio.sleep(0.1)
        panel.on_cancel()
        while state.si_pn_running:
            await asyncio.sleep(0.1)

    asyncio.run(cancel_while_training())
    assert state.si_pn_error[MAMMO] == "Cancelled: no network was written"
    assert not (_out(cohort) / "models" / "_proposal" / name).exists()
    assert state.si_pn_dice[MAMMO] == [] and state.si_pn_model[MAMMO] == ""

    # the job's result: a network whose held-out Dice fell is not chosen (the current one stays), one that did not is
    card = proposal_card_path(_out(cohort), NAME)
    result = {"card": str(card), "dice_before": 0.968, "dice_after": 0.966, "n": 5, "split": "test", "phantom": True}
    panel._finetuned(MAMMO, result)
    assert state.si_pn_model[MAMMO] == "" and panel.station.flows[MAMMO].segmenter_card is None
    assert state.si_pn_dice[MAMMO] == [
        ["Fine-tuned", NAME], ["Dice before → after", "0.968 → 0.966 (PHANTOM numbers)"],
        ["Measured on", "5 held-out mammograms ('test' split)"],
        ["Not chosen", "Dice fell 0.968 → 0.966 on the held-out cases: the current network stays chosen; choose it "
                       "yourself if you want it"]]
    panel._finetuned(MAMMO, {**result, "dice_before": 0.96681, "dice_after": 0.96679})  # shown as different
    assert state.si_pn_dice[MAMMO][1][1] == "0.96681 → 0.96679 (PHANTOM numbers)"
    panel._finetuned(MAMMO, {**result, "dice_after": 0.968, "phantom": False})
    assert state.si_pn_model[MAMMO] == str(card) and panel.station.flows[MAMMO].segmenter_card == card
    assert state.si_pn_dice[MAMMO][:2] == [["Fine-tuned", f"{NAME} (chosen for Segment)"],
                                          ["Dice before → after", "0.968 → 0.968"]]
