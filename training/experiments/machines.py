"""S4L's cross-validated lead, pooled over machines that ran the same seeds: is it there at all?

The bar (docs/results.md) asks for a lead larger than the seed spread. This asks a weaker question the
bar cannot answer: is the lead above zero? Each out dir holds one machine's runs of the same arms, seeds,
splits and label subsets (a machine is a new draw of the training path, docs/training.md). A seed's
machines share its label subset and initialisation, so they are not independent draws: the test is a
one-sample t-test over seeds of the per-seed lead averaged over machines (n = seeds, not seeds x machines).

    python -m training.experiments.machines docs/results docs/reruns --bench nuaa
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import stats

from .arms import CV_FOLDS, FRACTIONS
from .cv_tables import pooled
from .summaries import load_summaries


def seed_leads(out: Path, bench: str, fraction: float) -> dict[int, float]:
    """seed -> S4L − supervised (points) of the pooled cross-validated score, for seeds both arms finished."""
    summaries = load_summaries(out, bench)
    k = CV_FOLDS[bench]
    sup, s4l = pooled(summaries, "supervised", fraction, k), pooled(summaries, "s4l", fraction, k)
    return {seed: 100 * (s4l[seed]["mean"] - sup[seed]["mean"]) for seed in sorted(set(sup) & set(s4l))}


def lead_test(leads_per_machine: list[dict[int, float]]) -> dict:
    """Per-seed lead averaged over the machines that all ran that seed; its mean, sample std and the
    two-sided one-sample t-test against 0 (df = seeds − 1)."""
    seeds = sorted(set.intersection(*(set(leads) for leads in leads_per_machine)))
    per_seed = [float(np.mean([leads[s] for leads in leads_per_machine])) for s in seeds]
    if len(per_seed) < 2:
        raise ValueError(f"a t-test needs at least 2 seeds that every machine ran; got {seeds}")
    test = stats.ttest_1samp(per_seed, 0.0)
    return {"seeds": seeds, "per_seed": per_seed, "mean": float(np.mean(per_seed)),
            "std": float(np.std(per_seed, ddof=1)), "t": float(test.statistic), "p": float(test.pvalue)}


def table(outs: list[Path], bench: str) -> list[str]:
    lines = [f"S4L − supervised, {bench} cross-validated (points; per seed, each machine, then averaged):", "",
             "| labels kept | " + " | ".join(f"`{o}` per seed" for o in outs)
             + " | averaged per seed | mean ± std | t (df) | p, two-sided |", "|---" * (len(outs) + 5) + "|"]
    for f in FRACTIONS[:2]:
        leads = [seed_leads(o, bench, f) for o in outs]
        res = lead_test(leads)
        cells = [", ".join(f"{v:+.1f}" for _, v in sorted(m.items())) for m in leads]
        lines.append(f"| {round(f * 100)} % | " + " | ".join(cells)
                     + f" | {', '.join(f'{v:+.1f}' for v in res['per_seed'])} | {res['mean']:+.1f} ± {res['std']:.1f} "
                     f"| {res['t']:.2f} ({len(res['seeds']) - 1}) | {res['p']:.3f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outs", nargs="+", type=Path, help="one --out dir of training.experiments per machine")
    ap.add_argument("--bench", default="nuaa", choices=sorted(CV_FOLDS))
    a = ap.parse_args(argv)
    try:
        print("\n".join(table(a.outs, a.bench)))
    except ValueError as exc:
        ap.exit(2, f"error: {exc}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
