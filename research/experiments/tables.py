"""The tables of the research report (research.experiments --doc), one function per section, each from the run
summaries of one benchmark."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from training.dataset import label_matrix, subsample_labels
from training.export_reader import read_export
from training.schema import load_label_config

from .arms import FRACTIONS, S4L_ARMS
from .plots import plot_label_budget, plot_reliability
from .summaries import class_counts, delta, fmt, group, mean_bal, spread

ARM_PAIR = ("supervised", "s4l")


def _pair_header(first: str) -> list[str]:
    return [f"| {first} | " + " | ".join(f"{a} {round(f * 100)} %" for f in FRACTIONS for a in ("sup.", "S4L")) + " |",
            "|---" * (1 + 2 * len(FRACTIONS)) + "|"]


def label_budget_section(bench: str, summaries: dict, out: Path, fusion: str = "concat") -> list[str]:
    """The bar's table. `fusion` picks the multi-image arms' frame fusion (nuaa runs the budget with both)."""
    counts = class_counts(summaries)
    title, plot = (bench, "label_budget")
    if fusion != "concat":
        title, plot = f"{bench}, {fusion} frame fusion", f"label_budget_{fusion}"
    if not any(group(summaries, r, f, fusion=fusion) for r in ARM_PAIR for f in FRACTIONS):
        return []
    lines = [f"### Label budget ({title})", "",
             "Test mean balanced accuracy in %, mean ± sample std over seeds (n = seeds run). "
             "Bar: S4L − supervised > the larger of the two stds. Both arms of a seed share the label subset and "
             "the initialisation, so the paired Δ (per seed, then mean ± std) is shown too.", "",
             "| labels kept | supervised only | S4L (steps 1-3) | Δ (S4L − sup.) | beats the spread? "
             "| paired Δ per seed | S4L ahead in |", "|---|---|---|---|---|---|---|"]
    curve = {}
    for f in FRACTIONS:
        curve[f], cells = bar_row(summaries, f, fusion=fusion)
        lines.append(f"| {round(f * 100)} % | {cells} |")
    lines += ["", "Per label (test balanced accuracy %, mean ± std; test class counts in brackets):", "",
              *_pair_header("label (test classes)")]
    for label, cc in counts.items():
        cells = [fmt(mean_bal(group(summaries, r, f, fusion=fusion), label)) for f in FRACTIONS for r in ARM_PAIR]
        lines.append(f"| {label} ({cc}) | " + " | ".join(cells) + " |")
    binary = [n for n, cc in counts.items() if cc.count("/") == 1]
    if binary:  # balanced accuracy at chance can hide a useful ranking (a bias, not a blind model)
        lines += ["", "ROC AUC of the binary labels (%, mean ± std), a threshold-free view of the same predictions:", "",
                  *_pair_header("label")]
        for label in binary:
            cells = [fmt([s["test"]["metrics"]["labels"][label]["roc_auc"] for s in group(summaries, r, f, fusion=fusion)
                          if s["test"]["metrics"]["labels"][label].get("roc_auc") is not None])
                     for f in FRACTIONS for r in ARM_PAIR]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", f"![label budget {title}]({bench}/{plot}.png)", ""]
    plot_label_budget(title, curve, out / bench / f"{plot}.png")
    return lines


def bar_row(summaries: dict, fraction: float, fusion: str = "concat", pool: str = "subsample"
            ) -> tuple[tuple[list[float], list[float]], str]:
    """((supervised values, S4L values), the table cells: both arms, Δ of the means, whether Δ beats the larger
    std (the bar), the paired Δ per seed and in how many seeds S4L leads)."""
    sup, s4l = (mean_bal(group(summaries, r, fraction, fusion=fusion, pool=pool)) for r in ARM_PAIR)
    return (sup, s4l), bar_cells(sup, s4l, paired_deltas(summaries, fraction, pool=pool, fusion=fusion))


def bar_cells(sup: list[float], s4l: list[float], paired: list[float]) -> str:
    """Both arms, Δ of the means, whether Δ beats the larger std (the bar), the paired Δ, seeds S4L leads in."""
    change = verdict = "-"
    if sup and s4l:
        (ms, ss, _), (m4, s4, _) = spread(sup), spread(s4l)
        change, verdict = f"{100 * (m4 - ms):+.1f}", ("yes" if m4 - ms > max(ss, s4) else "no")
    ahead = f"{sum(d > 0 for d in paired)} of {len(paired)} seeds" if paired else "-"
    return f"{fmt(sup)} | {fmt(s4l)} | {change} | {verdict} | {fmt(paired).replace('not run', '-')} | {ahead}"


def paired_deltas(summaries: dict, fraction: float, pool: str = "subsample", fusion: str = "concat") -> list[float]:
    """S4L − supervised test mean balanced accuracy for every seed that both arms ran."""
    by_seed = [{s["arm"]["seed"]: s["test"]["metrics"]["mean_balanced_accuracy"]
                for s in group(summaries, r, fraction, fusion=fusion, pool=pool)} for r in ARM_PAIR]
    return [by_seed[1][k] - by_seed[0][k] for k in sorted(set(by_seed[0]) & set(by_seed[1]))]


def pool_section(bench: str, summaries: dict) -> list[str]:
    """Arm.pool "all": the same labelled recordings plus every other training subject's recordings unlabelled."""
    if not any(s["arm"].get("pool") == "all" for s in summaries.values()):
        return []
    lines = [f"### More unlabelled recordings ({bench})", "",
             "The label-budget arms again, with every training subject that the subsample leaves out added as "
             "unlabelled recordings (annotations hidden; `split_allpool.json`). Same labelled recordings, so the "
             "supervised arm only gains BatchNorm statistics and batch company; S4L can learn from them. "
             "Test mean balanced accuracy %, mean ± std over seeds.", "",
             "| labels kept | supervised | S4L | Δ | beats the spread? | paired Δ per seed | S4L ahead in "
             "| S4L, subsample only |", "|---|---|---|---|---|---|---|---|"]
    for f in FRACTIONS[:2]:
        _, cells = bar_row(summaries, f, pool="all")
        lines.append(f"| {round(f * 100)} % | {cells} | {fmt(mean_bal(group(summaries, 's4l', f)))} |")
    return lines + [""]


class ExportLabels:
    """The export's labels as training.fit reads them (read and propagated once), for counting the training
    labels a run with (split, fraction, seed) learns from."""

    def __init__(self, paths: dict):
        self.schema = load_label_config(paths["label_config"])
        recordings = read_export(paths["export"], self.schema).recordings
        self.index = {r.recording_id: i for i, r in enumerate(recordings)}
        self.matrix = label_matrix(recordings, self.schema)

    def counts(self, split: dict, fraction: float, seed: int, per_class: bool = False) -> dict[str, list[int]]:
        """Training annotations per class, as training.fit selects them."""
        rows = [self.index[rid] for rid in split["recordings"]["train"] if rid in self.index]  # fit's row order
        kept = subsample_labels(self.matrix, rows, fraction, seed, per_class)[rows]
        return {spec.name: np.bincount(kept[:, j][kept[:, j] >= 0], minlength=len(spec.classes)).tolist()
                for j, spec in enumerate(self.schema.labels)}


def label_counts_section(bench: str, paths: dict, split: dict, seeds: list[int]) -> list[str]:
    labels = ExportLabels(paths)
    schema = labels.schema
    order = ", ".join(f"{s.name}: " + "/".join(s.classes) for s in schema.labels)
    lines = [f"Training labels per class on the single split (`split.json`; the cross-validated runs' are counted "
             f"in their own table) ({bench}; classes in the order {order}):",
             "", "| labels kept | seed | " + " | ".join(schema.names) + " |", "|---|---|" + "---|" * len(schema.names)]
    for f in FRACTIONS:
        for seed in seeds:
            counts = labels.counts(split, f, seed)
            lines.append(f"| {round(f * 100)} % | {seed} | " + " | ".join("/".join(map(str, counts[n])) for n in schema.names) + " |")
    return lines + [""]


def _export_test_n(summaries: dict) -> str:
    for s in summaries.values():
        test = (s["steps"].get("1") or s["steps"].get("3") or {}).get("test")
        if test:
            return ", ".join(f"{n} n={m['n']}" for n, m in test["labels"].items())
    return "no S4L run"


def steps_section(bench: str, summaries: dict, fusion: str = "concat") -> list[str]:
    """Steps 1-3 of the S4L runs, and the ablations / probes next to the full recipe at every budget they ran."""
    fractions = [f for f in FRACTIONS if any(group(summaries, r, f, fusion=fusion) for r in S4L_ARMS if r != "s4l")]
    if not fractions and (fusion != "concat" or not any(group(summaries, "s4l", f) for f in FRACTIONS)):
        return []  # (concat: the grid's steps table, shown while any single-split S4L run exists)
    title = bench if fusion == "concat" else f"{bench}, {fusion} frame fusion"
    lines = [f"### Contribution of each step and of each unsupervised loss ({title})", "",
             "Steps: the S4L runs' metrics.json `steps` (best epoch of each step), scored by training.fit on the "
             "test recordings' EXPORT annotations (partial: " + _export_test_n(summaries) + "), not truth.csv. "
             "Ablations and probes: full recipe with one change (see S4L_ARMS in research/experiments/arms.py), "
             "scored on truth.csv; probes run only cross-validated are in that table.", "",
             "| labels kept | after step 1 | after step 2 | after step 3 | step-3 model on truth.csv |", "|---|---|---|---|---|"]
    for f in FRACTIONS:
        runs = group(summaries, "s4l", f, fusion=fusion)
        cells = [fmt(mean_bal(runs, where=lambda s, k=k: (s["steps"].get(k) or {}).get("test"))) for k in ("1", "2", "3")]
        lines.append(f"| {round(f * 100)} % | " + " | ".join(cells) + f" | {fmt(mean_bal(runs))} |")
    lines += ["", "| arm | " + " | ".join(f"{round(f * 100)} % of labels | Δ vs full S4L" for f in fractions) + " |",
              "|---" * (1 + 2 * len(fractions)) + "|"]
    for recipe in ("supervised", *S4L_ARMS):
        if recipe not in ("supervised", "s4l") and not any(group(summaries, recipe, f, fusion=fusion) for f in fractions):
            continue  # not run on this split
        cells = []
        for f in fractions:
            vals, full = (mean_bal(group(summaries, r, f, fusion=fusion)) for r in (recipe, "s4l"))
            cells += [fmt(vals), delta(vals, full) if recipe != "s4l" else "-"]
        lines.append(f"| {recipe} | " + " | ".join(cells) + " |")
    return lines + [""]


def variants_section(summaries: dict) -> list[str]:
    """MTL vs STL, multi vs single image (thesis tables 4.1-4.3) and concatenated vs mean frame fusion:
    supervised recipe, 100 % of labels."""
    base = group(summaries, "supervised", 1.0)
    variants = [group(summaries, "supervised", 1.0, "stl", "multi"), group(summaries, "supervised", 1.0, "mtl", "single"),
                group(summaries, "supervised", 1.0, "mtl", "multi", "mean")]
    if not base and not any(variants):
        return []
    counts = class_counts(summaries)
    lines = ["### MTL vs STL, multi- vs single-image, frame fusion (nuaa)", "",
             "Supervised-only recipe at 100 % of the labels (the S4L arms cost ~5x more CPU); "
             "test balanced accuracy %, mean ± std over seeds; Δ = variant − MTL multi-image "
             "(which concatenates the frame embeddings, as the thesis does; \"mean fusion\" averages them).", "",
             "| label (test classes) | MTL multi | STL multi | Δ STL | MTL single | Δ single "
             "| MTL multi, mean fusion | Δ mean |", "|---|---|---|---|---|---|---|---|"]
    for label in [*counts, None]:
        ref = mean_bal(base, label)
        cells = [fmt(ref)]
        for runs in variants:
            vals = mean_bal(runs, label)
            cells += [fmt(vals), delta(vals, ref)]
        name = f"{label} ({counts[label]})" if label else "mean (Δμ)"
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    concat, mean = (mean_bal(group(summaries, "s4l", 1.0, fusion=u)) for u in ("concat", "mean"))
    if mean:  # the fusion choice under the full recipe too
        lines += ["", f"Frame fusion under the full S4L recipe (100 % of the labels), test mean balanced accuracy %: "
                      f"concat {fmt(concat)}, mean {fmt(mean)}, Δ {delta(mean, concat)}."]
    return lines + [""]


def calibration_section(bench: str, summaries: dict, out: Path) -> list[str]:
    if not any(group(summaries, r, f) for f in FRACTIONS for r in ARM_PAIR):
        return []
    lines = [f"### Calibration ({bench})", "",
             "ECE (15 equal-width bins of top-class confidence) of the test probabilities the ONNX model serves (fitted per-head "
             "temperatures) vs T = 1, mean over seeds, scored on truth.csv.", "",
             "| arm | label | T (mean) | ECE at T=1 | ECE served |", "|---|---|---|---|---|"]
    for recipe, f in [(r, f) for f in reversed(FRACTIONS) for r in ARM_PAIR]:
        runs = group(summaries, recipe, f)
        if not runs:
            lines.append(f"| {recipe} {round(f * 100)} % | - | - | not run | not run |")
            continue
        for label in runs[0]["test"]["temperatures"]:
            ece = {k: [s["test"]["calibration"][k][label]["ece"] for s in runs
                       if s["test"]["calibration"][k][label]["ece"] is not None] for k in ("t1", "fitted")}
            t = np.mean([s["test"]["temperatures"][label] for s in runs])
            lines.append(f"| {recipe} {round(f * 100)} % | {label} | {t:.2f} | {fmt(ece['t1'])} | {fmt(ece['fitted'])} |")
    # the diagram: the S4L runs with the most labels that have completed
    runs = next((g for f in reversed(FRACTIONS) for r in ("s4l", "supervised") if (g := group(summaries, r, f))), [])
    if runs:
        plot_reliability(bench, runs, out / bench / "reliability.png")
        lines += ["", f"![reliability {bench}]({bench}/reliability.png)"]
    return lines + [""]


def runs_section(bench: str, summaries: dict) -> list[str]:
    lines = [f"### Every run ({bench}): wall time and the command that reproduces it", "",
             "| run | test mean bal. acc. % | wall s | command |", "|---|---|---|---|"]
    for s in summaries.values():
        m = s["test"]["metrics"]["mean_balanced_accuracy"]
        lines.append(f"| {s['run_id']} | {'-' if m is None else f'{100 * m:.1f}'} | {s['wall_s']:.0f} | `{s['command']}` |")
    return lines + [""]
