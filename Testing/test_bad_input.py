"""Every bad-input case of `Testing/cases_*.py` through the CLI: the exit code, one clear line, no traceback,
inputs never modified, no partial outputs; and the README's "Bad input" table matches the cases."""

from __future__ import annotations

import sys

import pytest
from badinput import all_cases, message_lines, snapshot

from smartimaging.cli import main

CASES = all_cases()
REPO_README = __import__("pathlib").Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case, tmp_path, capsys):
    argv = case.build(tmp_path)
    before = snapshot(tmp_path)
    capsys.readouterr()
    code = main(argv)
    stderr = capsys.readouterr().err
    assert code == case.exit_code, stderr
    assert "Traceback" not in stderr
    lines = message_lines(stderr)
    if case.exit_code == 2:
        errors = [line for line in lines if line.startswith("error:")]
        assert len(errors) == 1, stderr
        assert case.expect in errors[0], stderr
        assert snapshot(tmp_path) == before, "a refused run changed or left files"
    else:
        assert any(line.startswith("warning:") and case.expect in line for line in lines), stderr
        after = snapshot(tmp_path)
        assert {k: v for k, v in after.items() if k in before} == before, "an input was modified"


def test_readme_bad_input_table_is_generated_from_the_cases():
    sys.path.insert(0, str(REPO_README.parent / "tools"))
    from bad_input_table import README_BEGIN, README_END, table_rows

    readme = REPO_README.read_text(encoding="utf-8")
    assert README_BEGIN in readme and README_END in readme
    block = readme.split(README_BEGIN)[1].split(README_END)[0]
    rows = [line for line in block.splitlines() if line.startswith("| ") and not line.startswith("| ---")][1:]
    assert [row.split(" | ")[:2] for row in rows] == [row.split(" | ")[:2] for row in table_rows(CASES)]
    for row, case in zip(rows, CASES, strict=True):
        assert case.expect.replace("|", "\\|") in row, f"stale README row {case.id!r}: run tools/bad_input_table.py"


def test_ctrl_c_exits_130_with_one_line(monkeypatch, tmp_path, capsys):
    from smartimaging.mammo import commands

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "phantoms", interrupted)
    assert main(["mammo", "phantoms", "--out", str(tmp_path / "out"), "--n", "2"]) == 130
    assert message_lines(capsys.readouterr().err) == ["error: cancelled (Ctrl+C); nothing was written"]
