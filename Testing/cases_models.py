"""Bad-input cases: hostile or damaged model folders and checkpoints, manifests, and command-line values."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from badinput import BadInput
from PIL import Image

from smartimaging.models.registry import models_dir, sha256_of

MARKER = "smartimaging-was-attacked"


def _mass_png(folder: Path) -> tuple[Path, Path]:
    from smartimaging.phantoms.mammo import make_mammo_phantom

    case = make_mammo_phantom(900_060, "mass", 1)
    Image.fromarray(case.image.astype(np.uint16)).save(folder / "mass.png")
    Image.fromarray(case.mask * 255).save(folder / "mask.png")
    return folder / "mass.png", folder / "mask.png"


def _copy_models(folder: Path, prefix: str, skops_only: bool = False) -> Path:
    """A copy of the shipped models starting with `prefix`; `skops_only`: the mass classifier without its
    plain-array form (as trained before plain forms, or with a classifier that has none), so that prediction loads
    the skops pipeline."""
    models = folder / "models"
    models.mkdir()
    for path in models_dir().glob(f"{prefix}*"):
        shutil.copy(path, models / path.name)
    if skops_only:
        card = models / "mammo-mass-classifier-demo.json"
        record = json.loads(card.read_text(encoding="utf-8"))
        (models / record["files"].pop("plain")).unlink()
        card.write_text(json.dumps(record), encoding="utf-8")
    return models


def _predict_mass(folder: Path, models: Path) -> list[str]:
    image, mask = _mass_png(folder)
    return ["mammo", "predict", str(image), "--kind", "mass", "--mask", str(mask), "--pixel-mm", "0.1",
            "--out", str(folder / "out"), "--models-dir", str(models)]


def _edit_card(card: Path, **changes) -> None:
    record = json.loads(card.read_text(encoding="utf-8"))
    record.update(changes)
    card.write_text(json.dumps(record), encoding="utf-8")


def _rehash(models: Path, edited: Path) -> None:
    """Update the classifier card's checksum to the edited file, as an attacker would."""
    card = models / "mammo-mass-classifier-demo.json"
    record = json.loads(card.read_text(encoding="utf-8"))
    record["sha256"][edited.name] = sha256_of(edited)
    card.write_text(json.dumps(record), encoding="utf-8")


def skops_running(function, folder: Path) -> Path:
    """A skops pipeline whose loading would call `function`, with the card's checksum updated to match."""
    import skops.io as sio
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    models = _copy_models(folder, "mammo-mass-classifier-demo", skops_only=True)
    skops_file = models / "mammo-mass-classifier-demo.skops"
    sio.dump(Pipeline([("evil", FunctionTransformer(function, kw_args={"__import__": MARKER}))]), skops_file)
    _rehash(models, skops_file)
    return models


def _skops_exec(folder: Path) -> list[str]:
    return _predict_mass(folder, skops_running(exec, folder))


def _skops_eval(folder: Path) -> list[str]:
    return _predict_mass(folder, skops_running(eval, folder))


def _tampered_tree(folder: Path) -> list[str]:
    """Node 0 of the first tree points 10^12 nodes away: compiled code would read far outside the array."""
    import skops.io as sio

    models = _copy_models(folder, "mammo-mass-classifier-demo", skops_only=True)
    skops_file = models / "mammo-mass-classifier-demo.skops"
    pipeline = sio.load(skops_file, trusted=sio.get_untrusted_types(file=skops_file))
    pipeline.named_steps["classifier"].estimators_[0].tree_.children_left[0] = 10**12
    sio.dump(pipeline, skops_file)
    _rehash(models, skops_file)
    return _predict_mass(folder, models)


def _nan_cutoff(folder: Path) -> list[str]:
    models = _copy_models(folder, "mammo-mass-classifier-demo")
    card = models / "mammo-mass-classifier-demo.json"
    record = json.loads(card.read_text(encoding="utf-8"))
    record["cutoff"]["value"] = float("nan")
    card.write_text(json.dumps(record), encoding="utf-8")
    return _predict_mass(folder, models)


def _skops_outside(folder: Path) -> list[str]:
    models = _copy_models(folder, "mammo-mass-classifier-demo")
    card = models / "mammo-mass-classifier-demo.json"
    record = json.loads(card.read_text(encoding="utf-8"))
    record["files"]["pipeline"] = "../../mammo-mass-classifier-demo.skops"
    card.write_text(json.dumps(record), encoding="utf-8")
    return _predict_mass(folder, models)


def _skops_random(folder: Path) -> list[str]:
    models = _copy_models(folder, "mammo-mass-classifier-demo", skops_only=True)
    skops_file = models / "mammo-mass-classifier-demo.skops"
    skops_file.write_bytes(np.random.default_rng(0).bytes(4096))
    _rehash(models, skops_file)
    return _predict_mass(folder, models)


def _plain_tampered(folder: Path, change) -> list[str]:
    """The mass classifier's plain-array file with `change` applied to its arrays, the card's checksum updated."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    models = _copy_models(folder, "mammo-mass-classifier-demo")
    plain = models / "mammo-mass-classifier-demo.plain.safetensors"
    with safe_open(str(plain), framework="np") as f:
        metadata, arrays = f.metadata(), {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    change(arrays)
    save_file(arrays, str(plain), metadata=metadata)
    _rehash(models, plain)
    return _predict_mass(folder, models)


def _plain_tree_loop(arrays: dict) -> None:
    """The last step (the forest) sends the first tree's root back to itself: a walk that never ends."""
    last = max(int(name.split(".")[0]) for name in arrays if name[0].isdigit())
    arrays[f"{last}.left"][0] = 0


def _plain_column_outside(arrays: dict) -> None:
    arrays["0.columns"][0] = 10**9


def _plain_leaf_above_one(arrays: dict) -> None:
    """A forest leaf that says 3.1 (a forest averages probabilities: a Rad-score above 1)."""
    last = max(int(name.split(".")[0]) for name in arrays if name[0].isdigit())
    arrays[f"{last}.value"][arrays[f"{last}.left"] == -1] = 3.1


def _plain_chain_tree(arrays: dict) -> None:
    """The forest replaced by one 70-deep chain (valid and acyclic; a 1.5 M-node chain takes minutes per lesion)."""
    last = max(int(name.split(".")[0]) for name in arrays if name[0].isdigit())
    inner = np.arange(0, 140, 2)
    left, right = np.full(141, -1, np.int64), np.full(141, -1, np.int64)
    left[inner], right[inner] = inner + 2, inner + 1
    arrays.update({f"{last}.left": left, f"{last}.right": right, f"{last}.feature": np.zeros(141, np.int64),
                   f"{last}.threshold": np.zeros(141), f"{last}.value": np.full(141, 0.5),
                   f"{last}.roots": np.zeros(1, np.int64)})


def _plain_short_reference(arrays: dict) -> None:
    arrays["reference"] = arrays["reference"][:3].copy()


def _plain_random(folder: Path) -> list[str]:
    models = _copy_models(folder, "mammo-mass-classifier-demo")
    plain = models / "mammo-mass-classifier-demo.plain.safetensors"
    plain.write_bytes(np.random.default_rng(0).bytes(4096))
    _rehash(models, plain)
    return _predict_mass(folder, models)


def _segment_point(folder: Path, models: Path) -> list[str]:
    image, _ = _mass_png(folder)
    return ["mammo", "predict", str(image), "--kind", "mass", "--point", "200,200", "--pixel-mm", "0.1",
            "--out", str(folder / "out"), "--models-dir", str(models)]


def _weights_outside(folder: Path) -> list[str]:
    models = _copy_models(folder, "mammo-")
    _edit_card(models / "mammo-mass-unet-demo.json", weights_file="../../../../etc/passwd")
    return _segment_point(folder, models)


def _weights_header_claims_terabytes(folder: Path) -> list[str]:
    models = _copy_models(folder, "mammo-")
    weights = models / "mammo-mass-unet-demo.safetensors"
    header = json.dumps({"w": {"dtype": "F32", "shape": [1 << 20, 1 << 20], "data_offsets": [0, 1 << 42]}}).encode()
    weights.write_bytes(len(header).to_bytes(8, "little") + header + bytes(64))
    _edit_card(models / "mammo-mass-unet-demo.json", weights_sha256=sha256_of(weights))
    return _segment_point(folder, models)


def _giant_architecture(folder: Path) -> list[str]:
    models = _copy_models(folder, "mammo-")
    card = models / "mammo-mass-unet-demo.json"
    record = json.loads(card.read_text(encoding="utf-8"))
    record["architecture"]["features"] = [100_000] * 6
    card.write_text(json.dumps(record), encoding="utf-8")
    return _segment_point(folder, models)


def _card_not_json(folder: Path) -> list[str]:
    models = _copy_models(folder, "mammo-")
    (models / "mammo-mass-unet-demo.json").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    return _segment_point(folder, models)


def _lvi_model_id_path(folder: Path) -> list[str]:
    import SimpleITK as sitk

    from smartimaging.phantoms.breast_mri import make_breast_mri_phantom

    case = make_breast_mri_phantom(700, shape=(16, 96, 96), lvi=1)
    for name, array in (("dce", case.dce2), ("voi", (case.lesions > 0).astype(np.uint8))):
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(case.spacing[::-1])
        sitk.WriteImage(image, str(folder / f"{name}.nrrd"))
    return ["lvi", "predict", "--dce", str(folder / "dce.nrrd"), "--voi", str(folder / "voi.nrrd"),
            "--models", "../../../etc/passwd", "--out", str(folder / "out")]


def _pickled_checkpoint(folder: Path) -> list[str]:
    import pickle

    from smartimaging.mammo.cohort import write_mammo_phantom_cohort

    manifest = write_mammo_phantom_cohort(folder / "cohort", 4, seed=5, kind="mass", splits={"train": 0.5, "val": 0.5})
    checkpoints = folder / "checkpoints"
    checkpoints.mkdir()

    class Payload:
        def __reduce__(self):
            return (open, (str(folder / MARKER), "w"))

    (checkpoints / "checkpoint.pt").write_bytes(pickle.dumps({"model": Payload()}))
    return ["mammo", "train-segmenter", "--manifest", str(manifest), "--kind", "mass", "--epochs", "1",
            "--checkpoint-dir", str(checkpoints), "--resume", "--out", str(folder / "out"), "--device", "cpu",
            "--quiet"]


def _manifest(folder: Path, rows: list[str]) -> Path:
    from smartimaging.mammo.cohort import write_mammo_phantom_cohort

    write_mammo_phantom_cohort(folder, 4, seed=5, kind="mass")
    manifest = folder / "bad.csv"
    manifest.write_text("\n".join(["patient_id,image,mask,label,split", *rows]) + "\n", encoding="utf-8")
    return manifest


def _duplicated_rows(folder: Path) -> list[str]:
    from smartimaging.mammo.cohort import write_mammo_phantom_cohort
    from smartimaging.manifest import read_manifest

    rows = read_manifest(write_mammo_phantom_cohort(folder, 3, seed=5, kind="mass")).rows
    lines = [f"{r['patient_id']},{r['image']},{r['mask']},{r['label']},train" for r in [*rows, rows[1]]]
    return ["mammo", "extract", "--manifest", str(_manifest(folder, lines)), "--out", str(folder / "f.csv"),
            "--jobs", "1", "--quiet"]


def _patient_in_two_splits(folder: Path, spell=str) -> list[str]:
    """Patient 1 on three train rows and, spelled by `spell`, on a val row with another image."""
    from smartimaging.mammo.cohort import write_mammo_phantom_cohort
    from smartimaging.manifest import read_manifest

    rows = read_manifest(write_mammo_phantom_cohort(folder, 4, seed=5, kind="mass")).rows
    lines = [f"{r['patient_id']},{r['image']},{r['mask']},{r['label']},train" for r in rows[:3]]
    lines.append(f"{spell(rows[0]['patient_id'])},{rows[3]['image']},{rows[3]['mask']},1,val")
    return ["mammo", "extract", "--manifest", str(_manifest(folder, lines)), "--out", str(folder / "f.csv"),
            "--jobs", "1", "--quiet"]


def _extract_into_its_manifest(folder: Path) -> list[str]:
    from smartimaging.mammo.cohort import write_mammo_phantom_cohort

    manifest = write_mammo_phantom_cohort(folder, 3, seed=5, kind="mass")
    return ["mammo", "extract", "--manifest", str(manifest), "--out", str(manifest), "--jobs", "1", "--quiet"]


def _batch_into_its_parent(folder: Path) -> list[str]:
    (folder / "rois").mkdir()
    image, _ = _mass_png(folder / "rois")
    return ["mammo", "batch", str(image.parent), "--kind", "mass", "--pixel-mm", "0.1", "--out", str(folder)]


def _synthesize_into_its_folder(folder: Path) -> list[str]:
    (folder / "synthetic_dce.nrrd").write_bytes(b"the reader's T1")
    return ["dce", "synthesize", str(folder / "synthetic_dce.nrrd"), "--out", str(folder)]


def _same_case_spelled_twice(folder: Path) -> list[str]:
    from smartimaging.mammo.cohort import write_mammo_phantom_cohort
    from smartimaging.manifest import read_manifest

    rows = read_manifest(write_mammo_phantom_cohort(folder, 3, seed=5, kind="mass")).rows
    lines = [f"{r['patient_id']},{r['image']},{r['mask']},{r['label']},train" for r in rows]
    image, mask = rows[0]["image"], rows[0]["mask"]
    lines.append(f"OTHER,./images/../{image},{mask.replace('/', '//')},1,train")
    return ["mammo", "extract", "--manifest", str(_manifest(folder, lines)), "--out", str(folder / "f.csv"),
            "--jobs", "1", "--quiet"]


def _semicolon_manifest(folder: Path) -> list[str]:
    (folder / "m.csv").write_text("patient_id;image;mask;label\nP1;a.png;a_mask.png;1\n", encoding="utf-8")
    return ["mammo", "extract", "--manifest", str(folder / "m.csv"), "--out", str(folder / "f.csv")]


def _params_device(folder: Path) -> list[str]:
    from smartimaging.mammo.cohort import write_mammo_phantom_cohort

    manifest = write_mammo_phantom_cohort(folder, 3, seed=5, kind="mass")
    return ["mammo", "extract", "--manifest", str(manifest), "--params", "/dev/zero", "--out", str(folder / "f.csv"),
            "--jobs", "1", "--quiet"]


def _argv(*argv: str):
    return lambda folder: [part.replace("{folder}", str(folder)) for part in argv]


def _out_is_a_file(folder: Path) -> list[str]:
    (folder / "result").write_text("not a folder", encoding="utf-8")
    return _predict_mass(folder, models_dir())[:-4] + ["--out", str(folder / "result")]


CASES = [
    BadInput("Model files", "a skops-only classifier that calls builtins.exec on load (checksum updated to match)",
             _skops_exec, "builtins.exec"),
    BadInput("Model files", "a skops-only classifier that calls builtins.eval on load (checksum updated to match)",
             _skops_eval, "builtins.eval"),
    BadInput("Model files", "a skops random-forest tree whose node points outside the tree (checksum updated to match)",
             _tampered_tree, "holds a damaged decision tree"),
    BadInput("Model files", "a plain-array classifier whose tree loops back to its root (checksum updated to match)",
             lambda folder: _plain_tampered(folder, _plain_tree_loop), "inconsistent plain-array model"),
    BadInput("Model files", "a plain-array classifier selecting feature 10⁹ (checksum updated to match)",
             lambda folder: _plain_tampered(folder, _plain_column_outside), "inconsistent plain-array model"),
    BadInput("Model files", "a plain-array forest whose leaf says 3.1 (checksum updated to match)",
             lambda folder: _plain_tampered(folder, _plain_leaf_above_one), "inconsistent plain-array model"),
    BadInput("Model files", "a plain-array classifier with a 70-deep chain tree (checksum updated to match)",
             lambda folder: _plain_tampered(folder, _plain_chain_tree), "inconsistent plain-array model"),
    BadInput("Model files", "a plain-array classifier with 3 reference values for 102 features (checksum updated)",
             lambda folder: _plain_tampered(folder, _plain_short_reference), "inconsistent plain-array model"),
    BadInput("Model files", "a plain-array classifier file of random bytes (checksum updated to match)",
             _plain_random, "is not a safetensors file"),
    BadInput("Model files", "a classifier card whose cutoff is NaN", _nan_cutoff, "cutoff.value is nan"),
    BadInput("Model files", "a classifier card naming ../../ as its skops file", _skops_outside,
             "outside its own folder"),
    BadInput("Model files", "a skops-only classifier file of random bytes (checksum updated to match)", _skops_random,
             "is not a readable skops file"),
    BadInput("Model files", "a network card whose weights file is ../../../../etc/passwd", _weights_outside,
             "outside its own folder"),
    BadInput("Model files", "a safetensors header claiming a 4 TB tensor (checksum updated to match)",
             _weights_header_claims_terabytes, "inconsistent safetensors header"),
    BadInput("Model files", "a network card whose U-Net is 100 000 channels wide", _giant_architecture,
             "do not fit the network in its card"),
    BadInput("Model files", "a model card that is not JSON", _card_not_json, "is not valid JSON"),
    BadInput("Model files", "a model id that is a path (lvi predict --models ../../../etc/passwd)",
             _lvi_model_id_path, "is not a model id"),
    BadInput("Model files", "a pickled checkpoint.pt that would run code, given to --resume", _pickled_checkpoint,
             "Cannot resume from"),
    BadInput("Manifests", "the same image and mask on two rows", _duplicated_rows, "are the same case"),
    BadInput("Manifests", "a patient on a train row and on a val row", _patient_in_two_splits,
             "keep each patient's rows in one split"),
    BadInput("Manifests", "the same image spelled two ways (./images/../images/x.png, masks//x.png)",
             _same_case_spelled_twice, "are the same case"),
    BadInput("Manifests", "a manifest with ';' between cells", _semicolon_manifest, "to use ';' between cells"),
    BadInput("Manifests", "`--params /dev/zero` (endless input)", _params_device, "is not a file"),
    BadInput("Command line", "--batch-slices 0", _argv("dce", "synthesize", "{folder}/t1.nrrd", "--batch-slices",
                                                       "0", "--out", "{folder}/out"), "argument --batch-slices"),
    BadInput("Command line", "--jobs 0", _argv("mammo", "extract", "--manifest", "{folder}/m.csv", "--jobs", "0",
                                               "--out", "{folder}/f.csv"), "or -1 for all cores"),
    BadInput("Command line", "--pixel-mm -1", _argv("mammo", "predict", "{folder}/m.png", "--kind", "mass",
                                                    "--pixel-mm", "-1", "--out", "{folder}/out"),
             "is not a mammogram pixel size (expected 0.02 to 10 mm)"),
    BadInput("Command line", "--epochs abc", _argv("lvi", "train", "--manifest", "{folder}/m.csv", "--sequence",
                                                   "DCE", "--model", "vanilla2d", "--epochs", "abc", "--out",
                                                   "{folder}/out"), "'abc' is not a number"),
    BadInput("Command line", "--out names an existing file where a folder is expected", _out_is_a_file,
             "--out needs a folder"),
    BadInput("Command line", "`mammo extract --out` naming its own manifest", _extract_into_its_manifest,
             "the results would replace it"),
    BadInput("Command line", "`mammo batch` of a folder inside --out (its rois/ would be replaced)",
             _batch_into_its_parent, "give --out a folder of its own"),
    BadInput("Command line", "`dce synthesize` of a T1 inside --out named like an output", _synthesize_into_its_folder,
             "give --out a folder of its own"),
]


def _sheared_nrrd(folder: Path) -> list[str]:
    import SimpleITK as sitk

    volume = sitk.GetImageFromArray(np.random.default_rng(0).random((8, 64, 64), dtype=np.float32))
    sitk.WriteImage(volume, str(folder / "t1.nrrd"))
    text = (folder / "t1.nrrd").read_bytes()
    header, _, data = text.partition(b"\n\n")
    lines = [b"space directions: (0.7,0,0) (0.7,0.7,0) (0,0,3)" if line.startswith(b"space directions") else line
             for line in header.split(b"\n")]
    (folder / "t1.nrrd").write_bytes(b"\n".join(lines) + b"\n\n" + data)
    return ["dce", "synthesize", str(folder / "t1.nrrd"), "--out", str(folder / "out")]


CASES.append(BadInput("Damaged or hostile file", "NRRD whose axes are not at right angles (`dce synthesize`)",
                      _sheared_nrrd, "has a sheared grid"))


def _bone_scan_as_t1(folder: Path) -> list[str]:
    from smartimaging.bonescan.views import write_nm_dicom

    frames = {"anterior": np.ones((128, 32), np.float32), "posterior": np.ones((128, 32), np.float32)}
    write_nm_dicom(folder / "scan.dcm", frames, "P1")
    return ["dce", "synthesize", str(folder / "scan.dcm"), "--out", str(folder / "out")]


def _ct_as_t1(folder: Path) -> list[str]:
    import SimpleITK as sitk

    ct = np.full((8, 64, 64), -1000, np.int16)
    ct[:, 16:48, 16:48] = 40
    sitk.WriteImage(sitk.GetImageFromArray(ct), str(folder / "ct_chest.nrrd"))
    return ["dce", "synthesize", str(folder / "ct_chest.nrrd"), "--out", str(folder / "out")]


CASES += [
    BadInput("Wrong modality", "a bone-scan (NM) DICOM given as the T1 (`dce synthesize`)", _bone_scan_as_t1,
             "is a NM DICOM image; an MR volume (Modality MR) is needed here"),
    BadInput("Wrong modality", "a CT volume (Hounsfield units) given as the T1 (`dce synthesize`)", _ct_as_t1,
             "looks like a CT, not an MR volume"),
]


def _colour_mammogram(folder: Path) -> list[str]:
    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.1.2", generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PhotometricInterpretation, ds.PlanarConfiguration = "MG", "RGB", 0
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 60, 40, 3
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.random.default_rng(0).integers(0, 255, (60, 40, 3)).astype(np.uint8).tobytes()
    ds.save_as(str(folder / "mammogram.dcm"), enforce_file_format=True)
    return ["mammo", "predict", str(folder / "mammogram.dcm"), "--kind", "mass", "--point", "20,30", "--out",
            str(folder / "out")]


CASES.append(BadInput("Wrong modality", "a colour (RGB) DICOM mammogram (`mammo predict`)", _colour_mammogram,
                      "is a colour DICOM image; a mammogram is a greyscale image"))


def _extract_over_a_listed_image(folder: Path) -> list[str]:
    from smartimaging.mammo.cohort import write_mammo_phantom_cohort
    from smartimaging.manifest import read_manifest

    manifest = read_manifest(write_mammo_phantom_cohort(folder, 3, seed=5, kind="mass"))
    image = manifest.resolve(manifest.rows[1]["image"])
    return ["mammo", "extract", "--manifest", str(manifest.path), "--out", str(image), "--jobs", "1", "--quiet"]


def _fuse_into_the_models_folder(folder: Path) -> list[str]:
    models = _copy_models(folder, "lvi-dce-resnet10-2d-demo")
    return ["lvi", "fuse", "--manifest", str(folder / "manifest.csv"), "--models", "lvi-dce-resnet10-2d-demo",
            "--models-dir", str(models), "--out", str(models), "--name", "lvi-dce-resnet10-2d-demo"]


CASES += [
    BadInput("Command line", "`mammo extract --out` naming an image the manifest lists",
             _extract_over_a_listed_image, "the results would replace it"),
    BadInput("Command line", "`lvi fuse --out` the --models-dir it reads (would replace a model card)",
             _fuse_into_the_models_folder, "the results would replace it"),
    BadInput("Manifests", "a patient on a train row and, in lower case, on a val row",
             lambda f: _patient_in_two_splits(f, str.lower), "keep each patient's rows in one split"),
]


def _nan_generator(folder: Path) -> list[str]:
    import SimpleITK as sitk
    import torch
    from safetensors.torch import load_file, save_file

    models = _copy_models(folder, "dce-pix2pix-demo")
    weights = models / "dce-pix2pix-demo.safetensors"
    state = {name: torch.full_like(t, float("nan")) if t.is_floating_point() else t
             for name, t in load_file(str(weights)).items()}
    save_file(state, str(weights))
    _edit_card(models / "dce-pix2pix-demo.json", weights_sha256=sha256_of(weights))
    t1 = sitk.GetImageFromArray(np.random.default_rng(0).random((4, 64, 64), dtype=np.float32) * 1000)
    sitk.WriteImage(t1, str(folder / "t1.nrrd"))
    return ["dce", "synthesize", str(folder / "t1.nrrd"), "--models-dir", str(models), "--out", str(folder / "out"),
            "--device", "cpu", "--quiet"]


CASES.append(BadInput("Model files", "DCE generator weights set to NaN (checksum updated to match)", _nan_generator,
                      "gave invalid values (NaN or infinity)"))
