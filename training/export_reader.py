"""Read a Label Studio export (JSON or JSON_MIN) into recordings with labels, reporting problems.

Each task becomes one Recording: ``recording_id`` = ``data.recording_id`` or str(task id);
``subject_id`` = ``data.subject_id`` or the recording id (a recording without a subject is its
own subject). Each answered question is one result; an unanswered question is a missing label.

Merge policy for a task with several annotations:
1. cancelled (``was_cancelled``) annotations are ignored (problem ``cancelled``, info);
2. answers of a ``ground_truth`` annotation win (several: the most recently updated one);
   questions it leaves open are merged from the others as below;
3. per question: all annotators agree -> that class; they disagree -> the answer of the most
   recently updated annotation (``updated_at``, then ``created_at``, then annotation id) is used
   and a ``disagreement`` problem names the task, the annotation ids and the values.

Results naming a question or class the schema lacks are rejected (``unknown_question`` /
``unknown_class``). Tasks with bad data (``missing_data``, ``bad_frames``, ``not_a_list``) are
skipped, the others kept. With ``propagate=True`` missing labels are filled by the propagation
rules and violated rules are reported as ``contradiction`` (annotated answers are kept).
``strict=True`` raises the matching ExportError subclass at the first problem that loses data.

JSON_MIN (one flat row per annotation, the task's data keys inlined) is detected when no item
has ``annotations`` or ``data``; rows of one task id are merged. In JSON_MIN every key that is not
a schema question is task data, so unknown questions cannot be told apart there.
Import files without task ids (tasks.json) get their position in the list as task id.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from training.export_problems import ExportError, Problem, ProblemLog, problem_report
from training.propagation import load_rules
from training.schema import LabelSchema

# The reader's API; the problem vocabulary (codes, ExportError subclasses) is in export_problems.py.
__all__ = ["ExportData", "ExportError", "Problem", "Recording", "problem_report", "read_export"]

_MIN_META_KEYS = frozenset({"id", "annotator", "annotation_id", "created_at", "updated_at", "lead_time"})


@dataclass(frozen=True)
class Recording:
    task_id: int | str
    recording_id: str
    subject_id: str
    frames: tuple[str, ...]
    labels: dict[str, str]
    label_sources: dict[str, str]  # name -> "annotation" | "propagated"
    data: dict = field(repr=False)


@dataclass
class ExportData:
    recordings: list[Recording]
    problems: list[Problem]


def _load(path_or_list) -> list:
    if isinstance(path_or_list, (str, Path)):
        try:
            items = json.loads(Path(path_or_list).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ExportError(f"cannot read export {path_or_list}: {exc}") from exc
    else:
        items = path_or_list
    if not isinstance(items, list):
        raise ExportError(f"an export is a JSON list of tasks, got {type(items).__name__}")
    return items


def _min_rows_to_tasks(rows: list, schema: LabelSchema) -> list:
    """Group JSON_MIN rows by task id into JSON-export-shaped tasks."""
    tasks: dict = {}
    for pos, row in enumerate(rows):
        if not isinstance(row, dict):
            tasks[f"#{pos}"] = row  # reported as missing data by the task reader
            continue
        tid = row.get("id", pos)
        data = {k: v for k, v in row.items() if k not in _MIN_META_KEYS and k not in schema}
        task = tasks.setdefault(tid, {"id": tid, "data": data, "annotations": []})
        if "annotation_id" not in row:
            continue
        result = []
        for name in schema.names:
            if name in row:
                value = row[name]
                choices = value.get("choices") if isinstance(value, dict) else value
                choices = [choices] if isinstance(choices, str) else choices
                result.append({"from_name": name, "value": {"choices": choices}})
        task["annotations"].append({
            "id": row["annotation_id"], "result": result,
            "created_at": row.get("created_at"), "updated_at": row.get("updated_at"),
        })
    return list(tasks.values())


def _recency(ann: dict) -> tuple:
    def ts(value) -> float:
        try:
            return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
        except ValueError:
            return float("-inf")

    ann_id = ann.get("id")
    return ts(ann.get("updated_at")), ts(ann.get("created_at")), ann_id if isinstance(ann_id, int) else -1


def _answers(ann: dict, task_id, schema: LabelSchema, problems: ProblemLog) -> dict[str, str]:
    """{question: class} of one annotation; bad results are reported and dropped."""
    out: dict[str, str] = {}
    ann_id = ann.get("id")
    results = ann.get("result") or []
    if not isinstance(results, list):
        problems.add("missing_data", task_id, ann_id, f"annotation result is not a list: {results!r}")
        return out
    for res in results:
        name = res.get("from_name") if isinstance(res, dict) else None
        if name not in schema:
            problems.add("unknown_question", task_id, ann_id, f"question {name!r} is not in the labeling config")
            continue
        value = res.get("value")
        choices = value.get("choices") if isinstance(value, dict) else None
        if not isinstance(choices, list) or len(choices) != 1 or not schema.has_class(name, choices[0]):
            problems.add(
                "unknown_class", task_id, ann_id,
                f"{name}={choices!r} is not one of {list(schema[name].classes)}",
            )
            continue
        out[name] = choices[0]
    return out


def _merge(task_id, annotations: list, schema: LabelSchema, problems: ProblemLog) -> dict[str, str]:
    """Apply the module's merge policy to a task's annotations."""
    kept = []
    for ann in annotations:
        if not isinstance(ann, dict):
            problems.add("missing_data", task_id, None, f"annotation is not an object: {ann!r}")
        elif ann.get("was_cancelled"):
            problems.add("cancelled", task_id, ann.get("id"), "cancelled (skipped) annotation ignored")
        else:
            kept.append(ann)
    kept.sort(key=_recency)  # oldest first: later answers win below
    parsed = [(ann, _answers(ann, task_id, schema, problems)) for ann in kept]
    truth = [answers for ann, answers in parsed if ann.get("ground_truth")]
    labels = dict(truth[-1]) if truth else {}
    for name in schema.names:
        if name in labels:
            continue
        given = [(ann.get("id"), answers[name]) for ann, answers in parsed if name in answers]
        if not given:
            continue
        labels[name] = given[-1][1]
        if len({cls for _, cls in given}) > 1:
            values = ", ".join(f"annotation {aid}: {cls}" for aid, cls in given)
            problems.add(
                "disagreement", task_id, given[-1][0],
                f"{name}: annotators disagree ({values}); using the most recent, {given[-1][1]!r}",
            )
    return labels


def _frames(task_id, data, schema: LabelSchema, problems: ProblemLog) -> tuple[str, ...] | None:
    if not isinstance(data, dict):
        problems.add("missing_data", task_id, None, "task has no 'data' object; skipped")
        return None
    key = schema.value_key
    if key not in data:
        problems.add("bad_frames", task_id, None, f"task data lacks the frames key {key!r}; skipped")
        return None
    frames = data[key]
    if isinstance(frames, str):
        problems.add("not_a_list", task_id, None, f"data[{key!r}] is a string, not a list of frame URLs; skipped")
        return None
    if not isinstance(frames, list) or not frames or not all(isinstance(f, str) and f for f in frames):
        problems.add(
            "bad_frames", task_id, None,
            f"data[{key!r}] must be a non-empty list of frame URL strings, got {str(frames)[:120]}; skipped",
        )
        return None
    return tuple(frames)


def recording_id_of(task_id, data: dict) -> str:
    """``data.recording_id``, or the task id when it is missing or empty."""
    recording_id = data.get("recording_id")
    return str(task_id) if recording_id in (None, "") else str(recording_id)


def read_export(path_or_list, schema: LabelSchema, *, strict: bool = False, propagate: bool = True) -> ExportData:
    """Parse a Label Studio JSON / JSON_MIN export (a path or the loaded list) into recordings."""
    items = _load(path_or_list)
    if items and not any(isinstance(t, dict) and ("annotations" in t or "data" in t) for t in items):
        items = _min_rows_to_tasks(items, schema)
    rules = load_rules(schema) if propagate else None
    problems = ProblemLog(strict)
    recordings = []
    for pos, task in enumerate(items):
        if not isinstance(task, dict):
            problems.add("missing_data", f"#{pos}", None, f"task is not an object: {str(task)[:80]}")
            continue
        task_id = task.get("id", pos)
        data = task.get("data")
        frames = _frames(task_id, data, schema, problems)
        if frames is None:
            continue
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list):
            problems.add("missing_data", task_id, None, f"'annotations' is not a list: {str(annotations)[:80]}")
            annotations = []
        labels = _merge(task_id, annotations, schema, problems)
        sources = {name: "annotation" for name in labels}
        if rules is not None:
            labels, contradictions = rules.propagate(labels)
            sources.update({name: "propagated" for name in labels if name not in sources})
            for msg in contradictions:
                problems.add("contradiction", task_id, None, msg)
        recording_id = recording_id_of(task_id, data)
        subject_id = data.get("subject_id")
        recordings.append(Recording(
            task_id=task_id,
            recording_id=recording_id,
            subject_id=recording_id if subject_id in (None, "") else str(subject_id),
            frames=frames,
            labels={n: labels[n] for n in schema.names if n in labels},
            label_sources={n: sources[n] for n in schema.names if n in labels},
            data=data,
        ))
    return ExportData(recordings, list(problems))
