"""The build step pyproject.toml cannot express: the checkout's `Resources/<kind>` folders, for the kinds listed in
`smartimaging/resources.py` (KINDS, the one list that the wheel and the Slicer extension's CMake both read), copied
into the built package as `smartimaging/Resources/<kind>` (package data). An editable install reads the checkout's
`Resources/` in place."""

import ast
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def resource_kinds() -> tuple[str, ...]:
    """`KINDS` of smartimaging/resources.py, read without importing the package."""
    module = ast.parse((ROOT / "smartimaging" / "resources.py").read_text(encoding="utf-8"))
    return next(ast.literal_eval(node.value) for node in module.body
                if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "KINDS")


class BuildWithResources(build_py):
    """build_py, then the resources copied beside the code (not for an editable install)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for kind in resource_kinds():
            shutil.copytree(ROOT / "Resources" / kind, Path(self.build_lib) / "smartimaging" / "Resources" / kind,
                            dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithResources})
