"""Command-line details: negative coordinates after --point/--box; Slicer installs pydicom with its decoders."""

import importlib.util

from smartimaging.cli import build_parser, join_coordinates
from smartimaging.slicer_dependencies import DICOM_DECODERS, PIP_REQUIREMENTS, with_decoders


def test_a_negative_lps_point_is_read_as_the_point_not_as_an_option():
    argv = ["lvi", "segment", "volume.nrrd", "--point", "-100.2,-2.1,28.6", "--out", "voi.nrrd"]
    args = build_parser().parse_args(join_coordinates(argv))
    assert args.point == "-100.2,-2.1,28.6"
    assert args.out == "voi.nrrd"


def test_only_coordinate_values_are_joined():
    assert join_coordinates(["--point", "-1,2", "--box", "-3,-4,5,6"]) == ["--point=-1,2", "--box=-3,-4,5,6"]
    assert join_coordinates(["--point", "--out", "x"]) == ["--point", "--out", "x"]
    assert join_coordinates(["--device", "-1"]) == ["--device", "-1"]


def test_slicer_installs_the_dicom_decoders_with_pydicom():
    modules = with_decoders(["torch", "pydicom"])
    assert set(DICOM_DECODERS) <= set(modules)
    assert with_decoders(["torch"]) == ["torch"]
    for module in DICOM_DECODERS:
        assert module in PIP_REQUIREMENTS
        assert importlib.util.find_spec(module) is not None, f"{module} is not installed with the package"
