"""Run summaries (OUT/<bench>/runs/*.json) as the doc reads them: loading, grouping by arm, spread over seeds."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from .arms import Arm


def load_summaries(out: Path, bench: str) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted((out / bench / "runs").glob("*.json"))}


def spread(values: list[float]) -> tuple[float, float, int]:
    """(mean, sample standard deviation (0 for one value), n) of the seeds' values."""
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0, len(a)


def group(summaries: dict, recipe: str, fraction: float, mode: str = "mtl", kind: str = "multi",
          fusion: str = "concat", pool: str = "subsample") -> list[dict]:
    """The seeds of one arm. Summaries written before `Arm.fusion` / `Arm.pool` existed read as the defaults."""
    wanted = Arm(recipe, fraction, 0, mode, kind, fusion, pool)
    return [s for s in summaries.values() if replace(Arm(**s["arm"]), seed=0) == wanted]


def mean_bal(runs: list[dict], label: str | None = None, where=lambda s: s["test"]["metrics"]) -> list[float]:
    """Per run: the mean balanced accuracy (label None) or one label's, from `where(summary)`; missing ones left out."""
    if label is None:
        return [where(s)["mean_balanced_accuracy"] for s in runs if where(s) and where(s)["mean_balanced_accuracy"] is not None]
    return [where(s)["labels"][label]["balanced_accuracy"] for s in runs
            if where(s) and where(s)["labels"][label]["balanced_accuracy"] is not None]


def fmt(values: list[float]) -> str:
    if not values:
        return "not run"
    m, sd, n = spread(values)
    return f"{100 * m:.1f} ± {100 * sd:.1f} (n={n})"


def delta(values: list[float], reference: list[float]) -> str:
    """Difference of the seed means in points, '-' when either side has no run."""
    return f"{100 * (spread(values)[0] - spread(reference)[0]):+.1f}" if values and reference else "-"


def class_counts(summaries: dict) -> dict[str, str]:
    """'Live 12 / Photo 18' per label: the test truth the accuracies rest on."""
    single = [s for s in summaries.values() if s["arm"].get("fold", -1) < 0]  # a cross-validated run tests one fold
    first = (single or list(summaries.values()))[0]["test"]["metrics"]["labels"]
    return {n: " / ".join(f"{c} {v['n']}" for c, v in m["per_class"].items()) for n, m in first.items()}
