"""How far validation vouches for each label, and the rule that decides whether the backend serves it
(numpy only: the backend imports it).

Per label: balanced accuracy on validation, validation recordings per class, and a percentile
bootstrap interval that resamples SUBJECTS (recordings of one person are not independent, so
resampling recordings would make the interval too narrow).

The gate rule (`gate_verdict`): a label is served when its training annotations hold at least two
classes, validation holds at least `min_val` labelled recordings of at least two classes, and the
interval's lower bound lies above chance (1 / number of classes). Everything else is withheld, with
the reason. A model file without these figures (exported before they existed) is served as before.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from training.metrics import balanced_accuracy

DEFAULT_BOOTSTRAP = 1000
DEFAULT_LEVEL = 0.95
DEFAULT_MIN_VAL = 10  # labelled validation recordings below which no interval is trusted


def subject_confusions(y_true, y_pred, subjects: Sequence, n_classes: int) -> np.ndarray:
    """[S, C, C] confusion counts per subject (subjects in order of first appearance; rows y_true = -1 skipped)."""
    y, p = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if not (len(y) == len(p) == len(subjects)):
        raise ValueError(f"y_true, y_pred and subjects differ in length: {len(y)}, {len(p)}, {len(subjects)}")
    keys: dict = {}
    index = np.array([keys.setdefault(s, len(keys)) for s in subjects], dtype=np.int64)
    keep = y >= 0
    out = np.zeros((len(keys), n_classes * n_classes), dtype=np.int64)
    np.add.at(out, (index[keep], y[keep] * n_classes + p[keep]), 1)
    return out.reshape(len(keys), n_classes, n_classes)


def bootstrap_interval(confusions: np.ndarray, n_boot: int = DEFAULT_BOOTSTRAP, level: float = DEFAULT_LEVEL,
                       seed: int = 0) -> tuple[float, float] | None:
    """Percentile interval of balanced accuracy over `n_boot` resamples of the subjects (with replacement).

    `confusions` is subject_confusions' [S, C, C]. A resample scores the classes it holds (as
    metrics.balanced_accuracy does). None without labelled rows."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    conf = np.asarray(confusions)
    labelled = conf.sum(axis=(1, 2)) > 0
    conf = conf[labelled]  # subjects without a labelled row change nothing but the draw
    if not len(conf):
        return None
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(conf), size=(n_boot, len(conf)))
    weights = np.stack([np.bincount(d, minlength=len(conf)) for d in draws])  # [B, S] times drawn
    pooled = weights @ conf.reshape(len(conf), -1)  # [B, C*C]: each resample's confusion
    c = conf.shape[1]
    pooled = pooled.reshape(n_boot, c, c)
    support = pooled.sum(axis=2)
    recall = np.divide(np.diagonal(pooled, axis1=1, axis2=2), support, out=np.zeros(support.shape),
                       where=support > 0)
    scores = recall.sum(axis=1) / (support > 0).sum(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(scores, [tail, 100.0 - tail])
    return float(low), float(high)


def label_quality(y_true, probs, subjects: Sequence, classes: Sequence[str], train_counts: Mapping[str, int],
                  n_boot: int = DEFAULT_BOOTSTRAP, level: float = DEFAULT_LEVEL, seed: int = 0) -> dict:
    """One label's figures: {"balanced_accuracy", "interval" [low, high] or None, "level", "val_counts"
    {class: n}, "val_subjects", "train_classes" (classes with training annotations)}."""
    p = np.asarray(probs)
    pred = p.argmax(axis=1) if len(p) else np.zeros(0, dtype=np.int64)
    conf = subject_confusions(y_true, pred, subjects, len(classes))
    interval = bootstrap_interval(conf, n_boot, level, seed)
    per_class = conf.sum(axis=(0, 2))
    return {"balanced_accuracy": balanced_accuracy(conf.sum(axis=0)), "interval": list(interval) if interval else None,
            "level": level, "val_counts": {c: int(n) for c, n in zip(classes, per_class)},
            "val_subjects": int((conf.sum(axis=(1, 2)) > 0).sum()),
            "train_classes": sum(1 for n in train_counts.values() if n > 0)}


@dataclass(frozen=True)
class Verdict:
    served: bool
    reason: str


def gate_verdict(quality: Mapping | None, n_classes: int, min_val: int = DEFAULT_MIN_VAL) -> Verdict:
    """Serve or withhold one label by its label_quality figures (None: a model file without them)."""
    if quality is None:
        return Verdict(True, "no validation figures in the model file: served")
    if quality.get("train_classes", 2) < 2:
        return Verdict(False, "training annotations hold one class only")
    counts = quality.get("val_counts") or {}
    n = sum(counts.values())
    if n < min_val:
        return Verdict(False, f"{n} validation recordings (< {min_val})")
    if sum(1 for v in counts.values() if v > 0) < 2:
        return Verdict(False, "validation holds one class only")
    chance = 1.0 / n_classes
    interval = quality.get("interval")
    if interval is None:
        return Verdict(False, "no validation interval")
    low = interval[0]
    if low <= chance:
        return Verdict(False, f"interval lower bound {low:.3f} <= chance {chance:.3f}")
    return Verdict(True, f"interval lower bound {low:.3f} > chance {chance:.3f}")


def quality_table(schema, truth: Mapping[str, np.ndarray], logits: Mapping[str, np.ndarray], subjects: Sequence,
                  train_counts: Mapping[str, Mapping[str, int]], seed: int = 0) -> dict[str, dict]:
    """label_quality for every label of `schema` (validation truth, served logits, the rows' subjects)."""
    return {spec.name: label_quality(truth[spec.name], logits[spec.name], subjects, spec.classes,
                                     train_counts[spec.name], seed=seed) for spec in schema.labels}


def single_class_labels(train_counts: Mapping[str, Mapping[str, int]]) -> list[str]:
    """Labels whose training annotations hold exactly one class (a head that cannot have learnt to tell classes apart)."""
    return [n for n, counts in train_counts.items() if sum(1 for v in counts.values() if v > 0) == 1]
