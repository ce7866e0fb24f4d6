"""The rows of a result's CSV (`case_report.export_csv`): the result table as the scene holds it, with its domain check
written out in full: the verdict, then every reason on a row of its own (the table's "Domain check" cell shortens
them to "...; and 3 more"). A table whose second column is not a value (LVI: Sequence, Model, ...) gets these texts
(the domain check, the AI-vs-edited results) as a block of its own after a blank row, under its own header, so that
none sits in a "Model" column."""

from __future__ import annotations

from .result_nodes import DOMAIN_ROW

REASON = "Domain check reason"
BLOCK_HEADER = ["Item", "Text"]


def csv_rows(columns: list[str], rows: list[list[str]], domain: dict | None,
             comparison: list[list[str]] = ()) -> list[list[str]]:
    """The CSV's rows after its header `columns`: `rows` with the "Domain check" row replaced by the full check
    (`domain`); `comparison`: the result's AI-vs-edited rows (`Result.comparison`), also among `rows`."""
    rows = [list(row) for row in rows]
    at = next((index for index, row in enumerate(rows) if row and row[0] == DOMAIN_ROW), None)
    check = rows[at:at + 1] if at is not None else []
    if check and domain and domain.get("reasons"):
        verdict = (str(check[0][1]) if len(check[0]) > 1 else "").split(" (", 1)[0] or str(domain.get("verdict"))
        check = [[DOMAIN_ROW, verdict], *([REASON, str(reason)] for reason in domain["reasons"])]
    if len(columns) <= 2 or columns[1] == "Value":
        return rows if at is None else [*rows[:at], *check, *rows[at + 1:]]
    texts = [row[:2] for row in rows if row[:2] in comparison]
    others = [row for index, row in enumerate(rows) if index != at and row[:2] not in comparison]
    block = [row[:2] for row in check] + texts
    return [*others, [], BLOCK_HEADER, *block] if block else others
