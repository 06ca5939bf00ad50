"""The HTTP protocol against the real recorded Label Studio 1.23.2 bodies."""
from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from backend.app import NO_MODEL_VERSION, create_app
from backend.registry import ModelRegistry
from backend_fixtures import (FakeLabelStudio, add_tiny_version, backend_settings, fake_jwt, grey_image_bytes,
                              ls_fixture, recorded_schema, write_recording)

TOKEN = "legacy-test-token-123"


@pytest.fixture
def served(tmp_path):
    """A backend over the recorded batch: rec1/rec2 as local files, task 5's uploads on a fake LS."""
    body = ls_fixture("predict_request_batch5.json")
    upload_refs = body["tasks"][4]["data"]["frames"]
    fake = FakeLabelStudio({r.removeprefix("/data/upload/"): grey_image_bytes(200) for r in upload_refs}, TOKEN)
    settings = backend_settings(tmp_path, label_studio_url=fake.url, label_studio_api_key=TOKEN)
    for rec, value in (("rec1", 30), ("rec2", 220)):
        write_recording(settings.local_files_document_root / "recordings", rec, [value] * 10)
    for i in range(10):  # the recorded refs are frame_00.png ...: rename ours to match
        for rec in ("rec1", "rec2"):
            folder = settings.local_files_document_root / "recordings" / rec
            (folder / f"{i:02d}.png").rename(folder / f"frame_{i:02d}.png")
    yield settings, body, fake
    fake.close()


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels or None) or 0.0


def test_health_and_setup_before_any_model(tmp_path):
    client = TestClient(create_app(backend_settings(tmp_path)))
    health = client.get("/health").json()
    assert health == {"status": "UP", "model_class": "RecordingBackend", "model_version": None, "training": "idle",
                      "training_jobs": {}}
    assert client.post("/setup", json=ls_fixture("setup_request.json")).json() == {"model_version": NO_MODEL_VERSION}
    answer = client.post("/predict", json=ls_fixture("predict_request_batch5.json")).json()
    assert len(answer["results"]) == 5 and all("result" not in r for r in answer["results"])


def test_setup_answers_from_the_pointer_without_loading_the_model(tmp_path):
    settings = backend_settings(tmp_path)
    add_tiny_version(settings.model_dir, tmp_path, "v7", schema=recorded_schema())
    app = create_app(settings)
    client = TestClient(app)
    started = time.perf_counter()
    assert client.post("/setup", json=ls_fixture("setup_request.json")).json() == {"model_version": "v7"}
    assert time.perf_counter() - started < 0.5
    assert app.state.model.live._loaded is None  # nothing loaded on the /setup path
    assert client.get("/health").json()["model_version"] == "v7"


def test_predict_batch_one_entry_per_task_in_order(served, tmp_path):
    settings, body, fake = served
    add_tiny_version(settings.model_dir, tmp_path, "v1", schema=recorded_schema(), frames=4)
    client = TestClient(create_app(settings))  # no /setup first: works after a restart
    failed_before = sample("recmeta_tasks_failed_total", reason="frame_unavailable")
    answer = client.post("/predict", json=body).json()
    setup_version = client.post("/setup", json=ls_fixture("setup_request.json")).json()["model_version"]
    assert answer["model_version"] == setup_version == "v1"
    results = answer["results"]
    assert len(results) == len(body["tasks"]) == 5
    # tasks 3 and 4 point at http://127.0.0.1:8081 (nothing there, and not an allowed host)
    assert ["result" in r for r in results] == [True, True, False, False, True]
    assert sample("recmeta_tasks_failed_total", reason="frame_unavailable") == failed_before + 2
    schema = recorded_schema()
    for entry in (results[0], results[1], results[4]):
        assert entry["model_version"] == setup_version
        names = [item["from_name"] for item in entry["result"]]
        assert names == list(schema.names)  # every trained label, in project order
        for item in entry["result"]:
            assert item["to_name"] == "frames" and item["type"] == "choices"
            assert item["value"]["choices"][0] in schema[item["from_name"]].classes
            assert 0.0 < item["score"] <= 1.0
        k = {item["from_name"]: len(schema[item["from_name"]].classes) for item in entry["result"]}
        assert entry["score"] == pytest.approx(min(  # lowest certainty (docs/backend.md)
            max(0.0, (item["score"] - 1 / k[item["from_name"]]) / (1 - 1 / k[item["from_name"]]))
            for item in entry["result"]), abs=1e-5)
    # dark rec1 and bright rec2 are different inputs: the tiny model must not answer identically
    assert results[0]["result"] != results[1]["result"]
    assert fake.requests == 4  # only the 4 frames the model uses were downloaded for task 5


def test_interactive_single_task_request(served, tmp_path):
    settings, _, _ = served
    add_tiny_version(settings.model_dir, tmp_path, "v1", schema=recorded_schema())
    body = ls_fixture("predict_request_interactive.json")
    client = TestClient(create_app(settings))
    answer = client.post("/predict", json=body).json()
    assert len(answer["results"]) == len(body["tasks"]) == 1
    assert answer["results"][0]["model_version"] == "v1" and answer["results"][0]["result"]


def test_frames_from_label_studio_with_a_personal_access_token_given_by_setup(tmp_path):
    """No key in the environment: /setup's hostname + access_token (a PAT) fetch the uploads."""
    pat = fake_jwt("refresh")
    fake = FakeLabelStudio({"1/a.png": grey_image_bytes(90)}, token="unused-legacy", pat=pat)
    try:
        settings = backend_settings(tmp_path)
        add_tiny_version(settings.model_dir, tmp_path, "v1", schema=recorded_schema())
        client = TestClient(create_app(settings))
        body = ls_fixture("predict_request_batch5.json")
        body["tasks"] = [dict(body["tasks"][0], data={"frames": ["/data/upload/1/a.png"]})]
        assert "result" not in client.post("/predict", json=body).json()["results"][0]  # no credentials yet
        client.post("/setup", json=dict(ls_fixture("setup_request.json"), hostname=fake.url, access_token=pat))
        assert client.post("/predict", json=body).json()["results"][0]["result"]
    finally:
        fake.close()


@pytest.mark.parametrize("name", ["webhook_ANNOTATION_CREATED.json", "webhook_ANNOTATION_UPDATED.json",
                                  "webhook_PROJECT_UPDATED.json", "webhook_START_TRAINING.json",
                                  "webhook_TASKS_CREATED.json"])
def test_webhook_accepts_every_recorded_action_and_reaches_fit(tmp_path, name):
    app = create_app(backend_settings(tmp_path))
    seen = []
    app.state.model.fit = lambda event, data, **kw: seen.append((event, data))
    body = ls_fixture(name)
    assert TestClient(app).post("/webhook", json=body).json() == {"status": "ok"}
    assert seen == [(body["action"], body)]


def test_webhook_without_action_is_rejected(tmp_path):
    client = TestClient(create_app(backend_settings(tmp_path)))
    assert client.post("/webhook", json={"project": {"id": 1}}).status_code == 422
    assert client.post("/predict", json={"tasks": "nope"}).status_code == 422


def test_versions_get_and_post(tmp_path):
    settings = backend_settings(tmp_path)
    client = TestClient(create_app(settings))
    assert client.get("/versions").json() == {"versions": [], "current": None}
    add_tiny_version(settings.model_dir, tmp_path, "a")
    add_tiny_version(settings.model_dir, tmp_path, "b")
    ModelRegistry(settings.model_dir).use("b")
    for method in (client.get, client.post):
        assert method("/versions").json() == {"versions": ["a", "b"], "current": "b"}


def test_metrics_exposes_counters_and_latency(served, tmp_path):
    settings, body, _ = served
    add_tiny_version(settings.model_dir, tmp_path, "v1", schema=recorded_schema())
    client = TestClient(create_app(settings))
    before = sample("recmeta_predictions_total"), sample("recmeta_predict_seconds_count")
    client.post("/predict", json=body)
    text = client.get("/metrics").text
    assert "recmeta_frames_fetched_total" in text and 'recmeta_tasks_failed_total{reason="frame_unavailable"}' in text
    assert sample("recmeta_predictions_total") == before[0] + 3
    assert sample("recmeta_predict_seconds_count") == before[1] + 1


def test_webhook_reaches_active_learning_and_training_status_is_served(tmp_path):
    fake = FakeLabelStudio({"/api/projects/1": b"{}"}, TOKEN)  # the project the webhook names exists
    client = TestClient(create_app(backend_settings(tmp_path)))
    client.post("/setup", json={**ls_fixture("setup_request.json"), "hostname": fake.url, "access_token": TOKEN})
    answer = client.post("/webhook", json=ls_fixture("webhook_ANNOTATION_CREATED.json")).json()
    fake.close()
    assert answer["status"] == "counted"  # one annotation: below RETRAIN_EVERY, no job
    status = client.get("/training").json()
    assert status["state"] == "idle"
    assert client.get("/health").json()["training"] == "idle"
