"""A run's HTML report: learning curves, per-label and per-class tables, confusion matrices.

write_report(run_dir) reads what the run left behind, each part optional:
- log.jsonl: one JSON object per line, one train and one val entry per epoch ("step" = S4L step);
  {"phase": "train", "step", "epoch", "loss", "loss_parts": {...}}
  and {"phase": "val", "step"/"epoch", "mean_balanced_accuracy"} are plotted;
- metrics.json: training.metrics documents (top level, or its "test" / "val" parts): tables and
  confusion matrices;
- config.json: shown as is;
- "groups" of metrics.json or any *metrics*.json beside it (training.evaluate --group-by): a bar chart
  of balanced accuracy per group.
Missing or damaged parts are noted in the report instead of failing it. Figures are PNGs embedded
as base64, so report.html is one self-contained file.
`python -m training.report RUN_DIR` writes RUN_DIR/report.html.
"""
from __future__ import annotations

import base64
import html
import io
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on training machines
import matplotlib.pyplot as plt  # noqa: E402

from training.metrics import metric_sections  # noqa: E402


def read_log(path: Path) -> tuple[list[dict], list[str]]:
    """Entries of a JSON-lines log and notes about lines that could not be read."""
    entries, notes = [], []
    if not path.is_file():
        return entries, [f"{path.name} not found: no learning curves"]
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            notes.append(f"{path.name} line {i}: not JSON, ignored")
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries, notes


def _read_json(path: Path, notes: list[str]) -> dict | None:
    if not path.is_file():
        notes.append(f"{path.name} not found")
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        notes.append(f"{path.name}: not valid JSON ({exc})")
        return None
    return doc if isinstance(doc, dict) else None


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _mark_steps(ax, entries: list[dict]) -> None:
    """Dashed lines where the S4L step changes (epochs restart at every step)."""
    for x, (before, after) in enumerate(zip(entries, entries[1:]), start=1):
        if before.get("step") != after.get("step"):
            ax.axvline(x + 0.5, color="grey", ls="--", lw=0.8)


def learning_curves(entries: list[dict]) -> str | None:
    """Train loss (and its parts) and validation mean balanced accuracy, one point per logged epoch."""
    train = [e for e in entries if e.get("phase") == "train" and _number(e.get("loss"))]
    val = [e for e in entries if e.get("phase") == "val" and _number(e.get("mean_balanced_accuracy"))]
    if not train and not val:
        return None
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 3.8))
    if train:
        ax_loss.plot(range(1, len(train) + 1), [e["loss"] for e in train], label="loss", lw=2)
        for part in dict.fromkeys(k for e in train for k in (e.get("loss_parts") or {})):
            pts = [(x, e["loss_parts"][part]) for x, e in enumerate(train, start=1)
                   if _number((e.get("loss_parts") or {}).get(part))]
            ax_loss.plot(*zip(*pts), label=part, lw=1)
        ax_loss.legend(fontsize=8)
        _mark_steps(ax_loss, train)
    ax_loss.set(title="training loss", xlabel="epoch (all steps; dashed: next S4L step)")
    if val:
        ax_val.plot(range(1, len(val) + 1), [100 * e["mean_balanced_accuracy"] for e in val], marker="o")
        _mark_steps(ax_val, val)
    ax_val.set(title="validation mean balanced accuracy (%)", xlabel="epoch (all steps)")
    return _png(fig)


def confusion_figure(name: str, classes: list[str], confusion: list[list[int]]) -> str:
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * n, 1.0 + 0.6 * n))
    ax.imshow(confusion, cmap="Blues")
    peak = max((max(row) for row in confusion), default=0)
    for r in range(n):
        for c in range(n):
            ax.text(c, r, str(confusion[r][c]), ha="center", va="center",
                    color="white" if confusion[r][c] > peak / 2 else "black")
    ax.set_xticks(range(n), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set(title=name, xlabel="predicted", ylabel="true")
    return _png(fig)


def _pct(x) -> str:
    return "–" if not _number(x) else f"{100 * x:.2f}"


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def metrics_sections(doc: dict) -> str:
    labels = doc.get("labels") or {}
    rows = [[name, m.get("n", "–"), _pct(m.get("balanced_accuracy")), _pct(m.get("accuracy")),
             _pct(m.get("ece")), _pct(m.get("roc_auc")), _pct(m.get("eer"))] for name, m in labels.items()]
    parts = [f"<h3>Labels (mean balanced accuracy {_pct(doc.get('mean_balanced_accuracy'))} %)</h3>",
             _table(["label", "n", "balanced acc. %", "accuracy %", "ECE %", "ROC AUC %", "EER %"], rows)]
    for name, m in labels.items():
        per_class = m.get("per_class") or {}
        parts.append(f"<h4>{html.escape(name)}</h4><div class='row'>")
        parts.append(_table(["class", "n", "recall %"], [[c, v.get("n"), _pct(v.get("recall"))]
                                                          for c, v in per_class.items()]))
        confusion = m.get("confusion")
        if confusion and len(confusion) == len(per_class):
            parts.append(confusion_figure(name, list(per_class), confusion))
        parts.append("</div>")
    return "\n".join(parts)


def heads_section(metrics: dict) -> str | None:
    """Per label: which head serves it, the network's and the baseline's balanced accuracy, training labels."""
    serving = metrics.get("serving")
    if not serving or "baseline" not in metrics:
        return None

    def acc(part: str, split: str, name: str):
        doc = (metrics.get(part) or {}).get(split) or {}
        return _pct(((doc.get("labels") or {}).get(name) or {}).get("balanced_accuracy"))

    counts = metrics.get("training_labels") or {}
    rows = [[name, head, acc("network", "val", name), acc("baseline", "val", name), acc("network", "test", name),
             acc("baseline", "test", name), ", ".join(f"{c} {n}" for c, n in (counts.get(name) or {}).items())]
            for name, head in serving.items()]
    return _table(["label", "served head", "network val %", "baseline val %", "network test %", "baseline test %",
                   "training labels"], rows)


def quality_section(metrics: dict) -> str | None:
    """Per label: validation balanced accuracy, its subject-bootstrap interval, the counts, the default gate."""
    from training.label_quality import gate_verdict

    quality = metrics.get("quality")
    if not quality:
        return None
    rows = []
    for name, q in quality.items():
        verdict = gate_verdict(q, len(q["val_counts"]))
        low, high = q["interval"] or (None, None)
        rows.append([name, _pct(q["balanced_accuracy"]), f"{_pct(low)} – {_pct(high)}",
                     ", ".join(f"{c} {n}" for c, n in q["val_counts"].items()),
                     ("served: " if verdict.served else "withheld: ") + verdict.reason])
    return _table(["label", "val balanced acc. %", "95 % interval (subjects)", "val recordings", "backend gate"], rows)


def groups_figure(groups: dict) -> str | None:
    """One bar chart per label: balanced accuracy per group (labelled n on each bar), the gap in the title."""
    labels = {n: m for n, m in (groups.get("labels") or {}).items() if m.get("groups")}
    if not labels:
        return None
    fig, axes = plt.subplots(1, len(labels), figsize=(4.5 * len(labels), 3.6), squeeze=False)
    for ax, (name, m) in zip(axes[0], labels.items()):
        names = list(m["groups"])
        values = [100 * (g["balanced_accuracy"] or 0.0) for g in m["groups"].values()]
        bars = ax.bar(range(len(names)), values, color=["#9ab" if g["balanced_accuracy"] is None else "#37a"
                                                         for g in m["groups"].values()])
        for bar, g in zip(bars, m["groups"].values()):
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 1, f"n={g['n']}", ha="center", fontsize=7)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        gap = "–" if m.get("gap") is None else f"{100 * m['gap']:.1f}"
        ax.set(title=f"{name} (gap {gap} points)", ylabel="balanced accuracy %", ylim=(0, 110))
    prefix = f", first {groups['prefix']} characters" if groups.get("prefix") else ""
    fig.suptitle(f"per {groups.get('field')} group{prefix}")
    return _png(fig)


STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:.5em 1em .5em 0}"
         "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}td:first-child{text-align:left}"
         ".row{display:flex;align-items:flex-start;gap:1em}.note{color:#a60}")


def write_report(run_dir: str | Path) -> Path:
    """Write run_dir/report.html from whatever of log.jsonl, metrics.json, config.json exists."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NotADirectoryError(f"{run_dir}: not a run directory")
    entries, notes = read_log(run_dir / "log.jsonl")
    metrics = _read_json(run_dir / "metrics.json", notes)
    config = _read_json(run_dir / "config.json", notes)
    body = [f"<h1>Run {html.escape(run_dir.name)}</h1>"]
    curves = learning_curves(entries)
    body.append("<h2>Learning curves</h2>" + (curves or "<p>no train/val entries in the log</p>"))
    heads = heads_section(metrics or {})
    if heads:
        body.append("<h2>Network against the linear baseline</h2>" + heads)
    quality = quality_section(metrics or {})
    if quality:
        body.append("<h2>Quality gate (docs/backend.md)</h2>" + quality)
    for section, doc in metric_sections(metrics or {}).items():
        body.append(f"<h2>{html.escape(section or 'Evaluation')}</h2>" + metrics_sections(doc))
    for path in sorted(run_dir.glob("*metrics*.json")):  # training.evaluate --group-by outputs
        doc = metrics if path.name == "metrics.json" else _read_json(path, notes)
        figure = groups_figure((doc or {}).get("groups") or {})
        if figure:
            body.append(f"<h2>Per-group accuracy ({html.escape(path.name)})</h2>" + figure)
    if config:
        body.append(f"<h2>Configuration</h2><pre>{html.escape(json.dumps(config, indent=1))}</pre>")
    body += [f"<p class='note'>{html.escape(n)}</p>" for n in notes]
    out = run_dir / "report.html"
    out.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(run_dir.name)}</title>"
                   f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>", encoding="utf-8")
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m training.report RUN_DIR")
    print(write_report(sys.argv[1]))
