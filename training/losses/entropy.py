"""Conditional entropy minimisation (EntMin): pushes predictions on any example towards confidence."""
from __future__ import annotations

from typing import Mapping

import torch


def softmax_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of softmax(logits) along the last axis."""
    logp = logits.log_softmax(-1)
    return -(logp.exp() * logp).sum(-1)


def entropy_minimisation(logits: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Mean over heads of the mean over examples of the softmax entropy of ``{name: [B, C]}``."""
    if not logits:
        raise ValueError("entropy_minimisation needs at least one head")
    return torch.stack([softmax_entropy(v).mean() for v in logits.values()]).mean()
