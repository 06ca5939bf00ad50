"""Subject-disjoint train/val/test split solved as ONE integer program (thesis 3.1.2.1).

Every subject (recording.subject_id; a recording without one is its own subject) goes to exactly
one split. Subjects whose frames are (near) duplicates of each other (near_duplicates.py) are first
merged into one unit (union-find) so the duplicates cannot leak across splits.

Integer program (pulp + its bundled CBC, threads=1, fixed options, inputs sorted):
- units with the same signature (subjects, recordings, labelled class counts) are interchangeable,
  so each signature gets integer variables y[g, split] in [0, size of g] (x[subject, split] binaries
  when every signature is unique); sum over splits = size of g. This is exact, and it keeps
  facemask's 3,425 one-recording subjects down to a handful of variables.
- split s holds ratio_s x subjects +- max(2 % of subjects, 1 subject) (2 % of fewer than 50
  subjects is less than one subject, and ratio x n is rarely an integer) and ratio_s x recordings
  +- 3 % of recordings.
- minimise sum over splits s and classes c of |count(s, c) - ratio_s x total(c)| / total(c),
  linearised with one auxiliary e >= +-(...) per (s, c). Dividing by total(c) weighs every class by
  its RELATIVE deviation, so large classes do not drown small ones. The subject and recording
  counts enter the sum the same way, so within the tolerances the nearer split wins.
- at scale (more signatures than max_free_groups, e.g. 20,000 subjects with eleven labels, where CBC found
  no solution in minutes): a seeded sample of max_free_groups signatures stays free, the other units are
  dealt first (seeded shuffle, cut at the subject ratios) and enter the program as constants. The
  objective is the same; the free units absorb what the dealt ones leave off target.
Whatever the program returns is kept only if its objective is no worse than the greedy fill's (both
are recorded in split.json's solver record).
Class counts are over the recordings' labels (annotated and propagated). The seed decides which of
several interchangeable units goes where. Fallback when no solution is found within the time limit
(or the tolerances are infeasible): tolerances x2, then x4, then a greedy fill (largest units first,
each to the split furthest below its recording target); split.json records which one was used.
CBC stops when the objective is within gap_recordings (default one) recording per (split, class) of
its bound (gapAbs) or
at the time limit; the result is deterministic unless the time limit is what stopped it.

Units, targets and tolerances: split_problem.py; deviation, random baseline, summary: split_report.py.
"""
from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pulp

from training.schema import LabelSchema, load_label_config
from training.split_problem import SPLITS, SplitConfig, Unit, build_units, class_columns, targets
from training.split_report import deviation, random_split, summary


def solve_ilp(units: list[Unit], cfg: SplitConfig, factor: float, time_limit: float) -> tuple[list[int] | None, str]:
    """Part index per unit (one part per ratio) from the integer program, or None; plus CBC's solution status."""
    parts = range(len(cfg.ratios))
    rng = np.random.default_rng(cfg.seed)
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i in rng.permutation(len(units)):  # seeded order among interchangeable units
        groups[_signature(units[i])].append(int(i))
    signatures = sorted(groups)
    tg = targets(units, cfg, factor)
    totals = np.sum([sig[2] for sig in signatures for _ in groups[sig]], axis=0)
    assign = [0] * len(units)
    dealt = np.zeros((len(parts), 2 + len(totals)))  # per split: subjects, recordings, class counts already in
    if len(signatures) > cfg.max_free_groups:
        free = set(rng.permutation(len(signatures))[:cfg.max_free_groups].tolist())
        for i, s in _deal([i for g, sig in enumerate(signatures) if g not in free for i in groups[sig]], units, cfg, rng):
            assign[i] = s
            dealt[s] += np.array(_signature(units[i])[:2] + _signature(units[i])[2])
        signatures = [sig for g, sig in enumerate(signatures) if g in free]
    prob = pulp.LpProblem("subject_split", pulp.LpMinimize)
    y = {(g, s): pulp.LpVariable(f"y_{g}_{s}", 0, len(groups[sig]), cat=pulp.LpInteger)
         for g, sig in enumerate(signatures) for s in parts}
    objective = []
    for g, sig in enumerate(signatures):
        prob += pulp.lpSum(y[g, s] for s in parts) == len(groups[sig]), f"one_split_{g}"
    for s, ratio in enumerate(cfg.ratios):
        n_sub = pulp.LpAffineExpression([(y[g, s], sig[0]) for g, sig in enumerate(signatures)]) + dealt[s, 0]
        n_rec = pulp.LpAffineExpression([(y[g, s], sig[1]) for g, sig in enumerate(signatures)]) + dealt[s, 1]
        prob += n_sub <= tg["subjects"][s] + tg["subject_tol"], f"sub_hi_{s}"
        prob += n_sub >= tg["subjects"][s] - tg["subject_tol"], f"sub_lo_{s}"
        prob += n_rec <= tg["recordings"][s] + tg["recording_tol"], f"rec_hi_{s}"
        prob += n_rec >= tg["recordings"][s] - tg["recording_tol"], f"rec_lo_{s}"
        for c, total in enumerate(totals):
            if total == 0:
                continue
            count = (pulp.LpAffineExpression([(y[g, s], sig[2][c]) for g, sig in enumerate(signatures) if sig[2][c]])
                     + dealt[s, 2 + c])
            e = pulp.LpVariable(f"e_{s}_{c}", 0)
            prob += e >= count - ratio * float(total), f"dev_hi_{s}_{c}"
            prob += e >= ratio * float(total) - count, f"dev_lo_{s}_{c}"
            objective.append(e * (1.0 / float(total)))
    prob += pulp.lpSum(objective)
    # Stop once within ~one recording per (split, class) of the bound: finer gains are noise, and
    # stopping on the gap rather than the clock keeps the result reproducible.
    gap = cfg.gap_recordings * float(sum(len(parts) / t for t in totals if t > 0))
    prob.solve(pulp.PULP_CBC_CMD(msg=False, timeLimit=max(1, round(time_limit)), threads=1, gapAbs=gap))
    status = {1: "optimal within gap", 2: "feasible (time limit)", 0: "no solution", -1: "infeasible"}.get(prob.sol_status, "undefined")
    if prob.sol_status not in (1, 2):
        return None, status
    for g, sig in enumerate(signatures):
        members = iter(groups[sig])
        for s in parts:
            for _ in range(round(y[g, s].value() or 0)):
                assign[next(members)] = s
    return assign, status


def _signature(u: Unit) -> tuple:
    # subjects and recordings count as two more "classes": within the tolerances, nearer is better
    return len(u.subjects), len(u.recordings), u.counts + (len(u.subjects), len(u.recordings))


def _deal(members: list[int], units: list[Unit], cfg: SplitConfig, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(unit, part) for `members` in a seeded order, cut at the subject ratios."""
    order = [members[k] for k in rng.permutation(len(members))]
    bounds = np.cumsum(cfg.ratios) * sum(len(units[i].subjects) for i in order)
    out, seen = [], 0
    for i in order:
        out.append((i, min(int(np.searchsorted(bounds, seen, side="right")), len(cfg.ratios) - 1)))
        seen += len(units[i].subjects)
    return out


def objective(units: list[Unit], assign: list[int], cfg: SplitConfig) -> float:
    """The integer program's objective for an assignment: relative deviations from the ratios, summed over
    parts and classes, subjects and recordings."""
    counts = np.zeros((len(cfg.ratios), len(units[0].counts) + 2))
    for u, s in zip(units, assign):
        counts[s] += _signature(u)[2]
    totals = counts.sum(axis=0)
    used = totals > 0
    return float((np.abs(counts - np.outer(cfg.ratios, totals))[:, used] / totals[used]).sum())


def greedy_split(units: list[Unit], cfg: SplitConfig) -> list[int]:
    """Largest units first (seeded tie order), each to the split furthest below its recording target."""
    tg = targets(units, cfg)
    order = np.random.default_rng(cfg.seed).permutation(len(units))
    order = sorted(order, key=lambda i: -len(units[i].recordings))
    have = [0.0] * len(cfg.ratios)
    assign = [0] * len(units)
    for i in order:
        s = max(range(len(cfg.ratios)), key=lambda k: (tg["recordings"][k] - have[k]) / tg["recordings"][k])
        assign[i] = s
        have[s] += len(units[i].recordings)
    return assign


def solve(units: list[Unit], cfg: SplitConfig) -> tuple[list[int], dict]:
    """Part index per unit: the ILP, relaxed tolerances, then greedy; plus the solver record for split.json."""
    start = time.perf_counter()
    assign, attempts = None, []
    for factor in cfg.relax_factors:
        left = cfg.time_limit_s - (time.perf_counter() - start)
        if left <= 0:
            break
        assign, status = solve_ilp(units, cfg, factor, left)
        attempts.append({"tolerance_factor": factor, "status": status})
        if assign is not None:
            break
    fallback = None if attempts and attempts[0]["status"] in ("optimal within gap", "feasible (time limit)") else (
        f"tolerances x{attempts[-1]['tolerance_factor']}" if assign is not None else "greedy")
    greedy = greedy_split(units, cfg)
    scores = {"objective": None if assign is None else objective(units, assign, cfg),
              "greedy_objective": objective(units, greedy, cfg)}
    if assign is None or scores["objective"] > scores["greedy_objective"]:
        assign, fallback = greedy, "greedy"
    return assign, {"status": attempts[-1]["status"] if attempts else "not run",
                    "time": round(time.perf_counter() - start, 3), "fallback": fallback, "attempts": attempts,
                    **{k: v if v is None else round(v, 4) for k, v in scores.items()}}


def train_val_test(cfg: SplitConfig) -> SplitConfig:
    """`cfg` if it has one ratio per split (SplitConfig alone also takes the k parts of folds.py)."""
    if len(cfg.ratios) != len(SPLITS):
        raise ValueError(f"ratios must be three numbers (train,val,test), got {cfg.ratios}")
    return cfg


def split_subjects(recordings, schema: LabelSchema, ratios=(0.7, 0.1, 0.2), seed: int = 0,
                   time_limit_s: float = 20.0, duplicate_groups=(), config: SplitConfig | None = None) -> dict:
    """Assign whole subjects to train/val/test; returns the split.json dict (see module doc)."""
    cfg = train_val_test(config or SplitConfig(tuple(ratios), seed, time_limit_s))
    recordings = sorted(recordings, key=lambda r: r.recording_id)
    if not recordings:
        raise ValueError("split_subjects: no recordings to split")
    units, merges = build_units(recordings, schema, duplicate_groups)
    assign, solver = solve(units, cfg)
    return split_document(units, assign, cfg, schema, solver, merges)


def split_document(units: list[Unit], assign: list[int], cfg: SplitConfig, schema: LabelSchema, solver: dict,
                   merges: list) -> dict:
    """The split.json dict of a train/val/test assignment (split index per unit)."""
    columns = class_columns(schema)
    out_subjects = {name: [] for name in SPLITS}
    out_recordings = {name: [] for name in SPLITS}
    counts = {name: {"subjects": 0, "recordings": 0, "classes": {spec.name: dict.fromkeys(spec.classes, 0)
                                                                 for spec in schema.labels}} for name in SPLITS}
    for u, s in zip(units, assign):
        name = SPLITS[s]
        out_subjects[name] += u.subjects
        out_recordings[name] += u.recordings
        counts[name]["subjects"] += len(u.subjects)
        counts[name]["recordings"] += len(u.recordings)
        for (label, cls), n in zip(columns, u.counts):
            counts[name]["classes"][label][cls] += n
    tg = targets(units, cfg)
    return {
        "ratios": list(cfg.ratios),
        "seed": cfg.seed,
        "subjects": {k: sorted(v) for k, v in out_subjects.items()},
        "recordings": {k: sorted(v) for k, v in out_recordings.items()},
        "counts": counts,
        "tolerances": {"subjects": tg["subject_tol"], "recordings": round(tg["recording_tol"], 3)},
        "deviation": deviation(units, assign, cfg),
        "random_deviation": deviation(units, random_split(units, cfg), cfg),
        "solver": solver,
        "duplicate_merges": merges,
    }


def main(argv: list[str] | None = None) -> None:
    from training.export_reader import read_export  # the CLI reads exports; split_subjects does not need it

    ap = argparse.ArgumentParser(description="ILP subject split into train/val/test (thesis 3.1.2.1)")
    ap.add_argument("--export", required=True, help="Label Studio JSON export")
    ap.add_argument("--label-config", help="labeling config XML (default: the repo's)")
    ap.add_argument("--out", required=True, help="split.json to write (with --folds: a folder for split_cv<f>.json)")
    ap.add_argument("--ratios", default="0.7,0.1,0.2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=20.0, help="seconds for the solver (all attempts)")
    ap.add_argument("--data-root", help="document root of the frames: merge subjects with near-duplicate frames")
    ap.add_argument("--dup-threshold", type=int, default=4, help="max Hamming distance of near duplicates")
    ap.add_argument("--folds", type=int, default=0,
                    help="K >= 2: K cross-validation splits instead (training/folds.py; every subject tested once)")
    ap.add_argument("--val-share", type=float, default=0.1, help="with --folds: val's share of all subjects")
    args = ap.parse_args(argv)
    try:
        ratios = tuple(float(x) for x in args.ratios.split(","))
        config = train_val_test(SplitConfig(ratios, args.seed, args.time_limit))  # before the export is read
        schema = load_label_config(args.label_config)
        recordings = read_export(args.export, schema).recordings
        groups = ()
        if args.data_root:
            from training.near_duplicates import duplicate_subject_groups, local_reader

            groups = duplicate_subject_groups(recordings, local_reader(args.data_root), args.dup_threshold)
        if args.folds:
            from training.folds import cross_validation_splits

            results = cross_validation_splits(recordings, schema, args.folds, args.val_share, args.seed,
                                              args.time_limit, groups)
            outs = [Path(args.out) / f"split_cv{f}.json" for f in range(args.folds)]
            Path(args.out).mkdir(parents=True, exist_ok=True)
        else:
            results = [split_subjects(recordings, schema, config=config, duplicate_groups=groups)]
            outs = [Path(args.out)]
    except (OSError, ValueError) as exc:  # bad ratios, folds, config or export
        raise SystemExit(f"training.split: {exc}")
    for result, out in zip(results, outs):
        out.write_text(json.dumps(result, indent=1), encoding="utf-8")
        if args.folds:
            print(f"fold {result['fold']['index']}: test {', '.join(result['subjects']['test'])}")
        print(summary(result))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
