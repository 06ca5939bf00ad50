"""End to end against a real Label Studio 1.23.2: active learning.

The last test is the path of a new user: a model trained offline on one export and added with
`python -m backend.models add`, a new project with recordings it has never seen (frames through
Label Studio's local files, uploaded to Label Studio, and on an allowed http host), a backend with
no Label Studio settings (the host and token come from /setup), partial annotations, "Start
training", then RETRAIN_EVERY annotations: each job extends the offline split with the new
subjects, trains on them and is gated per label; predictions come back under the new versions.

The first test is the operator-configured path (LABEL_STUDIO_URL and a key, a shared disk):
partial annotations posted to Label Studio reach our /webhook through the webhook Label Studio
creates when the backend is connected; after RETRAIN_EVERY of them a job exports the project,
trains, evaluates and promotes a new version, and the next "Retrieve Predictions" stores
predictions under it. Then the ML backend's train endpoint (the "Start training" button) sends
START_TRAINING and a warm-started second job promotes again. The backend authenticates to Label
Studio with the personal access token for the first job and with the legacy token for the second.
"""
from __future__ import annotations

import csv
import http.server
import json
import re
import shlex
import shutil
import subprocess
import sys
import time

import pytest
import requests

from .ls_server import REPO_ROOT
from .server_process import ThreadedHTTPServer

pytestmark = pytest.mark.e2e

# One subject per recording: the subject split (70/10/20) then holds out one validation and one
# test recording, and every recording is annotated, so the validation score exists.
TASKS = 6
QUESTIONS_PER_TASK = 4  # of eleven: partial annotations, as annotators give them
FIT_ARGS = "--image-size 32 --frames 3 --width 0.25 --epochs-per-step 1 --threads 1 --batch-size 4"
JOB_TIMEOUT_S = 180.0
NEW_TASKS = 9  # recordings of a new project, each of its own new subject
FIRST_ANNOTATED = 3  # annotated before "Start training"
RETRAIN_EVERY = 4  # then this many more start the next job (more than FIRST_ANNOTATED)


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


def partial_result(labels: dict[str, str], schema, index: int, questions: int = QUESTIONS_PER_TASK) -> list[dict]:
    """`questions` answers from the truth, a different window of questions per task."""
    names = [s.name for s in schema.labels]
    chosen = [names[(2 * index + k) % len(names)] for k in range(min(questions, len(names)))]
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


class FrameHost(ThreadedHTTPServer):
    """A plain http server on loopback (an allowed frame host): serves `root`, records Authorization headers."""

    def __init__(self, root):
        self.auth: list[str | None] = []
        outer = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):  # noqa: N802 (http.server naming)
                outer.auth.append(self.headers.get("Authorization"))
                super().do_GET()

            def log_message(self, *args):
                pass

        super().__init__(Handler)


@pytest.fixture
def offline_model(document_root, tmp_path):
    """A model trained offline on one export (its own subjects) and added with `python -m backend.models add`."""
    from training.synthetic import generate

    data = generate(document_root / "offline", recordings=6, subjects=6, frames=3, size=64, seed=21).root
    run = tmp_path / "offline-run"
    subprocess.run([sys.executable, "-m", "training.fit", "--export", str(data / "export.json"), "--data-root",
                    str(document_root), "--out", str(run), "--no-progress", *shlex.split(FIT_ARGS)],
                   cwd=REPO_ROOT, check=True, capture_output=True, timeout=300)
    models = tmp_path / "models"
    subprocess.run([sys.executable, "-m", "backend.models", "--model-dir", str(models), "add",
                    str(run / "model.onnx"), "--version", "offline-v1", "--use"],
                   cwd=REPO_ROOT, check=True, capture_output=True)
    return models, json.loads((run / "split.json").read_text())


def new_project_tasks(label_studio, project_id: int, recordings, document_root, frame_host: FrameHost) -> list[dict]:
    """The new recordings (new subject and recording ids), frames from three places: a third through
    Label Studio's local files, a third uploaded to Label Studio, a third from an allowed http host."""
    tasks = json.loads((recordings / "tasks.json").read_text(encoding="utf-8"))
    out = []
    for i, task in enumerate(tasks):
        data = dict(task["data"], recording_id="new_" + task["data"]["recording_id"],
                    subject_id="new_" + task["data"]["subject_id"])
        paths = [ref.split("?d=", 1)[1] for ref in data["frames"]]
        if i % 3 == 1:
            files = [("file", (f"{data['recording_id']}_{k}.png", (document_root / p).read_bytes(),
                               "image/png")) for k, p in enumerate(paths)]
            upload = label_studio.request("POST", f"/api/projects/{project_id}/import?commit_to_project=false",
                                          files=files).json()
            listed = label_studio.request("GET", f"/api/projects/{project_id}/file-uploads?ids="
                                                 f"{json.dumps(upload['file_upload_ids'])}").json()
            # LS stores "upload/<project>/<uuid>-<name>" and serves it at /data/upload/...; keep the frame order
            names = sorted((f["file"] for f in listed), key=lambda name: name.split("-", 1)[1])
            data["frames"] = [f"/data/{name}" for name in names]
        elif i % 3 == 2:
            data["frames"] = [f"{frame_host.url}/{p}" for p in paths]
        out.append({"data": data})
    return out


def test_an_offline_model_learns_from_a_new_project_with_no_label_studio_settings(
        label_studio, label_config, document_root, offline_model, start_backend, schema, tmp_path):
    """The demo's path: no LABEL_STUDIO_URL, no key, no shared disk: /setup supplies the host and token."""
    from training.synthetic import generate

    model_dir, offline_split = offline_model
    recordings = generate(document_root / "new-project", recordings=NEW_TASKS, subjects=NEW_TASKS, frames=3,
                          size=64, seed=22).root
    frame_host = FrameHost(document_root)
    project_id = label_studio.create_project("new recordings", label_config)["id"]
    label_studio.add_local_storage(project_id, recordings)
    label_studio.import_tasks(project_id, new_project_tasks(label_studio, project_id, recordings, document_root,
                                                                   frame_host))
    backend = start_backend({
        "MODEL_DIR": str(model_dir), "RETRAIN_EVERY": str(RETRAIN_EVERY), "ALLOWED_FRAME_HOSTS": "127.0.0.1",
        # tiny models on a handful of recordings: the gate's mean and per-label tolerances are opened so that
        # the served version changes; the comparison itself is in the status (unit tests cover refusals)
        "PROMOTE_TOLERANCE": "1.0", "PROMOTE_LABEL_TOLERANCE": "1.0", "PROMOTE_MIN_LABELS": "1",
        "AL_FIT_ARGS": FIT_ARGS, "AL_WARM_EPOCHS_PER_STEP": "1",
        "REDIS_URL": "", "AL_STEPS_MODULE": "", "FULL_RETRAIN_ON_START": "false"})
    try:
        ml_backend = label_studio.connect_ml_backend(project_id, backend)
        assert ml_backend["state"] == "CO", ml_backend
        label_studio.retrieve_predictions(project_id)
        assert predictions_by_version(label_studio, project_id) == {"offline-v1": NEW_TASKS}, \
            [line for log in tmp_path.glob("backend-*.log") for line in log.read_text().splitlines()
             if "not predicted" in line]  # all three sources
        assert frame_host.auth and all(auth is None for auth in frame_host.auth)  # no token to the frame host

        # 1) partial annotations on some new recordings, then "Start training"
        truth = {r["recording_id"]: r for r in csv.DictReader((recordings / "truth.csv").open(encoding="utf-8"))}
        tasks = label_studio.tasks(project_id)
        # every question answered: a label whose training annotations hold one class is never served, and the
        # retrain learns from these few recordings only
        for index, task in enumerate(tasks[:FIRST_ANNOTATED]):
            label_studio.annotate(task["id"], partial_result(truth[task["data"]["recording_id"][4:]], schema, index,
                                                             questions=len(schema.labels)))
        assert project_training(backend, project_id)["changes_since_model"] == FIRST_ANNOTATED
        label_studio.request("POST", f"/api/ml/{ml_backend['id']}/train", json={})
        first = wait_for_result(backend, project_id, previous_job=None)
        assert first["reasons"] == ["START_TRAINING"] and first["warm_start"], first
        version = check_trained_on_new_recordings(first, backend, model_dir, project_id, tasks[:FIRST_ANNOTATED],
                                                  offline_split, "offline-v1")
        label_studio.retrieve_predictions(project_id)
        assert predictions_by_version(label_studio, project_id) == {"offline-v1": NEW_TASKS, version: NEW_TASKS}

        # 2) RETRAIN_EVERY more annotations start the next job by themselves
        later = tasks[FIRST_ANNOTATED:FIRST_ANNOTATED + RETRAIN_EVERY]
        for index, task in enumerate(later):
            label_studio.annotate(task["id"], partial_result(truth[task["data"]["recording_id"][4:]], schema, index))
        second = wait_for_result(backend, project_id, previous_job=first["job_id"])
        assert second["reasons"] == [f"{RETRAIN_EVERY} annotation changes"], second
        check_trained_on_new_recordings(second, backend, model_dir, project_id, later, offline_split, version)
        health = backend_get(backend, "/health")
        assert health["training_jobs"][str(project_id)]["outcome"] == "promoted", health
    finally:
        frame_host.close()


def check_trained_on_new_recordings(result: dict, backend: str, model_dir, project_id: int, annotated: list[dict],
                                    offline_split: dict, current: str) -> str:
    """The job's split holds the newly annotated recordings (the offline subjects kept), its training
    log counts them, and the per-label comparison with the current model is in the result."""
    assert result["status"] == "succeeded", result
    job = model_dir / "active_learning" / "projects" / str(project_id) / "jobs" / result["job_id"]
    split = json.loads((job / "run" / "split.json").read_text())
    placed = {r for part in ("train", "val", "test") for r in split["recordings"][part]}
    assert {t["data"]["recording_id"] for t in annotated} <= placed
    for part in ("train", "val", "test"):
        assert set(offline_split["subjects"][part]) <= set(split["subjects"][part])
    assert split["recordings"]["val"] and result["split"]["val_subjects"] >= 1
    new_subjects = sum(len(v) for v in split["new_subjects"].values())
    assert re.search(rf"split: extended .*: \d+ recordings of {new_subjects} new labelled subjects",
                     (job / "train.log").read_text()), (job / "train.log").read_text()[-2000:]
    metrics = result["metrics"]
    assert metrics["current_version"] == current and metrics["labels"], metrics
    assert "val mean balanced accuracy" in result["promotion_reason"] and result["promoted"], result
    assert backend_get(backend, "/versions")["current"] == result["version"]
    return result["version"]
