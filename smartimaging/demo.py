"""`smartimaging demo`: run the modules on bundled sample cases and write an HTML report a person can open."""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

import SimpleITK as sitk

from . import __version__
from .bonescan.lesions import counts_text
from .bonescan.outputs import write_result
from .bonescan.pipeline import BoneScanModels, analyse
from .bonescan.views import load_bone_scan, write_nm_dicom
from .phantoms.bonescan import make_bone_scan_phantom
from .resources import resource_dir

SAMPLE_DATA = resource_dir("SampleData")
PHANTOM_SEEDS = (5, 6, 2, 9)  # no metastasis (confounders only), 2, 5 and 33 metastases


def _bonescan_cases(folder: Path) -> list[tuple[str, Path, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    real = SAMPLE_DATA / "GE_NM_wholebody_bone.dcm"
    if real.is_file():
        cases.append(("Real GE whole-body scan (anterior)", real, "real patient scan, no ground truth"))
    for seed in PHANTOM_SEEDS:
        phantom = make_bone_scan_phantom(seed)
        path = folder / f"phantom_{seed}.dcm"
        write_nm_dicom(path, phantom.views, phantom.patient_id, phantom.age)
        bladder = "present" if phantom.bladder_present else "absent"
        truth = f"phantom truth: {phantom.n_lesions} metastases, bladder {bladder}"
        if phantom.confounders:
            truth += f"; confounders: {', '.join(phantom.confounders)}"
        cases.append((f"Phantom {phantom.patient_id}", path, truth))
    return cases


def _case_html(title: str, truth: str, folder: Path, result: dict) -> str:
    rows = "".join(f"<tr><td>BSTBI {html.escape(k)}</td><td>{v:.3f}</td></tr>"
                   for k, v in result["bstbi"]["per_subimage"].items())
    rows += f"<tr><th>BSTBI (mean)</th><th>{result['bstbi']['mean']:.3f}</th></tr>"
    rows += (f"<tr><td>Metastasis probability</td><td>{result['metastasis_probability']:.3f} "
             f"({'suspected' if result['metastasis_suspected'] else 'not suspected'})</td></tr>"
             f"<tr><td>Urinary bladder probability</td><td>{result['bladder_probability']:.3f}</td></tr>"
             f"<tr><td>Lesions segmented</td><td>{html.escape(counts_text(result['lesion_counts']))}</td></tr>"
             f"<tr><td>Time (file to BSTBI)</td><td>{result['timings_s']['total']:.2f} s</td></tr>")
    images = "".join(f'<img src="{folder.name}/{name}" alt="{name}">' for name in result["outputs"]
                     if name.endswith(".png"))
    return (f"<section><h2>{html.escape(title)}</h2><p class='truth'>{html.escape(truth)}</p>"
            f"<div class='case'><div>{images}</div><table>{rows}</table></div></section>")


MAMMO_CASES = ((920_001, "mass", 0), (920_002, "mass", 1), (920_003, "calcification", 1))
DCE_CASE = 930_006  # a phantom with two malignant lesions


def _mammo_sections(out_dir: Path, device: str) -> list[str]:
    """Phantom mammograms: point on the lesion -> AI ROI -> features -> Rad-score (a note instead without
    pyradiomics)."""
    import numpy as np
    from PIL import Image

    from .radiomics import MISSING_PYRADIOMICS, pyradiomics_installed

    if not pyradiomics_installed():
        print(f"mammography skipped: {MISSING_PYRADIOMICS}")
        return [f"<section><h2>Mammography</h2><p>Skipped: {html.escape(MISSING_PYRADIOMICS)}.</p></section>"]

    from .mammo.images import load_mammogram
    from .mammo.predict import predict_mammogram, write_prediction
    from .mammo.segment import prompt_point
    from .phantoms.mammo import PIXEL_MM, make_mammo_phantom

    sections = []
    (out_dir / "inputs").mkdir(parents=True, exist_ok=True)
    for seed, kind, label in MAMMO_CASES:
        case = make_mammo_phantom(seed, kind, label)
        path = out_dir / "inputs" / f"{case.patient_id}.png"
        Image.fromarray(case.image.round().astype(np.uint16)).save(path)
        mammogram = load_mammogram(path, PIXEL_MM)
        prediction = predict_mammogram(mammogram, kind, point=prompt_point(case.mask), device=device)
        case_dir = out_dir / f"mammo_{case.patient_id}"
        write_prediction(mammogram, prediction, case_dir)
        rows = (f"<tr><th>Rad-score</th><th>{prediction.rad_score:.3f}</th></tr>"
                f"<tr><td>Label (cutoff {prediction.cutoff:.3f})</td><td>{prediction.label}</td></tr>"
                f"<tr><td>ROI</td><td>{html.escape(prediction.roi_source)}, {int(prediction.roi.sum())} px</td></tr>"
                + "".join(f"<tr><td>{html.escape(item['feature'])}</td><td>{item['score_change']:+.3f}</td></tr>"
                          for item in prediction.top_features))
        sections.append(f"<section><h2>Phantom {case.patient_id}</h2><p class='truth'>phantom truth: "
                        f"{html.escape(case.description)}</p><div class='case'><div><img class='mammo' "
                        f"src='{case_dir.name}/overlay.png'></div><table>{rows}</table></div></section>")
        print(f"Phantom {case.patient_id} ({case.description}): Rad-score {prediction.rad_score:.3f} -> "
              f"{prediction.label}")
    return sections


def _dce_sections(out_dir: Path, device: str) -> list[str]:
    """A phantom T1 / real DCE pair: synthetic DCE, subtraction MIP and the metrics, one middle slice shown."""
    import numpy as np
    from PIL import Image

    from .dce.synthesis import synthesize_file
    from .phantoms.breast_mri import make_breast_mri_phantom, phantom_image

    case = make_breast_mri_phantom(DCE_CASE)
    inputs = out_dir / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    for name, array in (("t1", case.t1), ("dce", case.dce)):
        sitk.WriteImage(phantom_image(array, case.spacing, (-128.0, -90.0, -30.0)), str(inputs / f"{name}.nrrd"))
    case_dir = out_dir / f"dce_{case.patient_id}"
    result = synthesize_file(inputs / "t1.nrrd", case_dir, inputs / "dce.nrrd", device=device)
    middle = int(np.argmax((case.lesions > 0).sum(axis=(1, 2)))) if case.lesions.any() else len(case.t1) // 2
    panels = [sitk.GetArrayFromImage(image)[index] for image, index in
              ((sitk.ReadImage(str(inputs / "t1.nrrd")), middle), (result.synthetic, middle),
               (result.real_dce, middle), (result.mip, 0))]
    strip = np.concatenate([np.clip(panel / max(float(np.percentile(panel, 99.5)), 1e-6), 0, 1)
                            for panel in panels], axis=1)
    Image.fromarray((strip * 255).astype(np.uint8)).resize((strip.shape[1] * 2, strip.shape[0] * 2)).save(
        case_dir / "side_by_side.png")
    metrics = result.record["metrics"]
    rows = "".join(f"<tr><td>{name}</td><td>{value}</td></tr>" for name, value in (
        ("SSIM (mean of slices)", f"{metrics['ssim_mean']:.3f}"), ("PSNR", f"{metrics['psnr_mean']:.2f} dB"),
        ("MAE", f"{metrics['mae']:.3f}"), ("MSE", f"{metrics['mse']:.4f}"),
        ("Pearson r", f"{metrics['pearson_r']:.3f}"),
        ("Time", f"{result.record['seconds']:.2f} s, {result.record['slices']} slices")))
    print(f"Phantom {case.patient_id}: synthetic DCE SSIM {metrics['ssim_mean']:.3f}, "
          f"PSNR {metrics['psnr_mean']:.2f} dB")
    return [f"<section><h2>Phantom {case.patient_id} (slice {middle + 1})</h2><div class='case'><div><img class='dce' "
            f"src='{case_dir.name}/side_by_side.png'></div><table>{rows}</table></div></section>"]


def run_demo(out: str, device: str = "auto") -> int:
    """Bone-scan BSTBI on the real GE scan and four phantoms, mammography Rad-scores on three phantoms, a synthetic
    DCE of a breast MRI phantom; writes `<out>/index.html`. The folder is replaced; a cancelled or failed run leaves
    none."""
    out_dir = Path(out)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    try:
        return _write_report(out_dir, device)
    except BaseException:  # Ctrl+C, SIGTERM (CancelledError) or a failure: no half-written report is left
        shutil.rmtree(out_dir, ignore_errors=True)
        raise


def _write_report(out_dir: Path, device: str) -> int:
    models = BoneScanModels.load(device=device)
    sections = []
    for index, (title, path, truth) in enumerate(_bonescan_cases(out_dir / "inputs")):
        study = load_bone_scan([path])
        result = analyse(study, models)
        case_dir = out_dir / f"bonescan_{index}"
        write_result(study, result, case_dir)
        record = json.loads((case_dir / "result.json").read_text(encoding="utf-8"))
        sections.append(_case_html(title, truth, case_dir, record))
        print(f"{title}: BSTBI {result.bstbi['mean']:.3f}, metastasis probability "
              f"{result.metastasis_probability:.3f}, bladder probability {result.bladder_probability:.3f}")
    mammo_sections = _mammo_sections(out_dir, device)
    dce_sections = _dce_sections(out_dir, device)
    models_text = ", ".join(f"{m['id']} v{m['version']}" for m in models.provenance)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>SmartImaging demo report</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} .case{{display:flex;gap:2em;align-items:flex-start}}
img{{height:420px;margin-right:.5em;border:1px solid #ccc}} table{{border-collapse:collapse}}
td,th{{border:1px solid #bbb;padding:.3em .6em;text-align:left}} .warn{{background:#fff3cd;padding:.8em}}
.truth{{color:#555}} img.mammo{{height:auto;width:360px}} img.dce{{height:auto;width:640px}}</style></head><body>
<h1>SmartImaging demo report</h1>
<p class="warn"><b>Demo weights:</b> all models ({html.escape(models_text)}, the mammography and the DCE-synthesis
models) were trained
on synthetic phantoms only.
Numbers shown here are demonstrations, not for clinical use.</p>
<h1>BoneScanBSTBI: bone-scan tumour burden index</h1>
<p>Overlays: red = segmented metastasis, yellow = urinary bladder; grey scale with more uptake darker.
BSTBI is computed on 4 sub-images (anterior/posterior × standard/high-contrast grey levels), K = 5.</p>
{''.join(sections)}
<h1>MammoRadiomics: Rad-score of a marked lesion</h1>
<p>A point on the lesion prompts the U-Net; 102 pyradiomics 2D features of the ROI (orange) feed the classifier
(masses: z-score, PCA, RFE 9, random forest; calcifications: min-max, PCA, Kruskal-Wallis 13, XGBoost). The
table lists the features that moved the score most.</p>
{''.join(mammo_sections)}
<h1>DCESynthesis: synthetic first-phase DCE from T1WI</h1>
<p>Left to right: T1 without fat suppression, synthetic DCE (Pix2Pix), real DCE phase 1, MIP of the synthetic
subtraction. Metrics on intensities in [0, 1] per volume.</p>
{''.join(dce_sections)}
<p>SmartImaging {__version__}; device {models.device}.</p></body></html>"""
    (out_dir / "index.html").write_text(page, encoding="utf-8")
    print(f"report: {out_dir / 'index.html'}")
    return 0
