"""Source rules read with `ast` that no linter checks.

SimpleITK's `GetArrayViewFromImage(image)` is a view into the image's buffer that does not keep the image alive: on a
temporary (`GetArrayViewFromImage(read_volume(path))`) the image is freed while the view is read, and the values are
whatever the memory then holds (a negative bone scan's mask once read as outlining a metastasis in CI).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("smartimaging", "Testing", "benchmarks", "tools", "MammoRadiomics", "BreastLVI", "BoneScanBSTBI",
           "DCESynthesis")


def views_of_temporaries(source: str) -> list[int]:
    """The lines where `GetArrayViewFromImage` is given a call's result (an image nothing else holds)."""
    return sorted(node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
            == "GetArrayViewFromImage" and node.args and isinstance(node.args[0], ast.Call))


def test_no_array_view_of_a_temporary_image():
    found = [f"{path.relative_to(ROOT)}:{line}" for folder in SOURCES for path in sorted((ROOT / folder).rglob("*.py"))
             for line in views_of_temporaries(path.read_text(encoding="utf-8"))]
    assert found == [], "GetArrayViewFromImage of a temporary image (use GetArrayFromImage, or keep the image):\n" + \
        "\n".join(found)


def test_the_rule_finds_a_view_of_a_temporary_and_passes_a_kept_image():
    assert views_of_temporaries("a = sitk.GetArrayViewFromImage(read_volume(p)) == 1\n"
                                "b = GetArrayViewFromImage(sitk.Cast(i, 1))\n") == [1, 2]
    assert views_of_temporaries("image = read_volume(p)\na = sitk.GetArrayViewFromImage(image)\n"
                                "b = sitk.GetArrayFromImage(read_volume(p))\n") == []
