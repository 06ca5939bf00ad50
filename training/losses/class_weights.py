"""Class and label weights against class and label imbalance (thesis 3.1.2).

Class weights, per label: ``w_c = n / (K * count_c)`` with n the label's labelled examples and K
its number of classes that occur. Each class then carries the same total weight, and the weighted
mean over the labelled examples is exactly 1, so the loss scale does not depend on the imbalance.
Classes that never occur get weight 0 and are reported in ``empty_classes``.

Label weights: ``w_l ∝ coverage_l ** -power`` (coverage = fraction of recordings carrying label l),
normalised to mean 1 over the labels that occur, 0 for labels with no example. ``power=1`` is the
thesis' inverse frequency: a label present on 10 % of the recordings weighs 10× one present on all,
so the few batches that carry it count as much in total as a fully labelled label;
``power=0.5`` is a milder choice when a very sparse label would dominate.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np


@dataclass(frozen=True)
class ImbalanceWeights:
    class_weights: dict[str, np.ndarray]  # name -> float32 [C]
    label_weights: np.ndarray  # float32 [L], schema order
    counts: dict[str, np.ndarray]  # name -> int64 [C] labelled examples per class
    empty_classes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # classes with count 0

    def as_tensors(self, device=None):
        """``(class_weights {name: tensor [C]}, label_weights tensor [L])`` for masked_cross_entropy."""
        import torch  # the numbers above are useful torch-free (stats); only this conversion needs torch

        cw = {k: torch.as_tensor(v, device=device) for k, v in self.class_weights.items()}
        return cw, torch.as_tensor(self.label_weights, device=device)


def imbalance_weights(targets: np.ndarray, heads: Mapping[str, int], power: float = 1.0) -> ImbalanceWeights:
    """Weights from the training targets ``[R, L]`` (int, -1 = missing) for ``heads`` {name: n_classes}."""
    targets = np.asarray(targets)
    names = list(heads)
    if targets.ndim != 2 or targets.shape[1] != len(names):
        raise ValueError(f"targets must be [R, {len(names)}] (one column per head), got {targets.shape}")
    if power < 0:
        raise ValueError(f"label weight power must be >= 0, got {power}")
    class_weights, counts, empty = {}, {}, {}
    coverage = np.zeros(len(names))
    for j, name in enumerate(names):
        col = targets[:, j]
        col = col[col >= 0]
        if col.size and col.max() >= heads[name]:
            raise ValueError(f"target {col.max()} out of range for label {name!r} with {heads[name]} classes")
        count = np.bincount(col, minlength=heads[name]).astype(np.int64)
        present = count > 0
        w = np.zeros(heads[name], dtype=np.float64)
        w[present] = col.size / (present.sum() * count[present])
        class_weights[name] = w.astype(np.float32)
        counts[name] = count
        if not present.all():
            empty[name] = tuple(int(i) for i in np.flatnonzero(~present))
        coverage[j] = col.size / max(targets.shape[0], 1)
    label_w = np.zeros(len(names))
    has = coverage > 0
    if has.any():
        label_w[has] = coverage[has] ** -power
        label_w[has] /= label_w[has].mean()
    return ImbalanceWeights(class_weights, label_w.astype(np.float32), counts, empty)
