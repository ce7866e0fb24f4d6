"""Counts with their nouns (`smartimaging.wording`): singular for exactly one, as every page text says them."""

from __future__ import annotations

from smartimaging.wording import counted, plural


def test_one_is_singular_every_other_count_plural():
    assert [counted(n, "lesion") for n in (0, 1, 2)] == ["0 lesions", "1 lesion", "2 lesions"]
    assert counted(1, "more reason") == "1 more reason" and counted(3, "more reason") == "3 more reasons"
    assert [plural(noun) for noun in ("study", "day", "box", "patch", "voxel")] == [
        "studies", "days", "boxes", "patches", "voxels"]
    assert counted(2, "criterion", "criteria") == "2 criteria"
