"""Does training.suspects find wrong annotations? Flip a seeded share of a benchmark's annotations to
another class, run `python -m training.suspects` on the flipped export, and score its ranking.

Printed per run: flips, annotations, the flagged count, precision and recall of the flips among the
top k flagged (k = number of flips; fewer flagged than k count as misses), the same for a seeded
random ranking of all annotations, their ratio, and the command's wall time. Each annotated
(task, label) is one annotation; a flip changes it in every annotation of the task.

    nice -n 10 .venv/bin/python benchmarks/suspects_flips.py --bench ../shared/benchmarks/nuaa \\
        --share 0.05 --seed 0 --work ~/.cache/recmeta/flips -- --folds 5 --threads 1
(arguments after -- go to training.suspects)
"""
from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from training.schema import load_label_config  # noqa: E402


def annotated_pairs(tasks: list[dict]) -> list[tuple[int, str]]:
    """(task index, label) of every annotated question, in export order."""
    pairs = []
    for i, task in enumerate(tasks):
        names = {r["from_name"] for a in task.get("annotations", []) if not a.get("was_cancelled")
                 for r in a.get("result", []) if r.get("type") == "choices"}
        pairs += [(i, n) for n in sorted(names)]
    return pairs


def flip(tasks: list[dict], schema, share: float, seed: int) -> set[tuple[str, str]]:
    """Flip round(share x annotations) seeded annotations in place; returns their (recording_id, label)."""
    rng = np.random.default_rng(seed)
    pairs = annotated_pairs(tasks)
    chosen = rng.choice(len(pairs), size=max(1, round(share * len(pairs))), replace=False)
    flipped = set()
    for k in chosen:
        i, name = pairs[k]
        items = [r for a in tasks[i]["annotations"] for r in a.get("result", []) if r.get("from_name") == name]
        current = items[-1]["value"]["choices"][0]
        new = rng.choice([c for c in schema[name].classes if c != current])
        for r in items:
            r["value"]["choices"] = [str(new)]
        flipped.add((tasks[i]["data"].get("recording_id", str(tasks[i].get("id"))), name))
    return flipped


def score(ranked: list[tuple[str, str]], flipped: set, k: int) -> tuple[float, float]:
    hits = sum(1 for pair in ranked[:k] if pair in flipped)
    return hits / k, hits / len(flipped)


def main() -> None:
    argv = sys.argv[1:]
    passthrough = argv[argv.index("--") + 1:] if "--" in argv else []
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", type=Path, required=True, help="a benchmark folder (export.json, label_config.xml)")
    ap.add_argument("--share", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, required=True)
    a = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    schema = load_label_config(a.bench / "label_config.xml")
    tasks = json.loads((a.bench / "export.json").read_text(encoding="utf-8"))
    flipped = flip(tasks, schema, a.share, a.seed)
    a.work.mkdir(parents=True, exist_ok=True)
    export = a.work / "export_flipped.json"
    export.write_text(json.dumps(tasks), encoding="utf-8")
    out = a.work / "suspects"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "training.suspects", "--export", str(export),
                    "--label-config", str(a.bench / "label_config.xml"), "--data-root", str(a.bench.parent),
                    "--out", str(out), "--seed", str(a.seed), *passthrough], check=True)
    wall = time.perf_counter() - started
    with open(out / "suspects.csv", newline="", encoding="utf-8") as fh:
        ranked = [(r["recording_id"], r["label"]) for r in csv.DictReader(fh)]
    by_index = {i: t["data"].get("recording_id", str(t.get("id"))) for i, t in enumerate(tasks)}
    everything = [(by_index[i], n) for i, n in annotated_pairs(tasks)]
    k = len(flipped)
    random_order = [everything[j] for j in np.random.default_rng(a.seed + 1000).permutation(len(everything))]
    p, r = score(ranked, flipped, k)
    rp, rr = score(random_order, flipped, k)
    print(json.dumps({"bench": a.bench.name, "share": a.share, "seed": a.seed, "flips": k,
                      "annotations": len(everything), "flagged": len(ranked), "precision_at_k": round(p, 3),
                      "recall_at_k": round(r, 3), "random_precision_at_k": round(rp, 3),
                      "random_recall_at_k": round(rr, 3), "expected_random_precision": round(k / len(everything), 3),
                      "ratio_to_expected_random": round(p / (k / len(everything)), 2), "wall_s": round(wall, 1),
                      "suspects_args": passthrough}))


if __name__ == "__main__":
    main()
