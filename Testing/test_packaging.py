"""Packaging: a built wheel carries the resources and runs the demo outside the checkout; the extension's CMake installs
the same resource kinds; pyradiomics is optional (mammography only); MONAI is not a runtime dependency (its
DiceCELoss is reproduced); the declared minimum versions."""

import ast
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import types
from pathlib import Path

import pytest
import tomllib
import torch

from smartimaging import slicer_dependencies
from smartimaging.radiomics import MISSING_PYRADIOMICS
from smartimaging.resources import KINDS
from smartimaging.training import dice_ce_loss

REPO = Path(__file__).resolve().parents[1]
GE_BONE_SCAN = REPO / "Resources" / "SampleData" / "GE_NM_wholebody_bone.dcm"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _run(command: list, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SMARTIMAGING_MODELS_DIR")}
    return subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, encoding="utf-8",
                          timeout=timeout, env={**environment, "OMP_NUM_THREADS": "1"})


def test_the_sdist_and_its_wheel_carry_the_resources_and_the_demo_runs_outside_the_checkout(tmp_path):
    """As `python -m build` does: a source distribution of a copy of the sources (setuptools' build/ folder of the
    checkout may hold stale modules), then the wheel built from it (no build isolation: no download), installed into
    a fresh venv whose dependencies are this venv's packages (a .pth line, not a copy); `smartimaging demo` then runs
    from an empty folder."""
    source = tmp_path / "source"
    shutil.copytree(REPO / "smartimaging", source / "smartimaging", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "Resources", source / "Resources")
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy(REPO / name, source)
    sdist = _run([sys.executable, "-c", "import sys; from setuptools import build_meta; "
                  "print(build_meta.build_sdist(sys.argv[1]))", tmp_path / "sdist"], cwd=source)
    assert sdist.returncode == 0, sdist.stderr[-2000:]
    archive = tmp_path / "sdist" / sdist.stdout.splitlines()[-1]
    with tarfile.open(archive) as members:
        folders = {Path(name).parts[2] for name in members.getnames() if Path(name).parts[1:2] == ("Resources",)
                   and len(Path(name).parts) > 3}
    assert folders == set(KINDS)  # MANIFEST.in ships exactly the kinds, not the screenshots
    built = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                  tmp_path / "wheel", archive], cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "wheel").glob("smartimaging-*.whl"))
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", venv], cwd=tmp_path).returncode == 0
    site = Path(_run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                     cwd=tmp_path).stdout.strip())
    (site / "project-venv.pth").write_text(sysconfig.get_path("purelib") + "\n", encoding="utf-8")
    installed = _run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel],
                     cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr[-2000:]

    where = _run([venv / "bin" / "python", "-c", textwrap.dedent("""
        import smartimaging.resources as r
        from smartimaging.radiomics import MAMMO_PARAMS
        from smartimaging.segments import TERMINOLOGY_FILE
        print(r.__file__)
        for kind in r.KINDS:
            print(r.resource_dir(kind))
        print(MAMMO_PARAMS.is_file(), TERMINOLOGY_FILE.is_file())
    """)], cwd=tmp_path)
    assert where.returncode == 0, where.stderr[-2000:]
    module, *folders, found = where.stdout.splitlines()
    assert Path(module).is_relative_to(site)  # the wheel's copy, not the checkout's
    assert folders == [str(site / "smartimaging" / "Resources" / kind) for kind in KINDS] and found == "True True"
    for kind in KINDS:
        assert sorted(p.name for p in (site / "smartimaging" / "Resources" / kind).iterdir()) == \
            sorted(p.name for p in (REPO / "Resources" / kind).iterdir())
    assert sorted(p.name for p in (site / "smartimaging").glob("*.py")) == sorted(
        p.name for p in (REPO / "smartimaging").glob("*.py"))  # the modules of the checkout, no more

    demo = _run([venv / "bin" / "smartimaging", "demo", "--out", tmp_path / "report", "--device", "cpu"],
                cwd=tmp_path, timeout=240)
    assert demo.returncode == 0, demo.stderr[-2000:]
    assert "Real GE whole-body scan" in demo.stdout  # the sample case, from the wheel's SampleData
    assert "Rad-score" in demo.stdout and "synthetic DCE" in demo.stdout  # radiomics parameters, every model
    assert (tmp_path / "report" / "index.html").is_file()


def test_the_extension_installs_every_resource_kind(tmp_path):
    """BoneScanBSTBI/CMakeLists.txt installs SmartImagingResources.cmake's files: every kind of resources.KINDS."""
    if shutil.which("cmake") is None:
        pytest.skip("needs cmake")
    probe = tmp_path / "probe.cmake"
    probe.write_text(textwrap.dedent("""
        include(${SMARTIMAGING_SOURCE_DIR}/SmartImagingResources.cmake)
        foreach(file ${SMARTIMAGING_RESOURCE_FILES})
          file(RELATIVE_PATH relative ${SMARTIMAGING_SOURCE_DIR} ${file})
          message(STATUS "${relative}")
        endforeach()
    """), encoding="utf-8")
    listed = _run(["cmake", f"-DSMARTIMAGING_SOURCE_DIR={REPO}", "-P", probe], cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    expected = sorted(str(p.relative_to(REPO)) for kind in KINDS for p in (REPO / "Resources" / kind).rglob("*")
                      if p.is_file())
    assert sorted(line.removeprefix("-- ") for line in listed.stdout.splitlines()) == expected
    assert "SmartImagingResources.cmake" in (REPO / "BoneScanBSTBI" / "CMakeLists.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, list[str]]:
    """One command line per task on small real inputs (the GE scan, an LVI and a mammography phantom)."""
    from smartimaging.lvi.cohort import write_lvi_phantom_cohort
    from smartimaging.mammo.cohort import write_mammo_phantom_cohort

    folder = tmp_path_factory.mktemp("cases")
    mri, mammo = write_lvi_phantom_cohort(folder / "mr", 1), write_mammo_phantom_cohort(folder / "mg", 1, kind="mass")
    case, row = next(csv.DictReader(mri.open(encoding="utf-8"))), next(csv.DictReader(mammo.open(encoding="utf-8")))
    return {"bonescan": ["bonescan", "predict", str(GE_BONE_SCAN), "--out", str(folder / "bs"), "--device", "cpu"],
            "lvi": ["lvi", "predict", "--dce", str(mri.parent / case["dce"]), "--t2", str(mri.parent / case["t2"]),
                    "--voi", str(mri.parent / case["voi"]), "--out", str(folder / "lvi")],
            "mammo": ["mammo", "predict", str(mammo.parent / row["image"]), "--kind", "mass", "--pixel-mm",
                      row["pixel_mm"], "--point", f"{row['centre_col']},{row['centre_row']}", "--out",
                      str(folder / "mg-out")]}


def test_without_pyradiomics_bone_scan_and_lvi_run_and_mammography_says_what_to_install(cases, tmp_path):
    code = textwrap.dedent("""
        import sys
        sys.modules["radiomics"] = None  # pyradiomics not installed
        from smartimaging.cli import main
        print("exit", main(sys.argv[1:]))
        assert "radiomics" not in [m.split(".")[0] for m in sys.modules if sys.modules[m] is not None]
    """)
    for task in ("bonescan", "lvi"):
        result = _run([sys.executable, "-c", code, *cases[task]], cwd=tmp_path)
        assert result.returncode == 0 and result.stdout.splitlines()[-1] == "exit 0", result.stderr[-2000:]
    result = _run([sys.executable, "-c", code, *cases["mammo"]], cwd=tmp_path)
    assert result.stdout.splitlines()[-1] == "exit 2"
    assert result.stderr.splitlines() == [f"error: {MISSING_PYRADIOMICS}"]
    assert not (Path(cases["mammo"][-1])).exists()


def test_runtime_dependencies_leave_out_monai_and_pyradiomics_and_pick_xgboost_per_platform():
    names = [requirement.split(">")[0].split(";")[0].strip() for requirement in PYPROJECT["project"]["dependencies"]]
    assert "monai" not in names and not any("radiomics" in name for name in names)
    assert PYPROJECT["project"]["optional-dependencies"]["mammo"] == ["pyradiomics-bhklab>=3.1.4"]
    assert "xgboost-cpu>=3.1; sys_platform != 'darwin'" in PYPROJECT["project"]["dependencies"]
    assert "xgboost>=3.1; sys_platform == 'darwin'" in PYPROJECT["project"]["dependencies"]
    code = "import sys; import smartimaging.cli, smartimaging.bonescan.train, smartimaging.mammo.segment; " \
           "print(sorted({m.split('.')[0] for m in sys.modules} & {'monai', 'radiomics'}))"
    assert _run([sys.executable, "-c", code], cwd=REPO).stdout.strip() == "[]"


@pytest.mark.parametrize("shape", [(4, 3, 16, 16), (2, 2, 6, 7, 5), (1, 2, 1, 1)])
def test_dice_ce_loss_is_monais_and_gives_its_gradient(shape):
    from monai.losses import DiceCELoss

    generator = torch.Generator().manual_seed(sum(shape))
    logits = (3 * torch.randn(shape, generator=generator)).requires_grad_()
    labels = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=generator).float()
    theirs_logits = logits.detach().clone().requires_grad_()
    ours, theirs = dice_ce_loss(logits, labels), DiceCELoss(to_onehot_y=True, softmax=True)(theirs_logits, labels)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(logits.grad, theirs_logits.grad, rtol=1e-5, atol=1e-7)


def test_the_minimum_constraints_pin_every_runtime_floor():
    sys.path.insert(0, str(REPO / "tools"))
    try:
        from minimum_constraints import minimum_constraints
    finally:
        sys.path.remove(str(REPO / "tools"))
    pins = minimum_constraints(["mammo"])
    assert len(pins) == len(PYPROJECT["project"]["dependencies"]) + 1  # every runtime requirement has a floor
    assert {"torch==2.5", "pydicom==3.0.1", "pyradiomics-bhklab==3.1.4", "xgboost-cpu==3.1; sys_platform != 'darwin'",
            "xgboost==3.1; sys_platform == 'darwin'"} <= set(pins)


def _requirement_name(requirement: str) -> str:
    return re.split(r"[<>=;\[ ]", requirement, maxsplit=1)[0].lower()


def test_slicer_installs_the_runtime_floors_and_no_monai():
    """Inside Slicer the pip requirements are pyproject's (same floors, xgboost per platform), never MONAI, torch,
    SimpleITK or pyradiomics (extensions provide those), and every module's DEPENDENCIES can be provided."""
    declared = {_requirement_name(r): r.split(";")[0].strip() for r in PYPROJECT["project"]["dependencies"]
                if ";" not in r or eval_marker(r.split(";")[1])}
    for requirement in slicer_dependencies.PIP_REQUIREMENTS.values():
        assert _requirement_name(requirement) in declared
        if ">=" in requirement:
            assert requirement == declared[_requirement_name(requirement)]
    names = {_requirement_name(r) for r in slicer_dependencies.PIP_REQUIREMENTS.values()}
    assert not names & {"monai", "torch", "simpleitk", "pyradiomics-bhklab"}
    for module in ("BoneScanBSTBI", "MammoRadiomics", "DCESynthesis", "BreastLVI"):
        tree = ast.parse((REPO / module / f"{module}.py").read_text(encoding="utf-8"))
        dependencies = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                            and getattr(node.targets[0], "id", None) == "DEPENDENCIES")
        assert set(dependencies) <= set(slicer_dependencies.PIP_REQUIREMENTS) | set(
            slicer_dependencies.EXTENSION_PROVIDED), module


def eval_marker(marker: str) -> bool:
    """The platform markers pyproject uses (sys_platform only)."""
    operator = "==" if "==" in marker else "!="
    platform = marker.split(operator)[1].strip().strip("'\"")
    return (sys.platform == platform) == (operator == "==")


@pytest.fixture
def fake_slicer(monkeypatch):
    """A stand-in for the Slicer application's `slicer` module (none can run here) where pydicom and skops are
    missing until installed: it records the questions asked and the installs; `with_packaging()` adds Slicer 5.12's
    `slicer.packaging`."""
    installed, calls = set(), []

    def install(how: str, requirements: list[str], **options) -> None:
        calls.append((how, list(requirements), *([options] if options else [])))
        installed.update(("pydicom", "skops"))

    slicer = types.ModuleType("slicer")
    slicer.util = types.SimpleNamespace(
        confirmOkCancelDisplay=lambda text, *a, **k: calls.append(("asked", text)) or slicer.answer,
        pip_install=lambda requirements: install("pip_install", requirements))
    slicer.answer, slicer.calls = True, calls

    def with_packaging():
        slicer.packaging = types.ModuleType("slicer.packaging")
        slicer.packaging.pip_ensure = lambda requirements, **options: install("pip_ensure", requirements, **options)
        monkeypatch.setitem(sys.modules, "slicer.packaging", slicer.packaging)

    slicer.with_packaging = with_packaging
    monkeypatch.setitem(sys.modules, "slicer", slicer)
    monkeypatch.delitem(sys.modules, "slicer.packaging", raising=False)
    monkeypatch.setattr(slicer_dependencies, "missing",
                        lambda modules: [m for m in modules if m in ("pydicom", "skops") and m not in installed])
    return slicer


def test_slicer_5_12_installs_with_pip_ensure_asking_once_and_replacing_neither_torch_nor_simpleitk(fake_slicer):
    fake_slicer.with_packaging()
    assert slicer_dependencies.ensure(["torch", "pydicom", "skops"], "Bone Scan BSTBI") is True
    asked, installed = fake_slicer.calls
    assert asked[0] == "asked" and "pydicom, skops" in asked[1]
    assert installed == ("pip_ensure", ["pydicom>=3.0.1", "skops>=0.10"],
                         {"skip_packages": ["torch", "SimpleITK"], "prompt_install": False,
                          "requester": "Bone Scan BSTBI"})


def test_slicer_5_10_falls_back_to_pip_install(fake_slicer):
    assert slicer_dependencies.ensure(["pydicom"], "DCE Synthesis") is True
    assert fake_slicer.calls[1] == ("pip_install", ["pydicom>=3.0.1"])


def test_a_declined_install_installs_nothing(fake_slicer):
    fake_slicer.answer = False
    fake_slicer.with_packaging()
    assert slicer_dependencies.ensure(["skops"], "Mammography Radiomics") is False
    assert [call[0] for call in fake_slicer.calls] == ["asked"]


def test_startup_registers_the_shipped_sample_case_and_loads_the_terminology(monkeypatch):
    """With stand-ins for Slicer's SampleData and Terminologies modules (no Slicer app can run here): the sample's
    URI is the shipped file and the terminology file's context is the one the segments use."""
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    from smartimaging import slicer_startup
    from smartimaging.segments import TERMINOLOGY_CONTEXT

    registered, loaded = [], []
    sample_data = types.ModuleType("SampleData")
    sample_data.SampleDataLogic = types.SimpleNamespace(registerCustomSampleDataSource=lambda **k: registered.append(k))
    logic = types.SimpleNamespace(IsTerminologyContextLoaded=lambda name: False,
                                  LoadTerminologyFromFile=lambda path: loaded.append(path) or json.loads(
                                      Path(path).read_text(encoding="utf-8"))["SegmentationCategoryTypeContextName"])
    slicer = types.ModuleType("slicer")
    slicer.modules = types.SimpleNamespace(terminologies=types.SimpleNamespace(logic=lambda: logic))
    monkeypatch.setitem(sys.modules, "SampleData", sample_data)
    monkeypatch.setitem(sys.modules, "slicer", slicer)
    slicer_startup.on_startup("icon.png")
    assert [Path(url2pathname(urlparse(k["uris"]).path)) for k in registered] == [GE_BONE_SCAN]
    assert registered[0]["fileNames"] == GE_BONE_SCAN.name and registered[0]["thumbnailFileName"] == "icon.png"
    assert len(loaded) == 1 and json.loads(Path(loaded[0]).read_text(encoding="utf-8"))[
        "SegmentationCategoryTypeContextName"] == TERMINOLOGY_CONTEXT
    assert 'slicer.app.connect("startupCompleted()", _onStartupCompleted)' in (
        REPO / "BoneScanBSTBI" / "BoneScanBSTBI.py").read_text(encoding="utf-8")


def test_the_extension_description_names_screenshots_that_exist_and_the_minimum_slicer():
    cmake = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    urls = re.search(r'set\(EXTENSION_SCREENSHOTURLS "([^"]+)"\)', cmake)[1].split()
    home = re.search(r'set\(EXTENSION_ICONURL "(.+/main/)', cmake)[1]
    assert urls and all(url.startswith(home) and (REPO / url.removeprefix(home)).is_file() for url in urls)
    assert 'set(EXTENSION_DEPENDS "PyTorch")' in cmake and "find_package(Slicer 5.10 REQUIRED)" in cmake


def test_without_pyradiomics_the_demo_notes_that_mammography_was_skipped(monkeypatch, tmp_path, capsys):
    from smartimaging.demo import _mammo_sections

    monkeypatch.setitem(sys.modules, "radiomics", None)
    sections = _mammo_sections(tmp_path, "cpu")
    assert len(sections) == 1 and "pip install &#x27;smartimaging[mammo]&#x27;" in sections[0]
    assert capsys.readouterr().out == f"mammography skipped: {MISSING_PYRADIOMICS}\n"
    assert not any(tmp_path.iterdir())
