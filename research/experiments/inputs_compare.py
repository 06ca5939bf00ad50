"""The same cross-validated runs on two versions of a benchmark's input: did the new input change each arm?

Two --out dirs hold runs of the same ids (arms, seeds, folds, label subsets) trained on different inputs, e.g.
nuaa's whole frames and nuaa cropped to the face (made by `research/face_crop_nuaa.py`). Per arm and budget, each seed's pooled score (cv_tables.pooled: the folds'
confusions added up) on each input and the new minus the old, for the mean over labels and for each label, with
a two-sided one-sample t-test over seeds (machines.lead_test; n = the seeds both dirs finished; none for one seed). machines.py asks
the other question: S4L against the supervised arm within one input.

    python -m research.experiments.inputs_compare OUT_WHOLE_FRAMES OUT_FACE_CROPS --variant image_size=128
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .arms import CV_FOLDS, FRACTIONS
from .cv_tables import pooled
from .machines import arm_field, lead_test
from .summaries import load_summaries, spread


def seed_scores(old: dict, new: dict, bench: str, recipe: str, fraction: float, **variant) -> dict[str, tuple]:
    """score ("mean" or a label) -> ({seed: old}, {seed: new}) in points, for the seeds both sets of summaries
    (load_summaries of each out dir) finished."""
    k = CV_FOLDS[bench]
    before, after = (pooled(summaries, recipe, fraction, k, **variant) for summaries in (old, new))
    seeds = sorted(set(before) & set(after))
    if not seeds:
        return {}

    def score(p: dict, name: str) -> float:
        return 100 * (p["mean"] if name == "mean" else p["labels"][name])

    return {name: tuple({s: score(side[s], name) for s in seeds} for side in (before, after))
            for name in ("mean", *after[seeds[0]]["labels"])}


def table(old: Path, new: Path, bench: str, variant: dict | None = None) -> list[str]:
    which = "".join(f", {k}={v}" for k, v in (variant or {}).items())
    lines = [f"`{old}` → `{new}`, {bench} cross-validated{which} (pooled balanced accuracy %, mean ± std over seeds; "
             "the change per seed in points):", "",
             "| arm | labels kept | score | old input | new input | change per seed | mean ± std | t (df) | p, two-sided |",
             "|---" * 9 + "|"]
    summaries = [load_summaries(o, bench) for o in (old, new)]  # once: each out dir holds hundreds of runs
    for recipe in ("supervised", "s4l"):
        for f in FRACTIONS:
            for name, (before, after) in seed_scores(*summaries, bench, recipe, f, **(variant or {})).items():
                change = {s: after[s] - before[s] for s in after}
                test = lead_test([change]) if len(change) > 1 else None  # one seed: a description, no test
                lines.append(f"| {recipe} | {round(f * 100)} % | {name} | {_spread(before)} | {_spread(after)} | "
                             f"{', '.join(f'{v:+.1f}' for v in change.values())} | {_spread(change, '+')} | "
                             + (f"{test['t']:.2f} ({len(change) - 1}) | {test['p']:.3f} |" if test else "- | - |"))
    if len(lines) == 4:
        raise ValueError(f"no arm has a seed whose folds all finished in both {old} and {new}")
    return lines


def _spread(values: dict[int, float], sign: str = "") -> str:
    mean, std, n = spread(list(values.values()))
    return f"{mean:{sign}.1f}" + (f" ± {std:.1f}" if n > 1 else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old", type=Path, help="--out dir of the runs on the original input")
    ap.add_argument("new", type=Path, help="--out dir of the same runs on the new input")
    ap.add_argument("--bench", default="nuaa", choices=sorted(CV_FOLDS))
    ap.add_argument("--variant", action="append", default=[], metavar="FIELD=VALUE",
                    help="an Arm field of the runs, e.g. image_size=128 (repeatable; default: the plain budget)")
    a = ap.parse_args(argv)
    try:
        variant = dict(arm_field(v) for v in a.variant)
        print("\n".join(table(a.old, a.new, a.bench, variant)))
    except ValueError as exc:
        ap.exit(2, f"error: {exc}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
