"""The rows of a result's CSV (`case_report.export_csv`): the result table as the scene holds it, with its domain check
written out in full: the verdict, then every reason on a row of its own (the table's "Domain check" cell shortens
them to "...; and 3 more"). A table whose second column is not a value (LVI: Sequence, Model, ...) gets the domain
check as a block of its own after a blank row, under its own header, so that no reason sits in a "Model" column."""

from __future__ import annotations

from .result_nodes import DOMAIN_ROW

REASON = "Domain check reason"
BLOCK_HEADER = ["Domain check", "Text"]


def csv_rows(columns: list[str], rows: list[list[str]], domain: dict | None) -> list[list[str]]:
    """The CSV's rows after its header `columns`: `rows` with the "Domain check" row replaced by the full check."""
    at = next((index for index, row in enumerate(rows) if row and row[0] == DOMAIN_ROW), None)
    if at is None or not domain or not domain.get("reasons"):
        return [list(row) for row in rows]
    text = str(rows[at][1]) if len(rows[at]) > 1 else ""
    verdict = text.split(" (", 1)[0] or str(domain.get("verdict", ""))
    check = [[DOMAIN_ROW, verdict], *([REASON, str(reason)] for reason in domain["reasons"])]
    others = [list(row) for index, row in enumerate(rows) if index != at]
    if len(columns) <= 2 or columns[1] == "Value":
        return [*others[:at], *check, *others[at:]]
    return [*others, [], BLOCK_HEADER, *check]
