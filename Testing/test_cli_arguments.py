"""Command-line details: negative coordinates after --point/--box; which --out names a file and which a folder;
Slicer installs pydicom with its decoders."""

import importlib.util

import pytest

from smartimaging.cli import build_parser, join_coordinates, main
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


@pytest.mark.parametrize("argv", [["mammo", "extract", "--manifest", "m.csv"], ["mammo", "bin-study", "--manifest",
                                                                               "m.csv"]])
def test_a_command_whose_out_is_a_file_refuses_a_folder(argv, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path)]) == 2
    assert f"The output {tmp_path} is a folder; --out needs a file name" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["mammo", "phantoms"], ["bonescan", "phantoms"], ["lvi", "phantoms"],
                                  ["dce", "phantoms"]])
def test_a_command_whose_out_is_a_folder_refuses_a_file(argv, tmp_path, capsys):
    existing = tmp_path / "taken.txt"
    existing.write_text("x", encoding="utf-8")
    assert main([*argv, "--out", str(existing)]) == 2
    assert f"The output {existing} is an existing file; --out needs a folder" in capsys.readouterr().err
    assert existing.read_text(encoding="utf-8") == "x"


def test_an_empty_out_is_refused_and_nothing_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "synthetic_dce.nrrd").write_bytes(b"the reader's own T1")
    assert main(["bonescan", "phantoms", "--n", "1", "--out", ""]) == 2
    assert main(["dce", "synthesize", "synthetic_dce.nrrd", "--out", ""]) == 2
    assert capsys.readouterr().err.count("--out is empty") == 2
    assert [p.name for p in tmp_path.iterdir()] == ["synthetic_dce.nrrd"]
    assert (tmp_path / "synthetic_dce.nrrd").read_bytes() == b"the reader's own T1"


@pytest.mark.parametrize("argv", [["lvi", "train", "--manifest", "m.csv"], ["dce", "train", "--manifest", "m.csv"],
                                  ["bonescan", "train", "--manifest", "m.csv"],
                                  ["lvi", "train-segmenter", "--manifest", "m.csv"],
                                  ["lvi", "fuse", "--manifest", "m.csv", "--dce-model", "a", "--t2-model", "b"]])
def test_a_model_name_that_leaves_the_output_folder_is_refused(argv, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "out"), "--name", "../evil"]) == 2
    err = capsys.readouterr().err
    assert "'../evil' must be a plain name" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.json").exists()


@pytest.mark.parametrize("device", ["banana", "cuda:99", "mps"])
def test_a_device_this_machine_lacks_is_refused_in_one_line(device, tmp_path, capsys):
    import torch

    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has MPS")
    assert main(["bonescan", "predict", "scan.dcm", "--out", str(tmp_path / "out"), "--device", device]) == 2
    err = capsys.readouterr().err
    assert "argument --device" in err and device in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, option", [(["bonescan", "phantoms", "--seed", "-1"], "--seed"),
                                          (["mammo", "phantoms", "--seed", "5000000000"], "--seed"),
                                          (["lvi", "train", "--manifest", "m.csv", "--width", "1e-9"], "--width"),
                                          (["dce", "train", "--manifest", "m.csv", "--lr", "1e300"], "--lr"),
                                          (["app", "--port", "99999"], "--port"),
                                          (["app", "--timeout", "-5"], "--timeout")])
def test_numbers_out_of_range_are_refused_before_any_work(argv, option, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = [] if argv[0] == "app" else ["--out", "out"]
    assert main([*argv, *out]) == 2
    err = capsys.readouterr().err
    assert f"argument {option}:" in err and "is not allowed" in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_resume_without_a_checkpoint_folder_is_refused(tmp_path, capsys):
    assert main(["lvi", "train-segmenter", "--manifest", str(tmp_path / "m.csv"), "--out", str(tmp_path / "o"),
                 "--resume"]) == 2
    assert "--resume needs --checkpoint-dir" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv", [["dce", "synthesize", "missing.nrrd"], ["mammo", "batch", "empty", "--kind", "mass"]])
def test_a_run_refused_at_its_start_prints_one_line_and_no_progress_bar(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    assert main([*argv, "--out", "out"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err


@pytest.mark.parametrize("text, message", [("1_0", "Pixel size '1_0' is not a number"),
                                           ("0.0_5", "Pixel size '0.0_5' is not a number"),
                                           ("١", "Pixel size '١' is not a number"),
                                           ("", "give the pixel size in mm"),
                                           ("nan", "Pixel size nan is not a mammogram pixel size (expected 0.02 to")])
def test_mammo_pixel_mm_is_checked_as_every_front_end_checks_it(text, message, capsys):
    """`--pixel-mm` is `mammo.images.parse_pixel_mm` (no '_' separators, ASCII only), refused in argparse's style."""
    argv = ["mammo", "predict", "x.png", "--kind", "mass", "--out", "o", "--pixel-mm"]
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*argv, text])
    assert exit_.value.code == 2
    assert f"argument --pixel-mm: {message}" in capsys.readouterr().err
    assert build_parser().parse_args([*argv, "0.07"]).pixel_mm == 0.07
