"""Learning curve of the product on a real benchmark: baseline, supervised network and S4L against the number
of training labels, scored on the benchmark's truth.csv over the test subjects.

    python -m research.learning_curve run BENCHMARK_DIR --splits S1.json [S2.json ...] --out DIR \\
        [--fractions 0.1,0.3,1] [--seeds 0] [--arms supervised,s4l] [--jobs 2] [fit flags after --]
    python -m research.learning_curve table DIR [DIR ...] --out docs/evidence/learning_curve.csv
    python -m research.learning_curve markdown docs/evidence/learning_curve.csv [--plot docs/learning_curve.png] \
        [--check docs/results.md | --write docs/results.md]

`run` trains one `python -m training.fit` per (split, fraction, seed, arm) cell with `--test-truth`, so each
run's metrics.json scores its served model, its network and its linear baseline on every known test label;
a finished cell is skipped when run again. `table` collects the cells into one compact CSV (one row per
cell, head and label, with the test class counts and the training labels kept); `markdown` prints the
tables of docs/results.md from that CSV (mean over splits and seeds), checks or rewrites them between the doc's
`<!-- learning_curve -->` and `<!-- end learning_curve -->` markers, and draws the learning-curve plot.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ARMS = {  # the supervised arm is step 1 with only the cross-entropy; S4L is the default recipe
    "supervised": ["--steps", "1", "--entmin-weight", "0", "--vat-weight", "0", "--rotation-weight", "0"],
    "s4l": [],
}
HEADS = ("served", "network", "baseline")
BEGIN, END = "<!-- learning_curve -->", "<!-- end learning_curve -->"
COLUMNS = ("benchmark", "split", "fraction", "seed", "arm", "head", "label", "balanced_accuracy", "test_counts",
           "training_labels")


def cell_commands(bench: Path, splits: list[Path], fractions: list[float], seeds: list[int], arms: list[str],
                  out: Path, fit_args: list[str]) -> list[tuple[Path, list[str]]]:
    cells = []
    for split in splits:
        for fraction in fractions:
            for seed in seeds:
                for arm in arms:
                    run = out / bench.name / f"{split.stem}-f{fraction:g}-s{seed}-{arm}"
                    cmd = [sys.executable, "-m", "training.fit", "--export", str(bench / "export.json"),
                           "--label-config", str(bench / "label_config.xml"), "--data-root", str(bench.parent),
                           "--split", str(split), "--test-truth", str(bench / "truth.csv"), "--out", str(run),
                           "--label-fraction", f"{fraction:g}", "--seed", str(seed), "--no-progress",
                           *ARMS[arm], *fit_args]
                    cells.append((run, cmd))
    return cells


def run_cell(run: Path, cmd: list[str]) -> str:
    if (run / "metrics.json").is_file():
        return f"done already: {run.name}"
    run.mkdir(parents=True, exist_ok=True)
    with open(run / "stdout.txt", "w") as out, open(run / "stderr.txt", "w") as err:
        rc = subprocess.call(cmd, stdout=out, stderr=err)
    return f"{run.name}: rc={rc}"


def _served(metrics: dict) -> dict:
    """The served heads' test scores under training.baseline.choose_heads, from the run's validation figures: what
    training.fit serves with the network and baseline this run trained (a run made under another choice rule is
    scored as the current rule would serve it)."""
    from training.baseline import choose_heads

    def val(head: str) -> dict:
        labels = ((metrics.get(head) or {}).get("val") or {}).get("labels") or {}
        return {n: m.get("balanced_accuracy") for n, m in labels.items()}

    untrained = {n for n, c in metrics["baseline"]["strengths"].items() if c is None}
    serving = choose_heads(val("network"), val("baseline"), untrained)
    return {"labels": {n: metrics[head]["test"]["labels"][n] for n, head in serving.items()}}


def cell_rows(run: Path, benchmark: str) -> list[dict]:
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    arm = "supervised" if config["loss"]["vat_weight"] == 0 and config["recipe"]["steps"] == [1] else "s4l"
    split = Path(config["split"]).stem
    rows = []
    for head in HEADS:
        doc = _served(metrics) if head == "served" else (metrics.get(head) or {}).get("test")
        for label, m in ((doc or {}).get("labels") or {}).items():
            rows.append({
                "benchmark": benchmark, "split": split, "fraction": config["data"]["label_fraction"],
                "seed": config["recipe"]["seed"], "arm": arm, "head": head, "label": label,
                "balanced_accuracy": "" if m.get("balanced_accuracy") is None else f"{m['balanced_accuracy']:.4f}",
                "test_counts": "; ".join(f"{c}:{v['n']}" for c, v in (m.get("per_class") or {}).items()),
                "training_labels": "; ".join(f"{c}:{n}" for c, n in metrics["training_labels"][label].items()),
            })
    return rows


def _summed_counts(per_split: dict[str, str]) -> str:
    """'A:3; B:5' strings of several splits -> their sum per class, in first-seen class order."""
    total: dict[str, int] = {}
    for text in per_split.values():
        for part in text.split("; "):
            cls, _, n = part.rpartition(":")
            total[cls] = total.get(cls, 0) + int(n)
    return ", ".join(f"{c} {n}" for c, n in total.items())


def markdown(rows: list[dict]) -> str:
    """Per benchmark: one line per (fraction, arm, head) with the test balanced accuracy of every label and their
    mean, in % (mean over the splits and seeds that ran, ± the sample deviation of the runs' means; runs = how
    many), and the test class counts per label."""
    out = []
    for bench in dict.fromkeys(r["benchmark"] for r in rows):
        mine = [r for r in rows if r["benchmark"] == bench and r["balanced_accuracy"]]
        labels = list(dict.fromkeys(r["label"] for r in mine))
        counts = {lab: _summed_counts({r["split"]: r["test_counts"] for r in mine if r["label"] == lab})
                  for lab in labels}
        out += [f"**{bench}** (test recordings per class, all splits together: "
                + "; ".join(f"{lab} {counts[lab]}" for lab in labels) + ")",
                "", "| labels kept | arm | head | runs | " + " | ".join(labels) + " | mean |",
                "|---|---|---|---|" + "---|" * (len(labels) + 1)]
        keys = dict.fromkeys((float(r["fraction"]), r["arm"], r["head"]) for r in mine)
        for fraction, arm, head in sorted(keys, key=lambda k: (k[0], k[1] != "supervised", HEADS.index(k[2]))):
            cell = [r for r in mine if (float(r["fraction"]), r["arm"], r["head"]) == (fraction, arm, head)]
            runs = {(r["split"], r["seed"]) for r in cell}
            per_label = [statistics.mean([float(r["balanced_accuracy"]) for r in cell if r["label"] == lab]) for lab in labels]
            per_run = [statistics.mean([float(r["balanced_accuracy"]) for r in cell if (r["split"], r["seed"]) == k])
                       for k in sorted(runs)]
            spread = f" ± {100 * statistics.stdev(per_run):.1f}" if len(per_run) > 1 else ""
            out.append(f"| {fraction:.0%} | {arm} | {head} | {len(runs)} | "
                       + " | ".join(f"{100 * v:.1f}" for v in per_label) + f" | **{100 * statistics.mean(per_run):.1f}**{spread} |")
        out.append("")
    return "\n".join(out)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches = list(dict.fromkeys(r["benchmark"] for r in rows))
    fig, axes = plt.subplots(1, len(benches), figsize=(5 * len(benches), 3.6), squeeze=False)
    for ax, bench in zip(axes[0], benches):
        for arm, head, style in (("s4l", "network", "o-"), ("supervised", "network", "s--"), ("s4l", "baseline", "^:")):
            pts = {}
            for r in rows:
                if (r["benchmark"], r["arm"], r["head"]) == (bench, arm, head) and r["balanced_accuracy"]:
                    pts.setdefault(float(r["fraction"]), []).append(float(r["balanced_accuracy"]))
            if pts:
                xs = sorted(pts)
                ax.plot([100 * x for x in xs], [100 * statistics.mean(pts[x]) for x in xs], style,
                        label="linear baseline" if head == "baseline" else f"{arm} network")
        ax.set(title=bench, xlabel="% of the training labels kept", ylabel="test balanced accuracy % (mean of labels)")
        ax.grid(alpha=.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("benchmark", type=Path)
    run.add_argument("--splits", type=Path, nargs="+", required=True)
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--fractions", default="0.1,0.3,1")
    run.add_argument("--seeds", default="0")
    run.add_argument("--arms", default="supervised,s4l")
    run.add_argument("--jobs", type=int, default=1)
    table = sub.add_parser("table")
    table.add_argument("dirs", type=Path, nargs="+", help="--out folders of `run`")
    table.add_argument("--out", type=Path, required=True)
    md = sub.add_parser("markdown")
    md.add_argument("csv", type=Path)
    md.add_argument("--plot", type=Path, help="also draw the learning curves into this PNG")
    md.add_argument("--check", type=Path, help="exit 1 unless this doc's learning-curve block equals the tables")
    md.add_argument("--write", type=Path, help="rewrite this doc's learning-curve block with the tables")
    argv = sys.argv[1:] if argv is None else argv
    fit_args = argv[argv.index("--") + 1:] if "--" in argv else []  # flags for every training.fit
    a = ap.parse_args(argv[:len(argv) - len(fit_args) - (1 if "--" in argv else 0)])
    if a.cmd == "run":
        cells = cell_commands(a.benchmark.resolve(), [p.resolve() for p in a.splits],
                              [float(f) for f in a.fractions.split(",")], [int(s) for s in a.seeds.split(",")],
                              a.arms.split(","), a.out.resolve(), fit_args)
        with ThreadPoolExecutor(a.jobs) as pool:
            for line in pool.map(lambda c: run_cell(*c), cells):
                print(line, flush=True)
        return 0
    if a.cmd == "markdown":
        with open(a.csv, newline="") as fh:
            rows = list(csv.DictReader(fh))
        text = markdown(rows)
        if a.plot:
            plot(rows, a.plot)
        for doc in filter(None, (a.check, a.write)):
            head, _, rest = doc.read_text(encoding="utf-8").partition(BEGIN + "\n")
            old, _, tail = rest.partition(END)
            if a.write:
                doc.write_text(head + BEGIN + "\n" + text + END + tail, encoding="utf-8")
            elif old != text:
                print(f"{doc}: the learning-curve tables differ from {a.csv}")
                return 1
            else:
                print(f"{doc}: learning-curve tables identical to {a.csv}")
        if not (a.check or a.write):
            print(text)
        return 0
    rows = [row for d in a.dirs for bench in sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
            for run in sorted(bench.iterdir()) if (run / "metrics.json").is_file() for row in cell_rows(run, bench.name)]
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} rows -> {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
