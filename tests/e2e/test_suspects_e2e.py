"""training.suspects' Label Studio import against a real Label Studio 1.23.2: the suggestions become
predictions of their own model version, listed beside the tasks' annotations in the Data Manager."""
from __future__ import annotations

from training.suspects import label_studio_predictions, push

VERSION = "suspects-e2e"


def test_suspects_are_stored_as_predictions_of_their_own_version(label_studio, project, schema):
    tasks = label_studio.tasks(project["id"])[:2]
    label_studio.annotate(tasks[0]["id"], [{"from_name": "gender", "to_name": "frames", "type": "choices",
                                             "value": {"choices": [schema["gender"].classes[0]]}}])
    rows = [{"task_id": tasks[0]["id"], "label": "gender", "suggested": schema["gender"].classes[1],
             "confidence": 0.9},
            {"task_id": tasks[1]["id"], "label": "wearing_glasses", "suggested": schema["wearing_glasses"].classes[0],
             "confidence": 0.8}]
    predictions = label_studio_predictions(rows, schema.object_name, VERSION)
    assert push(predictions, label_studio.url, label_studio.legacy_token) == 2
    versions = label_studio.request("GET", f"/api/projects/{project['id']}/model-versions/").json()
    assert versions.get(VERSION) == 2  # the Data Manager's model-version filter lists it with its count
    listed = {t["id"]: t for t in label_studio.tasks(project["id"])}
    first = [p for p in listed[tasks[0]["id"]]["predictions"] if p["model_version"] == VERSION]
    assert len(first) == 1 and first[0]["score"] == 0.9
    assert first[0]["result"][0]["value"]["choices"] == [schema["gender"].classes[1]]
    assert listed[tasks[0]["id"]]["annotations"][0]["result"][0]["value"]["choices"] == [schema["gender"].classes[0]]
