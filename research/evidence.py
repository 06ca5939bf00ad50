"""The compact evidence behind docs/results.md: one CSV per published table, one row per seed (and label).

Reads run summaries (the --out folders of research.experiments: OUT/<bench>/runs/*.json) and writes
docs/evidence/*.csv; `python -m research.tables docs/evidence` turns those files into the tables of
docs/results.md. A cross-validated seed's score is its k folds' test confusions added up (cv_tables.pooled),
a single-split seed's score is its test mean balanced accuracy; both on truth.csv.

    python -m research.evidence --runs OUT [--replication OUT2] [--face-crop OUT3] --to docs/evidence

--runs: the grid on the first CPU type; --replication: the same arms on a second CPU type (and the longer,
larger and every-frame variants); --face-crop: the grid on nuaa cropped to the face (research/face_crop_nuaa.py).
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

from .experiments.cv_tables import pooled
from .experiments.summaries import group, load_summaries

FRACTIONS = (0.1, 0.3, 1.0)
K = 5  # nuaa's subject folds
# (setting as the table names it, source, benchmark, fractions, how the seeds' scores are drawn)
BUDGET = (
    ("facemask, 2,409 training recordings (labels of 600)", "runs", "facemask", (0.1, 0.3), {"pool": "all"}),
    ("facemask, 600 training recordings", "runs", "facemask", FRACTIONS, {}),
    ("nuaa, 5 subject folds (all 143 recordings)", "runs", "nuaa", (0.1, 0.3), {"cv": {}}),
    ("nuaa, one split (30 test recordings)", "runs", "nuaa", FRACTIONS, {"fusion": "mean"}),
    ("facemask, 2,409 training recordings, second CPU type", "replication", "facemask", (0.1, 0.3), {"pool": "all"}),
    ("nuaa, 5 subject folds, second CPU type", "replication", "nuaa", (0.1, 0.3), {"cv": {}}),
)
# nuaa, cross-validated: one change to the grid each (Arm fields, or an S4L arm against the plain supervised one)
LEVERS = (
    ("labels drawn one per class first", "runs", (0.1,), {"labels": "per_class"}, "s4l"),
    ("image augmentation", "runs", (0.1, 0.3), {"augment": True}, "s4l"),
    ("4 epochs per step (grid: 2)", "runs", (0.1, 0.3), {"epochs": 4}, "s4l"),
    ("10 epochs per step (the thesis)", "replication", (0.1, 0.3), {"epochs": 10}, "s4l"),
    ("128 px input (grid: 64)", "replication", (0.1, 0.3), {"image_size": 128}, "s4l"),
    ("all 24 frames jittered (grid: 10)", "replication", (0.1, 0.3), {"frame_pool": 24}, "s4l"),
    ("face crop, 128 px", "face_crop", (0.1, 0.3), {"image_size": 128}, "s4l"),
    ("S4L with CE weight 1.0", "runs", (0.1, 0.3), {}, "sup_weight1"),
    ("S4L ending at the best-validated step", "runs", (0.1, 0.3), {}, "best_step"),
    ("S4L with EntMin/VAT ramp-up", "replication", (0.1, 0.3), {}, "rampup"),
    ("S4L without step 3", "replication", (0.1, 0.3), {}, "two_steps"),
)
# nuaa, supervised, every label, one split: (variant as the table names it, Arm fields)
MODELS = (("MTL multi-image", {"mode": "mtl", "kind": "multi", "fusion": "concat"}),
          ("STL multi-image", {"mode": "stl", "kind": "multi", "fusion": "concat"}),
          ("MTL single-image", {"mode": "mtl", "kind": "single", "fusion": "concat"}),
          ("MTL multi-image, mean fusion", {"mode": "mtl", "kind": "multi", "fusion": "mean"}))
MEAN = "mean over labels"


def _seed_scores(summaries: dict, recipe: str, fraction: float, how: dict) -> dict[int, dict]:
    """seed -> {"mean": score, "labels": {name: score}} of one arm."""
    if "cv" in how:
        return {seed: {"mean": v["mean"], "labels": v["labels"]}
                for seed, v in pooled(summaries, recipe, fraction, K, **how["cv"]).items()}
    runs = group(summaries, recipe, fraction, fusion=how.get("fusion", "concat"), pool=how.get("pool", "subsample"),
                 mode=how.get("mode", "mtl"), kind=how.get("kind", "multi"))
    return {s["arm"]["seed"]: {"mean": s["test"]["metrics"]["mean_balanced_accuracy"],
                               "labels": {n: m["balanced_accuracy"] for n, m in s["test"]["metrics"]["labels"].items()}}
            for s in sorted(runs, key=lambda s: s["arm"]["seed"])}


def _pct(fraction: float) -> int:
    return round(100 * fraction)


def budget_rows(sources: dict) -> tuple[list[list], list[list]]:
    """(label_budget.csv rows, per_label.csv rows)."""
    rows, per_label = [], []
    for setting, source, bench, fractions, how in BUDGET:
        if source not in sources:
            continue
        summaries = load_summaries(sources[source], bench)
        for fraction in fractions:
            for recipe in ("supervised", "s4l"):
                for seed, v in _seed_scores(summaries, recipe, fraction, how).items():
                    rows.append([setting, _pct(fraction), recipe, seed, f"{v['mean']:.6f}"])
                    if source == "runs" and fraction < 1.0 and ("cv" in how or "pool" in how):
                        per_label += [[bench, _pct(fraction), recipe, seed, n, f"{s:.6f}"]
                                      for n, s in v["labels"].items() if s is not None]
    return rows, per_label


def lever_rows(sources: dict) -> list[list]:
    rows = []
    for change, source, fractions, fields, recipe in LEVERS:
        if source not in sources:
            continue
        summaries = load_summaries(sources[source], "nuaa")
        for fraction in fractions:
            sup, s4l = (_seed_scores(summaries, arm, fraction, {"cv": fields if recipe == "s4l" else {}})
                        for arm in ("supervised", recipe))
            for seed in sorted(set(sup) & set(s4l)):  # a probe is compared on the seeds it ran
                rows += [[change, _pct(fraction), arm, seed, f"{v[seed]['mean']:.6f}"]
                         for arm, v in (("supervised", sup), ("s4l", s4l))]
    return rows


def model_rows(sources: dict) -> list[list]:
    summaries = load_summaries(sources["runs"], "nuaa")
    rows = []
    for variant, fields in MODELS:
        for seed, v in _seed_scores(summaries, "supervised", 1.0, fields).items():
            rows += [[variant, seed, n, f"{s:.6f}"] for n, s in v["labels"].items()]
            rows.append([variant, seed, MEAN, f"{v['mean']:.6f}"])
    return rows


def calibration_rows(sources: dict) -> list[list]:
    """Every S4L and supervised run of the first two BUDGET settings of each benchmark's single split."""
    rows = []
    for bench, how in (("facemask", {}), ("nuaa", {"fusion": "mean"})):
        summaries = load_summaries(sources["runs"], bench)
        for fraction in FRACTIONS:
            for recipe in ("supervised", "s4l"):
                for s in sorted(group(summaries, recipe, fraction, fusion=how.get("fusion", "concat")),
                                key=lambda s: s["arm"]["seed"]):
                    test = s["test"]
                    for name, fitted in test["calibration"]["fitted"].items():
                        rows.append([bench, _pct(fraction), recipe, s["arm"]["seed"], name,
                                     f"{test['temperatures'][name]:.4f}", f"{test['calibration']['t1'][name]['ece']:.6f}",
                                     f"{fitted['ece']:.6f}"])
    return rows


HEADERS = {
    "label_budget.csv": ["setting", "labels_pct", "arm", "seed", "mean_balanced_accuracy"],
    "per_label.csv": ["benchmark", "labels_pct", "arm", "seed", "label", "balanced_accuracy"],
    "nuaa_levers.csv": ["change", "labels_pct", "arm", "seed", "mean_balanced_accuracy"],
    "models.csv": ["variant", "seed", "label", "balanced_accuracy"],
    "calibration.csv": ["benchmark", "labels_pct", "arm", "seed", "label", "temperature", "ece_t1", "ece_served"],
}


def write_evidence(sources: dict, to: Path) -> list[Path]:
    budget, per_label = budget_rows(sources)
    tables = {"label_budget.csv": budget, "per_label.csv": per_label, "nuaa_levers.csv": lever_rows(sources),
              "models.csv": model_rows(sources), "calibration.csv": calibration_rows(sources)}
    to.mkdir(parents=True, exist_ok=True)
    written = []
    for name, rows in tables.items():
        with open(to / name, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(HEADERS[name])
            w.writerows(rows)
        written.append(to / name)
    return written


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m research.evidence", description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=Path, required=True, help="research.experiments --out of the grid")
    ap.add_argument("--replication", type=Path, help="the same arms and the variants on a second CPU type")
    ap.add_argument("--face-crop", type=Path, help="the grid on nuaa cropped to the face")
    ap.add_argument("--to", type=Path, default=Path("docs/evidence"))
    a = ap.parse_args(argv)
    sources = {k: v for k, v in (("runs", a.runs), ("replication", a.replication), ("face_crop", a.face_crop)) if v}
    for path in write_evidence(sources, a.to):
        print(path)


if __name__ == "__main__":
    main()
