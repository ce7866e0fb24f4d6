"""The GUI-free teaching session (`teaching_session.TeachingSession`) that the station's Teaching section and the
desktop modules' drive, on real MRML (slicer-core) with the real worker: a phantom set opened case by case, Check as a
flow step (the AI's outline made by Segment in the worker), the outline locked and the three outlines shown, one
score-sheet row per case (a second Check replaces it), the outlines gone when another case opens or another image
replaces the case; a bone scan checked spot by spot with the view names for the GUIs' spot buttons."""

import numpy as np
import pytest

from smartimaging.bonescan.flow import BoneScanFlow
from smartimaging.errors import InputError
from smartimaging.mammo.flow import MammoFlow
from smartimaging.mrml import create_headless_scene
from smartimaging.teaching_scene import OUTLINE_ROLE
from smartimaging.teaching_session import SHEET_COLUMNS, SPOT_SHEET_COLUMNS, TeachingSession
from smartimaging.worklist_scene import set_segments


def _outline_roles(scene) -> list[str]:
    nodes = scene.GetNodesByClass("vtkMRMLSegmentationNode")
    return [role for i in range(nodes.GetNumberOfItems())
            if (role := nodes.GetItemAsObject(i).GetAttribute(OUTLINE_ROLE))]


def test_a_mammography_set_checked_case_by_case(tmp_path):
    scene = create_headless_scene()
    flow = MammoFlow(scene)
    session = TeachingSession(flow, tmp_path / "scratch")
    with pytest.raises(InputError, match="Open a case of the teaching set first"):
        flow.run(session.check("malignant"))
    session.open_set(session.phantom_set())
    assert session.columns == list(SHEET_COLUMNS) and session.case_title == ""
    assert session.blocks() == {"segment": False, "draw": False, "compute": False}  # no case open
    session.open_case(0)
    assert session.is_open and session.case_title.startswith("Case 1 of 3: ") and session.has_next \
        and not session.has_previous
    assert session.blocks() == {"segment": True, "draw": False, "compute": True}  # no AI before Check
    with pytest.raises(InputError, match="Draw your outline first"):
        flow.run(session.check("malignant"))
    key = session.set.key()
    flow.draw_by_hand()
    drawn = np.zeros(key.shape, np.uint8)
    rows, cols = np.nonzero(key[0])
    drawn[0, rows.min():rows.max() + 1, cols.min():(cols.min() + cols.max()) // 2] = 1  # the left half of the box
    set_segments(scene, flow.segmentation, flow.primary, drawn, flow.drawn_segments)
    with pytest.raises(InputError, match="The call must be one of"):
        flow.run(session.check("probably"))

    locked = []
    messages = []
    checked = flow.run(session.check("malignant", lambda fraction, message: messages.append(message),
                                     lambda: locked.append(flow.segmentation)))
    assert locked and locked[0] is not None and flow.segmentation is None  # the GUI let go, then the outline locked
    assert "Check: the AI's outline" in messages
    assert checked.result.dice_ai_key > 0.6 > checked.result.dice_student_key > 0.2  # the AI found the lesion
    assert checked.ai_source.endswith("the AI's outline was made now by the AI's Segment, prompted at the answer "
                                      "key's centre.")
    assert checked.views is None and checked.shown is None  # one image: no slice to name
    assert sorted(_outline_roles(scene)) == ["ai", "key", "student"]
    assert checked.sentences()["student"] == checked.result.student.summary
    assert [row[0] for row in session.sheet_rows()] == [session.set.cases[0].case_id]
    assert checked.replaced_text == ""
    assert checked.lines() == [f"Dice with the key: you {checked.result.dice_student_key:.3f} · AI "
                               f"{checked.result.dice_ai_key:.3f}", checked.result.call_summary,
                               checked.result.student.summary, checked.result.ai.summary, checked.ai_source]
    assert session.blocks() == {"segment": True, "draw": True, "compute": False}  # checked: locked, computable
    with pytest.raises(InputError, match="This case is checked: open it again"):  # no second row of an empty outline
        flow.run(session.check("malignant"))
    with pytest.raises(InputError, match="No teaching case waits for its pixel size"):  # its size is known
        session.give_pixel_size("0.5")
    for index in ("1", None, 1.0, True, -1):
        with pytest.raises(InputError, match="No such case"):
            session.open_case(index)
    saved = session.save_sheet(tmp_path)
    assert session.save_sheet(tmp_path).name == "teaching-scores (2).csv" and saved.name == "teaching-scores.csv"
    assert saved.read_bytes() == session.sheet.to_csv_text().encode("utf-8")
    for folder in (tmp_path / "missing", saved, ""):  # not a folder (a file, nothing chosen): refused, nothing written
        with pytest.raises(InputError, match="folder to save the score sheet in"):
            session.save_sheet(folder)
    assert sorted(p.name for p in tmp_path.glob("*.csv")) == ["teaching-scores (2).csv", "teaching-scores.csv"]

    session.open_case(0)  # checked again: the new row replaces the earlier one
    flow.draw_by_hand()
    set_segments(scene, flow.segmentation, flow.primary, (key != 0).astype(np.uint8), flow.drawn_segments)
    again = flow.run(session.check("benign"))
    assert len(session.sheet.rows) == 1 and again.replaced is checked.score
    assert again.replaced_text.startswith(f"Case {session.set.cases[0].case_id} was checked again")
    assert again.result.dice_student_key == pytest.approx(1.0)

    session.open_case(1)  # the outlines leave with the case
    assert _outline_roles(scene) == [] and session.checked is None and session.has_previous
    assert not session.replaced()
    flow.load("mammogram", session.set.cases[2].inputs["mammogram"], "another image")
    assert session.replaced() and not session.is_open
    with pytest.raises(InputError, match="No such case"):
        session.open_case(3)
    session.close()
    assert session.set is None and len(session.sheet.rows) == 1  # the sheet stays until another set opens


def test_a_bone_scan_negative_study_checked_with_nothing_drawn(tmp_path):
    scene = create_headless_scene()
    flow = BoneScanFlow(scene)
    session = TeachingSession(flow, tmp_path / "scratch")
    session.open_set(session.phantom_set())
    assert session.columns == [*SHEET_COLUMNS, *SPOT_SHEET_COLUMNS]
    session.open_case(1)  # PHANTOM_BONE_SCANS: the negative study
    checked = flow.run(session.check("no"))
    assert checked.views == ["anterior", "posterior"] and checked.result.call == "right"
    assert checked.result.dice_student_key is None
    sentences = checked.sentences()
    assert sentences["student"] == "No metastasis in the key, and you outlined no spot."
    assert sentences["no_dice"].startswith("False-positive spots: you 0") and \
        sentences["no_dice"].endswith("(no Dice: no lesion in the key)")
    assert session.sheet_rows()[0][7:] == ["0/0", "0"]
