"""Counts with their nouns, as every page text, result row and message says them: "1 lesion", "0 lesions",
"3 studies" (GUI-free: the station, the desktop modules and the CLI call it)."""

from __future__ import annotations

_ES = ("s", "x", "z", "ch", "sh")


def plural(noun: str) -> str:
    """The plural of a noun or of a phrase ending in one ("more reason" -> "more reasons"): "study" -> "studies",
    "box" -> "boxes", else an "s"."""
    if noun.endswith("y") and noun[-2:-1] not in ("", *"aeiou"):
        return noun[:-1] + "ies"
    return noun + ("es" if noun.endswith(_ES) else "s")


def counted(n: int, noun: str, plural_form: str | None = None) -> str:
    """`n` and the noun, singular for exactly one: counted(1, "lesion") == "1 lesion", counted(0, "lesion") ==
    "0 lesions"; `plural_form` for an irregular noun."""
    return f"{n} {noun if n == 1 else plural_form or plural(noun)}"
