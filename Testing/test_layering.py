"""The package's import structure (DESIGN.md: imports point down only), read from the source with `ast`: every
`import` and `from ... import` of every module, at module level and inside functions, relative ones resolved, and
`importlib.import_module("smartimaging...")` with a literal name.

- no import cycle between smartimaging modules;
- no import from a lower layer up to a higher one (LAYERS);
- no import from one task (bonescan, mammo, lvi, dce) into another: what two tasks share lives in a shared module;
- no algorithm module (and not the Slicer-free worker) imports slicer, vtk, qt or trame.
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "smartimaging"
TASKS = ("bonescan", "mammo", "lvi", "dce")
GUI_PACKAGES = ("slicer", "vtk", "qt", "ctk", "trame", "trame_server", "trame_slicer", "PyTorchUtils")

# The layers, lowest first; a module may import its own layer and the layers below it. Patterns are fnmatch patterns
# on module names ("<task>" stands for each task); every module must be in exactly one layer.
LAYERS = (
    # shared algorithms: images and files, networks and their cards, evaluation, phantoms, training, radiomics,
    # result files (segmentations, overlay PNGs), the resources' folders
    ("core", ("smartimaging", "smartimaging.errors", "smartimaging.limits", "smartimaging.io", "smartimaging.geometry",
              "smartimaging.wording", "smartimaging.presentation", "smartimaging.feature_names",
              "smartimaging.manifest", "smartimaging.domain", "smartimaging.evaluation", "smartimaging.classical",
              "smartimaging.training", "smartimaging.radiomics", "smartimaging.segments", "smartimaging.segfile",
              "smartimaging.dicom_series", "smartimaging.dicom_seg", "smartimaging.dicom_sr",
              "smartimaging.dicom_outputs", "smartimaging.overlays", "smartimaging.resources", "smartimaging.models",
              "smartimaging.models.*", "smartimaging.phantoms", "smartimaging.phantoms.*", "smartimaging.report",
              "smartimaging.record_report", "smartimaging.privacy", "smartimaging.teaching",
              "smartimaging.finetune")),
    # each task's algorithms (numpy, SimpleITK, torch, MONAI, pyradiomics, scikit-learn), the fresh-phantom
    # measurement of every task's demo models, the worklist of a cohort (it checks rows with the tasks' own rules) and
    # the training of their classifiers on it (cohort_training; a task's own part in it: lvi.worklist_training,
    # dce.worklist_training)
    ("task algorithms", ("smartimaging.<task>", "smartimaging.<task>.*", "smartimaging.fresh_phantoms",
                         "smartimaging.cohort_training", "smartimaging.proposal_networks", "smartimaging.worklist")),
    # the Slicer-free worker process that runs long jobs of the algorithms (started by the reading flows)
    ("worker", ("smartimaging.worker", "smartimaging.warm_worker")),
    # MRML adapters: they take a vtkMRMLScene and nodes; the GUI-free reading flows of the two GUIs drive them
    ("MRML adapters", ("smartimaging.mrml", "smartimaging.segmentation_nodes", "smartimaging.result_nodes",
                       "smartimaging.worklist_scene", "smartimaging.reading", "smartimaging.explain",
                       "smartimaging.display", "smartimaging.teaching_scene", "smartimaging.teaching_session",
                       "smartimaging.<task>.scene", "smartimaging.<task>.flow", "smartimaging.case_report",
                       "smartimaging.bonescan.reading_nodes", "smartimaging.heat_legend", "smartimaging.exports",
                       "smartimaging.result_csv")),
    # front-ends: the CLI, the browser station, the desktop widgets' helpers, the demo report
    ("front-ends", ("smartimaging.cli", "smartimaging.cli_common", "smartimaging.<task>.commands", "smartimaging.web",
                    "smartimaging.web.*", "smartimaging.demo", "smartimaging.desktop", "smartimaging.desktop_sections",
                    "smartimaging.desktop_worklist", "smartimaging.desktop_training", "smartimaging.desktop_proposal",
                    "smartimaging.desktop_teaching",
                    "smartimaging.slicer_dependencies", "smartimaging.slicer_startup")),
)
ALGORITHM_LAYERS = ("core", "task algorithms", "worker")


def modules_of(package: Path) -> dict[str, Path]:
    """Dotted name -> file of every module under `package` (a package is its __init__.py)."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imported_names(tree: ast.AST, module: str, is_package: bool):
    """(absolute dotted name, line) of every import in `tree`, relative ones resolved against `module`."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module if is_package else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module
            for alias in node.names:  # `from package import submodule` imports the submodule
                yield f"{source}.{alias.name}", node.lineno
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None))
              == "import_module" and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            yield node.args[0].value, node.lineno


def import_graph(package: Path) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """Imports between the package's modules ({module: {imported module: line}}) and of outside top-level packages
    ({module: {package: line}})."""
    modules = modules_of(package)
    internal: dict[str, dict[str, int]] = {}
    external: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        internal[module], external[module] = {}, {}
        for name, line in _imported_names(tree, module, path.name == "__init__.py"):
            if name.split(".")[0] != package.name:
                external[module].setdefault(name.split(".")[0], line)
                continue
            while name not in modules:  # `from x import attribute`: the module is x
                name = name.rpartition(".")[0]
            if name != module:
                internal[module].setdefault(name, line)
    return internal, external


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle [a, b, ..., a], or None (depth-first search, modules in sorted order)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = "open"
        stack.append(module)
        for imported in sorted(graph.get(module, ())):
            if state.get(imported) == "open":
                return stack[stack.index(imported):] + [imported]
            if imported not in state and (cycle := visit(imported)):
                return cycle
        stack.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (cycle := visit(module)):
            return cycle
    return None


def chain(graph: dict[str, dict[str, int]], modules: list[str]) -> str:
    """`a (line 12) -> b (line 3) -> c`: each import with the line of the importing module that makes it."""
    links = [f"{a} (line {graph[a][b]}) -> " for a, b in zip(modules, modules[1:], strict=False)]
    return "".join(links) + modules[-1]


def layers_of(module: str) -> set[str]:
    """The layers whose patterns match the module; a pattern without wildcard (`smartimaging.mammo.scene`) wins over
    one with (`smartimaging.mammo.*`)."""
    for exact in (True, False):
        found = {name for name, patterns in LAYERS for pattern in patterns for task in TASKS
                 if ("*" not in pattern) == exact and fnmatch.fnmatchcase(module, pattern.replace("<task>", task))}
        if found:
            return found
    return set()


def layer_of(module: str) -> str | None:
    """The module's layer, None when it is not in exactly one (test_every_module_is_in_one_layer says so)."""
    found = layers_of(module)
    return next(iter(found)) if len(found) == 1 else None


def task_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in TASKS else None


GRAPH, EXTERNAL = import_graph(PACKAGE)
RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}


def test_the_graph_is_read_from_module_and_function_level_imports():
    """The checker sees what the rules are about (lazy imports inside functions included)."""
    assert len(GRAPH) > 50
    assert "smartimaging.errors" in GRAPH["smartimaging.cli"]  # module level, relative
    assert "smartimaging.demo" in GRAPH["smartimaging.cli"]  # inside a function
    assert "smartimaging.mammo.search" in GRAPH["smartimaging.mammo.classify"]
    for task_part in ("smartimaging.lvi.worklist_training", "smartimaging.dce.worklist_training"):
        assert task_part in GRAPH["smartimaging.cohort_training"]  # task code, a layer down
        assert layer_of(task_part) == "task algorithms"
        assert "smartimaging.cohort_training" not in GRAPH[task_part]  # the shared part calls it, not the reverse


def test_no_import_cycle_between_smartimaging_modules():
    cycle = find_cycle(GRAPH)
    assert cycle is None, f"import cycle: {chain(GRAPH, cycle)}"


def test_every_module_is_in_one_layer():
    wrong = [f"{module} is in {sorted(layers_of(module)) or 'no layer'}" for module in GRAPH
             if len(layers_of(module)) != 1]
    assert not wrong, f"put each module in exactly one of LAYERS ({Path(__file__).name}):\n" + "\n".join(wrong)


def test_imports_point_down_the_layers():
    upward = [f"{chain(GRAPH, [module, imported])}: {layer_of(module)} imports {layer_of(imported)}"
              for module, imports in GRAPH.items() for imported in imports
              if layer_of(module) and layer_of(imported) and RANK[layer_of(imported)] > RANK[layer_of(module)]]
    assert not upward, "imports up the layers:\n" + "\n".join(upward)


def test_no_task_imports_another_task():
    sideways = [chain(GRAPH, [module, imported]) for module, imports in GRAPH.items() for imported in imports
                if task_of(module) and task_of(imported) and task_of(module) != task_of(imported)]
    assert not sideways, "imports between tasks (move what they share into a shared module):\n" + "\n".join(sideways)


def test_no_algorithm_module_imports_slicer_vtk_qt_or_trame():
    found = [f"{module} imports {package} (line {line})" for module, imports in EXTERNAL.items()
             if layer_of(module) in ALGORITHM_LAYERS for package, line in imports.items() if package in GUI_PACKAGES]
    assert not found, "\n".join(found)


@pytest.fixture
def cyclic_package(tmp_path):
    """A package whose modules import in a circle, one of them inside a function and relative."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "sub" / "__init__.py").write_text("", encoding="utf-8")
    (package / "a.py").write_text("from .sub import b\n", encoding="utf-8")
    (package / "sub" / "b.py").write_text("import pkg.c as c\n", encoding="utf-8")
    (package / "c.py").write_text("import os\n\n\ndef f():\n    from .a import g\n", encoding="utf-8")
    return package


def test_the_checker_finds_a_cycle_through_a_function_level_relative_import(cyclic_package):
    graph, external = import_graph(cyclic_package)
    assert graph["pkg.a"] == {"pkg.sub.b": 1} and graph["pkg.c"] == {"pkg.a": 5}
    assert external["pkg.c"] == {"os": 1}
    cycle = find_cycle(graph)
    assert cycle == ["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]
    assert chain(graph, cycle) == "pkg.a (line 1) -> pkg.sub.b (line 1) -> pkg.c (line 5) -> pkg.a"
    (cyclic_package / "c.py").write_text("import os\n", encoding="utf-8")
    assert find_cycle(import_graph(cyclic_package)[0]) is None
