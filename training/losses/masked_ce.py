"""Cross-entropy over several labels where any label may be missing (target -1)."""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F


def masked_cross_entropy(
    logits: Mapping[str, torch.Tensor],
    targets: torch.Tensor,
    class_weights: Mapping[str, torch.Tensor] | None = None,
    label_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted cross-entropy summed over the labels present in the batch.

    ``logits``: ``{name: [B, C]}``; ``targets``: long ``[B, L]`` in the dict's label order, -1 = missing.
    Per label: weighted mean (weights = ``class_weights[name][target]``, default 1) of the
    cross-entropy over the examples that have that label. Total: sum over labels with at least
    one example of ``label_weights[l] * loss_l`` (default weight 1). Missing entries are dropped
    before the cross-entropy, so their logits get exactly zero gradient; a label with no example
    (or only zero-weight examples) contributes exactly 0. Returns ``(total, per_label)`` where
    ``per_label`` holds the detached unweighted loss of each label that had examples.
    """
    names = list(logits)
    if targets.dim() != 2 or targets.shape[1] != len(names):
        raise ValueError(f"targets must be [B, {len(names)}] (one column per head), got {tuple(targets.shape)}")
    if label_weights is not None and tuple(label_weights.shape) != (len(names),):
        raise ValueError(f"label_weights must be [{len(names)}], got {tuple(label_weights.shape)}")
    # Zero-valued start that is still connected to the graph, so backward() works on any batch.
    total = sum(v[:0].sum() for v in logits.values())
    per_label: dict[str, torch.Tensor] = {}
    for j, name in enumerate(names):
        head = logits[name]
        if head.dim() != 2 or head.shape[0] != targets.shape[0]:
            raise ValueError(f"logits[{name!r}] must be [{targets.shape[0]}, C], got {tuple(head.shape)}")
        present = targets[:, j] >= 0
        if not bool(present.any()):
            continue
        t = targets[present, j]
        if int(t.max()) >= head.shape[1]:
            raise ValueError(f"target {int(t.max())} out of range for label {name!r} with {head.shape[1]} classes")
        ce = F.cross_entropy(head[present], t, reduction="none")
        w = class_weights[name].to(ce)[t] if class_weights is not None else torch.ones_like(ce)
        denom = w.sum()
        if float(denom) <= 0:
            continue
        loss = (w * ce).sum() / denom
        per_label[name] = loss.detach()
        total = total + (label_weights[j].to(loss) * loss if label_weights is not None else loss)
    return total, per_label
