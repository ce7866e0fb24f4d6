"""Training losses without MONAI: `dice_ce_loss` is MONAI's `DiceCELoss(to_onehot_y=True, softmax=True)` (monai 1.6.1,
`monai/losses/dice.py`, every other argument at its default), tested equal to it on random inputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

SMOOTH = 1e-5  # DiceLoss' smooth_nr and smooth_dr


def dice_ce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean soft Dice loss over items and classes (background included) of the softmax, plus cross-entropy.

    `logits` (B, C, *spatial), `labels` (B, 1, *spatial) holding class indices."""
    classes = labels[:, 0].long()
    probability = torch.softmax(logits, 1)
    truth = F.one_hot(classes, logits.shape[1]).movedim(-1, 1).to(probability.dtype)
    spatial = tuple(range(2, logits.ndim))
    overlap = (probability * truth).sum(spatial)
    dice = 1 - (2 * overlap + SMOOTH) / (probability.sum(spatial) + truth.sum(spatial) + SMOOTH)
    return dice.mean() + F.cross_entropy(logits, classes)
