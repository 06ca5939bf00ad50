"""Confident learning (Northcutt, Jiang & Chuang, "Confident Learning: Estimating Uncertainty in Dataset
Labels", JAIR 2021): which annotations an out-of-sample model contradicts with confidence. Numpy only.

For one label with K classes, annotated classes y~ and out-of-sample probabilities p [n, K]:
- per-class threshold t_j = mean of p[i, j] over the examples annotated j (the model's average
  self-confidence on class j); a class nobody annotated gets no threshold (never confidently predicted);
- example i is confidently of class j when p[i, j] >= t_j; among several such j the most probable one
  (the paper's confident joint C[y~][y*]); an example with none is counted nowhere;
- an annotation is a suspect when its confident class y* differs from y~ (the off-diagonal of the
  confident joint: cleanlab's filter_by="confident_learning").
Suspects are ranked by the margin p[i, y*] - p[i, y~] (largest first): how much more the model
believes its suggestion than the annotation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Suspects:
    thresholds: np.ndarray  # [K] per-class thresholds t_j (nan for a class nobody annotated)
    confident: np.ndarray  # [n] y* per example, -1 = confidently of no class (or not annotated)
    flagged: np.ndarray  # [n] bool: annotation contradicted with confidence
    margin: np.ndarray  # [n] p[y*] - p[y~] for flagged rows; max_{j != y~} p[j] - p[y~] otherwise


def per_class_thresholds(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """t_j = mean p[:, j] over rows annotated j; nan where no row is."""
    k = probs.shape[1]
    out = np.full(k, np.nan)
    for j in range(k):
        rows = labels == j
        if rows.any():
            out[j] = probs[rows, j].mean()
    return out


def find_suspects(labels, probs) -> Suspects:
    """`labels`: [n] annotated class indices (-1 = not annotated: never flagged); `probs`: [n, K]."""
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or len(y) != len(p):
        raise ValueError(f"labels [n] and probs [n, K] disagree: {y.shape} vs {p.shape}")
    if len(y) and (y.min() < -1 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must be -1 or in [0, {p.shape[1] - 1}]")
    t = per_class_thresholds(y, p)
    above = p >= np.where(np.isnan(t), np.inf, t)[None, :]
    best = np.where(above, p, -np.inf).argmax(axis=1) if len(p) else np.zeros(0, dtype=np.int64)
    confident = np.where(above.any(axis=1) & (y >= 0), best, -1)
    flagged = (confident >= 0) & (confident != y)
    rows = np.arange(len(y))
    own = np.where(y >= 0, p[rows, np.maximum(y, 0)], np.nan)
    others = np.where(np.arange(p.shape[1])[None, :] == y[:, None], -np.inf, p).max(axis=1) if len(p) else own
    margin = np.where(flagged, p[rows, np.maximum(confident, 0)] - own, others - own)
    return Suspects(t, confident, flagged, margin)


def ranking(s: Suspects) -> np.ndarray:
    """Annotated rows, most suspect first: flagged rows by margin, then the rest by margin."""
    annotated = np.flatnonzero(~np.isnan(s.margin))
    key = np.lexsort((-s.margin[annotated], ~s.flagged[annotated]))
    return annotated[key]
