"""A result table node read back for the reader (desktop modules and reading station alike): the result's domain
check (issue 12 §3), kept by the scene adapters as the "domain" of the JSON record in a SmartImaging.* attribute and
as the table's "Domain check" row."""

from __future__ import annotations

import json
from dataclasses import dataclass

DOMAIN_ROW = "Domain check"
VERDICTS = ("inside", "outside", "unknown")


@dataclass
class RecordedResult:
    """A result in the scene kept as its JSON record, which carries the result's warnings and domain check."""
    record: dict

    @property
    def warnings(self) -> list[str]:
        return list(self.record.get("warnings", []))

    @property
    def domain(self) -> dict | None:
        return self.record.get("domain")


def domain_check(node, rows: list[list[str]] | None = None) -> dict | None:
    """{"verdict", "reasons", "text"} of the result held by a node (its table, or a result volume such as the
    synthetic DCE): the record's "domain", else the "Domain check" row of `rows` (default: a table node's own rows;
    verdict: the text's first word, "unknown" unless inside/outside); None when the result has neither."""
    for name in (node.GetAttributeNames() or ()) if node is not None else ():
        if not name.startswith("SmartImaging."):
            continue
        try:
            record = json.loads(node.GetAttribute(name))
        except ValueError:
            continue
        domain = record.get("domain") if isinstance(record, dict) else None
        if isinstance(domain, dict) and domain.get("verdict") in VERDICTS:
            return {"verdict": domain["verdict"], "reasons": [str(r) for r in domain.get("reasons") or []],
                    "text": str(domain.get("text") or domain["verdict"])}
    if rows is None:
        is_table = node is not None and node.IsA("vtkMRMLTableNode")
        rows = [[node.GetCellText(r, 0), node.GetCellText(r, 1)] for r in range(node.GetNumberOfRows())] \
            if is_table else []
    text = next((row[1] for row in rows if len(row) > 1 and row[0] == DOMAIN_ROW), None)
    if text is None:
        return None
    words = text.split()
    verdict = words[0].lower() if words and words[0].lower() in VERDICTS[:2] else "unknown"
    return {"verdict": verdict, "reasons": [], "text": text}


def domain_sentence(domain: dict) -> str:
    """One line for the reader: the check, and for an outside verdict that the score is not to be relied on."""
    if domain["verdict"] == "outside":
        return f"Domain check: {domain['text']}. The score may be meaningless for this image: do not rely on it."
    return f"Domain check: {domain['text']}"
