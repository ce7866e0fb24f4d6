"""`dce train`: Pix2Pix on paired T1 / DCE phase-1 slices with the shared training loop (resumable, seeded).

The paper's reference settings: conditional GAN loss (PatchGAN 70×70 on T1 ⊕ DCE, binary cross-entropy on logits)
+ λ_L1 100 × L1, Adam lr 2e-4 with β1 0.5 for both players, batch norm, dropout 0.5 in the inner generator blocks,
augmentation by rotation, cropping (translation jitter) and mirroring. Validation after each epoch: SSIM and PSNR of
every validation slice (generator in eval mode, as at inference); the best-SSIM epoch is kept.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..errors import InputError
from ..evaluation import psnr, ssim
from ..models.nets import CardFieldError, build_network, check_architecture
from ..models.pix2pix import PatchDiscriminator, init_weights
from ..models.registry import save_model
from ..training import ProgressCallback, TrainConfig, fit
from .cohort import PairedVolume, read_pairs
from .synthesis import MODEL_ID, training_domain
from .volumes import UPPER_PERCENTILE, to_unit

MIN_BODY_FRACTION = 0.05


class SlicePairs(Dataset):
    """Axial (T1, DCE) slice pairs in [-1, 1], taken volume by volume (only the kept slices are held); slices that
    are almost all air are left out. Volumes of different in-plane sizes (a cohort mixing 512² and 448² scans) give
    slices centred in the largest rows and columns, padded with air (-1), so that any batch stacks."""

    def __init__(self, pairs: Iterable[PairedVolume], augment: bool = True, max_rotation_deg: float = 10.0,
                 jitter_px: float = 8.0):
        self.t1, self.dce = [], []  # per volume: its kept slices
        for pair in pairs:
            keep = (pair.t1 > -0.9).mean(axis=(1, 2)) >= MIN_BODY_FRACTION
            self.t1.append(pair.t1[keep])
            self.dce.append(pair.dce[keep])
        self.starts = np.cumsum([0] + [len(volume) for volume in self.t1])
        self.shape = tuple(max((volume.shape[axis] for volume in self.t1), default=0) for axis in (1, 2))
        self.augment, self.max_rotation, self.jitter = augment, math.radians(max_rotation_deg), jitter_px

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        volume = int(np.searchsorted(self.starts, index, side="right")) - 1
        pair = np.stack([self.t1[volume][index - self.starts[volume]], self.dce[volume][index - self.starts[volume]]])
        rows, columns = (size - now for size, now in zip(self.shape, pair.shape[1:], strict=True))
        if rows or columns:
            pair = np.pad(pair, ((0, 0), (rows // 2, rows - rows // 2), (columns // 2, columns - columns // 2)),
                          constant_values=-1.0)
        pair = torch.from_numpy(pair)[:, None]  # (2, 1, H, W)
        if self.augment:
            pair = self._augment(pair)
        return pair[0], pair[1]

    def _augment(self, pair: torch.Tensor) -> torch.Tensor:
        """The same mirroring, rotation and shift for both images; air (-1) fills the borders."""
        if torch.rand(()) < 0.5:
            pair = pair.flip(-1)
        height, width = pair.shape[-2:]
        angle = (torch.rand(()) * 2 - 1) * self.max_rotation
        shift = (torch.rand(2) * 2 - 1) * self.jitter * 2 / torch.tensor([width, height])
        theta = torch.tensor([[torch.cos(angle), -torch.sin(angle), shift[0]],
                              [torch.sin(angle), torch.cos(angle), shift[1]]], dtype=torch.float32)
        grid = F.affine_grid(theta[None].expand(2, 2, 3), list(pair.shape), align_corners=False)
        return F.grid_sample(pair + 1, grid, align_corners=False, padding_mode="zeros") - 1


class Pix2Pix(nn.Module):
    """Both players in one module (one state dict to checkpoint); calling it runs the generator."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module):
        super().__init__()
        self.generator, self.discriminator = generator, discriminator

    def forward(self, t1: torch.Tensor) -> torch.Tensor:
        return self.generator(t1)


class Pix2PixStep:
    """One Pix2Pix iteration: the discriminator on real and (detached) synthetic pairs, then the generator."""

    def __init__(self, model: Pix2Pix, learning_rate: float, l1_weight: float):
        self.model, self.l1_weight = model, l1_weight
        self.optimizers = {
            "generator": torch.optim.Adam(model.generator.parameters(), lr=learning_rate, betas=(0.5, 0.999)),
            "discriminator": torch.optim.Adam(model.discriminator.parameters(), lr=learning_rate, betas=(0.5, 0.999))}

    @staticmethod
    def _gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(real)))

    def __call__(self, t1: torch.Tensor, dce: torch.Tensor) -> dict[str, float]:
        generator, discriminator = self.model.generator, self.model.discriminator
        synthetic = generator(t1)
        discriminator.requires_grad_(True)
        self.optimizers["discriminator"].zero_grad(set_to_none=True)
        loss_d = 0.5 * (self._gan_loss(discriminator(torch.cat([t1, synthetic.detach()], 1)), False)
                        + self._gan_loss(discriminator(torch.cat([t1, dce], 1)), True))
        loss_d.backward()
        self.optimizers["discriminator"].step()
        discriminator.requires_grad_(False)
        self.optimizers["generator"].zero_grad(set_to_none=True)
        loss_gan = self._gan_loss(discriminator(torch.cat([t1, synthetic], 1)), True)
        loss_l1 = F.l1_loss(synthetic, dce)
        loss_g = loss_gan + self.l1_weight * loss_l1
        loss_g.backward()
        self.optimizers["generator"].step()
        return {"loss": loss_g.item(), "generator_gan": loss_gan.item(), "l1": loss_l1.item(),
                "discriminator": loss_d.item()}


def validation_metrics(generator: nn.Module, pairs: list[PairedVolume], device: torch.device,
                       batch_slices: int = 16) -> dict:
    """Mean SSIM and PSNR (intensities in [0, 1]) over every validation slice."""
    generator.eval()
    ssims, psnrs = [], []
    with torch.no_grad():
        for pair in pairs:
            for start in range(0, len(pair.t1), batch_slices):
                batch = torch.from_numpy(pair.t1[start:start + batch_slices])[:, None].to(device)
                synthetic = to_unit(generator(batch)[:, 0].cpu().numpy())
                for fake, real in zip(synthetic, to_unit(pair.dce[start:start + batch_slices]), strict=True):
                    ssims.append(ssim(real, fake, 1.0))
                    psnrs.append(psnr(real, fake, 1.0))
    return {"score": float(np.mean(ssims)), "ssim": float(np.mean(ssims)), "psnr": float(np.mean(psnrs)),
            "slices": len(ssims)}


def train_dce(manifest: str | os.PathLike, out_dir: str | os.PathLike, config: TrainConfig, model_id: str = MODEL_ID,
              ngf: int = 64, depth: int = 8, ndf: int = 64, l1_weight: float = 100.0,
              progress: ProgressCallback | None = None, arguments: dict | None = None) -> Path:
    """Train on the manifest's 'train' rows, validate on its 'val' rows; writes the generator's card + weights."""
    architecture = {"name": "pix2pix_unet", "in_channels": 1, "out_channels": 1, "ngf": ngf, "depth": depth,
                    "dropout": True}
    try:
        check_architecture(architecture)
    except CardFieldError as exc:
        raise InputError(f"--ngf {ngf} / --depth {depth}: {str(exc).removeprefix('architecture.')}") from None
    train_pairs, val_pairs = read_pairs(manifest, "train"), read_pairs(manifest, "val")
    if not val_pairs:
        raise InputError("The manifest needs 'val' rows: validation picks the best epoch")
    torch.manual_seed(config.seed)
    model = Pix2Pix(init_weights(build_network(architecture)), init_weights(PatchDiscriminator(2, ndf, 3)))
    slices = SlicePairs(train_pairs)
    result = fit(model, slices, None, lambda m, device: validation_metrics(m.generator, val_pairs, device), config,
                 progress, step_factory=lambda m, device: Pix2PixStep(m, config.learning_rate, l1_weight))
    best = next(r for r in result.history if r["epoch"] == result.best_epoch)
    card = {
        "id": model_id, "version": "1.0.0", "task": "dce-synthesis", "architecture": architecture,
        "inputs": {"sequence": "T1WI without fat suppression", "plane": "axial slices (array axis 0), any size",
                   "normalisation": f"per volume: minimum .. {UPPER_PERCENTILE}th percentile -> [-1, 1], clipped"},
        "outputs": {"synthetic": "first-phase DCE with fat suppression in [-1, 1]; written as 0-1000 a.u."},
        "training": {"manifest": Path(manifest).name, "arguments": arguments, "train_volumes": len(train_pairs),
                     "train_slices": len(slices), "val_volumes": len(val_pairs), "l1_weight": l1_weight,
                     "discriminator": {"name": "patchgan", "ndf": ndf, "n_layers": 3, "receptive_field_px": 70},
                     "optimizer": "Adam, betas (0.5, 0.999)", "augmentation": "rotation ±10°, shift ±8 px, mirroring",
                     "config": asdict(config), "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                     "seconds": result.seconds, "history": result.history},
        "metrics": {"validation": {"data": f"every slice of the {len(val_pairs)} 'val' volumes, intensities in "
                                           "[0, 1]", "ssim": best["ssim"], "psnr": best["psnr"],
                                   "slices": best["slices"]}},
        "intended_use": ("DEMO WEIGHTS trained on synthetic phantoms; not for clinical use." if "demo" in model_id
                         else "Research use; validate on your own data before any clinical use."),
        "training_domain": training_domain(manifest, "train", f"the 'train' rows of {Path(manifest).name}")}
    return save_model(model.generator, card, out_dir)
