"""Training-time image augmentation of a batch: mirror, shift + zoom, brightness + contrast (torch).

One draw per recording, shared by its frames (a recording is one camera and one person; per-frame
draws would make the frames disagree about where the face is). None of the eleven product labels is
about left/right, position or exposure; rotations are left out because the rotation self-supervision
predicts them. Off by default: on nuaa it cost S4L 6 points at 30 % of the labels, nearly all on the
live/photo label (docs/results.md, "Known limits"); a likely reason, not tested
separately, is that resampling and gain changes blur that label's cue, print texture and contrast.

Which passes see it: every training forward of a batch (supervised, EntMin, VAT, rotation) uses the
same augmented batch; precise BatchNorm, validation, pseudo-labelling and export see clean frames.
Randomness comes from torch's global generator, which `trainer.seed_everything` seeds per epoch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from training.config import AugmentConfig


def augment_batch(x: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """Augmented copy of recordings [B, T, C, S, S] or frames [B, C, S, S]; `x` itself is unchanged."""
    if x.dim() not in (4, 5):
        raise ValueError(f"augment_batch expects [B, C, S, S] or [B, T, C, S, S]; got shape {tuple(x.shape)}")
    b = x.shape[0]
    per_item = x.shape[1] if x.dim() == 5 else 1
    frames = x.reshape(b * per_item, *x.shape[-3:])

    def uniform(half_width: float) -> torch.Tensor:  # [B] in [-w, w], repeated over a recording's frames
        return ((torch.rand(b) * 2 - 1) * half_width).repeat_interleave(per_item)

    mirror = torch.where(torch.rand(b) < 0.5, -1.0, 1.0) if cfg.flip else torch.ones(b)
    zoom = 1.0 + uniform(cfg.zoom)  # > 1 enlarges the content
    theta = torch.zeros(b * per_item, 2, 3)
    theta[:, 0, 0] = mirror.repeat_interleave(per_item) / zoom
    theta[:, 1, 1] = 1.0 / zoom
    theta[:, 0, 2] = uniform(2 * cfg.shift)  # grid units: the image spans [-1, 1], so 2 * share of the side
    theta[:, 1, 2] = uniform(2 * cfg.shift)
    grid = F.affine_grid(theta.to(frames), list(frames.shape), align_corners=False)
    out = F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)
    gain = (1.0 + uniform(cfg.contrast)).to(out).view(-1, 1, 1, 1)
    offset = uniform(cfg.brightness).to(out).view(-1, 1, 1, 1)
    return (out * gain + offset).reshape(x.shape)
