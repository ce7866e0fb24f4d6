"""Synthetic breast-MRI lesion scenes for training the click-seeded lesion U-Net (`lvi.segment`) on realistic
appearance, and the command that trains the shipped demo card.

One scene is built in millimetres on a 1 mm world grid centred on the click: fat (fat-suppressed DCE, subtraction or
FS-T2WI contrast), fibroglandular tissue (FGT) patches with texture, straight strands and vessels in any direction,
other enhancing foci, sometimes air behind a skin line, and one lesion (5-40 mm, irregular margin, homogeneous,
heterogeneous or rim enhancement, T2 oedema halo) whose brightness overlaps the FGT's. It is then "acquired": a slice
profile (1-4 mm thick slices), a 0.5-1.2 mm in-plane grid, any in-plane orientation (flips and swaps in the
direction matrix), a partial field of view (crops down to 20 mm), a coil bias field, Rician noise and a random scanner
scale. The click is a random lesion voxel, not only the centroid. Patches are cut by the same code as inference
(:func:`smartimaging.lvi.segment.patch_input`).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from scipy import ndimage
from torch.utils.data import ConcatDataset, Dataset

from ..domain import summarise
from ..errors import InputError
from ..evaluation import dice
from ..models.nets import build_network
from ..models.registry import load_model, save_model
from ..phantoms.breast_mri import make_breast_mri_phantom, phantom_image
from ..training import ProgressCallback, TrainConfig, fit
from .cohort import LVI_PHANTOM_SHAPE
from .segment import (
    ARCHITECTURE,
    PATCH_SIZE,
    PATCH_SPACING,
    ClickedPatches,
    LesionSegmenter,
    patch_input,
    patch_profile,
    segmentation_loss,
)

WORLD_HALF_MM = (34, 34, 18)  # x, y, z: covers the U-Net's 64 x 64 x 32 mm patch around the click


def _unit_noise(rng, shape, sigma_mm: float) -> np.ndarray:
    """Smooth unit-SD noise on the 1 mm grid."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma_mm)
    return field / (field.std() + 1e-6)


def _world_grid() -> tuple[tuple[int, int, int], np.ndarray]:
    """The world grid's shape (z, y, x) and its voxel centres (x, y, z mm, click at 0), float32 (n, 3)."""
    half = np.array(WORLD_HALF_MM)
    shape = tuple(int(v) for v in 2 * half[::-1] + 1)
    zz, yy, xx = np.meshgrid(*[np.arange(n, dtype=np.float32) - h for n, h in zip(shape, half[::-1], strict=True)],
                             indexing="ij")
    return shape, np.stack([xx.ravel(), yy.ravel(), zz.ravel()], axis=1)


SHAPE, POINTS = _world_grid()


def _line_distance(start: np.ndarray, direction: np.ndarray) -> np.ndarray:
    """Distance (mm) of every world voxel to the line through `start` along unit `direction`."""
    offset = POINTS - start.astype(np.float32)
    along = offset @ direction.astype(np.float32)
    return np.sqrt(np.maximum(np.einsum("ij,ij->i", offset, offset) - along ** 2, 0)).reshape(SHAPE)


def _random_direction(rng) -> np.ndarray:
    vector = rng.standard_normal(3)
    return vector / np.linalg.norm(vector)


def _lesion(rng, diameter_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """An irregular ellipsoid on its own 1 mm box: (mask, normalised radius), both (z, y, x)."""
    radii = diameter_mm / 2 * rng.uniform(0.7, 1.3, 3)
    half = int(math.ceil(radii.max() * 1.35)) + 1
    axis = np.arange(-half, half + 1, dtype=np.float32)
    zz, yy, xx = np.meshgrid(axis, axis, axis, indexing="ij")
    rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    local = (np.stack([xx, yy, zz], axis=-1) @ rotation.astype(np.float32)) / radii.astype(np.float32)
    radius = np.linalg.norm(local, axis=-1)
    margin = 1 + rng.uniform(0.0, 0.3) * _unit_noise(rng, radius.shape, max(diameter_mm / 6, 1.0)).clip(-2.5, 2.5) / 2.5
    return radius < margin, radius / margin


def _paste(box: np.ndarray, at: np.ndarray, fill) -> np.ndarray:
    """`box` (z, y, x) placed on the world grid with its voxel `at` on the click; outside: `fill`."""
    world = np.full(SHAPE, fill, box.dtype)
    centre = np.array(SHAPE) // 2
    low = centre - at
    world_slices, box_slices = [], []
    for start, length, size in zip(low, box.shape, SHAPE, strict=True):
        a, b = max(start, 0), min(start + length, size)
        world_slices.append(slice(a, b))
        box_slices.append(slice(a - start, b - start))
    world[tuple(world_slices)] = box[tuple(box_slices)]
    return world


def world_scene(rng) -> tuple[np.ndarray, np.ndarray, str]:
    """(intensity, lesion mask) on the 1 mm world grid (z, y, x) centred on the click; and the contrast name."""
    half = np.array(WORLD_HALF_MM, float)
    diameter = math.exp(rng.uniform(math.log(5.0), math.log(40.0)))
    box, box_radius = _lesion(rng, diameter)
    inside = np.argwhere(box)
    at = inside[rng.integers(len(inside))]  # the click: any lesion voxel
    lesion, radius = _paste(box, at, False), _paste(box_radius, at, np.float32(9.0))
    offset = (np.array(box.shape) // 2 - at)[::-1].astype(float)  # lesion centre (x, y, z mm) from the click
    contrast = rng.choice(["dce", "dce", "subtraction", "t2"])
    fat = {"dce": 1.0, "subtraction": rng.uniform(0.05, 0.3), "t2": 1.0}[contrast]
    image = np.full(SHAPE, fat, np.float32) * (1 + 0.05 * _unit_noise(rng, SHAPE, 1.0))

    # FGT patches with texture, strands and vessels in any direction.
    level = {"dce": rng.uniform(1.2, 2.8), "subtraction": rng.uniform(0.2, 1.5), "t2": rng.uniform(1.2, 2.5)}[contrast]
    fgt = _unit_noise(rng, SHAPE, rng.uniform(1.5, 4.0)) > rng.uniform(0.4, 2.5)
    texture = 1 + 0.15 * _unit_noise(rng, SHAPE, 1.0)
    image[fgt] = (level * texture)[fgt]
    for _ in range(int(rng.integers(0, 7))):
        distance = _line_distance(rng.uniform(-half, half), _random_direction(rng))
        bright = rng.uniform(0.8, 1.3) * (level if rng.random() < 0.6 else rng.uniform(2.0, 4.5) * fat)
        image = np.where(distance < rng.uniform(0.4, 1.8), np.maximum(image, bright), image)
    for _ in range(int(rng.integers(0, 4))):  # other enhancing foci, away from the lesion
        centre = rng.uniform(-half, half)
        if np.linalg.norm(centre - offset) < diameter / 2 + 6:
            continue
        offset_focus = POINTS - centre.astype(np.float32)
        focus = np.einsum("ij,ij->i", offset_focus, offset_focus).reshape(SHAPE) < rng.uniform(1.5, 5.0) ** 2
        image[focus] = rng.uniform(1.5, 4.0) * fat if contrast != "subtraction" else rng.uniform(0.5, 1.5)

    # The lesion: as bright as the FGT or brighter; homogeneous, heterogeneous or rim-enhancing.
    if contrast == "t2":
        lesion_level = rng.uniform(1.3, 2.8)
        if rng.random() < 0.4:  # oedema: a bright halo
            image[(radius >= 1) & (radius < rng.uniform(1.3, 1.8))] = rng.uniform(2.0, 4.0)
    else:
        lesion_level = max(level * rng.uniform(0.8, 1.8), fat * rng.uniform(1.6, 4.0))
    pattern = 1 + rng.uniform(0.0, 0.3) * _unit_noise(rng, SHAPE, rng.uniform(0.8, 2.5))
    if rng.random() < 0.25:  # rim enhancement
        pattern = np.where(radius < rng.uniform(0.5, 0.75), rng.uniform(0.4, 0.75), pattern)
    image[lesion] = (lesion_level * pattern)[lesion]

    if rng.random() < 0.3:  # air beyond a skin line that does not cut the lesion
        normal = _random_direction(rng)
        depth = float(offset @ normal) + diameter / 2 + rng.uniform(3, 25)
        along = (POINTS @ normal.astype(np.float32)).reshape(SHAPE)
        image[along > depth] = 0.02 * fat
        image[(along > depth - 1.5) & (along <= depth)] = level
    return image, lesion, str(contrast)


def _direction(rng) -> tuple[float, ...]:
    """An axial direction matrix with random in-plane flips and a random row/column swap."""
    axes = np.eye(3)
    if rng.random() < 0.5:
        axes[:, [0, 1]] = axes[:, [1, 0]]
    axes[:, 0] *= rng.choice([-1, 1])
    axes[:, 1] *= rng.choice([-1, 1])
    axes[:, 2] *= np.linalg.det(axes)  # keep it right-handed
    return tuple(axes.ravel())


def acquired_scene(rng) -> tuple[sitk.Image, sitk.Image, np.ndarray, str]:
    """(MR volume, lesion label, click in LPS mm, contrast) of one random scene and acquisition."""
    image, lesion, contrast = world_scene(rng)
    half = np.array(WORLD_HALF_MM, float)
    thickness = rng.uniform(1.0, 4.0)
    in_plane = rng.uniform(0.5, 1.2)
    click = rng.uniform(-20, 20, 3)
    smooth = sitk.GetImageFromArray(ndimage.gaussian_filter1d(image, thickness / 2.5, axis=0))  # slice profile
    smooth.SetOrigin(tuple(click - half))
    label = sitk.GetImageFromArray(ndimage.gaussian_filter1d(lesion.astype(np.float32), thickness / 2.5, axis=0))
    label.CopyInformation(smooth)

    # A partial field of view around the click, on an axial grid of random orientation.
    direction = _direction(rng)
    axes = np.array(direction).reshape(3, 3)
    spacing = np.array([in_plane, in_plane, thickness])
    low, high = -half.copy(), half.copy()
    for axis in range(3):
        if rng.random() < 0.5:
            width = rng.uniform(20.0 if axis < 2 else 10.0, 2 * half[axis])
            start = rng.uniform(max(-half[axis], -width + 2), min(half[axis] - width, -2))
            low[axis], high[axis] = start, start + width
    size = np.maximum(np.floor((high - low) / spacing).astype(int) + 1, 2)
    grid = sitk.Image([int(v) for v in size], sitk.sitkFloat32)
    grid.SetSpacing(tuple(spacing))
    grid.SetDirection(direction)
    grid.SetOrigin(tuple(click + axes @ low))  # low, high: along the grid's own axes
    volume = sitk.Resample(smooth, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    label = sitk.Resample(label, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32) > 0.5

    # Coil bias field, Rician noise, scanner units.
    array = sitk.GetArrayFromImage(volume)
    zz, yy, xx = np.meshgrid(*[np.linspace(-1, 1, n) for n in array.shape], indexing="ij")
    gradient = rng.uniform(-0.4, 0.4, 3)
    bias = np.exp(gradient[0] * zz + gradient[1] * yy + gradient[2] * xx + 0.15 * rng.standard_normal())
    noise = rng.uniform(0.02, 0.12)
    array = np.hypot(array * bias + rng.normal(0, noise, array.shape), rng.normal(0, noise, array.shape))
    array = array * rng.uniform(20, 2000)
    if rng.random() < 0.5:
        array = np.round(array)
    acquired = sitk.GetImageFromArray(array.astype(np.float32))
    acquired.CopyInformation(volume)
    return acquired, sitk.Cast(label, sitk.sitkUInt8), click, contrast


class SceneDataset(Dataset):
    """`n` (patch, lesion mask) pairs per epoch from fresh random scenes (or fixed ones with `fixed=True`)."""

    def __init__(self, n: int, seed: int, fixed: bool = False):
        self.n, self.seed, self.fixed = n, seed, fixed
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        rng = np.random.default_rng([self.seed, index]) if self.fixed else self.rng
        volume, label, click, _ = acquired_scene(rng)
        array, grid = patch_input(volume, click)
        target = sitk.GetArrayFromImage(sitk.Resample(label, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                                      sitk.sitkUInt8)) > 0
        image, mask = torch.from_numpy(array)[None], torch.from_numpy(target)[None]
        if not self.fixed:
            for axis in (-1, -2):
                if rng.random() < 0.5:
                    image, mask = image.flip(axis), mask.flip(axis)
            if rng.random() < 0.5:
                image, mask = image.transpose(-1, -2), mask.transpose(-1, -2)
        return image.contiguous(), mask.long().contiguous()


PHANTOM_TRAIN_SEED, PHANTOM_VAL_SEED = 52, 71  # LVI phantom seeds: the classifiers' training cohort; a fresh one


def _phantom_pairs(seed: int, n: int, sequences=("dce2", "t2")) -> list[tuple[sitk.Image, sitk.Image]]:
    """(volume, VOI) pairs of LVI phantoms made as `lvi phantoms --seed <seed>` makes them."""
    pairs = []
    for index in range(n):
        case = make_breast_mri_phantom(seed * 100_000 + index, LVI_PHANTOM_SHAPE, lvi=index % 2)
        origin = (-96.0 + index % 5, -70.0, -20.0)
        voi = phantom_image((case.lesions > 0).astype(np.uint8), case.spacing, origin)
        pairs += [(phantom_image(getattr(case, name), case.spacing, origin), voi) for name in sequences]
    return pairs


def _dice_at(segmenter: LesionSegmenter, volume: sitk.Image, voi: sitk.Image, point) -> float:
    try:
        mask = segmenter.segment(volume, point)
    except InputError:  # nothing found at the click: Dice 0
        return 0.0
    return dice(sitk.GetArrayFromImage(mask) > 0, sitk.GetArrayFromImage(voi) > 0)


def scenes_training_domain(n_scenes: int, seed: int, phantoms: list[tuple[sitk.Image, sitk.Image]]) -> dict:
    """`training_domain` of the demo card: profiles (`patch_profile`, lesion included) of patches cut like the
    training patches: `n_scenes` scenes of the training generator and each phantom volume at its VOI's centroid."""
    rng, profiles = np.random.default_rng(seed), []
    for _ in range(n_scenes):
        volume, voi, click, _ = acquired_scene(rng)
        profiles.append(_patch_profile_at(volume, voi, click))
    for volume, voi in phantoms:
        stats = sitk.LabelShapeStatisticsImageFilter()
        stats.Execute(voi)
        profiles.append(_patch_profile_at(volume, voi, stats.GetCentroid(1)))
    return summarise(profiles, f"patches of {n_scenes} synthetic lesion scenes (seed {seed}) and {len(phantoms)} "
                               f"LVI phantom volumes (seed {PHANTOM_TRAIN_SEED}), cut as for training")


def _patch_profile_at(volume: sitk.Image, voi: sitk.Image, click) -> dict[str, float]:
    array, grid = patch_input(volume, click)
    lesion = sitk.GetArrayFromImage(sitk.Resample(voi, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                                  sitk.sitkUInt8))
    return patch_profile(array, volume, lesion)


def train_on_scenes(args, progress: ProgressCallback | None = None) -> Path:
    """The demo card: synthetic lesion scenes + LVI phantom patches, optionally starting from
    another card's weights; the validation score is the mean Dice of fixed scenes (click at a random lesion voxel)
    and fresh phantoms (click at the centroid), on the volume's grid as in use."""
    phantoms = _phantom_pairs(PHANTOM_TRAIN_SEED, args.phantoms)
    train_set = ConcatDataset([SceneDataset(args.scenes_per_epoch, args.seed), ClickedPatches(phantoms,
                                                                                             seed=args.seed)])
    scene_rng = np.random.default_rng(args.seed + 10_000)
    val_scenes = [acquired_scene(scene_rng)[:3] for _ in range(args.val_scenes)]
    val_phantoms = _phantom_pairs(PHANTOM_VAL_SEED, args.val_phantoms, ("dce2",))
    torch.manual_seed(args.seed)
    network = build_network(ARCHITECTURE)
    if args.init:
        network.load_state_dict(load_model(args.init, device="cpu").network.state_dict())

    def validate(net, device):
        segmenter = LesionSegmenter(net, device)
        scenes = [_dice_at(segmenter, volume, voi, click) for volume, voi, click in val_scenes]
        phantom = []
        for volume, voi in val_phantoms:
            stats = sitk.LabelShapeStatisticsImageFilter()
            stats.Execute(voi)
            phantom.append(_dice_at(segmenter, volume, voi, stats.GetCentroid(1)))
        return {"score": float(np.mean(scenes + phantom)), "scene_dice": float(np.mean(scenes)),
                "phantom_dice": float(np.mean(phantom))}

    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
                         device="cpu")
    result = fit(network, train_set, segmentation_loss, validate, config, progress)
    best = result.history[result.best_epoch - 1]
    card = {"id": args.name, "version": "2.0.0", "task": "lvi-lesion-segmentation", "architecture": ARCHITECTURE,
            "inputs": {"patch_size_zyx": PATCH_SIZE, "patch_spacing_xyz_mm": PATCH_SPACING,
                       "centre": "the click (or the box centre)", "intensity": "z-score over the patch's tissue",
                       "sequences": "fat-suppressed DCE (or subtraction) and FS-T2WI"},
            "outputs": {"labels": {"0": "background", "1": "lesion"}, "threshold": 0.5},
            "training": {"data": (f"{args.scenes_per_epoch} fresh synthetic lesion scenes per epoch "
                                  "(smartimaging.lvi.lesion_scenes: 5-40 mm lesions, FGT, strands, vessels, foci, "
                                  "air, 1-4 mm slices, 0.5-1.2 mm pixels, any in-plane orientation, partial FOV, bias "
                                  "field, Rician noise; click at a random lesion voxel) + DCE phase 2 and FS-T2WI of "
                                  f"{args.phantoms} LVI phantoms (seed {PHANTOM_TRAIN_SEED}, click at a random "
                                  "lesion voxel +- 4 mm)"),
                         "initial_weights": args.init and Path(args.init).name,
                         "held_out": "no real image was used; breast1 (pyradiomics) is the held-out real test case",
                         "config": asdict(config), "best_epoch": result.best_epoch, "seconds": result.seconds,
                         "history": result.history},
            "metrics": {"dice": best["phantom_dice"],
                        "data": (f"DCE phase 2 of {args.val_phantoms} fresh LVI phantoms (seed {PHANTOM_VAL_SEED}), "
                                 "click at the VOI's centroid (phantom numbers)"),
                        "synthetic_scene_dice": best["scene_dice"],
                        "synthetic_scene_data": f"{args.val_scenes} fixed validation scenes (seed "
                                                f"{args.seed + 10_000}), click at a random lesion voxel"},
            "intended_use": "DEMO WEIGHTS trained on synthetic phantoms; not for clinical use.",
            "training_domain": scenes_training_domain(args.domain_scenes, args.seed, phantoms)}
    return save_model(network, card, args.out, storage_dtype=torch.float16)


def _arguments(argv=None):
    parser = argparse.ArgumentParser(prog="python -m smartimaging.lvi.lesion_scenes",
                                     description="train the demo lesion U-Net on synthetic scenes + LVI phantoms")
    parser.add_argument("--out", required=True)
    parser.add_argument("--name", default="lvi-lesion-unet-demo")
    parser.add_argument("--init", help="a card to start from (its weights)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--scenes-per-epoch", type=int, default=200)
    parser.add_argument("--phantoms", type=int, default=24, help="LVI phantoms (DCE + T2 each) in every epoch")
    parser.add_argument("--val-scenes", type=int, default=16)
    parser.add_argument("--val-phantoms", type=int, default=6)
    parser.add_argument("--domain-scenes", type=int, default=200, help="scenes profiled for the card's "
                        "training_domain")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = _arguments(argv)
    torch.set_num_threads(args.threads)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    started = time.perf_counter()
    card = train_on_scenes(args, progress=lambda record: print(json.dumps(record), flush=True))
    print(f"wrote {card} in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
