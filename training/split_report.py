"""How good a subject split is: its deviation from the targets, the seeded random baseline it is
compared with in split.json, and the summary the CLI prints."""
from __future__ import annotations

import numpy as np

from training.split_problem import SPLITS, SplitConfig, Unit, targets


def random_split(units: list[Unit], cfg: SplitConfig) -> list[int]:
    """Baseline: shuffle units (seeded) and cut at the subject ratios."""
    n_sub = sum(len(u.subjects) for u in units)
    bounds = np.cumsum(cfg.ratios) * n_sub
    assign, seen = [0] * len(units), 0
    for i in np.random.default_rng(cfg.seed).permutation(len(units)):
        assign[i] = int(np.searchsorted(bounds, seen, side="right"))
        seen += len(units[i].subjects)
    return [min(s, 2) for s in assign]


def deviation(units: list[Unit], assign: list[int], cfg: SplitConfig) -> dict:
    """How far an assignment is from the ratios, in subjects, recordings and labelled classes."""
    tg = targets(units, cfg)
    subs, recs = np.zeros(3), np.zeros(3)
    counts = np.zeros((3, len(units[0].counts) if units else 0))
    for u, s in zip(units, assign):
        subs[s] += len(u.subjects)
        recs[s] += len(u.recordings)
        counts[s] += u.counts
    totals = counts.sum(axis=0)
    abs_dev = np.abs(counts - np.outer(cfg.ratios, totals))
    sub_dev = subs - tg["subjects"]
    rec_dev = recs - tg["recordings"]
    return {
        "subjects": {name: round(float(d), 3) for name, d in zip(SPLITS, sub_dev)},
        "recordings": {name: round(float(d), 3) for name, d in zip(SPLITS, rec_dev)},
        "class_abs_dev": round(float(abs_dev.sum()), 3),
        "class_rel_dev": round(float((abs_dev[:, totals > 0] / totals[totals > 0]).sum()), 4),
        "tolerances_met": bool(np.all(np.abs(sub_dev) <= tg["subject_tol"] + 1e-9)
                               and np.all(np.abs(rec_dev) <= tg["recording_tol"] + 1e-9)),
    }


def summary(result: dict) -> str:
    """Printable lines of a split.json dict: sizes, solver, and the ILP's deviation next to random's."""
    dev, rnd, solver = result["deviation"], result["random_deviation"], result["solver"]
    lines = ["subjects  per split: " + ", ".join(f"{k} {len(v)}" for k, v in result["subjects"].items()),
             "recordings per split: " + ", ".join(f"{k} {len(v)}" for k, v in result["recordings"].items()),
             f"solver: {solver['status']} in {solver['time']} s, fallback: {solver['fallback']}, objective "
             f"{solver.get('objective')} (greedy fill {solver.get('greedy_objective')})",
             f"duplicate merges: {len(result['duplicate_merges'])}",
             f"{'':8}{'class_rel_dev':>14}{'class_abs_dev':>14}  tolerances met  deviation from target, in subjects / in recordings"]
    for name, d in (("ILP", dev), ("random", rnd)):
        lines.append(f"{name:8}{d['class_rel_dev']:>14}{d['class_abs_dev']:>14}  {str(d['tolerances_met']):14}  "
                     f"{d['subjects']} / {d['recordings']}")
    return "\n".join(lines)
