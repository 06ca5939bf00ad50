"""Evaluation metrics over partially labelled recordings (numpy only; the backend may import it).

Conventions: `y_true` holds class indices with -1 = label unknown (those rows are ignored);
`probs` is [n, C] (probabilities or any monotone score, rows in the same order as `y_true`).

Balanced accuracy is the mean recall over the classes present in the labelled truth. The thesis'
"weighted accuracy" weights every example by the inverse frequency of its class, which is the same
number; `weighted_accuracy` is reported under that name too so tables can use the thesis' term.
Binary labels also get ROC AUC and the equal error rate (EER), scoring class 1 by its probability.
"""
from __future__ import annotations

from typing import Hashable, Mapping, Sequence

import numpy as np

DEFAULT_ECE_BINS = 15


def _check_inputs(y_true, probs, n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(probs, dtype=np.float64)
    if y.ndim != 1 or (y.size and not np.issubdtype(y.dtype, np.integer)):
        raise ValueError(f"y_true must be a 1-d integer array, got shape {y.shape} dtype {y.dtype}")
    if p.ndim != 2 or p.shape[0] != y.shape[0]:
        raise ValueError(f"probs must be [n, C] with n = len(y_true) = {y.shape[0]}, got shape {p.shape}")
    if n_classes is not None and p.shape[1] != n_classes:
        raise ValueError(f"probs has {p.shape[1]} columns but there are {n_classes} classes")
    if y.size and (y.min() < -1 or y.max() >= p.shape[1]):
        raise ValueError(f"y_true values must be -1 (unknown) or in [0, {p.shape[1] - 1}], "
                         f"got range [{y.min()}, {y.max()}]")
    return y.astype(np.int64), p


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """[C, C] counts, rows = true class, columns = predicted class (labelled rows only)."""
    keep = y_true >= 0
    flat = y_true[keep] * n_classes + y_pred[keep]
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their average rank."""
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_x)) + 1]
    ends = np.r_[starts[1:], len(x)]
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Probability that a random positive outscores a random negative (ties count 1/2).

    None when one of the two groups is empty.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    rank_sum = _average_ranks(scores)[positive].sum()  # Mann-Whitney U from the rank sum
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def equal_error_rate(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Error rate where false accepts (negatives >= threshold) equal false rejects (positives below).

    Linear interpolation between neighbouring ROC points; None when one group is empty.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    thresholds = np.r_[np.inf, np.unique(scores)[::-1]]  # strictest first: fpr rises, fnr falls
    accepted = scores[None, :] >= thresholds[:, None]
    fpr = (accepted & ~positive).sum(axis=1) / n_neg
    fnr = 1.0 - (accepted & positive).sum(axis=1) / n_pos
    gap = fnr - fpr  # > 0 at +inf (fnr = 1), <= 0 at the lowest score (fpr = 1)
    i = int(np.argmax(gap <= 0))
    alpha = gap[i - 1] / (gap[i - 1] - gap[i])
    return float(fpr[i - 1] + alpha * (fpr[i] - fpr[i - 1]))


def reliability_bins(probs, y_true, bins: int = DEFAULT_ECE_BINS) -> list[dict]:
    """Top-class confidence histogram of the labelled rows: equal-width bins over [0, 1].

    Each bin: {"lower", "upper", "count", "confidence" (mean), "accuracy"}; empty bins have None.
    """
    y, p = _check_inputs(y_true, probs)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    keep = y >= 0
    conf = p[keep].max(axis=1)
    correct = p[keep].argmax(axis=1) == y[keep]
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds (edges[i], edges[i+1]]; a confidence of exactly 0 goes to the first bin.
    index = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    out = []
    for i in range(bins):
        sel = index == i
        count = int(sel.sum())
        out.append({
            "lower": float(edges[i]), "upper": float(edges[i + 1]), "count": count,
            "confidence": float(conf[sel].mean()) if count else None,
            "accuracy": float(correct[sel].mean()) if count else None,
        })
    return out


def expected_calibration_error(probs, y_true, bins: int = DEFAULT_ECE_BINS) -> float | None:
    """Count-weighted mean |accuracy - confidence| over the reliability bins; None without labels."""
    table = reliability_bins(probs, y_true, bins)
    total = sum(b["count"] for b in table)
    if total == 0:
        return None
    return float(sum(b["count"] * abs(b["accuracy"] - b["confidence"]) for b in table if b["count"]) / total)


def balanced_accuracy(confusion) -> float | None:
    """Mean recall over the classes that occur (rows = true class); None for an empty matrix. Confusions of
    several test sets add up, so their sum gives the pooled score."""
    confusion = np.asarray(confusion)
    support = confusion.sum(axis=1)
    occurs = support > 0
    return float(np.mean(np.diag(confusion)[occurs] / support[occurs])) if occurs.any() else None


def label_metrics(y_true, probs, classes: Sequence[str]) -> dict:
    """Metrics of one label; accuracies are None when no row is labelled.

    Keys: n (labelled rows), n_total (all rows), balanced_accuracy, weighted_accuracy (same value),
    accuracy, ece, per_class {cls: {"recall", "n"}}, confusion [[...]] (rows = true class), and for
    two-class labels roc_auc and eer (None unless both classes occur).
    """
    classes = list(classes)
    y, p = _check_inputs(y_true, probs, len(classes))
    keep = y >= 0
    pred = p.argmax(axis=1) if p.shape[0] else np.zeros(0, dtype=np.int64)
    confusion = confusion_matrix(y, pred, len(classes))
    support = confusion.sum(axis=1)
    per_class = {
        cls: {"recall": float(confusion[k, k] / support[k]) if support[k] else None, "n": int(support[k])}
        for k, cls in enumerate(classes)
    }
    n = int(keep.sum())
    balanced = balanced_accuracy(confusion)
    out = {
        "n": n,
        "n_total": int(y.shape[0]),
        "balanced_accuracy": balanced,
        "weighted_accuracy": balanced,
        "accuracy": float(np.trace(confusion) / n) if n else None,
        "ece": expected_calibration_error(p, y),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }
    if len(classes) == 2:
        out["roc_auc"] = roc_auc(p[keep, 1], y[keep] == 1)
        out["eer"] = equal_error_rate(p[keep, 1], y[keep] == 1)
    return out


def evaluate(schema, truth: Mapping[str, np.ndarray], probs: Mapping[str, np.ndarray]) -> dict:
    """The metrics.json document: {"labels": {name: label_metrics}, "mean_balanced_accuracy"}.

    Labels follow schema order; every schema label needs probs, a label without truth counts as
    unlabelled (n = 0, accuracies None). The mean runs over labels with n > 0 (None if there are none).
    """
    labels = {}
    for spec in schema.labels:
        if spec.name not in probs:
            raise KeyError(f"no predictions for label {spec.name!r}")
        p = np.asarray(probs[spec.name])
        y = truth.get(spec.name)
        y = np.full(p.shape[0], -1, dtype=np.int64) if y is None else y
        try:
            labels[spec.name] = label_metrics(y, p, spec.classes)
        except ValueError as exc:
            raise ValueError(f"label {spec.name!r}: {exc}") from exc
    scored = [m["balanced_accuracy"] for m in labels.values() if m["n"] > 0]
    return {"labels": labels, "mean_balanced_accuracy": float(np.mean(scored)) if scored else None}


def mean_by_group(frame_probs, groups: Sequence[Hashable]) -> tuple[list, np.ndarray]:
    """Average per-frame probabilities into one row per group (e.g. recording id).

    The single-image model scores a recording by the mean of its frames' probabilities (thesis 4.3).
    Returns (group keys in order of first appearance, [R, C] means).
    """
    p = np.asarray(frame_probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != len(groups):
        raise ValueError(f"frame_probs must be [M, C] with M = len(groups) = {len(groups)}, got {p.shape}")
    keys: dict = {}
    index = np.array([keys.setdefault(g, len(keys)) for g in groups], dtype=np.int64)
    sums = np.zeros((len(keys), p.shape[1]))
    np.add.at(sums, index, p)
    return list(keys), sums / np.bincount(index, minlength=len(keys))[:, None]


def metric_sections(doc: dict) -> dict[str, dict]:
    """The evaluate() documents inside a metrics.json: the top level itself (training.evaluate),
    or its "test" and "val" parts (training.fit), keyed "" / "test" / "val"."""
    if isinstance(doc.get("labels"), dict):
        return {"": doc}
    return {k: doc[k] for k in ("test", "val") if isinstance(doc.get(k), dict) and isinstance(doc[k].get("labels"), dict)}
