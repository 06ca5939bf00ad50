"""Dataset statistics of a Label Studio export: label coverage, class counts (per split), subjects
and recordings per split, and cross-tabulations of one label against another.

    python -m training.stats --export E [--label-config C] [--split split.json] --out DIR [--crosstab a,b ...]

Writes DIR/stats.json and DIR/stats.png. Coverage = recordings with the label (annotated or
propagated) / all recordings. Default cross-tabs: every label x gender when the schema has gender,
else every label x the first label. A recording absent from split.json counts as "unassigned".
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from training.schema import LabelSchema, load_label_config
from training.split import SPLITS


def default_crosstabs(schema: LabelSchema) -> list[tuple[str, str]]:
    anchor = "gender" if "gender" in schema else schema.names[0]
    return [(name, anchor) for name in schema.names if name != anchor]


def split_of_recordings(split: dict | None) -> dict[str, str]:
    if split is None:
        return {}
    return {rid: name for name, rids in split.get("recordings", {}).items() for rid in rids}


def crosstab(recordings, schema: LabelSchema, a: str, b: str) -> dict:
    """Counts of (class of a, class of b) over recordings that have both labels."""
    for name in (a, b):
        if name not in schema:
            raise ValueError(f"crosstab label {name!r} is not in the label config {schema.names}")
    pairs = Counter((r.labels[a], r.labels[b]) for r in recordings if a in r.labels and b in r.labels)
    rows, cols = schema[a].classes, schema[b].classes
    return {"rows": list(rows), "cols": list(cols), "counts": [[pairs[(x, y)] for y in cols] for x in rows]}


def compute_stats(recordings, schema: LabelSchema, split: dict | None = None, crosstabs=None) -> dict:
    recordings = list(recordings)
    where = split_of_recordings(split)
    groups = {"all": recordings}
    if split is not None:
        for name in [*SPLITS, "unassigned"]:
            members = [r for r in recordings if where.get(r.recording_id, "unassigned") == name]
            if members or name != "unassigned":
                groups[name] = members
    coverage = {}
    for spec in schema.labels:
        sources = Counter(r.label_sources.get(spec.name, "annotation") for r in recordings if spec.name in r.labels)
        labelled = sum(sources.values())
        coverage[spec.name] = {"labelled": labelled, "total": len(recordings),
                               "fraction": round(labelled / len(recordings), 4) if recordings else 0.0,
                               "annotated": sources["annotation"], "propagated": sources["propagated"]}
    return {
        "recordings": len(recordings),
        "subjects": len({r.subject_id for r in recordings}),
        "coverage": coverage,
        "per_split": {g: {"subjects": len({r.subject_id for r in rs}), "recordings": len(rs)} for g, rs in groups.items()},
        "class_counts": {g: {spec.name: {c: sum(1 for r in rs if r.labels.get(spec.name) == c) for c in spec.classes}
                             for spec in schema.labels} for g, rs in groups.items()},
        "crosstabs": {f"{a} x {b}": crosstab(recordings, schema, a, b)
                      for a, b in (crosstabs if crosstabs is not None else default_crosstabs(schema))},
    }


def report_lines(stats: dict) -> list[str]:
    lines = [f"{stats['recordings']} recordings, {stats['subjects']} subjects", "coverage (labelled / all recordings):"]
    for name, c in stats["coverage"].items():
        lines.append(f"  {name:24} {c['labelled']:6} / {c['total']:<6} {100 * c['fraction']:6.1f} %"
                     f"  (annotated {c['annotated']}, propagated {c['propagated']})")
    lines.append("subjects / recordings per split: " + ", ".join(
        f"{g} {v['subjects']}/{v['recordings']}" for g, v in stats["per_split"].items()))
    lines.append("class counts: " + " | ".join(stats["class_counts"]))
    for name in stats["coverage"]:
        per_group = [stats["class_counts"][g][name] for g in stats["class_counts"]]
        for cls in per_group[0]:
            lines.append(f"  {name:24} {cls:32} " + " | ".join(f"{counts[cls]:5}" for counts in per_group))
    for title, tab in stats["crosstabs"].items():
        lines.append(f"crosstab {title} (rows x cols {tab['cols']}):")
        lines += [f"  {row:32} {counts}" for row, counts in zip(tab["rows"], tab["counts"])]
    return lines


def plot(stats: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    names = list(stats["coverage"])
    groups = [g for g in stats["class_counts"] if g != "all"] or ["all"]
    bars = [(n, c) for n in names for c in stats["class_counts"]["all"][n]]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(max(8, 0.45 * len(bars)), 9))
    ax1.barh(names, [100 * stats["coverage"][n]["fraction"] for n in names])
    ax1.set_xlabel("labelled recordings (%)")
    ax1.set_title("label coverage")
    bottom = [0] * len(bars)
    for g in groups:
        heights = [stats["class_counts"][g][n][c] for n, c in bars]
        ax2.bar(range(len(bars)), heights, bottom=bottom, label=g)
        bottom = [b + h for b, h in zip(bottom, heights)]
    ax2.set_xticks(range(len(bars)), [f"{n}: {c}" for n, c in bars], rotation=75, ha="right", fontsize=7)
    ax2.set_ylabel("recordings")
    ax2.set_title("class counts per split")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def parse_crosstab(text: str) -> tuple[str, str]:
    parts = text.split(",")
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError(f"--crosstab takes two label names as a,b; got {text!r}")
    return parts[0], parts[1]


def main(argv: list[str] | None = None) -> None:
    from training.export_reader import read_export

    ap = argparse.ArgumentParser(description="label coverage, class counts per split and cross-tabs of an export")
    ap.add_argument("--export", required=True)
    ap.add_argument("--label-config", help="labeling config XML (default: the repo's)")
    ap.add_argument("--split", help="split.json from training.split")
    ap.add_argument("--out", required=True, help="folder for stats.json and stats.png")
    ap.add_argument("--crosstab", type=parse_crosstab, action="append", help="a,b (repeatable)")
    args = ap.parse_args(argv)
    try:
        schema = load_label_config(args.label_config)
        split = json.loads(Path(args.split).read_text(encoding="utf-8")) if args.split else None
        stats = compute_stats(read_export(args.export, schema).recordings, schema, split, args.crosstab)
    except (OSError, ValueError) as exc:  # JSON, config and export errors are ValueErrors
        raise SystemExit(f"training.stats: {exc}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "stats.json").write_text(json.dumps(stats, indent=1), encoding="utf-8")
    plot(stats, out / "stats.png")
    print("\n".join(report_lines(stats)))
    print(f"wrote {out / 'stats.json'} and {out / 'stats.png'}")


if __name__ == "__main__":
    main()
