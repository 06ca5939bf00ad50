"""End to end against a real Label Studio 1.23.2: tokens, local-files frames, and our backend's
pre-annotations retrieved through the Data Manager action, for each way the backend can authenticate."""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import time

import pytest
import requests

from .ls_server import REPO_ROOT
from .server_process import free_port

pytestmark = pytest.mark.e2e


def _whoami(url: str, authorization: str | None) -> requests.Response:
    headers = {"Authorization": authorization} if authorization else {}
    return requests.get(f"{url}/api/current-user/whoami", headers=headers, timeout=30)


def test_legacy_token_and_personal_access_token_both_authenticate(label_studio):
    assert _whoami(label_studio.url, f"Token {label_studio.legacy_token}").json()["email"] == \
        label_studio.config.username
    pat = label_studio.personal_access_token()
    access = label_studio.access_token(pat)
    assert _whoami(label_studio.url, f"Bearer {access}").json()["email"] == label_studio.config.username
    # The PAT is a refresh token: it is not itself accepted as a bearer token, and nothing else passes.
    assert _whoami(label_studio.url, f"Bearer {pat}").status_code == 401
    assert _whoami(label_studio.url, "Token not-a-real-token").status_code == 401
    assert _whoami(label_studio.url, None).status_code == 401
    # One valid PAT per user: a second one is refused (the harness keeps the first).
    label_studio.request("POST", "/api/token/", expect=409)


def test_local_files_frames_are_served_with_either_token(label_studio, project, recordings):
    task = label_studio.tasks(project["id"])[0]
    frame_url = task["data"]["frames"][0]
    assert frame_url.startswith("/data/local-files/?d=")
    on_disk = (recordings.parent / frame_url.split("?d=", 1)[1]).read_bytes()
    bearer = f"Bearer {label_studio.access_token(label_studio.personal_access_token())}"
    for authorization in (f"Token {label_studio.legacy_token}", bearer):
        r = requests.get(label_studio.url + frame_url, headers={"Authorization": authorization}, timeout=30)
        assert r.status_code == 200 and r.content == on_disk
    assert requests.get(label_studio.url + frame_url, timeout=30).status_code == 401


def test_import_keeps_every_generated_task(label_studio, project, recordings):
    generated = json.loads((recordings / "tasks.json").read_text(encoding="utf-8"))
    stored = label_studio.tasks(project["id"])
    assert sorted(t["data"]["recording_id"] for t in stored) == sorted(t["data"]["recording_id"] for t in generated)
    assert all(not t["predictions"] for t in stored)


def test_annotations_round_trip_through_the_export(label_studio, project, recordings, schema):
    """Answers posted to LS come back in its JSON export exactly as our export reader understands them."""
    from training.export_reader import read_export

    truth = {row["recording_id"]: row for row in csv.DictReader((recordings / "truth.csv").open(encoding="utf-8"))}
    for task in label_studio.tasks(project["id"]):
        labels = truth[task["data"]["recording_id"]]
        label_studio.annotate(task["id"], [
            {"from_name": s.name, "to_name": schema.object_name, "type": "choices",
             "value": {"choices": [labels[s.name]]}} for s in schema.labels])
    exported = read_export(label_studio.export(project["id"]), schema, strict=True, propagate=False)
    assert len(exported.recordings) == len(truth)
    for rec in exported.recordings:
        assert rec.labels == {s.name: truth[rec.recording_id][s.name] for s in schema.labels}


# How the backend reaches the frames in each variant. Only the named route can work: with the
# document root, LABEL_STUDIO_URL points at a closed port and the key is wrong.
BACKEND_ROUTES = {
    "legacy_token": lambda ls, root: {"LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": ls.legacy_token},
    "personal_access_token": lambda ls, root: {"LABEL_STUDIO_URL": ls.url,
                                               "LABEL_STUDIO_API_KEY": ls.personal_access_token()},
    "document_root": lambda ls, root: {"LABEL_STUDIO_URL": f"http://127.0.0.1:{free_port()}",
                                       "LABEL_STUDIO_API_KEY": "not-a-valid-token",
                                       "LOCAL_FILES_DOCUMENT_ROOT": str(root)},
}


@pytest.mark.parametrize("route", list(BACKEND_ROUTES))
def test_every_task_gets_a_valid_prediction_from_the_data_manager_action(
        route, label_studio, project, document_root, model_dir, model_version, start_backend, schema):
    env = {"MODEL_DIR": str(model_dir), **BACKEND_ROUTES[route](label_studio, document_root)}
    backend_url = start_backend(env)
    connected = label_studio.connect_ml_backend(project["id"], backend_url)
    assert connected["state"] == "CO", connected

    label_studio.retrieve_predictions(project["id"])

    tasks = label_studio.tasks(project["id"])
    _assert_one_valid_prediction_each(tasks, schema, model_version)
    # Retrieving again with the same model version adds nothing (LS skips predicted tasks).
    label_studio.retrieve_predictions(project["id"])
    assert sum(len(t["predictions"]) for t in label_studio.tasks(project["id"])) == len(tasks)


def _assert_one_valid_prediction_each(tasks: list[dict], schema, model_version: str) -> None:
    classes = {s.name: set(s.classes) for s in schema.labels}
    assert tasks
    for task in tasks:
        assert len(task["predictions"]) == 1, f"task {task['id']}: {task['predictions']}"
        prediction = task["predictions"][0]
        assert prediction["model_version"] == model_version
        assert 0.0 <= prediction["score"] <= 1.0
        answered = set()
        for item in prediction["result"]:
            assert (item["to_name"], item["type"]) == (schema.object_name, "choices")
            (choice,) = item["value"]["choices"]
            assert choice in classes[item["from_name"]], item
            answered.add(item["from_name"])
        assert answered, f"task {task['id']}: prediction without any label"


def test_a_model_trained_on_the_export_pre_annotates_the_project(
        label_studio, project, recordings, document_root, start_backend, schema, tmp_path):
    """The whole loop: LS export -> training.fit -> backend.models add -> predictions in LS."""
    run, models = tmp_path / "run", tmp_path / "models"
    fit = [sys.executable, "-m", "training.fit", "--export", str(recordings / "export.json"),
           "--data-root", str(document_root), "--out", str(run), "--frames", "3", "--image-size", "32",
           "--width", "0.25", "--epochs-per-step", "1", "--steps", "1", "--threads", "1", "--no-progress"]
    subprocess.run(fit, cwd=REPO_ROOT, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "backend.models", "--model-dir", str(models), "add",
                    str(run / "model.onnx"), "--version", "e2e-trained", "--use"],
                   cwd=REPO_ROOT, check=True, capture_output=True)
    backend_url = start_backend({"MODEL_DIR": str(models), "LOCAL_FILES_DOCUMENT_ROOT": str(document_root)})
    label_studio.connect_ml_backend(project["id"], backend_url)
    label_studio.retrieve_predictions(project["id"])
    _assert_one_valid_prediction_each(label_studio.tasks(project["id"]), schema, "e2e-trained")


def test_a_task_whose_frames_are_missing_gets_no_prediction(
        label_studio, project, model_dir, start_backend):
    """The backend answers a failed task without `result`; LS stores nothing for it, the rest are kept."""
    label_studio.import_tasks(project["id"], [{"recording_id": "gone", "subject_id": "nobody",
                                               "frames": ["/data/local-files/?d=synthetic/frames/gone/00.png"]}])
    backend_url = start_backend({"MODEL_DIR": str(model_dir), "LABEL_STUDIO_URL": label_studio.url,
                                 "LABEL_STUDIO_API_KEY": label_studio.legacy_token})
    label_studio.connect_ml_backend(project["id"], backend_url)
    label_studio.retrieve_predictions(project["id"])
    predicted = {t["data"]["recording_id"]: len(t["predictions"]) for t in label_studio.tasks(project["id"])}
    assert predicted.pop("gone") == 0
    assert set(predicted.values()) == {1}


def test_label_studio_stores_the_class_names_as_the_choice_values(label_studio, project, schema):
    """Label Studio's own reading of label_config.xml: the labels it validates and stores are the
    aliases (the thesis's class names), not the short texts the annotator sees."""
    parsed = label_studio.project(project["id"])["parsed_label_config"]
    assert {name: tuple(parsed[name]["labels"]) for name in parsed} == {s.name: s.classes for s in schema.labels}


def test_prediction_score_orders_the_least_certain_first_before_and_after_a_promoted_version(
        label_studio, project, model_dir, model_version, start_backend, schema, tmp_path):
    """The Data Manager's score column averages the predictions of the PROJECT's model_version;
    the backend points it at the version that predicted, so the column is filled and ordering by
    it ascending lists the least certain recordings first, also after a new version goes live."""
    from backend_fixtures import build_tiny_model, tiny_weights

    models = shutil.copytree(model_dir, tmp_path / "models")  # this test switches versions
    backend_url = start_backend({"MODEL_DIR": str(models), "LABEL_STUDIO_URL": label_studio.url,
                                 "LABEL_STUDIO_API_KEY": label_studio.legacy_token})
    label_studio.connect_ml_backend(project["id"], backend_url)
    view = label_studio.create_view(project["id"], "least certain first", ["tasks:predictions_score"])
    label_studio.retrieve_predictions(project["id"])
    first = _assert_ordered_by_score_of(label_studio, project["id"], view["id"], model_version)

    # A retrain promotes a new version: same registry switch as backend.active_learning's promotion.
    v2 = "e2e-tiny-v2"
    build_tiny_model(tmp_path / "v2.onnx", model_version=v2, weights=tiny_weights(schema, seed=11))
    subprocess.run([sys.executable, "-m", "backend.models", "--model-dir", str(models), "add",
                    str(tmp_path / "v2.onnx"), "--version", v2, "--use"], cwd=REPO_ROOT, check=True, capture_output=True)
    time.sleep(1.5)  # the backend checks the `current` pointer at most once a second
    label_studio.retrieve_predictions(project["id"])
    second = _assert_ordered_by_score_of(label_studio, project["id"], view["id"], v2)
    assert first != second, "the new version's scores must differ, or this test could not tell them apart"
    for task in label_studio.tasks(project["id"]):  # the older version's predictions stay listed
        assert sorted(p["model_version"] for p in task["predictions"]) == sorted([model_version, v2])


def _assert_ordered_by_score_of(ls, project_id: int, view_id: int, version: str) -> dict[int, float]:
    """Waits (the backend sets the project's version right after LS stored the predictions) until
    the project shows `version`; then every task's predictions_score is its `version` score and the
    tab lists them ascending. Returns {task id: score}."""
    deadline = time.monotonic() + 30
    while ls.project(project_id)["model_version"] != version and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ls.project(project_id)["model_version"] == version
    ordered = ls.view_tasks(project_id, view_id)
    scores = {t["id"]: next(p["score"] for p in t["predictions"] if p["model_version"] == version) for t in ordered}
    listed = [t["predictions_score"] for t in ordered]
    assert listed == pytest.approx([scores[t["id"]] for t in ordered])  # filled, with this version's score
    assert listed == sorted(listed)  # least certain first
    return scores
