"""Installing a module's Python packages inside desktop Slicer (5.10 or later: Python 3.10+), with the user's consent
(needs the Slicer app; imported by the module widgets only). torch comes through the PyTorch extension and
pyradiomics through the SlicerRadiomics extension; Slicer's own SimpleITK and the PyTorch extension's torch are
never replaced."""

from __future__ import annotations

import importlib.util
import sys

PIP_REQUIREMENTS = {"safetensors": "safetensors>=0.4", "pydicom": "pydicom>=3.0.1", "highdicom": "highdicom>=0.28",
                    "pylibjpeg": "pylibjpeg>=2.0", "libjpeg": "pylibjpeg-libjpeg>=2.1",
                    "openjpeg": "pylibjpeg-openjpeg>=2.3", "rle": "pylibjpeg-rle>=2.0",
                    "sklearn": "scikit-learn>=1.3", "tqdm": "tqdm", "matplotlib": "matplotlib", "yaml": "pyyaml",
                    "joblib": "joblib>=1.4", "skops": "skops>=0.10",
                    # xgboost-cpu has no macOS build
                    "xgboost": "xgboost>=3.1" if sys.platform == "darwin" else "xgboost-cpu>=3.1"}
EXTENSION_PROVIDED = {"torch": "PyTorch", "radiomics": "SlicerRadiomics"}
NEVER_REPLACED = ["torch", "SimpleITK"]  # pip names: the PyTorch extension's build, Slicer's own build
DICOM_DECODERS = ["pylibjpeg", "libjpeg", "openjpeg", "rle"]  # compressed DICOM (JPEG, JPEG 2000, RLE) via pydicom


def with_decoders(modules: list[str]) -> list[str]:
    """`modules`, plus pydicom's decoder plugins when pydicom is among them."""
    return modules + [m for m in DICOM_DECODERS if m not in modules] if "pydicom" in modules else modules


def missing(modules: list[str]) -> list[str]:
    """Import names among `modules` that cannot be imported."""
    return [module for module in modules if importlib.util.find_spec(module) is None]


def pip_install(requirements: list[str], requester: str) -> None:
    """Install `requirements` without asking again (`ensure` asked): Slicer 5.12's `slicer.packaging.pip_ensure`,
    which never replaces the packages of NEVER_REPLACED, even as a dependency of another; `slicer.util.pip_install`
    on Slicer 5.10-5.11, which has no `slicer.packaging`."""
    import slicer

    try:
        import slicer.packaging
    except ImportError:
        slicer.util.pip_install(requirements)
        return
    slicer.packaging.pip_ensure(requirements, skip_packages=NEVER_REPLACED, prompt_install=False, requester=requester)


def ensure(modules: list[str], title: str) -> bool:
    """Install what is missing after asking once; False when the user declines."""
    import slicer

    absent = missing(with_decoders(modules))
    if not absent:
        return True
    if not slicer.util.confirmOkCancelDisplay(f"{title} needs these Python packages: {', '.join(absent)}. "
                                              "Install them now?"):
        return False
    if "torch" in absent:
        try:
            import PyTorchUtils
        except ImportError as exc:
            raise RuntimeError("Install the PyTorch extension from the Extensions Manager first.") from exc
        if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False) is None:
            raise RuntimeError("PyTorch could not be installed.")
    if "radiomics" in absent:
        raise RuntimeError("Install the SlicerRadiomics extension from the Extensions Manager first.")
    requirements = [PIP_REQUIREMENTS[module] for module in absent if module in PIP_REQUIREMENTS]
    if requirements:
        pip_install(requirements, title)
    return not missing(with_decoders(modules))
