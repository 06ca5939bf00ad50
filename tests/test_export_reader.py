import copy
import csv
import json

import pytest

from training.export_problems import (
    BadFramesError,
    ExportError,
    MissingDataError,
    NotAListError,
    UnknownClassError,
    UnknownQuestionError,
    problem_report,
)
from training.export_reader import read_export
from training.schema import load_label_config


@pytest.fixture(scope="module")
def recorded_schema(recorded_dir):
    """The config the recorded export was made with (short class names)."""
    return load_label_config(recorded_dir / "config_valuelist.xml")


@pytest.fixture(scope="module")
def recorded_export(recorded_dir):
    return json.loads((recorded_dir / "export_JSON.json").read_text())


def codes(data):
    return sorted(p.code for p in data.problems)


def ann(aid, answers, *, updated="2026-01-01T00:00:00Z", **extra):
    result = [{"from_name": n, "to_name": "frames", "type": "choices", "value": {"choices": [c]}} for n, c in answers.items()]
    return {"id": aid, "result": result, "was_cancelled": False, "ground_truth": False, "updated_at": updated, **extra}


def task(tid, *annotations, data=None):
    data = {"frames": ["/data/upload/1/a.png", "/data/upload/1/b.png"]} if data is None else data
    return {"id": tid, "annotations": list(annotations), "data": data}


def test_recorded_json_export_by_hand(recorded_dir, recorded_schema):
    data = read_export(recorded_dir / "export_JSON.json", recorded_schema)
    by_id = {r.task_id: r for r in data.recordings}
    assert sorted(by_id) == [1, 2, 3, 4, 5]
    rec1 = by_id[1]
    # two annotations: gender disagrees (Male, annotation 1, is the more recently updated one)
    assert rec1.labels == {"gender": "Male", "car_recording": "In Lab", "glasses_kind": "Transparent",
                           "eye_color": "Blue", "wearing_glasses": "Yes"}
    assert (rec1.recording_id, rec1.subject_id, len(rec1.frames)) == ("rec1", "subj1", 10)
    assert rec1.frames[0] == "/data/local-files/?d=recordings/rec1/frame_00.png"
    assert set(rec1.label_sources.values()) == {"annotation"}
    assert by_id[2].labels["ears_visibility"] == "Partly Visible"
    assert by_id[3].labels == {} and by_id[4].labels == {}  # cancelled / empty annotation
    assert by_id[5].labels == {}  # 'Robot' and an unknown question rejected
    assert codes(data) == ["cancelled", "disagreement", "unknown_class", "unknown_question"]
    disagreement = next(p for p in data.problems if p.code == "disagreement")
    assert disagreement.task_id == 1 and "annotation 1" in disagreement.message and "annotation 2" in disagreement.message
    assert "Female" in disagreement.message and "Male" in disagreement.message
    robot = next(p for p in data.problems if p.code == "unknown_class")
    assert (robot.task_id, robot.annotation_id) == (5, 6) and "Robot" in robot.message


def test_recorded_json_min_matches_json(recorded_dir, recorded_schema):
    full = read_export(recorded_dir / "export_JSON.json", recorded_schema)
    flat = read_export(recorded_dir / "export_JSON_MIN.json", recorded_schema)
    full_labels = {r.recording_id: r.labels for r in full.recordings}
    flat_labels = {r.recording_id: r.labels for r in flat.recordings}
    assert sorted(flat_labels) == ["rec1", "rec2", "rec4", "rec5"]  # JSON_MIN omits the cancelled-only task
    assert all(flat_labels[k] == full_labels[k] for k in flat_labels)
    rec1 = next(r for r in flat.recordings if r.recording_id == "rec1")
    assert rec1.data["source"] == "local-files" and "gender" not in rec1.data and len(rec1.frames) == 10
    assert "disagreement" in codes(flat) and "unknown_class" in codes(flat)


def read_truth(path):
    with open(path, newline="") as f:
        return {row["recording_id"]: row for row in csv.DictReader(f)}


@pytest.mark.parametrize("name,n_recordings", [("nuaa", 143), ("facemask", 3442)])
def test_benchmark_exports(benchmarks_dir, name, n_recordings):
    folder = benchmarks_dir / name
    schema = load_label_config(folder / "label_config.xml")
    data = read_export(folder / "export.json", schema)
    assert len(data.recordings) == n_recordings and data.problems == []
    truth = read_truth(folder / "truth.csv")
    raw = json.loads((folder / "export.json").read_text())
    answered = {t["data"]["recording_id"]: {r["from_name"] for a in t["annotations"] for r in a["result"]} for t in raw}
    for spec in schema.labels:
        labelled = [r for r in data.recordings if spec.name in r.labels]
        assert len(labelled) == sum(spec.name in answered[r] for r in answered)
        assert 0 < len(labelled) < n_recordings  # partial coverage
        assert all(r.labels[spec.name] == truth[r.recording_id][spec.name] for r in labelled)
    assert all(r.subject_id == truth[r.recording_id]["subject_id"] for r in data.recordings)


def test_missing_data_and_frame_problems_skip_only_that_task(schema):
    tasks = [
        {"id": 1, "annotations": []},
        task(2, data={"image": "x.png"}),
        task(3, data={"frames": "/data/upload/1/a.png"}),
        task(4, data={"frames": ["/data/upload/1/a.png", 7]}),
        task(5, ann(9, {"gender": "Male"})),
    ]
    data = read_export(tasks, schema)
    assert [r.task_id for r in data.recordings] == [5]
    assert [(p.code, p.task_id) for p in data.problems] == [
        ("missing_data", 1), ("bad_frames", 2), ("not_a_list", 3), ("bad_frames", 4)]
    assert "'frames'" in data.problems[1].message


@pytest.mark.parametrize("bad_task,error,code", [
    ({"id": 1, "annotations": []}, MissingDataError, "missing_data"),
    (task(1, data={"frames": "a.png"}), NotAListError, "not_a_list"),
    (task(1, data={}), BadFramesError, "bad_frames"),
    (task(1, ann(3, {"hair_color": "Red"})), UnknownQuestionError, "unknown_question"),
    (task(1, ann(3, {"gender": "Robot"})), UnknownClassError, "unknown_class"),
])
def test_strict_raises_named_error(schema, bad_task, error, code):
    with pytest.raises(error, match="task 1"):
        read_export([task(0), bad_task], schema, strict=True)
    lenient = read_export([task(0), bad_task], schema)
    assert [(p.code, p.task_id) for p in lenient.problems] == [(code, 1)]


def test_unknown_question_and_class_name_task_annotation_value(schema):
    data = read_export([task(7, ann(11, {"hair_color": "Red", "gender": "Robot", "eye_color": "Blue"}))], schema)
    assert data.recordings[0].labels == {"eye_color": "Blue"}
    question, klass = data.problems
    assert (question.code, question.task_id, question.annotation_id) == ("unknown_question", 7, 11)
    assert "hair_color" in question.message
    assert (klass.code, klass.annotation_id) == ("unknown_class", 11) and "Robot" in klass.message


def test_cancelled_annotations_are_ignored(schema):
    cancelled = ann(2, {"gender": "Female"}, updated="2026-05-01T00:00:00Z", was_cancelled=True)
    data = read_export([task(1, ann(1, {"gender": "Male"}), cancelled)], schema, strict=True)
    assert data.recordings[0].labels == {"gender": "Male"}
    assert [(p.code, p.annotation_id, p.severity) for p in data.problems] == [("cancelled", 2, "info")]


def test_disagreement_uses_most_recent_and_reports(schema):
    old = ann(1, {"gender": "Male", "eye_color": "Blue"}, updated="2026-01-02T00:00:00Z")
    new = ann(2, {"gender": "Female", "eye_color": "Blue"}, updated="2026-03-01T10:00:00.5Z")
    for order in ([old, new], [new, old]):
        data = read_export([task(4, *order)], schema)
        assert data.recordings[0].labels == {"gender": "Female", "eye_color": "Blue"}
        assert [p.code for p in data.problems] == ["disagreement"]  # eye_color agrees: no problem
        assert data.problems[0].task_id == 4 and "gender" in data.problems[0].message


def test_ground_truth_wins_over_newer_annotation(schema):
    truth = ann(1, {"gender": "Male"}, updated="2026-01-01T00:00:00Z", ground_truth=True)
    newer = ann(2, {"gender": "Female", "eye_color": "Green"}, updated="2026-06-01T00:00:00Z")
    data = read_export([task(1, truth, newer)], schema)
    assert data.recordings[0].labels == {"gender": "Male", "eye_color": "Green"}
    assert data.problems == []


def test_propagation_fills_and_reports_contradictions(schema):
    masked = ann(1, {"wearing_face_mask": "Wears Face Mask", "mouth_visibility": "Mouth Fully Visible"})
    data = read_export([task(1, masked)], schema)
    rec = data.recordings[0]
    assert rec.labels["chin_visibility"] == "Chin Fully Occluded"
    assert rec.label_sources == {"chin_visibility": "propagated", "mouth_visibility": "annotation",
                                 "wearing_face_mask": "annotation"}
    assert rec.labels["mouth_visibility"] == "Mouth Fully Visible"
    assert [p.code for p in data.problems] == ["contradiction"]
    plain = read_export([task(1, masked)], schema, propagate=False)
    assert "chin_visibility" not in plain.recordings[0].labels and plain.problems == []


def test_ids_default_and_subject_falls_back_to_recording(schema):
    data = read_export([task(12), task(13, data={"frames": ["a"], "recording_id": "r13", "subject_id": "s1"})], schema)
    a, b = data.recordings
    assert (a.recording_id, a.subject_id) == ("12", "12")
    assert (b.recording_id, b.subject_id) == ("r13", "s1")


def test_unreadable_export(tmp_path, schema):
    path = tmp_path / "export.json"
    path.write_text("{not json")
    with pytest.raises(ExportError, match="export.json"):
        read_export(path, schema)
    with pytest.raises(ExportError, match="list of tasks"):
        read_export({"tasks": []}, schema)


def test_problem_report_lines(recorded_dir, recorded_schema, recorded_export):
    data = read_export(copy.deepcopy(recorded_export), recorded_schema)
    lines = list(problem_report(data.problems))
    assert len(lines) == len(data.problems) + 1
    assert any("task 5 annotation 6" in line and "Robot" in line for line in lines)
    assert lines[-1] == "problems: cancelled=1, disagreement=1, unknown_class=1, unknown_question=1"
    assert list(problem_report([])) == ["problems: none"]


def test_data_side_modules_do_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, training.propagation, training.export_reader, training.export_problems, training.frame_source, "
            "training.ls_auth, training.preprocess; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
