"""Rotation prediction (S4L-Rotation): every image rotated by 0/90/180/270 degrees, class = k."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from training.models.recording_model import N_ROTATIONS


def rotate_batch(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``images [M, C, S, S]`` → ``(rotated [4M, C, S, S], targets [4M])``; block k is rot90 by k."""
    if images.dim() != 4 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"rotate_batch needs square images [M, C, S, S], got {tuple(images.shape)}")
    rotated = torch.cat([torch.rot90(images, k, dims=(2, 3)) for k in range(N_ROTATIONS)])
    targets = torch.arange(N_ROTATIONS, device=images.device).repeat_interleave(images.shape[0])
    return rotated, targets


def rotation_loss(rotation_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the rotation classifier."""
    return F.cross_entropy(rotation_logits, targets)


def select_rotation_frames(
    frames: torch.Tensor, frame_mask: torch.Tensor, per_recording: int | None = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Real frames ``[M, 1, S, S]`` for the rotation task from ``frames [B, N, 1, S, S]``.

    ``per_recording=None`` takes every real frame; an int k takes k random real frames of each
    recording (fewer where a recording has fewer). Rotating all 4·B·N frames costs as much as
    four extra supervised forwards; one frame per recording keeps the task for a fraction of it.
    """
    real = frame_mask > 0
    if per_recording is None:
        return frames[real]
    if per_recording < 1:
        raise ValueError(f"per_recording must be >= 1 or None, got {per_recording}")
    k = min(per_recording, frames.shape[1])
    # Random scores in [0, 1) for real frames, -1 for padding: top-k picks real frames first.
    scores = torch.rand(frame_mask.shape, generator=generator).to(frames.device)
    scores = torch.where(real, scores, torch.full_like(scores, -1.0))
    idx = scores.topk(k, dim=1).indices  # [B, k]
    keep = real.gather(1, idx)
    rows = torch.arange(frames.shape[0], device=frames.device).unsqueeze(1).expand_as(idx)
    return frames[rows[keep], idx[keep]]
