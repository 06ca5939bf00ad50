"""S4L step 2 pseudo-labels: the best step-1 model's predictions fill the MISSING labels.

Pseudo-labels weigh the same as true labels in the supervised loss (thesis 3.2.2: "all images are
treated as labeled data"); the confidence threshold is the knob that trades coverage for precision.
A true label is never overwritten, and heads that saw no training label get no pseudo-labels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PseudoLabels:
    targets: np.ndarray  # [R, L] int64: true labels, pseudo-labels where missing and confident, else -1
    confidence: np.ndarray  # [R, L] float32: max. probability of each filled slot, 1 for true, 0 for none
    filled: np.ndarray  # [R, L] bool: slots filled by a pseudo-label

    def counts(self, names: tuple[str, ...]) -> dict[str, int]:
        return {name: int(self.filled[:, i].sum()) for i, name in enumerate(names)}


def make_pseudo_labels(
    true_targets: np.ndarray,
    probs: dict[str, np.ndarray],
    names: tuple[str, ...],
    *,
    threshold: float = 0.0,
    trained: set[str] | None = None,
) -> PseudoLabels:
    """Merge true targets [R, L] (-1 = missing) with argmax pseudo-labels from probs[name] [R, C].

    `names` is the column order of `true_targets`; labels absent from `probs` or not in `trained`
    stay as they are. Slots with max. probability below `threshold` stay missing.
    """
    true_targets = np.asarray(true_targets, dtype=np.int64)
    if true_targets.ndim != 2 or true_targets.shape[1] != len(names):
        raise ValueError(f"true_targets must be [R, {len(names)}]; got {true_targets.shape}")
    targets = true_targets.copy()
    confidence = (true_targets >= 0).astype(np.float32)
    filled = np.zeros_like(true_targets, dtype=bool)
    for col, name in enumerate(names):
        if name not in probs or (trained is not None and name not in trained):
            continue
        p = np.asarray(probs[name])
        if p.shape[0] != true_targets.shape[0]:
            raise ValueError(f"probs[{name!r}] has {p.shape[0]} rows; targets have {true_targets.shape[0]}")
        conf = p.max(axis=1)
        take = (true_targets[:, col] < 0) & (conf >= threshold)
        targets[take, col] = p.argmax(axis=1)[take]
        confidence[take, col] = conf[take]
        filled[:, col] = take
    return PseudoLabels(targets, confidence, filled)
