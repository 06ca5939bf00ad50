"""The tables of docs/results.md, regenerated from the compact evidence (docs/evidence/*.csv, research/evidence.py).

    python -m research.tables docs/evidence                            # print every table
    python -m research.tables docs/evidence --check docs/results.md    # exit 1 unless the doc's tables are identical
    python -m research.tables docs/evidence --write docs/results.md    # replace the doc's tables

In the doc each table sits between `<!-- table: NAME -->` and `<!-- end table -->`. Figures are percentages:
mean ± sample standard deviation over seeds (n = seeds). Standard library only.
"""
from __future__ import annotations

import argparse
import csv
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

BLOCK = re.compile(r"(<!-- table: (\w+) -->\n)(.*?)(<!-- end table -->)", re.S)


def _read(folder: Path, name: str) -> list[dict]:
    with open(folder / f"{name}.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{_points(statistics.fmean(values)):.1f} ± {100 * sd:.1f} (n={len(values)})"


def _delta(a: list[float], b: list[float]) -> str:
    """Difference of the seed means a − b in points."""
    return f"{_points(statistics.fmean(a) - statistics.fmean(b)):+.1f}" if a and b else "-"


def _points(share: float) -> float:
    """Percentage points, rounded as printed; + 0.0 turns a -0.0 into 0.0."""
    return round(100 * share, 1) + 0.0


def _rows(lines: list[str], header: list[str]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *lines]) + "\n"


def _grouped(rows: list[dict], key: tuple[str, ...], value: str) -> dict[tuple, dict[str, dict[int, float]]]:
    """(key values) -> arm -> seed -> value, in the order of first appearance."""
    out: dict[tuple, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        out[tuple(r[k] for k in key)][r["arm"]][int(r["seed"])] = float(r[value])
    return out


def _budget_line(first: str, labels: str, arms: dict[str, dict[int, float]], bar: bool = True) -> str:
    sup, s4l = arms.get("supervised", {}), arms.get("s4l", {})
    both = sorted(set(sup) & set(s4l))
    paired = [s4l[s] - sup[s] for s in both]
    a, b = list(sup.values()), list(s4l.values())
    beats = "-"
    if len(a) > 1 and len(b) > 1:
        beats = "yes" if statistics.fmean(b) - statistics.fmean(a) > max(statistics.stdev(a), statistics.stdev(b)) else "no"
    cells = [first, f"{labels} %", _fmt(a), _fmt(b), _delta(b, a)] + ([beats] if bar else [])
    cells += [_fmt(paired), f"{sum(d > 0 for d in paired)} of {len(paired)}" if paired else "-"]
    return "| " + " | ".join(cells) + " |"


def label_budget(folder: Path) -> str:
    groups = _grouped(_read(folder, "label_budget"), ("setting", "labels_pct"), "mean_balanced_accuracy")
    lines = [_budget_line(setting, pct, arms) for (setting, pct), arms in groups.items()]
    return _rows(lines, ["benchmark, setting", "labels", "supervised", "S4L", "Δ (S4L − sup.)", "beats the spread?",
                         "paired Δ per seed", "S4L ahead in seeds"])


def nuaa_levers(folder: Path) -> str:
    groups = _grouped(_read(folder, "nuaa_levers"), ("change", "labels_pct"), "mean_balanced_accuracy")
    lines = [_budget_line(change, pct, arms) for (change, pct), arms in groups.items()]
    return _rows(lines, ["change to the grid", "labels", "supervised", "S4L", "Δ (S4L − sup.)", "beats the spread?",
                         "paired Δ per seed", "S4L ahead in seeds"])


def per_label(folder: Path) -> str:
    cells: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in _read(folder, "per_label"):
        cells[(r["benchmark"], r["label"])][f"{r['arm']} {r['labels_pct']}"].append(float(r["balanced_accuracy"]))
    columns = ("supervised 10", "s4l 10", "supervised 30", "s4l 30")
    lines = ["| " + " | ".join([bench, label, *(_fmt(c[k]) for k in columns),
                                _delta(c["s4l 10"], c["supervised 10"]), _delta(c["s4l 30"], c["supervised 30"])]) + " |"
             for (bench, label), c in cells.items()]
    return _rows(lines, ["benchmark", "label", "sup. 10 %", "S4L 10 %", "sup. 30 %", "S4L 30 %", "Δ 10 %", "Δ 30 %"])


def models(folder: Path) -> str:
    cells: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in _read(folder, "models"):
        cells[r["label"]][r["variant"]].append(float(r["balanced_accuracy"]))
    mtl, stl, single, mean = "MTL multi-image", "STL multi-image", "MTL single-image", "MTL multi-image, mean fusion"
    lines = ["| " + " | ".join([label, _fmt(c[mtl]), _fmt(c[stl]), _delta(c[mtl], c[stl]), _fmt(c[single]),
                                _delta(c[mtl], c[single]), _fmt(c[mean]), _delta(c[mean], c[mtl])]) + " |"
             for label, c in cells.items()]
    return _rows(lines, ["label", "MTL", "STL", "Δ (MTL − STL)", "MTL single-image", "Δ (multi − single)",
                         "MTL, mean fusion", "Δ (mean − concat)"])


def calibration(folder: Path) -> str:
    cells: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in _read(folder, "calibration"):
        c = cells[(r["benchmark"], r["label"], r["arm"])]
        for k in ("temperature", "ece_t1", "ece_served"):
            c[k].append(float(r[k]))
    lines = []
    for (bench, label, arm), c in cells.items():
        t = c["temperature"]
        lines.append("| " + " | ".join([bench, label, "S4L" if arm == "s4l" else arm,
                                        f"{statistics.median(t):.2f} ({min(t):.2f}–{max(t):.2f})",
                                        _fmt(c["ece_t1"]), _fmt(c["ece_served"])]) + " |")
    return _rows(lines, ["benchmark", "label", "arm", "T: median (range)", "ECE % at T = 1", "ECE % served"])


TABLES = {"label_budget": label_budget, "per_label": per_label, "nuaa_levers": nuaa_levers, "models": models,
          "calibration": calibration}


def render_doc(doc: str, folder: Path) -> str:
    """`doc` with every table block regenerated from `folder`; an unknown table name is an error."""
    def block(m: re.Match) -> str:
        if m.group(2) not in TABLES:
            raise SystemExit(f"unknown table {m.group(2)!r} in the doc; known: {', '.join(TABLES)}")
        return m.group(1) + TABLES[m.group(2)](folder) + m.group(4)
    return BLOCK.sub(block, doc)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m research.tables", description=__doc__.split("\n")[0])
    ap.add_argument("evidence", type=Path, help="folder of the evidence CSV files (docs/evidence)")
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--check", type=Path, metavar="DOC", help="exit 1 unless DOC's tables match the evidence")
    group.add_argument("--write", type=Path, metavar="DOC", help="rewrite DOC's tables from the evidence")
    a = ap.parse_args(argv)
    if not (a.check or a.write):
        for name, table in TABLES.items():
            print(f"<!-- table: {name} -->\n{table(a.evidence)}<!-- end table -->\n")
        return 0
    path = a.check or a.write
    doc = path.read_text(encoding="utf-8")
    fresh = render_doc(doc, a.evidence)
    if a.write:
        path.write_text(fresh, encoding="utf-8")
        return 0
    if fresh != doc:
        print(f"{path}: its tables differ from {a.evidence} (python -m research.tables {a.evidence} --write {path})",
              file=sys.stderr)
        return 1
    print(f"{path}: {len(BLOCK.findall(doc))} tables identical to {a.evidence}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
