"""Per-group accuracy: is the model worse for some groups of recordings (people, cars, ...)?

`training.evaluate --group-by FIELD` groups the scored recordings by FIELD: a label (the recording's
class of it, as the truth gives it) or a task `data` field such as `car_recording` or `subject_id`,
optionally cut to its first `prefix` characters (e.g. a subject id's site code). Per label and group:
balanced accuracy, labelled recordings and their classes; per label, the best and worst group and the
gap between them. Groups with no labelled recording of a label are listed with balanced accuracy None
and left out of best/worst. Numpy only.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from training.metrics import balanced_accuracy, confusion_matrix

UNKNOWN_GROUP = "(unknown)"  # recordings whose FIELD is missing or empty


def group_of(recording, field: str, truth: Mapping[str, str], prefix: int | None = None) -> str:
    """A recording's group: its class of label `field` in `truth`, else its task data[field] (as text)."""
    value = truth.get(field)
    if value is None:
        raw = (recording.data or {}).get(field)
        value = None if raw is None or raw == "" else str(raw)
    if value is None:
        return UNKNOWN_GROUP
    return value[:prefix] if prefix else value


def group_metrics(classes: Sequence[str], y_true: np.ndarray, probs: np.ndarray, groups: Sequence[str]) -> dict:
    """One label: {"groups": {group: {"n", "balanced_accuracy", "counts": {class: n}}}, "best", "worst", "gap"}."""
    y = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(probs).argmax(axis=1) if len(y) else np.zeros(0, dtype=np.int64)
    names = np.asarray(groups, dtype=object)
    out = {}
    for g in sorted(set(groups)):
        sel = names == g
        conf = confusion_matrix(y[sel], pred[sel], len(classes))
        out[g] = {"n": int(conf.sum()), "balanced_accuracy": balanced_accuracy(conf),
                  "counts": {c: int(n) for c, n in zip(classes, conf.sum(axis=1))}}
    scored = {g: m["balanced_accuracy"] for g, m in out.items() if m["balanced_accuracy"] is not None}
    best = max(scored, key=scored.get) if scored else None
    worst = min(scored, key=scored.get) if scored else None
    return {"groups": out, "best": best, "worst": worst,
            "gap": scored[best] - scored[worst] if scored else None}


def per_group(schema, truth: Mapping[str, np.ndarray], probs: Mapping[str, np.ndarray], groups: Sequence[str],
              field: str, prefix: int | None = None) -> dict:
    """The "groups" part of training.evaluate's output, for every label of `schema`."""
    return {"field": field, "prefix": prefix,
            "labels": {s.name: group_metrics(s.classes, truth[s.name], probs[s.name], groups) for s in schema.labels}}
