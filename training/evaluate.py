"""Score an exported model (ONNX) on a Label Studio export: `python -m training.evaluate ...`.

Truth is the export's annotations as written (no propagation), or a CSV keyed by recording_id
with one column per label (empty cell = unknown, e.g. benchmarks/*/truth.csv). Frames are read
with training.frame_source (local-file URLs resolve under --data-root) and preprocessed with the
model's own settings. Broken recordings and labels the model lacks are reported and skipped.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from training.export_reader import read_export
from training.frame_source import FrameError, FrameFetcher, FrameSourceConfig, allowed_hosts_from_env
from training.metrics import evaluate
from training.onnx_runner import OnnxRecordingModel
from training.preprocess import FrameDecodeError, frames_to_batch, pick_frame_indices
from training.schema import LabelSchema, load_label_config

DEFAULT_BATCH = 16


@dataclass
class Evaluation:
    metrics: dict  # the metrics.json document
    skipped_recordings: list[dict] = field(default_factory=list)  # {"recording_id", "reason"}
    notes: list[str] = field(default_factory=list)  # labels / classes left out, and why
    recording_ids: list[str] = field(default_factory=list)  # the scored recordings, in row order
    truth: dict = field(default_factory=dict)  # label -> class indices of those rows (-1 = unknown)
    probs: dict = field(default_factory=dict)  # label -> [rows, classes] probabilities


def read_truth_csv(path: str | Path, schema: LabelSchema) -> dict[str, dict[str, str]]:
    """recording_id -> {label: class} from a CSV; empty cells are unknown, other columns ignored."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if "recording_id" not in (reader.fieldnames or []):
            raise ValueError(f"{path}: truth CSV needs a 'recording_id' column, has {reader.fieldnames}")
        truth = {}
        for line, row in enumerate(reader, start=2):
            labels = {}
            for name in schema.names:
                value = (row.get(name) or "").strip()
                if value and value not in schema[name].classes:
                    raise ValueError(f"{path} line {line}: {name}={value!r} is not one of {schema[name].classes}")
                if value:
                    labels[name] = value
            truth[row["recording_id"]] = labels
    return truth


def load_recording(frame_refs: tuple[str, ...], model: OnnxRecordingModel,
                   fetch: Callable[[str], bytes]) -> tuple[np.ndarray, np.ndarray]:
    """One recording's model input: the model's N evenly spaced frames, padded and masked."""
    if not frame_refs:
        raise ValueError("recording has no frames")
    picked = [frame_refs[i] for i in pick_frame_indices(len(frame_refs), model.frames)]
    return frames_to_batch([fetch(ref) for ref in picked], model.frames, model.preprocess)


def score_recordings(model: OnnxRecordingModel, recordings: Iterable, truth: Mapping[str, Mapping[str, str]],
                     labels: Iterable[str], fetch: Callable[[str], bytes],
                     batch_size: int = DEFAULT_BATCH) -> Evaluation:
    """Predict every recording (skipping broken ones) and score `labels` against `truth`."""
    labels = list(labels)
    result = Evaluation(metrics={})
    kept_ids, probs = [], {n: [] for n in labels}
    pending: list[tuple[str, np.ndarray, np.ndarray]] = []

    def flush():
        if pending:
            out = model.predict(np.stack([p[1] for p in pending]), np.stack([p[2] for p in pending]))
            for n in labels:
                probs[n].append(out[n])
            kept_ids.extend(p[0] for p in pending)
            pending.clear()

    for rec in recordings:
        try:
            frames, mask = load_recording(rec.frames, model, fetch)
        except (FrameError, FrameDecodeError, ValueError, OSError) as exc:
            result.skipped_recordings.append({"recording_id": rec.recording_id, "reason": str(exc)})
            continue
        pending.append((rec.recording_id, frames, mask))
        if len(pending) >= batch_size:
            flush()
    flush()

    truth_idx = {}
    for n in labels:
        classes = model.schema[n].classes
        y = np.full(len(kept_ids), -1, dtype=np.int64)
        for i, rid in enumerate(kept_ids):
            cls = truth.get(rid, {}).get(n)
            if cls is None:
                continue
            if cls in classes:
                y[i] = classes.index(cls)
            else:
                result.notes.append(f"{n}: recording {rid} has class {cls!r} the model does not know; not scored")
        truth_idx[n] = y
    scored = LabelSchema(tuple(model.schema[n] for n in labels))
    n_classes = {n: len(model.schema[n].classes) for n in labels}
    stacked = {n: np.concatenate(probs[n]) if probs[n] else np.zeros((0, n_classes[n])) for n in labels}
    result.metrics = evaluate(scored, truth_idx, stacked)
    result.metrics["n_recordings"] = len(kept_ids)
    result.recording_ids, result.truth, result.probs = kept_ids, truth_idx, stacked
    return result


def _pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}"


def format_table(doc: dict) -> str:
    """Per-label balanced accuracy with the class counts it rests on."""
    rows = [f"{'label':<24} {'n':>5} {'bal.acc':>8}  per class: recall % (n)"]
    for name, m in doc["labels"].items():
        classes = "  ".join(f"{c} {_pct(v['recall'], 1)} ({v['n']})" for c, v in m["per_class"].items())
        rows.append(f"{name:<24} {m['n']:>5} {_pct(m['balanced_accuracy']):>8}  {classes}")
    rows.append(f"{'mean balanced accuracy':<30} {_pct(doc.get('mean_balanced_accuracy'))}")
    return "\n".join(rows)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="model.onnx written by training.onnx_export")
    ap.add_argument("--export", required=True, help="Label Studio JSON / JSON_MIN export (recordings, truth)")
    ap.add_argument("--data-root", help="LOCAL_FILES_DOCUMENT_ROOT for /data/local-files/ URLs (default: fetch "
                    "them from --label-studio-url)")
    ap.add_argument("--label-config", help="labeling config of the export (default: the model's schema)")
    ap.add_argument("--split", help="split.json from training.split; score only one subset")
    ap.add_argument("--subset", default="test", help="split subset to score (default: test)")
    ap.add_argument("--truth", help="truth CSV keyed by recording_id instead of the export's annotations")
    ap.add_argument("--out", required=True, help="metrics.json to write")
    ap.add_argument("--label-studio-url", default=os.environ.get("LABEL_STUDIO_URL"),
                    help="for /data/upload/ and other server URLs; the key comes from LABEL_STUDIO_API_KEY")
    ap.add_argument("--group-by", help="also score per group of recordings: a label, or a task data field such as "
                    "car_recording or subject_id (training/group_accuracy.py)")
    ap.add_argument("--group-prefix", type=int, help="with --group-by: group by the field's first N characters")
    ap.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    model = OnnxRecordingModel(args.model, intra_op_threads=args.threads)
    schema = load_label_config(args.label_config) if args.label_config else model.schema
    export = read_export(args.export, schema, propagate=False)
    recordings = export.recordings
    if args.split:
        split = json.loads(Path(args.split).read_text(encoding="utf-8"))
        if args.subset not in split.get("recordings", {}):
            raise SystemExit(f"{args.split}: no subset {args.subset!r} under 'recordings'")
        wanted = set(split["recordings"][args.subset])
        recordings = [r for r in recordings if r.recording_id in wanted]
    if args.truth:
        truth = read_truth_csv(args.truth, schema)
    else:
        truth = {r.recording_id: r.labels for r in recordings}
    labels = [n for n in schema.names if n in model.output_names]
    notes = [f"{n}: not predicted by the model; skipped" for n in schema.names if n not in model.output_names]
    notes += [f"export: {p}" for p in export.problems if p.severity == "error"]
    fetcher = FrameFetcher(FrameSourceConfig(label_studio_url=args.label_studio_url,
                                             api_key=os.environ.get("LABEL_STUDIO_API_KEY"),
                                             document_root=args.data_root, allowed_hosts=allowed_hosts_from_env()))
    result = score_recordings(model, recordings, truth, labels, fetcher.fetch, args.batch_size)
    result.notes[:0] = notes
    doc = {**result.metrics, "model": str(args.model), "model_version": model.model_version,
           "export": str(args.export), "subset": args.subset if args.split else None,
           "skipped_recordings": result.skipped_recordings, "notes": result.notes}
    if args.group_by:
        doc["groups"] = _groups(args, recordings, truth, result, model)
    Path(args.out).write_text(json.dumps(doc, indent=1), encoding="utf-8")
    print(format_table(doc))
    for note in result.notes:
        print(f"note: {note}")
    for skip in result.skipped_recordings:
        print(f"skipped recording {skip['recording_id']}: {skip['reason']}", file=sys.stderr)
    if args.group_by:
        print(format_groups(doc["groups"]))
    print(f"{doc['n_recordings']} recordings scored, {len(result.skipped_recordings)} skipped -> {args.out}")
    return 0


def _groups(args, recordings, truth, result: Evaluation, model: OnnxRecordingModel) -> dict:
    from training.group_accuracy import group_of, per_group

    by_id = {r.recording_id: r for r in recordings}
    groups = [group_of(by_id[rid], args.group_by, truth.get(rid, {}), args.group_prefix)
              for rid in result.recording_ids]
    scored = LabelSchema(tuple(model.schema[n] for n in result.probs))
    return per_group(scored, result.truth, result.probs, groups, args.group_by, args.group_prefix)


def format_groups(groups: dict) -> str:
    rows = [f"per {groups['field']} group: balanced accuracy % (labelled n)"]
    for name, m in groups["labels"].items():
        cells = "  ".join(f"{g} {_pct(v['balanced_accuracy'], 1)} ({v['n']})" for g, v in m["groups"].items())
        gap = "-" if m["gap"] is None else f"{100 * m['gap']:.1f} points ({m['best']} - {m['worst']})"
        rows.append(f"{name:<24} gap {gap}; {cells}")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
