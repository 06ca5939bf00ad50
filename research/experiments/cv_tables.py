"""The cross-validated label budget: k subject folds, every subject tested once per seed.

One score per (arm, seed) comes from the k folds' test confusions added up (training.metrics.
balanced_accuracy of the sum), i.e. balanced accuracy over every recording of the benchmark. A seed
counts only when all k folds of its arm have finished."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from training.metrics import balanced_accuracy

from .arms import CV_FOLDS, CV_FRAME_POOLS, CV_LONGER, CV_PROBES, CV_SIZES, FRACTIONS, REPLICATION_SEED_BLOCKS, REPLICATION_SEEDS
from .summaries import fmt, mean_bal, spread
from .tables import ARM_PAIR, ExportLabels, bar_cells


DRAWN = {"random": "", "per_class": ", drawn per class"}  # Arm.labels as the tables name it


# Arm fields that make a cross-validated variant of the label budget, at their plain values (older summaries lack
# the later fields and read as these)
PLAIN = {"labels": "random", "augment": False, "epochs": 0, "image_size": 0, "frame_pool": 0}
# the variants tabled beside the plain budget: (labels kept, Arm fields, how the table names them)
VARIANTS = ((FRACTIONS[0], {"labels": "per_class"}, DRAWN["per_class"]),
            *((f, {"augment": True}, ", image augmentation") for f in FRACTIONS[:2]),
            *((f, {"epochs": e}, f", {e} epochs per step") for e in CV_LONGER for f in FRACTIONS[:2]),
            *((f, {"image_size": px}, f", {px} px input") for px in CV_SIZES for f in FRACTIONS[:2]),
            *((f, {"frame_pool": n}, f", all {n} frames jittered") for n in CV_FRAME_POOLS for f in FRACTIONS[:2]))


def cv_runs(summaries: dict, **variant) -> list[dict]:
    """The cross-validated runs of one variant (PLAIN's fields, changed by `variant`)."""
    wanted = {**PLAIN, **variant}
    return [s for s in summaries.values() if s["arm"].get("fold", -1) >= 0
            and all(s["arm"].get(field, PLAIN[field]) == value for field, value in wanted.items())]


def arm_runs(summaries: dict, recipe: str, fraction: float, fusion: str = "mean", **variant) -> list[dict]:
    """The cross-validated runs of one MTL multi-image arm, every seed and fold."""
    return [s for s in cv_runs(summaries, **variant) if s["arm"]["recipe"] == recipe
            and s["arm"]["fraction"] == fraction and s["arm"].get("fusion", "concat") == fusion
            and s["arm"]["mode"] == "mtl" and s["arm"]["kind"] == "multi"]


def pooled(summaries: dict, recipe: str, fraction: float, k: int, fusion: str = "mean", **variant) -> dict[int, dict]:
    """seed -> {"mean": pooled mean balanced accuracy, "labels": {name: pooled balanced accuracy},
    "support": {name: {class: n}}} for every seed whose k folds all finished."""
    folds: dict[int, dict[int, dict]] = {}
    for s in arm_runs(summaries, recipe, fraction, fusion, **variant):
        folds.setdefault(s["arm"]["seed"], {})[s["arm"]["fold"]] = s
    out = {}
    for seed, runs in sorted(folds.items()):
        if len(runs) < k:
            continue
        first = runs[0]["test"]["metrics"]["labels"]
        summed = summed_confusions([{n: m["confusion"] for n, m in r["test"]["metrics"]["labels"].items()}
                                    for r in runs.values()])
        per_label = {name: balanced_accuracy(c) for name, c in summed.items()}
        support = {name: dict(zip(first[name]["per_class"], c.sum(axis=1).tolist())) for name, c in summed.items()}
        out[seed] = {"mean": float(np.mean(list(per_label.values()))), "labels": per_label, "support": support}
    return out


def summed_confusions(folds: list[dict[str, list]]) -> dict[str, np.ndarray]:
    """name -> the folds' test confusions added up, for every label with a known test truth in some fold."""
    summed = {name: np.sum([f[name] for f in folds], axis=0) for name in folds[0]}
    return {name: c for name, c in summed.items() if c.sum()}


def coverage_lines(summaries: dict, export: ExportLabels, splits: list[dict], seeds: list[int],
                   variant: tuple[dict, str] = ({}, "")) -> list[str]:
    """How many training labels the cross-validated runs of `variant` (Arm fields, how the table names them; the
    plain budget by default) learn from, how many classes they cover, and S4L's per-label lead in the runs whose
    labels show every class vs. the others. `splits`: the k split_cv*.json."""
    fields, what = variant
    k = len(splits)
    runs_of = cv_runs(summaries, **fields) + ([] if fields else cv_runs(summaries, labels="per_class"))
    arm_of = {(a["recipe"], a["fraction"], a.get("labels", "random"), a["seed"], a["fold"]): s["test"]["metrics"]["labels"]
              for s in runs_of for a in [s["arm"]]}
    lines = ["", f"Training labels of these runs{what} (mean over the {k} splits x {len(seeds)} seeds "
             f"{_seed_range(seeds)}; a class no training label shows cannot be predicted by any recipe, so it caps that "
             "label's balanced accuracy), and S4L − supervised on that label's test balanced accuracy (points, mean "
             "over the fold runs) in the runs whose training labels show every class vs. the runs that miss a class:",
             "", "| labels kept | label | labelled recordings | classes with a label | runs with every class "
             "| S4L − sup., every class | S4L − sup., a class missing |", "|---|---|---|---|---|---|---|"]
    draws = [(f, fields.get("labels", "random")) for f in FRACTIONS[:2]]
    if not fields and cv_runs(summaries, labels="per_class"):
        draws.append((FRACTIONS[0], "per_class"))
    for f, draw in draws:
        runs = [(i, seed, export.counts(split, f, seed, draw == "per_class"))
                for i, split in enumerate(splits) for seed in seeds]
        for name, first in runs[0][2].items():
            full, part = [], []
            for i, seed, counts in runs:
                sup, s4l = (arm_of.get((r, f, draw, seed, i), {}).get(name, {}).get("balanced_accuracy")
                            for r in ARM_PAIR)
                if sup is not None and s4l is not None:
                    (full if min(counts[name]) > 0 else part).append(100 * (s4l - sup))
            covered = [sum(n > 0 for n in counts[name]) for _, _, counts in runs]
            labelled = np.mean([sum(c[name]) for _, _, c in runs])
            lines.append(f"| {round(f * 100)} %{DRAWN[draw]} | {name} | {labelled:.1f} | "
                         f"{np.mean(covered):.2f} of {len(first)} | {sum(c == len(first) for c in covered)} of "
                         f"{len(runs)} | {_mean_of(full)} | {_mean_of(part)} |")
    return lines


def _pooled_bar_cells(sup: dict[int, dict], s4l: dict[int, dict]) -> str:
    """tables.bar_cells of two `pooled` results: the seeds' pooled means, paired over the seeds both finished."""
    paired = [s4l[s]["mean"] - sup[s]["mean"] for s in sorted(set(sup) & set(s4l))]
    return bar_cells([v["mean"] for v in sup.values()], [v["mean"] for v in s4l.values()], paired)


def _mean_of(values: list[float]) -> str:
    return f"{np.mean(values):+.1f} (n={len(values)})" if values else "-"


def _fold_mean_lines(summaries: dict, labels: dict, header: list[str]) -> list[str]:
    """Per label, the mean of the folds' own balanced accuracies. The pooled score falls below it when the folds'
    predicted class mixes run against their test class mixes (per-person traits, few people)."""
    lines = ["", "Per label, each fold scored alone (balanced accuracy %, mean ± std over the fold runs of every seed; "
             "the pooled table above counts every recording once instead):", "", header[0].format("label"), header[1]]
    for label in labels:
        cells = [fmt(mean_bal(arm_runs(summaries, r, f), label)) for f in FRACTIONS[:2] for r in ARM_PAIR]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _variant_scores(summaries: dict, k: int) -> list[tuple[float, str, dict, dict]]:
    """(labels kept, how the table names it, supervised `pooled`, S4L `pooled`) of every VARIANTS entry; a variant
    that has REPLICATION_SEEDS runs comes as three entries: the other seeds, the fresh ones, and all of them."""
    scores = []
    for f, variant, what in VARIANTS:
        sup, s4l = (pooled(summaries, r, f, k, **variant) for r in ARM_PAIR)
        scores += [(f, what + name, *pair) for name, pair in seed_groups(sup, s4l)]
    return scores


def seed_groups(*arms: dict[int, dict]) -> list[tuple[str, tuple[dict, ...]]]:
    """[("", arms)] unless the arms hold REPLICATION_SEEDS; then the seeds before them, each block of fresh ones, and all
    (when there is more than one group)."""
    seeds = sorted(set().union(*arms))
    fresh = [(block, "fresh seeds") for block in ([s for s in seeds if s in b] for b in REPLICATION_SEED_BLOCKS) if block]
    if not fresh:
        return [("", arms)]
    groups = [(chosen, label) for chosen, label in [([s for s in seeds if s not in REPLICATION_SEEDS], "seeds"), *fresh]
              if chosen]
    groups += [(seeds, "seeds")] if len(groups) > 1 else []
    return [(f", {label} {_seed_range(chosen)}", tuple({s: a[s] for s in chosen if s in a} for a in arms))
            for chosen, label in groups]


def _seed_range(seeds: list[int]) -> str:
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(map(str, seeds))


def _variant_label_lines(variant_scores: list[tuple[float, str, dict, dict]]) -> list[str]:
    """Per label of every variant both arms finished: which label a changed setting moves."""
    rows = []
    for f, what, sup, s4l in variant_scores:
        for label in (next(iter(s4l.values()))["labels"] if sup and s4l else ()):
            cells = [fmt([v["labels"][label] for v in arm.values()]) for arm in (sup, s4l)]
            rows.append(f"| {round(f * 100)} %{what} | {label} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return ["", "Per label of the variants (pooled balanced accuracy %, mean ± std over seeds):", "",
            "| labels kept, variant | label | supervised only | S4L |", "|---|---|---|---|", *rows]


def cv_section(bench: str, summaries: dict, out: Path, paths: dict | None = None) -> list[str]:
    k = CV_FOLDS.get(bench)
    scores = {(r, f): pooled(summaries, r, f, k) for f in FRACTIONS[:2] for r in (*ARM_PAIR, *CV_PROBES)} if k else {}
    if not k or not scores["s4l", FRACTIONS[0]]:
        return []
    folds = json.loads((out / bench / "split_cv0.json").read_text(encoding="utf-8"))["fold"]["folds"]
    lines = [f"### Label budget, cross-validated ({bench}, {k} subject folds, mean frame fusion)", "",
             f"The label-budget arms on {k} subject-disjoint splits (`training/folds.py`, `split_cv*.json`): the ILP "
             f"deals the subjects into {k} folds balanced per class; split f tests on fold f and divides the rest into "
             "train and val. Test folds: " + "; ".join(f"{i}: {', '.join(f)}" for i, f in enumerate(folds)) + ". "
             f"One value per seed = balanced accuracy of the {k} folds' test predictions together (every recording "
             "of the benchmark, scored on truth.csv), then mean ± sample std over seeds.", "",
             "| labels kept | S4L arm | supervised only | that S4L arm | Δ (S4L − sup.) | beats the spread? "
             "| paired Δ per seed | S4L ahead in |", "|---|---|---|---|---|---|---|---|"]
    header = ["| {} | " + " | ".join(f"{a} {round(f * 100)} %" for f in FRACTIONS[:2] for a in ("sup.", "S4L")) + " |",
              "|---" * 5 + "|"]
    for f in FRACTIONS[:2]:
        sup = scores["supervised", f]
        for arm in ("s4l", *CV_PROBES):
            if arm == "s4l" or scores[arm, f]:
                mine = scores[arm, f]
                base = sup if arm == "s4l" else {s: v for s, v in sup.items() if s in mine}  # a probe's own seeds
                lines += [f"| {round(f * 100)} %{name} | {arm} | {_pooled_bar_cells(*pair)} |"
                          for name, pair in seed_groups(base, mine)]
    variant_scores = _variant_scores(summaries, k)
    for f, what, sup, s4l in variant_scores:
        if sup or s4l:
            lines.append(f"| {round(f * 100)} %{what} | s4l | {_pooled_bar_cells(sup, s4l)} |")
    # the detail tables describe the seeds the budget was first run on; fresh seeds have their rows above
    fresh = {s["arm"]["seed"] for s in cv_runs(summaries)} & set(REPLICATION_SEEDS)
    first = {key: s for key, s in summaries.items() if s["arm"]["seed"] not in REPLICATION_SEEDS}
    scores = {key: {s: v for s, v in seeds.items() if s not in REPLICATION_SEEDS} for key, seeds in scores.items()}
    seeds = sorted({s["arm"]["seed"] for s in cv_runs(first)})
    any_run = next(v for v in scores["s4l", FRACTIONS[0]].values())
    lines += ["", "Per label (pooled balanced accuracy %, mean ± std over seeds"
              + (f" {_seed_range(seeds)}, not the fresh ones" if fresh else "")
              + "; classes over all test folds):", "", header[0].format("label (classes)"), header[1]]
    for label, support in any_run["support"].items():
        cells = [fmt([v["labels"][label] for v in scores[r, f].values()]) for f in FRACTIONS[:2] for r in ARM_PAIR]
        counts = " / ".join(f"{c} {n}" for c, n in support.items())
        lines.append(f"| {label} ({counts}) | " + " | ".join(cells) + " |")
    lines += _fold_mean_lines(first, any_run["support"], header)
    lines += _variant_label_lines(variant_scores)
    lines += _per_fold_lines(first, k, header)
    if paths and paths["export"].exists():  # the export is read once for every coverage table
        export = ExportLabels(paths)
        splits = [json.loads((out / bench / f"split_cv{i}.json").read_text(encoding="utf-8")) for i in range(k)]
        lines += coverage_lines(first, export, splits, seeds)
        for fields, what in dict.fromkeys((tuple(v.items()), w) for _, v, w in VARIANTS):  # fresh seeds' draws
            variant_fresh = sorted({s["arm"]["seed"] for s in cv_runs(summaries, **dict(fields))} & set(REPLICATION_SEEDS))
            if variant_fresh:
                lines += coverage_lines(summaries, export, splits, variant_fresh, (dict(fields), what))
    return lines + [""]


def _per_fold_lines(summaries: dict, k: int, header: list[str]) -> list[str]:
    lines = ["", "Per fold (test mean balanced accuracy % of that fold alone, mean over seeds), to show how much "
             "the test people decide a single split's verdict:", "", header[0].format("fold"), header[1]]
    for i in range(k):
        cells = []
        for f in FRACTIONS[:2]:
            for r in ARM_PAIR:
                vals = [s["test"]["metrics"]["mean_balanced_accuracy"] for s in arm_runs(summaries, r, f)
                        if s["arm"]["fold"] == i]
                cells.append(f"{100 * spread(vals)[0]:.1f} (n={len(vals)})" if vals else "not run")
        lines.append(f"| {i} | " + " | ".join(cells) + " |")
    return lines
