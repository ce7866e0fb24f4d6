"""Skeletal sites of bone-scan lesions (`bonescan.sites`): the phantom's metastasis sites named as the phantom draws
them, on both views, with the patient's side the same on the anterior and the (mirrored) posterior view."""

from __future__ import annotations

import numpy as np
import pytest

from smartimaging.bonescan.lesions import describe, lesion_components
from smartimaging.bonescan.sites import body_frame, skeletal_site
from smartimaging.phantoms.bonescan import COLS, LESION_SITES, PIXEL_MM, _Canvas, make_bone_scan_phantom

# LESION_SITES of the phantom (y, x: body height, px from the midline), in order, as a reader names them.
NAMES = ("thoracic spine", "lumbar spine", "skull", "ribs", "pelvis (ilium)", "lower lumbar spine or sacrum",
         "hip or proximal femur", "thoracic spine", "humerus")
MIDLINE_SITES = {0, 1, 5, 7}


@pytest.mark.parametrize("seed", [0, 2, 3])
def test_phantom_sites_and_sides_on_both_views(seed):
    """Seeds 2 and 3 have a bladder, which scales the heights (the phantom's pelvis lies low); seed 0 has none: its
    chest and head are named by the proportions alone."""
    phantom = make_bone_scan_phantom(seed)
    canvas = _Canvas(np.random.default_rng(seed))  # the phantom's body: its first draws from the same seed
    frames = {view: body_frame(counts, phantom.masks[view] == 2) for view, counts in phantom.views.items()}
    assert (frames["anterior"][3] is not None) == phantom.bladder_present
    for index, ((y, x, *_), name) in enumerate(zip(LESION_SITES, NAMES, strict=True)):
        if not phantom.bladder_present and y > 0.4:
            continue
        for side, patient_side in ((1, "left"), (-1, "right")):  # x > 0: the viewer's right on the anterior view
            row, col = canvas.point(y, side * x)
            front = skeletal_site(row, col, "anterior", frames["anterior"], (PIXEL_MM, PIXEL_MM))
            back = skeletal_site(row, COLS - 1 - col, "posterior", frames["posterior"], (PIXEL_MM, PIXEL_MM))
            expected = name if index in MIDLINE_SITES else f"{patient_side} {name}"
            assert back == expected
            assert front == ("sternum or thoracic spine" if name == "thoracic spine" else expected)


@pytest.mark.parametrize("seed", [2, 3])
def test_an_iliac_lesion_anywhere_on_the_wing_is_pelvis_not_ribs_or_a_hand(seed):
    """The phantom draws iliac metastases up to 15 px farther out and 0.03 of the body higher or lower than its
    site's centre (LESION_SITES' jitter): the iliac wing's outer edge and crest, not the hand beside it nor the lower
    ribs above it."""
    phantom = make_bone_scan_phantom(seed)
    canvas = _Canvas(np.random.default_rng(seed))
    frame = body_frame(phantom.views["anterior"], phantom.masks["anterior"] == 2)
    y, x, jitter_y, jitter_x, _ = LESION_SITES[NAMES.index("pelvis (ilium)")]
    for side, patient_side in ((1, "left"), (-1, "right")):
        for height, off in ((y, x + jitter_x), (y - jitter_y, x), (y - jitter_y, x + jitter_x), (y + jitter_y, x)):
            row, col = canvas.point(height, side * off)
            assert skeletal_site(row, col, "anterior", frame, (PIXEL_MM, PIXEL_MM)) == f"{patient_side} pelvis (ilium)"


def test_lesions_carry_their_site_and_the_list_keeps_the_mm_position():
    phantom = make_bone_scan_phantom(2)
    lesions = lesion_components(phantom.masks, phantom.views, dict.fromkeys(phantom.views, (PIXEL_MM, PIXEL_MM)))
    assert lesions and all(lesion["site"] for lesion in lesions)
    by_id = {lesion["id"]: lesion for lesion in lesions}
    for lesion in lesions:  # one site seen on both views: the same bone, the same side of the patient
        if lesion["matches"]:
            assert lesion["site"].replace("sternum or ", "") == by_id[lesion["matches"]]["site"].replace(
                "sternum or ", "")
    texts = describe(lesions[0])
    assert texts["site"] == lesions[0]["site"] and texts["position"].endswith(" mm") and "x " in texts["position"]
    assert describe({**lesions[0], "site": None})["site"] == texts["position"]  # a result.json without sites
    lateral = next(lesion for lesion in lesions if lesion["site"].startswith(("left ", "right ")))
    shown = describe(lateral, None, [lateral["view"]])["site"]  # a view the file does not record
    assert shown == f"{lateral['site']} (if this is the {lateral['view']} view)"


def test_no_body_no_site():
    assert body_frame(np.zeros((512, 128), np.float32)) is None
    labels = np.zeros((512, 128), np.uint8)
    labels[10:13, 10:13] = 1
    found = lesion_components({"anterior": labels}, {"anterior": np.zeros((512, 128), np.float32)},
                              {"anterior": (2.0, 2.0)})
    assert found[0]["site"] is None and describe(found[0])["site"] == "x 22 mm, y 22 mm"


def test_the_real_ge_scan_with_its_bladder():
    """The real GE scan (one view; its AI segmentation's bladder at rows 405-430 of a body from row 96 to 856): the
    bladder's neighbours are pelvis, the top of the head skull, the lower legs below the knees."""
    from smartimaging.bonescan.views import load_bone_scan
    from smartimaging.web.cases import GE_BONE_SCAN

    counts = load_bone_scan([GE_BONE_SCAN]).views[0].counts
    bladder = np.zeros(counts.shape, bool)
    bladder[405:430, 120:146] = True
    frame = body_frame(counts, bladder)
    assert 80 < frame[0] < 110 and 840 < frame[1] < 870 and 125 < frame[2] < 140  # not the noise above the head
    site = {row: skeletal_site(row, frame[2] + 25, "anterior", frame, (2.26, 2.26)) for row in (110, 418, 760)}
    assert site == {110: "left skull", 418: "left pelvis (acetabulum, ischium)", 760: "left lower leg (tibia, fibula)"}


def test_only_this_patients_comparable_results_join_the_follow_up():
    from smartimaging.bonescan.followup import StudyPoint, patient_key, why_not_joinable

    grid = {"views": 2, "grid": [1024, 256], "pixel_mm": [2.26, 2.26]}
    current = StudyPoint("current", 0.2, None, grid, False, "c")
    earlier = StudyPoint("earlier", 0.1, None, grid, False, "e")
    assert patient_key("BS00002") == patient_key(" BS00002 ") != patient_key("8NM1") and patient_key("") is None
    assert why_not_joinable(earlier, [], current, True) == ""
    assert why_not_joinable(earlier, [], current, None) == ""  # a file without a patient: the acquisition decides
    assert why_not_joinable(earlier, [], current, False) == "another patient"
    assert why_not_joinable(earlier, [earlier], current, True) == "already in the follow-up"
    other_camera = StudyPoint("GE", 0.1, None, {"views": 1}, False, "g")
    assert "acquired differently (number of views 1 vs 2)" in why_not_joinable(other_camera, [], current, None)
