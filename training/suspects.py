"""Annotations the model contradicts with confidence: `python -m training.suspects --export E
--label-config C --data-root D --out DIR [--folds K]`.

Every annotated recording gets an out-of-sample prediction from K subject-grouped cross-fitted
training.fit runs (training/cross_fit.py); per label, confident learning (training/confident_learning.py)
flags the annotations whose confident class differs. DIR gets:
- suspects.csv: the flagged annotations, most suspect first (rank, task_id, recording_id, label,
  annotated, suggested, confidence = the model's probability of the suggestion, margin);
- suspects_predictions.json: one Label Studio prediction per task with suspects (POST /api/predictions
  body: the suggested classes, model_version "suspects-<date>"), so annotators filter them in the Data
  Manager; `--push` posts them (LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY);
- export_problems.txt: the export's propagation-rule contradictions and annotator disagreements;
- folds/: the K runs (a rerun reuses the finished ones).
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import sys
from pathlib import Path

import numpy as np

from training.confident_learning import find_suspects, ranking
from training.cross_fit import CrossFitConfig
from training.export_reader import problem_report, read_export
from training.schema import load_label_config

CSV_FIELDS = ("rank", "task_id", "recording_id", "label", "annotated", "suggested", "confidence", "margin")
REVIEW_CODES = ("contradiction", "disagreement")  # export problems an annotator should look at too


def suspect_rows(recordings, schema, ids: list[str], probs: dict[str, np.ndarray]) -> list[dict]:
    """Flagged annotations of every label, ranked together by margin (largest first)."""
    by_id = {r.recording_id: r for r in recordings}
    rows = []
    for spec in schema.labels:
        classes = spec.classes
        annotated = np.array([classes.index(by_id[i].labels[spec.name])
                              if by_id[i].label_sources.get(spec.name) == "annotation" else -1 for i in ids])
        found = find_suspects(annotated, probs[spec.name])
        for k in ranking(found):
            if not found.flagged[k]:
                break
            j = int(found.confident[k])
            rec = by_id[ids[k]]
            rows.append({"task_id": rec.task_id, "recording_id": rec.recording_id, "label": spec.name,
                         "annotated": classes[annotated[k]], "suggested": classes[j],
                         "confidence": round(float(probs[spec.name][k, j]), 4),
                         "margin": round(float(found.margin[k]), 4)})
    rows.sort(key=lambda r: -r["margin"])
    return [{"rank": i + 1, **r} for i, r in enumerate(rows)]


def label_studio_predictions(rows: list[dict], to_name: str, version: str) -> list[dict]:
    """One POST /api/predictions body per task: its suggested classes; score = its lowest confidence."""
    tasks: dict = {}
    for r in rows:
        tasks.setdefault(r["task_id"], []).append(r)
    return [{"task": task, "model_version": version, "score": min(r["confidence"] for r in suspects),
             "result": [{"from_name": r["label"], "to_name": to_name, "type": "choices",
                         "value": {"choices": [r["suggested"]]}} for r in suspects]}
            for task, suspects in tasks.items()]


def push(predictions: list[dict], url: str, api_key: str) -> int:
    """POST every prediction to Label Studio; returns how many it accepted."""
    import requests

    from training.ls_auth import LabelStudioAuth

    auth = LabelStudioAuth(url, api_key)
    done = 0
    with requests.Session() as session:
        for body in predictions:
            answer = session.post(f"{auth.url}/api/predictions/", json=body, headers=auth.headers(), timeout=30)
            if answer.status_code >= 300:
                raise RuntimeError(f"task {body['task']}: Label Studio answered {answer.status_code}: "
                                   f"{answer.text[:200]}")
            done += 1
    return done


def _parser() -> argparse.ArgumentParser:
    d = CrossFitConfig()
    ap = argparse.ArgumentParser(prog="python -m training.suspects", description=__doc__.split("\n")[0])
    ap.add_argument("--export", required=True, help="Label Studio JSON export")
    ap.add_argument("--label-config", help="labeling config XML (default: the repo's label_config.xml)")
    ap.add_argument("--data-root", help="LOCAL_FILES_DOCUMENT_ROOT for /data/local-files/ frame URLs")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--folds", type=int, default=d.folds, help="cross-fitted runs (subject-grouped folds)")
    ap.add_argument("--image-size", type=int, default=d.image_size)
    ap.add_argument("--frames", type=int, default=d.frames)
    ap.add_argument("--epochs-per-step", type=int, default=d.epochs_per_step)
    ap.add_argument("--steps", default=",".join(map(str, d.steps)), help="S4L steps of each run")
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--threads", type=int, default=d.threads, help="torch threads (0 = torch default)")
    ap.add_argument("--model-version", help="Label Studio model version (default: suspects-<UTC date>)")
    ap.add_argument("--push", action="store_true", help="post the predictions to LABEL_STUDIO_URL")
    return ap


def main(argv: list[str] | None = None) -> int:
    from training.cross_fit import cross_fit

    args = _parser().parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    schema = load_label_config(args.label_config)
    export = read_export(args.export, schema)
    review = [p for p in export.problems if p.code in REVIEW_CODES]
    (out / "export_problems.txt").write_text("\n".join(problem_report(review)) + "\n", encoding="utf-8")
    cfg = CrossFitConfig(folds=args.folds, image_size=args.image_size, frames=args.frames,
                         epochs_per_step=args.epochs_per_step, steps=tuple(int(s) for s in args.steps.split(",")),
                         seed=args.seed, threads=args.threads)
    ids, probs = cross_fit(export.recordings, schema, args.export, args.label_config, args.data_root, out, cfg)
    rows = suspect_rows(export.recordings, schema, ids, probs)
    with open(out / "suspects.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    version = args.model_version or f"suspects-{dt.datetime.now(dt.timezone.utc):%Y-%m-%d}"
    predictions = label_studio_predictions(rows, schema.object_name, version)
    (out / "suspects_predictions.json").write_text(json.dumps(predictions, indent=1), encoding="utf-8")
    counts = {n: sum(r["label"] == n for r in rows) for n in schema.names}
    print(f"{len(rows)} suspect annotations ({', '.join(f'{n} {c}' for n, c in counts.items())}) "
          f"on {len(predictions)} tasks -> {out / 'suspects.csv'}")
    print(f"export: {len(review)} contradictions/disagreements -> {out / 'export_problems.txt'}")
    if args.push:
        url, key = os.environ.get("LABEL_STUDIO_URL"), os.environ.get("LABEL_STUDIO_API_KEY")
        if not url or not key:
            raise SystemExit("--push needs LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY")
        print(f"pushed {push(predictions, url, key)} predictions as model version {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
