"""`dce synthesize`: T1WI -> synthetic first-phase DCE with the Pix2Pix generator, slice batch by slice batch.

Outputs share the T1's geometry exactly (they overlay it in Slicer):
- synthetic DCE in arbitrary units 0-1000 (the generator's [-1, 1] output);
- synthetic subtraction: the synthetic DCE minus the T1 mapped linearly onto it (least squares over the body, the
  "learned intensity mapping" of the T1 into the DCE's grey levels), negative values set to 0; it shows what the
  contrast agent adds, as a post-minus-pre subtraction does in abbreviated breast MRI;
- its maximum intensity projection along the slice axis (one-slice volume + PNG);
- with a real DCE, the regions that enhance on it (`lesion_contrast`), numbered as the result's regions.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch

from .. import __version__
from ..domain import check_card, combine, image_profile, summarise
from ..errors import ModelError
from ..io import atomic_output_dir, write_image, write_json
from ..models.nets import (
    CardFieldError,
    card_choice,
    card_field,
    check_architecture,
    checked_card,
    pick_device,
    prepare_for_inference,
)
from ..models.registry import LoadedModel, load_model, read_card
from ..privacy import input_record
from ..record_report import REPORT_FILE, Explainer, write_report
from .report_page import report_page
from .volumes import intensity_mapped_subtraction, load_mr_volume, normalise, pair_with_t1, to_unit

MODEL_ID = "dce-pix2pix-demo"
OUTPUT_SCALE = 1000.0
REGIONS_FILE = "enhancing_regions.nrrd"  # with a real DCE: its enhancing regions, labels 1.. as the result's regions


def check_dce_card(card: dict) -> None:
    """The fields of a DCE synthesis card that synthesis uses: task 'dce-synthesis' and a Pix2Pix U-Net of one input
    and one output channel within the architecture bounds of `models.nets` (depth 5-10 halvings, ngf 1-512)."""
    if card.get("task") != "dce-synthesis":
        raise CardFieldError(f"task is {card.get('task')!r}; expected 'dce-synthesis' (a generator written by "
                             "`dce train`)")
    architecture = check_architecture(card_field(card, "architecture"))
    card_choice(architecture["name"], "architecture.name", ("pix2pix_unet",))
    card_choice(architecture.get("in_channels", 1), "architecture.in_channels", (1,))
    card_choice(architecture.get("out_channels", 1), "architecture.out_channels", (1,))


def domain_profile(t1_image: sitk.Image) -> dict[str, float]:
    """Domain-check quantities (`smartimaging.domain`) of a T1 volume as the generator sees it (normalised)."""
    x, y, z = t1_image.GetSpacing()
    return image_profile(normalise(sitk.GetArrayFromImage(t1_image)), (z, y, x))


def training_domain(manifest_path, split: str | None, data: str) -> dict:
    """`training_domain` for a DCE synthesis card: the T1 volumes of a manifest's `split` rows (all when None)."""
    from ..manifest import read_manifest

    manifest = read_manifest(manifest_path, required=("patient_id", "t1"))
    rows = manifest.subset(split) if split else manifest.rows
    profiles = [domain_profile(load_mr_volume(manifest.resolve(row["t1"]), "T1")) for row in rows]
    return summarise(profiles, f"{len(rows)} T1 volumes: {data}")


class DCESynthesizer:
    """The generator of a DCESynthesis model card, applied to whole volumes in batches of axial slices."""

    def __init__(self, model: LoadedModel, device: torch.device, card_path: Path | None = None):
        self.model, self.device, self.card_path = model, device, card_path

    @classmethod
    def load(cls, directory=None, device: str = "auto", model_id: str = MODEL_ID) -> DCESynthesizer:
        """The generator (`model_id`: an id in `directory`, or the path of a card, e.g. of a generator fine-tuned on
        a cohort), its card checked (:func:`check_dce_card`) before the network is built."""
        device = pick_device(device)
        card, card_path = read_card(model_id, directory)
        checked_card(card_path.name, check_dce_card, card)
        model = load_model(card_path, device=device)
        checked_card(card_path.name, check_dce_card, model.card)
        model.network = prepare_for_inference(model.network, device)
        return cls(model, device, card_path.resolve() if Path(model_id).suffix == ".json" else None)

    @property
    def provenance(self) -> dict:
        """The model's id, version and sha256, and its card's path when it was loaded from one (a cohort's model:
        the result's explanations read that card)."""
        return {**self.model.provenance, **({"card": str(self.card_path)} if self.card_path else {})}

    def synthesize_normalised(self, t1: np.ndarray, batch_slices: int = 8,
                              progress: Callable[[float, str], None] | None = None) -> np.ndarray:
        """[-1, 1] T1 slices (slices, rows, cols) -> [-1, 1] synthetic DCE; memory bounded by `batch_slices`."""
        output = np.empty_like(t1, dtype=np.float32)
        network = self.model.network
        with torch.inference_mode():
            for start in range(0, len(t1), batch_slices):
                batch = torch.from_numpy(np.ascontiguousarray(t1[start:start + batch_slices]))[:, None]
                batch = batch.to(self.device, memory_format=torch.channels_last)
                output[start:start + len(batch)] = network(batch)[:, 0].float().cpu().numpy()
                if progress:
                    done = start + len(batch)
                    progress(done / len(t1), f"slice {done} of {len(t1)}")
        return output


@dataclass
class SynthesisResult:
    synthetic: sitk.Image
    subtraction: sitk.Image
    mip: sitk.Image
    record: dict
    real_dce: sitk.Image | None = None
    warnings: list[str] = field(default_factory=list)
    regions: sitk.Image | None = None  # with a real DCE: its enhancing regions (`lesion_contrast.region_labels`)


def _image_like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.CopyInformation(reference)
    return image


def _mip_image(subtraction: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """MIP along the slice axis as a one-slice volume on the first slice's plane."""
    image = sitk.GetImageFromArray(subtraction.max(axis=0)[None].astype(np.float32))
    image.SetSpacing(reference.GetSpacing())
    image.SetOrigin(reference.GetOrigin())
    image.SetDirection(reference.GetDirection())
    return image


def synthesize_volume(t1_image: sitk.Image, synthesizer: DCESynthesizer, real_dce: sitk.Image | None = None,
                      batch_slices: int = 8, progress: Callable[[float, str], None] | None = None
                      ) -> SynthesisResult:
    """Synthetic DCE, subtraction and MIP for a T1 volume; the metrics when a real DCE is given."""
    from .lesion_contrast import enhancing_regions, lesion_contrast, region_labels
    from .metrics import volume_metrics

    started = time.perf_counter()
    t1 = normalise(sitk.GetArrayFromImage(t1_image))
    generated = synthesizer.synthesize_normalised(t1, batch_slices, progress)
    if not np.all(np.isfinite(generated)):
        raise ModelError(f"The DCE model {synthesizer.model.card['id']} gave invalid values (NaN or infinity): its "
                         "weights are damaged. Reinstall SmartImaging or retrain the model.")
    synthetic = to_unit(generated)
    subtraction = intensity_mapped_subtraction(synthetic, to_unit(t1))
    record = {"smartimaging_version": __version__, "model": synthesizer.provenance,
              "device": str(synthesizer.device), "slices": int(len(t1)),
              "output_units": f"arbitrary, 0-{OUTPUT_SCALE:g} (the generator's [-1, 1])",
              "domain": combine([check_card(synthesizer.model.card, domain_profile(t1_image))]),
              "seconds": time.perf_counter() - started}
    warnings, regions = [], None
    if real_dce is not None:
        real_dce, warnings = pair_with_t1(t1_image, real_dce)
        real = to_unit(normalise(sitk.GetArrayFromImage(real_dce)))
        record["metrics"] = volume_metrics(synthetic, real)
        found = enhancing_regions(real, to_unit(t1))
        record["lesion_contrast"] = lesion_contrast(to_unit(t1), synthetic, real, found)
        regions = sitk.GetImageFromArray(region_labels(found[0], t1.shape))
        regions.CopyInformation(t1_image)
    record["warnings"] = warnings
    return SynthesisResult(_image_like(synthetic * OUTPUT_SCALE, t1_image),
                           _image_like(subtraction * OUTPUT_SCALE, t1_image),
                           _mip_image(subtraction * OUTPUT_SCALE, t1_image), record, real_dce, warnings, regions)


def _mip_png(mip: sitk.Image, path: Path) -> None:
    from PIL import Image

    array = sitk.GetArrayFromImage(mip)[0]
    top = float(np.percentile(array, 99.5)) or 1.0
    Image.fromarray((np.clip(array / top, 0, 1) * 255).astype(np.uint8)).save(path)


def synthesize_file(t1_path: str | os.PathLike, out_dir: str | os.PathLike, dce_path: str | os.PathLike | None = None,
                    directory=None, device: str = "auto", batch_slices: int = 8,
                    progress: Callable[[float, str], None] | None = None,
                    loader: Callable[..., DCESynthesizer] = DCESynthesizer.load, compress: bool = True,
                    dicom: bool = False, report: Explainer | None = None,
                    keep_identifiers: bool = False) -> SynthesisResult:
    """Read, synthesize and write synthetic_dce.nrrd, subtraction.nrrd, subtraction_mip.nrrd/.png and result.json
    (with `dicom`, the synthetic DCE as a DICOM series and its SR too: `dce.dicom`; with `report`, the record's
    explanations, the case report `report.html`). result.json records the T1 and the real DCE by their sha256, and
    their paths only with `keep_identifiers` (a file or folder name may name the patient).
    `loader` (signature of :meth:`DCESynthesizer.load`) lets a warm worker hand out a generator it already loaded;
    `compress=False` for volumes read back at once (the worker's, ~6× faster to write)."""
    t1_image = load_mr_volume(t1_path, "T1")
    real_dce = load_mr_volume(dce_path, "DCE") if dce_path else None
    synthesizer = loader(directory, device)
    result = synthesize_volume(t1_image, synthesizer, real_dce, batch_slices, progress)
    with atomic_output_dir(out_dir) as scratch:
        write_image(result.synthetic, scratch / "synthetic_dce.nrrd", compress)
        write_image(result.subtraction, scratch / "subtraction.nrrd", compress)
        write_image(result.mip, scratch / "subtraction_mip.nrrd", compress)
        _mip_png(result.mip, scratch / "subtraction_mip.png")
        outputs = ["synthetic_dce.nrrd", "subtraction.nrrd", "subtraction_mip.nrrd", "subtraction_mip.png"]
        if result.regions is not None:
            write_image(result.regions, scratch / REGIONS_FILE, compress)
            outputs.append(REGIONS_FILE)
        if dicom:
            from .dicom import write_synthesis_dicom

            outputs += write_synthesis_dicom(scratch, t1_image, t1_path, result.synthetic, result.record)
        outputs += [REPORT_FILE] if report is not None else []
        record = {**result.record, "input": input_record(t1_path, keep_identifiers),
                  "real_dce": input_record(dce_path, keep_identifiers) if dce_path else None,
                  "outputs": outputs}
        if report is not None:
            write_report(scratch, report_page(t1_image, result.synthetic, result.real_dce, result.mip, record, report,
                                                 result.regions))
        write_json(scratch / "result.json", record, undefined_as_null=True)  # PSNR of identical slices: infinite
    return result
