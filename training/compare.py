"""Compare runs side by side, thesis style (tables 4.1/4.2): `python -m training.compare RUN_A RUN_B ...`.

Each RUN is a run directory holding metrics.json (config.json, when present, may give it a
"name") or a metrics.json file itself; a training run's metrics.json is read at its "test" part. Columns: label, % labelled (n / n_total of the first run
that scored the label), balanced accuracy per run, Δ of every later run against the first one;
the last line gives Δμ, the difference of mean balanced accuracy. Numbers are percentages.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from training.metrics import metric_sections


@dataclass(frozen=True)
class Run:
    name: str
    metrics: dict


def load_run(path: str | Path) -> Run:
    """A run directory (metrics.json + optional config.json) or a metrics.json file (the served model)."""
    return load_runs(path, heads=False)[0]


def load_runs(path: str | Path, heads: bool = True) -> list[Run]:
    """The served model of a run and, with `heads` and a training run's metrics.json, its network and
    linear baseline on the same split ("NAME network", "NAME baseline")."""
    path = Path(path)
    metrics_path = path / "metrics.json" if path.is_dir() else path
    if not metrics_path.is_file():
        raise FileNotFoundError(f"{path}: no metrics.json")
    doc = json.loads(metrics_path.read_text(encoding="utf-8"))
    sections = metric_sections(doc) if isinstance(doc, dict) else {}
    if not sections:
        raise ValueError(f"{metrics_path}: not a metrics.json document (needs 'labels', or 'test'/'val' with them)")
    part = next(iter(sections))  # top level, else test, else val
    metrics = sections[part]
    name = metrics_path.parent.name if metrics_path.name == "metrics.json" else metrics_path.stem
    config_path = metrics_path.parent / "config.json"
    if config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        if isinstance(config, dict) and config.get("name"):
            name = str(config["name"])
    runs = [Run(name, metrics)]
    for head in ("network", "baseline") if heads and part else ():
        candidate = (doc.get(head) or {}).get(part)
        if isinstance(candidate, dict) and isinstance(candidate.get("labels"), dict):
            runs.append(Run(f"{name} {head}", candidate))
    return runs


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}"


def _delta(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{100 * (b - a):+.2f}"


def _labelled_share(runs: list[Run], label: str) -> float | None:
    for run in runs:
        m = run.metrics["labels"].get(label)
        if m and m.get("n_total"):
            return m["n"] / m["n_total"]
    return None


def comparison_rows(runs: list[Run]) -> list[list[str]]:
    """Header + one row per label (union of the runs' labels, first-seen order) + the Δμ row."""
    if not runs:
        raise ValueError("nothing to compare: no runs")
    labels = list(dict.fromkeys(name for run in runs for name in run.metrics["labels"]))
    header = ["label", "% labelled", *(run.name for run in runs), *(f"Δ {run.name}" for run in runs[1:])]
    rows = [header]
    for label in labels:
        accs = [(run.metrics["labels"].get(label) or {}).get("balanced_accuracy") for run in runs]
        rows.append([label, _pct(_labelled_share(runs, label)), *map(_pct, accs),
                     *(_delta(accs[0], acc) for acc in accs[1:])])
    means = [run.metrics.get("mean_balanced_accuracy") for run in runs]
    rows.append(["mean", "", *map(_pct, means), *(f"Δμ = {_delta(means[0], m)}" for m in means[1:])])
    return rows


def format_rows(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.compare", description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="run directories (or metrics.json files); the first is the reference")
    ap.add_argument("--heads", action="store_true",
                    help="also show each training run's network and linear baseline beside its served model")
    args = ap.parse_args(argv)
    print(format_rows(comparison_rows([r for p in args.runs for r in load_runs(p, heads=args.heads)])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
