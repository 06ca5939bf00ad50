"""Hostile and careless HTTP input: every malformed field is a 4xx naming the field, never a 500;
bodies are bounded; errors never echo the input; basic auth covers the schema too."""
from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient

from backend.__main__ import warn_if_open
from backend.active_learning import WebhookError
from backend.app import create_app
from backend.settings import Settings
from backend_fixtures import add_tiny_version, backend_settings, task, write_recording


@pytest.fixture
def client(tmp_path):
    return TestClient(create_app(backend_settings(tmp_path, max_request_mb=1.0)))


def locations(response) -> list[list]:
    return [e["loc"] for e in response.json()["detail"]]


def test_predict_with_params_not_an_object_is_a_422_naming_params(client):
    response = client.post("/predict", json={"tasks": [], "params": "x"})
    assert response.status_code == 422 and locations(response) == [["body", "params"]]


@pytest.mark.parametrize("path, body, field", [
    ("/webhook", {"action": ["x"]}, "action"),
    ("/webhook", {"action": ""}, "action"),
    ("/setup", {"hostname": 5}, "hostname"),
    ("/setup", {"project": "1.2", "schema": {"xml": 1}}, "schema"),
    ("/setup", {"access_token": ["t"]}, "access_token"),
    ("/predict", {"tasks": "nope"}, "tasks"),
    ("/predict", {"tasks": [], "label_config": 7}, "label_config"),
])
def test_a_field_of_the_wrong_type_is_a_422_naming_it(client, path, body, field):
    response = client.post(path, json=body)
    assert response.status_code == 422 and ["body", field] in locations(response)


@pytest.mark.parametrize("raw", [b"[1, 2", b"\xff\xfe not utf-8", b"[" * 100_000 + b"]" * 100_000, b"null",
                                 b'"\\ud800"'])
@pytest.mark.parametrize("path", ["/setup", "/predict", "/webhook"])
def test_unparsable_or_odd_json_bodies_are_4xx(client, path, raw):
    response = client.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text


def test_a_large_invalid_body_is_a_small_422_that_does_not_echo_it(client):
    secret_like = "frame-" + "x" * 200
    body = json.dumps([secret_like] * 4000)  # ~0.8 MB, a JSON list where an object belongs
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert len(response.content) < 1000 and secret_like not in response.text
    assert all(set(e) == {"loc", "type", "msg"} for e in response.json()["detail"])


def test_many_validation_errors_are_capped_and_input_keys_cut(client):
    body = {"tasks": [], "params": "x", "label_config": 1, "project": 1.5, "k" * 5000: 1}
    response = client.post("/predict", json=body)
    assert response.status_code == 422 and len(response.content) < 2000


def test_bodies_above_max_request_mb_get_413_declared_or_streamed(client):
    big = b'{"tasks": [' + b'{"data": {}},' * 100_000 + b'{}]}'  # 1.3 MB > MAX_REQUEST_MB=1
    assert client.post("/predict", content=big, headers={"Content-Type": "application/json"}).status_code == 413

    def chunks():  # no Content-Length: counted while it streams
        for i in range(0, len(big), 64 * 1024):
            yield big[i:i + 64 * 1024]
    response = client.post("/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "MAX_REQUEST_MB" in response.text
    assert client.post("/predict", json={"tasks": []}).status_code == 200  # small bodies still pass


def test_basic_auth_also_guards_the_schema_and_the_docs_pages_are_off(tmp_path):
    settings = backend_settings(tmp_path, basic_auth_user="ls", basic_auth_pass="s3cret-pass")
    client = TestClient(create_app(settings))
    assert client.get("/openapi.json").status_code == 401
    schema = client.get("/openapi.json", auth=("ls", "s3cret-pass"))
    assert schema.status_code == 200 and "/predict" in schema.json()["paths"]
    for page in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert client.get(page).status_code in (401, 404)
        assert client.get(page, auth=("ls", "s3cret-pass")).status_code == 404
    assert client.get("/").status_code == client.get("/health").status_code == 200


def test_auth_header_garbage_is_a_401_not_a_500(tmp_path):
    client = TestClient(create_app(backend_settings(tmp_path, basic_auth_user="ls", basic_auth_pass="pw")))
    for header in ("Basic !!!", "Basic " + "//79", "Bearer x", "Basic"):
        assert client.post("/predict", json={"tasks": []}, headers={"Authorization": header}).status_code == 401


@pytest.mark.parametrize("host, auth, warns", [
    ("0.0.0.0", False, True), ("192.168.1.5", False, True), ("::", False, True),
    ("127.0.0.1", False, False), ("::1", False, False), ("localhost", False, False), ("0.0.0.0", True, False)])
def test_startup_warns_without_auth_on_a_non_loopback_address(caplog, host, auth, warns):
    settings = Settings(basic_auth_user="u", basic_auth_pass="p") if auth else Settings()
    with caplog.at_level(logging.WARNING, logger="backend"):
        assert warn_if_open(host, settings) is warns
    assert any("without basic auth" in r.getMessage() for r in caplog.records) is warns


def test_a_lone_surrogate_in_the_input_never_breaks_the_response(tmp_path):
    settings = backend_settings(tmp_path)
    add_tiny_version(settings.model_dir, tmp_path, "v1")
    good = write_recording(settings.local_files_document_root, "good", [80] * 4)
    body = json.dumps({"tasks": [task(1, good), {"id": "\ud800", "data": {"frames": ["\ud800.png"]}}],
                       "project": "\ud800"})
    response = TestClient(create_app(settings)).post("/predict", content=body,
                                                     headers={"Content-Type": "application/json"})
    results = response.json()["results"]
    assert response.status_code == 200 and results[0]["result"]
    assert results[1]["error"].startswith("bad_frames: data.frames[0]")


@pytest.mark.parametrize("hostname", ["config_from_settings", "http://[bad", "ftp://x"])
def test_a_setup_hostname_that_is_no_url_fails_tasks_not_the_request(tmp_path, hostname):
    """Found by the fuzzer: /setup {"hostname": "config_from_settings", "access_token": ...} made
    every later /predict a 500."""
    settings = backend_settings(tmp_path)
    add_tiny_version(settings.model_dir, tmp_path, "v1")
    good = write_recording(settings.local_files_document_root, "good", [80] * 4)
    client = TestClient(create_app(settings))
    assert client.post("/setup", json={"hostname": hostname, "access_token": "t"}).status_code == 200
    response = client.post("/predict", json={"tasks": [task(1, good), task(2, ["/data/upload/1/a.png"])]})
    assert response.status_code == 200
    assert all("result" in r or r["error"].split(":")[0] in ("bad_setup", "frame_unavailable")
               for r in response.json()["results"])


def test_an_error_detail_with_a_lone_surrogate_is_still_a_4xx(tmp_path):
    app = create_app(backend_settings(tmp_path))

    def refuse(event, data, **kwargs):
        raise WebhookError(f"bad project {data['project']}")
    app.state.model.fit = refuse
    body = json.dumps({"action": "START_TRAINING", "project": "\ud800"})
    response = TestClient(app).post("/webhook", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["detail"] == "bad project \ud800"
