"""The declared minimum versions as pip constraints: `name==floor` for every `name>=floor` requirement of
pyproject.toml (the runtime dependencies and the extras named on the command line), markers kept.
`make test-minimums` installs them into a fresh venv and runs the tests."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
FLOOR = re.compile(r"(?P<name>[A-Za-z0-9_.-]+)(\[[^\]]*\])?>=(?P<version>[^,;\s]+)\s*(;\s*(?P<marker>.+))?")


def minimum_constraints(extras: list[str]) -> list[str]:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    requirements = project["dependencies"] + [r for extra in extras for r in project["optional-dependencies"][extra]]
    constraints = []
    for requirement in requirements:
        match = FLOOR.fullmatch(requirement.strip())
        if match:
            marker = f"; {match['marker']}" if match["marker"] else ""
            constraints.append(f"{match['name']}=={match['version']}{marker}")
    return constraints


if __name__ == "__main__":
    print("\n".join(minimum_constraints(sys.argv[1:])))
