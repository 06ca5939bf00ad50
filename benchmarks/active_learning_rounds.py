"""Active learning on a real benchmark: a model trained on half of the subjects, then K rounds of
"annotate N more recordings of new subjects -> retrain", against a full retrain on the same labels.

    python benchmarks/active_learning_rounds.py BENCHMARK_DIR --work WORK [--rounds 3] [--per-round 18]
        [--holdout 4] [--image-size 64] [--frames 6] [--epochs 1] [--warm-epochs 1] [--threads 2] [--seed 0]

BENCHMARK_DIR is one folder of the shared benchmarks (e.g. ../shared/benchmarks/nuaa: export.json,
truth.csv, label_config.xml; its parent is the frames' document root). Per seed, subjects are shuffled;
`--holdout` of them are the benchmark's test people: never in any export, scored with truth.csv after
every round. Of the rest, the first half start; each round adds the next `--per-round` recordings
(subject by subject, with the export's partial annotations). A round runs what an active-learning job
runs: `training.fit --extend-split <previous split> --init-from <previous model.pt>` (warm, the
`--warm-epochs` schedule), then both models scored on the extended split's validation subjects
(`training.evaluate`), then the per-label promotion gate (backend/active_learning/promotion.py).
The full retrain trains from scratch (`--epochs`) on the same export and the same extended split.
Wall times are per process, on whatever the machine is doing (the load average is printed).
Writes WORK/report.json and WORK/rounds.png; prints the table of docs/active-learning.md.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shlex
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python benchmarks/...` puts only benchmarks/ on the path
from backend.active_learning.promotion import GateConfig, decide  # noqa: E402


def run_cli(args: list[str], log: Path) -> float:
    """`python -m ARGS` with output to LOG; its wall time. Raises with the log tail on failure."""
    started = time.monotonic()
    with open(log, "w") as fh:
        done = subprocess.run([sys.executable, "-m", *args], stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"`python -m {args[0]}` failed ({done.returncode}):\n{log.read_text()[-1500:]}")
    return time.monotonic() - started


def plan(tasks: list[dict], holdout: int, per_round: int, rounds: int, seed: int) -> dict:
    """Holdout subjects, the starting subjects and the recordings each round adds (task ids)."""
    by_subject = defaultdict(list)
    for task in tasks:
        by_subject[task["data"]["subject_id"]].append(task["id"])
    subjects = sorted(by_subject)
    random.Random(seed).shuffle(subjects)
    held, rest = subjects[:holdout], subjects[holdout:]
    start, later = rest[:len(rest) // 2], rest[len(rest) // 2:]
    queue = [t for s in later for t in sorted(by_subject[s])]
    if len(queue) < rounds * per_round:
        raise SystemExit(f"only {len(queue)} recordings of new subjects for {rounds} rounds of {per_round}")
    return {"holdout": held, "start": start, "later": later,
            "holdout_tasks": [t for s in held for t in by_subject[s]],
            "start_tasks": [t for s in start for t in by_subject[s]],
            "rounds": [queue[k * per_round:(k + 1) * per_round] for k in range(rounds)]}


def evaluate(model: Path, export: Path, split: Path, subset: str, out: Path, bench: Path, args,
             truth: bool = False) -> dict:
    cmd = ["training.evaluate", "--model", str(model), "--export", str(export), "--data-root", str(bench.parent),
           "--split", str(split), "--subset", subset, "--threads", str(args.threads), "--out", str(out)]
    run_cli(cmd + (["--truth", str(bench / "truth.csv")] if truth else []), out.with_suffix(".log"))
    return json.loads(out.read_text())


def fit(export: Path, out: Path, bench: Path, args, *extra: str) -> float:
    return run_cli(["training.fit", "--export", str(export), "--label-config", str(bench / "label_config.xml"),
                    "--data-root", str(bench.parent), "--out", str(out), "--no-progress",
                    "--image-size", str(args.image_size), "--frames", str(args.frames), "--threads",
                    str(args.threads), "--seed", str(args.seed), *extra], out.parent / f"{out.name}.log")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("benchmark", type=Path, help="benchmark folder, e.g. ../shared/benchmarks/nuaa")
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--per-round", type=int, default=18, help="recordings of new subjects added per round")
    ap.add_argument("--holdout", type=int, default=4, help="subjects kept out of every export (the test people)")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=1, help="epochs per S4L step from scratch")
    ap.add_argument("--warm-epochs", type=int, default=1, help="epochs per S4L step of a warm round")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--render", action="store_true", help="only print the table and plot of WORK/report.json")
    args = ap.parse_args(argv)
    bench, work = args.benchmark.resolve(), args.work
    if args.render:
        rows = json.loads((work / "report.json").read_text())["rows"]
        print(table(rows))
        plot(rows, work / "rounds.png")
        return 0
    work.mkdir(parents=True, exist_ok=True)
    tasks = json.loads((bench / "export.json").read_text())
    p = plan(tasks, args.holdout, args.per_round, args.rounds, args.seed)
    holdout_split = work / "holdout_split.json"
    holdout_ids = [t["data"]["recording_id"] for t in tasks if t["id"] in set(p["holdout_tasks"])]
    holdout_split.write_text(json.dumps({"recordings": {"train": [], "val": [], "test": holdout_ids}}))
    full_export = bench / "export.json"
    truth_rows = {r["recording_id"]: r for r in csv.DictReader((bench / "truth.csv").open())}

    def export_of(ids: list[int], name: str) -> Path:
        path = work / name
        keep = set(ids)
        path.write_text(json.dumps([t for t in tasks if t["id"] in keep]))
        return path

    def test_score(model: Path, name: str) -> dict:
        doc = evaluate(model, full_export, holdout_split, "test", work / f"test_{name}.json", bench, args, truth=True)
        return {"mean": doc["mean_balanced_accuracy"],
                "labels": {n: m["balanced_accuracy"] for n, m in doc["labels"].items()}}

    load = [os.getloadavg()]
    rows = []
    ids = list(p["start_tasks"])
    export = export_of(ids, "export_r0.json")
    wall = fit(export, work / "r0", bench, args, "--epochs-per-step", str(args.epochs))
    rows.append({"round": 0, "recordings": len(ids), "subjects": len(p["start"]), "warm_s": round(wall, 1),
                 "warm_test": test_score(work / "r0" / "model.onnx", "r0")})
    previous = work / "r0"
    for k, added in enumerate(p["rounds"], start=1):
        ids += added
        export = export_of(ids, f"export_r{k}.json")
        warm, full = work / f"r{k}", work / f"r{k}_full"
        warm_s = fit(export, warm, bench, args, "--extend-split", str(previous / "split.json"),
                     "--init-from", str(previous / "model.pt"), "--epochs-per-step", str(args.warm_epochs))
        started = time.monotonic()
        new_val = evaluate(warm / "model.onnx", export, warm / "split.json", "val", work / f"val_r{k}_new.json",
                           bench, args)
        old_val = evaluate(previous / "model.onnx", export, warm / "split.json", "val", work / f"val_r{k}_old.json",
                           bench, args)
        gate = decide(new_val, old_val, GateConfig(), previous.name)
        eval_s = time.monotonic() - started
        full_s = fit(export, full, bench, args, "--split", str(warm / "split.json"),
                     "--epochs-per-step", str(args.epochs))
        split = json.loads((warm / "split.json").read_text())
        rows.append({"round": k, "recordings": len(ids), "added": len(added),
                     "new_subjects": split["new_subjects"], "provisional": split["provisional"],
                     "warm_s": round(warm_s, 1), "gate_eval_s": round(eval_s, 1), "full_s": round(full_s, 1),
                     "promote": gate.promote, "gate_reason": gate.reason,
                     "warm_test": test_score(warm / "model.onnx", f"r{k}"),
                     "full_test": test_score(full / "model.onnx", f"r{k}_full")})
        previous = warm if gate.promote else previous  # what the backend would serve and warm-start from
        load.append(os.getloadavg())
    report = {"command": shlex.join([sys.executable, *(sys.argv if argv is None else argv)]),
              "settings": {k: str(v) for k, v in vars(args).items()}, "plan": p, "rows": rows, "loadavg": load,
              "holdout_recordings": len(holdout_ids),
              "holdout_labels": {n: sum(1 for r in holdout_ids if truth_rows.get(r, {}).get(n))
                                 for n in next(iter(truth_rows.values())) if n not in ("recording_id", "subject_id")}}
    (work / "report.json").write_text(json.dumps(report, indent=1))
    print(table(rows))
    plot(rows, work / "rounds.png")
    return 0


def served(rows: list[dict]) -> list[float]:
    """Test mBA of the model served after each round: the last candidate the gate promoted."""
    out, current = [], None
    for r in rows:
        current = r["warm_test"]["mean"] if r.get("promote", True) else current
        out.append(current)
    return out


def table(rows: list[dict]) -> str:
    lines = ["| round | recordings (added) | new subjects train/val/test | warm retrain: test mBA | gate "
             "| served after the gate: test mBA | full retrain, same labels: test mBA | warm retrain + gate s "
             "| full retrain s |", "|---|---|---|---|---|---|---|---|---|"]
    for r, now in zip(rows, served(rows)):
        new = r.get("new_subjects")
        split = "/".join(str(len(new[p])) for p in ("train", "val", "test")) if new else "-"
        full = f"{r['full_test']['mean']:.3f}" if "full_test" in r else "-"
        gate = ("promoted" if r["promote"] else "kept") if "promote" in r else "-"
        lines.append(f"| {r['round']} | {r['recordings']} ({r.get('added', '-')}) | {split} | {r['warm_test']['mean']:.3f} "
                     f"| {gate} | {now:.3f} | {full} | {r['warm_s'] + r.get('gate_eval_s', 0):.0f} "
                     f"| {r.get('full_s', '-')} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc, secs) = plt.subplots(1, 2, figsize=(9, 3.2))
    rounds = [r["round"] for r in rows]
    acc.plot(rounds, [r["warm_test"]["mean"] for r in rows], "o-", label="warm retrain (candidate)")
    acc.plot(rounds, served(rows), "^:", label="served after the gate")
    acc.plot(rounds[1:], [r["full_test"]["mean"] for r in rows[1:]], "s--", label="full retrain, same labels")
    acc.set(xlabel="round", ylabel="test mean balanced accuracy", xticks=rounds)
    acc.legend(fontsize=8)
    secs.bar([x - 0.2 for x in rounds], [r["warm_s"] + r.get("gate_eval_s", 0) for r in rows], 0.4, label="warm + gate")
    secs.bar([x + 0.2 for x in rounds[1:]], [r["full_s"] for r in rows[1:]], 0.4, label="full retrain")
    secs.set(xlabel="round", ylabel="wall time (s)", xticks=rounds)
    secs.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())
