"""S4L's cross-validated lead, pooled over machines that ran the same seeds: is it there at all?

The bar (a lead larger than the seed spread) asks for a lead larger than the seed spread. This asks a weaker question the
bar cannot answer: is the lead above zero? Each out dir holds one machine's runs of the same arms, seeds,
splits and label subsets (a CPU type is a new draw of the training path). A seed's
machines share its label subset and initialisation, so they are not independent draws: the test is a
one-sample t-test over seeds of the per-seed lead averaged over machines (n = seeds, not seeds x machines).
With one out dir it is the paired t-test of that machine's seeds. `--seeds` and `--variant` pick the runs
(e.g. a replication: 10 epochs per step on new seeds); `--label` tests one label's pooled
balanced accuracy instead of the mean over labels (which label carries the lead).

    python -m research.experiments.machines OUT_A OUT_B --bench nuaa
    python -m research.experiments.machines OUT_B --variant epochs=10 --seeds 5,6,7,8,9
    python -m research.experiments.machines OUT_B --variant epochs=10 --label face_source
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
from scipy import stats

from .arms import CV_FOLDS, FRACTIONS, Arm
from .cv_tables import pooled
from .summaries import load_summaries


def seed_leads(out: Path, bench: str, fraction: float, seeds: tuple[int, ...] | None = None,
               label: str | None = None, **variant) -> dict[int, float]:
    """seed -> S4L − supervised (points) of the pooled cross-validated score of `variant` (Arm fields; the plain
    budget by default), for the seeds (all, or those in `seeds`) both arms finished. The score is the mean over
    labels, or with `label` that label's balanced accuracy."""
    summaries = load_summaries(out, bench)
    k = CV_FOLDS[bench]
    sup, s4l = (pooled(summaries, r, fraction, k, **variant) for r in ("supervised", "s4l"))

    def score(p: dict) -> float:
        return p["mean"] if label is None else p["labels"][label]

    return {seed: 100 * (score(s4l[seed]) - score(sup[seed])) for seed in sorted(set(sup) & set(s4l))
            if seeds is None or seed in seeds}


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


def table(outs: list[Path], bench: str, seeds: tuple[int, ...] | None = None, variant: dict | None = None,
          label: str | None = None) -> list[str]:
    which = "".join(f", {k}={v}" for k, v in (variant or {}).items()) + (f", seeds {list(seeds)}" if seeds else "")
    which += f", {label} only" if label else ""
    lines = [f"S4L − supervised, {bench} cross-validated{which} (points; per seed, each machine, then averaged):", "",
             "| labels kept | " + " | ".join(f"`{o}` per seed" for o in outs)
             + " | averaged per seed | mean ± std | t (df) | p, two-sided |", "|---" * (len(outs) + 5) + "|"]
    budgets = {f: [seed_leads(o, bench, f, seeds, label, **(variant or {})) for o in outs] for f in FRACTIONS[:2]}
    ran = {f: leads for f, leads in budgets.items() if any(leads)} or budgets  # a 30 %-only replication: 30 %
    for f, leads in ran.items():
        res = lead_test(leads)
        cells = [", ".join(f"{m[s]:+.1f}" for s in res["seeds"]) for m in leads]  # the seeds every machine ran
        lines.append(f"| {round(f * 100)} % | " + " | ".join(cells)
                     + f" | {', '.join(f'{v:+.1f}' for v in res['per_seed'])} | {res['mean']:+.1f} ± {res['std']:.1f} "
                     f"| {res['t']:.2f} ({len(res['seeds']) - 1}) | {res['p']:.3f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outs", nargs="+", type=Path, help="one --out dir of research.experiments per machine")
    ap.add_argument("--bench", default="nuaa", choices=sorted(CV_FOLDS))
    ap.add_argument("--seeds", help="comma-separated seeds to test (default: every seed the out dirs share)")
    ap.add_argument("--variant", action="append", default=[], metavar="FIELD=VALUE",
                    help="an Arm field of a cross-validated variant, e.g. epochs=10 (repeatable; default: the plain budget)")
    ap.add_argument("--label", help="test this label's pooled balanced accuracy (default: the mean over labels)")
    a = ap.parse_args(argv)
    try:
        seeds = tuple(int(s) for s in a.seeds.split(",")) if a.seeds else None
        variant = dict(arm_field(v) for v in a.variant)
    except ValueError as exc:
        ap.error(str(exc))
    try:
        print("\n".join(table(a.outs, a.bench, seeds, variant, a.label)))
    except ValueError as exc:
        ap.exit(2, f"error: {exc}\n")
    return 0


def arm_field(text: str) -> tuple[str, object]:
    """'epochs=10' -> ("epochs", 10): a field of Arm with its value as the summaries store it."""
    name, sep, value = text.partition("=")
    fields = {f.name: f.type for f in dataclasses.fields(Arm)}
    if not sep or name not in fields:
        raise ValueError(f"--variant wants FIELD=VALUE with FIELD one of {sorted(fields)}; got {text!r}")
    kind = fields[name]
    if kind == "bool":
        return name, value.lower() in ("1", "true", "yes")
    return name, int(value) if kind == "int" else float(value) if kind == "float" else value


if __name__ == "__main__":
    raise SystemExit(main())
