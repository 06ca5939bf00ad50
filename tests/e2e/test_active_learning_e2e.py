"""End to end against a real Label Studio 1.23.2: active learning.

Partial annotations posted to Label Studio reach our /webhook through the webhook Label Studio
creates when the backend is connected; after RETRAIN_EVERY of them a job exports the project,
trains, evaluates and promotes a new version, and the next "Retrieve Predictions" stores
predictions under it. Then the ML backend's train endpoint (the "Start training" button) sends
START_TRAINING and a warm-started second job promotes again. The backend authenticates to Label
Studio with the personal access token for the first job and with the legacy token for the second.
"""
from __future__ import annotations

import csv
import shutil
import time

import pytest
import requests

pytestmark = pytest.mark.e2e

# One subject per recording: the subject split (70/10/20) then holds out one validation and one
# test recording, and every recording is annotated, so the validation score exists.
TASKS = 6
QUESTIONS_PER_TASK = 4  # of eleven: partial annotations, as annotators give them
FIT_ARGS = "--image-size 32 --frames 3 --width 0.25 --epochs-per-step 1 --threads 1 --batch-size 4"
JOB_TIMEOUT_S = 180.0


@pytest.fixture(scope="module")
def al_recordings(document_root):
    from training.synthetic import generate

    return generate(document_root / "al-synthetic", recordings=TASKS, subjects=TASKS, frames=3, size=64,
                    seed=11).root


@pytest.fixture
def al_model_dir(model_dir, tmp_path):
    """A private copy of the session's MODEL_DIR: promotions here must not reach the other e2e tests."""
    return shutil.copytree(model_dir, tmp_path / "models")


def backend_env(label_studio, api_key: str, model_dir, document_root) -> dict[str, str]:
    return {
        "MODEL_DIR": str(model_dir), "LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": api_key,
        # Label Studio and the backend share the disk here: jobs read frames there (the route without
        # a shared disk is the test at the end).
        "LOCAL_FILES_DOCUMENT_ROOT": str(document_root),
        "RETRAIN_EVERY": str(TASKS),
        # Scores of a 32 px model trained for seconds on six recordings are noise; a tolerance of 1.0
        # promotes any model that has a validation score. This test checks the mechanics (trigger,
        # export, train, evaluate, promote, serve); the promotion gate has its own unit tests.
        "PROMOTE_TOLERANCE": "1.0",
        "AL_FIT_ARGS": FIT_ARGS, "AL_WARM_EPOCHS_PER_STEP": "1",
        # Settings a developer's shell may hold that would change the runner or the steps.
        "REDIS_URL": "", "AL_STEPS_MODULE": "", "FULL_RETRAIN_ON_START": "false",
    }


def backend_get(url: str, path: str) -> dict:
    r = requests.get(f"{url}{path}", timeout=30)
    r.raise_for_status()
    return r.json()


def project_training(url: str, project_id: int) -> dict | None:
    return backend_get(url, "/training")["projects"].get(str(project_id))


def wait_for_result(url: str, project_id: int, previous_job: str | None) -> dict:
    """The last_result of the first job finished after `previous_job` (none running or queued)."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    status = None
    while time.monotonic() < deadline:
        status = project_training(url, project_id)
        last = (status or {}).get("last_result")
        if status and status["job"] is None and status["queued_job"] is None and last \
                and last["job_id"] != previous_job:
            return last
        time.sleep(1.0)
    raise AssertionError(f"no training result within {JOB_TIMEOUT_S} s; last status: {status}")


def partial_result(labels: dict[str, str], schema, index: int) -> list[dict]:
    """QUESTIONS_PER_TASK answers from the truth, a different window of questions per task."""
    names = [s.name for s in schema.labels]
    chosen = [names[(2 * index + k) % len(names)] for k in range(QUESTIONS_PER_TASK)]
    return [{"from_name": name, "to_name": schema.object_name, "type": "choices",
             "value": {"choices": [labels[name]]}} for name in chosen]


def annotate_every_task(label_studio, project_id: int, recordings, schema, before_last=lambda: None) -> None:
    """Partial answers from truth.csv on every task; `before_last()` runs before the last one."""
    truth = {row["recording_id"]: row for row in csv.DictReader((recordings / "truth.csv").open(encoding="utf-8"))}
    tasks = label_studio.tasks(project_id)
    for index, task in enumerate(tasks):
        if index == len(tasks) - 1:
            before_last()
        label_studio.annotate(task["id"], partial_result(truth[task["data"]["recording_id"]], schema, index))


def predictions_by_version(label_studio, project_id: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for task in label_studio.tasks(project_id):
        for prediction in task["predictions"]:
            counts[prediction["model_version"]] = counts.get(prediction["model_version"], 0) + 1
    return counts


def assert_promoted(result: dict, url: str, *, before: list[str]) -> str:
    assert result["status"] == "succeeded" and result["promoted"], result
    version = result["version"]
    assert version not in before
    assert backend_get(url, "/versions") == {"versions": [*before, version], "current": version}
    setup = requests.post(f"{url}/setup", json={}, timeout=30).json()
    assert setup["model_version"] == version
    return version


def test_annotations_then_start_training_each_promote_a_served_model(
        label_studio, label_config, al_recordings, al_model_dir, model_version, document_root,
        start_backend, schema):
    project_id = label_studio.create_recordings_project("active learning", label_config, al_recordings)["id"]
    backend = start_backend(backend_env(label_studio, label_studio.personal_access_token(), al_model_dir,
                                        document_root))
    ml_backend = label_studio.connect_ml_backend(project_id, backend)
    assert ml_backend["state"] == "CO", ml_backend
    label_studio.retrieve_predictions(project_id)
    assert predictions_by_version(label_studio, project_id) == {model_version: TASKS}

    # 1) RETRAIN_EVERY partial annotations, each delivered by Label Studio's webhook.
    # Label Studio delivers webhooks synchronously without Redis: a counted change is visible at once.
    def one_short_of_the_threshold():
        waiting = project_training(backend, project_id)
        assert waiting is not None and waiting["state"] == "idle" and waiting["job"] is None, waiting
        assert waiting["changes_since_model"] == TASKS - 1

    annotate_every_task(label_studio, project_id, al_recordings, schema, before_last=one_short_of_the_threshold)

    first = wait_for_result(backend, project_id, previous_job=None)
    assert first["reasons"] == [f"{TASKS} annotation changes"] and first["export_tasks"] == TASKS, first
    assert not first["warm_start"]  # the initial model has no checkpoint: trained from scratch
    assert first["metrics"]["current_version"] == model_version and model_version in first["promotion_reason"]
    second_version = assert_promoted(first, backend, before=[model_version])
    label_studio.retrieve_predictions(project_id)
    assert predictions_by_version(label_studio, project_id) == {model_version: TASKS, second_version: TASKS}

    # 2) "Start training" through Label Studio's ML API, with the backend restarted on the legacy
    #    token: the job state and the versions live in MODEL_DIR.
    backend = start_backend(backend_env(label_studio, label_studio.legacy_token, al_model_dir, document_root))
    # LS's setup check needs the project in the body (a PATCH of the url alone answers 500), as the UI
    # sends it. LS's webhook keeps the first URL (it is made only on connect); no annotations follow.
    label_studio.request("PATCH", f"/api/ml/{ml_backend['id']}", json={"url": backend, "project": project_id})
    label_studio.request("POST", f"/api/ml/{ml_backend['id']}/train", json={})

    second = wait_for_result(backend, project_id, previous_job=first["job_id"])
    assert second["reasons"] == ["START_TRAINING"] and second["export_tasks"] == TASKS, second
    assert second["warm_start"] and second["metrics"]["current_version"] == second_version, second
    third_version = assert_promoted(second, backend, before=[model_version, second_version])
    label_studio.retrieve_predictions(project_id)
    assert predictions_by_version(label_studio, project_id) == \
        {model_version: TASKS, second_version: TASKS, third_version: TASKS}


def test_a_backend_without_the_shared_disk_promotes_from_frames_served_by_label_studio(
        label_studio, label_config, al_recordings, al_model_dir, document_root, start_backend, schema):
    project_id = label_studio.create_recordings_project("active learning via LS", label_config, al_recordings)["id"]
    env = backend_env(label_studio, label_studio.legacy_token, al_model_dir, document_root)
    del env["LOCAL_FILES_DOCUMENT_ROOT"]  # frames only through Label Studio's local-files storage
    backend = start_backend(env)
    label_studio.connect_ml_backend(project_id, backend)
    annotate_every_task(label_studio, project_id, al_recordings, schema)
    result = wait_for_result(backend, project_id, previous_job=None)
    assert result["metrics"]["new_val_mean_balanced_accuracy"] is not None, result
    assert result["promoted"], result
