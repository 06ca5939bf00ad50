"""Per-head temperature scaling (Guo et al. 2017) fitted on validation logits.

Each head gets one scalar T > 0; calibrated probabilities are softmax(logits / T). T is fitted by
minimising the negative log-likelihood of the labelled rows with LBFGS over log T (keeps T positive)
and clamped to [MIN_TEMPERATURE, MAX_TEMPERATURE]. With fewer than MIN_LABELLED labelled rows the
fit would chase noise, so such heads keep T = 1 (no change).
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F

MIN_TEMPERATURE = 0.05
MAX_TEMPERATURE = 20.0
MIN_LABELLED = 8


def _as_tensors(logits, y) -> tuple[torch.Tensor, torch.Tensor]:
    z = torch.as_tensor(np.asarray(logits, dtype=np.float64) if not torch.is_tensor(logits) else logits)
    t = torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y).long()
    if z.ndim != 2 or t.ndim != 1 or z.shape[0] != t.shape[0]:
        raise ValueError(f"logits must be [n, C] and y [n]; got {tuple(z.shape)} and {tuple(t.shape)}")
    keep = t >= 0
    if keep.any() and int(t[keep].max()) >= z.shape[1]:
        raise ValueError(f"y has class index {int(t[keep].max())} but logits have {z.shape[1]} columns")
    return z.detach().double()[keep], t[keep]


def fit_temperature(logits, y, max_iter: int = 100) -> float:
    """Temperature minimising NLL of softmax(logits / T) on rows with y >= 0 (y = -1: unknown)."""
    z, t = _as_tensors(logits, y)
    if z.shape[0] < MIN_LABELLED:
        return 1.0
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z * torch.exp(-log_t), t)
        loss.backward()
        return loss

    opt.step(closure)
    value = float(log_t.detach())
    if not math.isfinite(value):
        return 1.0
    return float(min(max(math.exp(value), MIN_TEMPERATURE), MAX_TEMPERATURE))


def fit_temperatures(logits: Mapping[str, object], truth: Mapping[str, object]) -> dict[str, float]:
    """One temperature per head; heads without truth keep T = 1."""
    return {name: fit_temperature(z, truth[name]) if name in truth else 1.0 for name, z in logits.items()}


def nll(logits, y, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the labelled rows at a given temperature."""
    z, t = _as_tensors(logits, y)
    if z.shape[0] == 0:
        raise ValueError("no labelled rows to score")
    return float(F.cross_entropy(z / temperature, t))
