"""Bad-input cases as data: what a user tries and what they get.

Every `Testing/cases_*.py` module holds a list `CASES` of :class:`BadInput`. `test_bad_input.py` runs each case
through the CLI and checks the contract (exit code, one clear line, no traceback, inputs untouched, no partial
outputs); `tools/bad_input_table.py` writes the README's "Bad input" table from the same cases.
"""

from __future__ import annotations

import hashlib
import importlib
import resource
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

TESTING = Path(__file__).resolve().parent


@dataclass(frozen=True)
class BadInput:
    """One bad input. `build(folder)` writes the inputs under `folder` and returns the CLI arguments.

    `expect` is a fragment of the one line the user reads: the refusal (`exit_code` 2) or, with `exit_code` 0, a
    warning printed beside a result that is still produced.
    """

    area: str
    attempt: str
    build: Callable[[Path], list[str]]
    expect: str
    exit_code: int = 2

    @property
    def id(self) -> str:
        return f"{self.area}: {self.attempt}"


def all_cases() -> list[BadInput]:
    """Every case of every `cases_*.py` module, in file order."""
    cases = []
    for path in sorted(TESTING.glob("cases_*.py")):
        cases += importlib.import_module(path.stem).CASES
    return cases


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` (relative path -> digest), folders as empty entries."""
    state = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        state[key] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "<dir>"
    return state


def message_lines(stderr: str) -> list[str]:
    """The user-facing lines ('error: ...' / 'warning: ...') of a run's stderr; progress bars left out."""
    return [line.strip() for line in stderr.splitlines() if line.startswith(("error:", "warning:"))]


@contextmanager
def file_size_limit(size: int) -> Iterator[None]:
    """Writes past `size` bytes fail with EFBIG, as writes on a full disk fail with ENOSPC (Python ignores SIGXFSZ)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
