"""Subject-disjoint cross-validation splits: every subject is tested exactly once.

A single train/val/test split of a small benchmark tests on very few people (nuaa: 3 of 16), so a
score mostly says how those people happen to look. Cross-validation keeps the split's rules and
tests on everyone:
1. the same integer program as split.py, with k equal parts instead of train/val/test, deals the
   subjects into k folds balanced per labelled class (near-duplicate subjects stay together);
2. split f tests on fold f; a second two-part integer program divides the other subjects into
   train and val (val_share of ALL subjects, so val keeps the size it has in a single split).
Each split is a normal split.json document plus "fold": {"index", "k", "folds"}.
"""
from __future__ import annotations

from dataclasses import replace

from training.schema import LabelSchema
from training.split import solve, split_document
from training.split_problem import SplitConfig, build_units


def cross_validation_splits(recordings, schema: LabelSchema, k: int = 5, val_share: float = 0.1, seed: int = 0,
                            time_limit_s: float = 20.0, duplicate_groups=()) -> list[dict]:
    """k split.json dicts; split f has fold f as its test subjects."""
    if k < 2:
        raise ValueError(f"cross-validation needs k >= 2 folds, got {k}")
    if not 0 < val_share < 1 - 1 / k:
        raise ValueError(f"val_share must lie in (0, {1 - 1 / k:.3f}) for k={k}, got {val_share}")
    recordings = sorted(recordings, key=lambda r: r.recording_id)
    units, merges = build_units(recordings, schema, duplicate_groups)
    if len(units) < k:
        raise ValueError(f"{len(units)} subject groups cannot fill {k} folds")
    base = SplitConfig(seed=seed, time_limit_s=time_limit_s)
    fold_of, fold_solver = solve(units, replace(base, ratios=(1 / k,) * k))
    folds = [sorted(s for u, f in zip(units, fold_of) if f == i for s in u.subjects) for i in range(k)]
    inner_val = val_share / (1 - 1 / k)  # val's share of the subjects that are not tested
    outer = replace(base, ratios=(1 - 1 / k - val_share, val_share, 1 / k))
    splits = []
    for f in range(k):
        rest = [i for i, g in enumerate(fold_of) if g != f]
        inner, solver = solve([units[i] for i in rest], replace(base, ratios=(1 - inner_val, inner_val)))
        assign = [2] * len(units)  # 2 = test
        for i, part in zip(rest, inner):
            assign[i] = part  # 0 = train, 1 = val
        # "solver": the train/val program of this split, with the fold program's record inside
        doc = split_document(units, assign, outer, schema, {**solver, "folds": fold_solver}, merges)
        doc["fold"] = {"index": f, "k": k, "folds": folds}
        splits.append(doc)
    return splits
