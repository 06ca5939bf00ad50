"""Bad tasks, slow hosts, many projects and secrets in URLs: each costs only itself, is bounded in
time and memory, and leaks nothing into logs or answers."""
from __future__ import annotations

import io
import logging
import threading
import time
import tracemalloc

import pytest
from fastapi.testclient import TestClient

import backend.recording_model as rm
from backend.app import create_app
from backend.log_redaction import redactor
from backend.project_configs import ProjectConfigs
from backend.recording_model import RecordingBackend
from backend_fixtures import (FakeLabelStudio, TrickleServer, add_tiny_version, backend_settings, grey_image_bytes,
                              task, write_recording)
from training.frame_source import FrameError, FrameFetcher, FrameSourceConfig
from training.schema import DEFAULT_LABEL_CONFIG

SLOW_BODY = grey_image_bytes(100)  # a few hundred bytes: trickled, it would take minutes


@pytest.fixture
def served(tmp_path):
    """(settings, backend, good refs): a tiny model and a 4-frame local recording."""
    def make(**overrides):
        settings = backend_settings(tmp_path, **overrides)
        add_tiny_version(settings.model_dir, tmp_path, "v1")
        good = write_recording(settings.local_files_document_root, "good", [80] * 4)
        return settings, RecordingBackend(settings), good
    return make


@pytest.mark.parametrize("bad_ref, problem", [
    ("/data/local-files/?d=a\x00b.png", "NUL"), ("\ud800.png", "surrogate"), ("http://[bad", "malformed URL"),
    ("http://host:99999/x.png", "malformed URL"), ("x" * 9000, "longer than")])
def test_a_malformed_frame_ref_fails_its_task_naming_the_field_and_the_rest_are_predicted(served, bad_ref, problem):
    _, backend, good = served()
    results = backend.predict([task(1, good), task(2, [good[0], bad_ref]), task(3, good)])
    assert results[0]["result"] and results[2] == results[0]
    assert results[1]["error"].startswith("bad_frames: data.frames[1]") and problem in results[1]["error"]
    assert bad_ref not in results[1]["error"]


def test_a_task_that_is_not_an_object_fails_only_itself(served):
    _, backend, good = served()
    results = backend.predict([task(1, good), 5, "x", None, task(2, good)])
    assert [("result" in r) for r in results] == [True, False, False, False, True]
    assert results[1]["error"].startswith("bad_task: a task must be a JSON object")


def test_the_fetcher_refuses_malformed_refs_itself(tmp_path):
    fetcher = FrameFetcher(FrameSourceConfig(document_root=str(tmp_path)))
    for ref in ("a\x00b", "\udfff", "http://[::1", "http://h:x/"):
        with pytest.raises(FrameError):
            fetcher.fetch(ref)


def test_a_trickling_host_is_cut_at_frame_timeout_in_total():
    slow = TrickleServer(SLOW_BODY, interval_s=0.2)
    try:
        fetcher = FrameFetcher(FrameSourceConfig(allowed_hosts=("127.0.0.1",), timeout_s=1.0))
        started = time.monotonic()
        with pytest.raises(FrameError, match="timed out after 1.0 s"):
            fetcher.fetch(f"{slow.url}/a.png")
        assert time.monotonic() - started < 3.0  # every byte came within the read timeout: 60 s+ before
    finally:
        slow.close()


def test_a_slow_host_costs_its_own_task_a_timeout_and_delays_no_other_request(served):
    slow = TrickleServer(SLOW_BODY, interval_s=0.2)
    try:
        settings, backend, good = served(allowed_frame_hosts=("127.0.0.1",), frame_timeout_s=1.5)
        slow_task = task(9, [f"{slow.url}/{i}.png" for i in range(8)])  # 8 frames > HOST_THREADS: some queue
        answers = {}

        def predict_slow():
            answers["slow"] = backend.predict([task(1, good), slow_task])
        worker = threading.Thread(target=predict_slow)
        worker.start()
        time.sleep(0.3)  # the slow host now holds its threads
        started = time.monotonic()
        answers["other"] = backend.predict([task(2, good)])  # another request, local frames only
        other_took = time.monotonic() - started
        worker.join(10)
        assert answers["other"][0]["result"] and other_took < 1.0  # not queued behind the slow host
        good_answer, slow_answer = answers["slow"]
        assert good_answer["result"] == answers["other"][0]["result"]
        assert slow_answer["error"].split(":")[0] in ("timeout", "frame_unavailable")
        assert "127.0.0.1" in slow_answer["error"]
    finally:
        slow.close()


def test_past_the_predict_deadline_unfinished_tasks_get_timeout_and_the_rest_are_answered(served, monkeypatch):
    monkeypatch.setattr(rm, "MAX_BATCH", 1)  # one task per chunk: the slow chunk comes first
    slow = TrickleServer(SLOW_BODY, interval_s=0.2)
    try:
        _, backend, good = served(allowed_frame_hosts=("127.0.0.1",), frame_timeout_s=5.0, predict_timeout_s=1.0)
        started = time.monotonic()
        results = backend.predict([task(1, [f"{slow.url}/a.png"]), task(2, good), task(3, [f"{slow.url}/b.png"])])
        assert time.monotonic() - started < 3.0
        assert results[0]["error"].startswith("timeout: frame 'http://127.0.0.1")
        assert results[2]["error"].startswith("timeout:")
        assert "result" in results[1] or results[1]["error"].startswith("timeout:")  # answered either way
    finally:
        slow.close()


def config_with(name: str, padding: int) -> str:
    """The repo's labeling config, padded by an XML comment to `padding` characters."""
    text = DEFAULT_LABEL_CONFIG.read_text(encoding="utf-8")
    return text.replace("<View>", f"<View><!-- {name} {'p' * padding} -->", 1)


def test_per_project_configs_are_an_lru_that_keeps_no_config_text():
    configs = ProjectConfigs(max_projects=8, max_parsed=4)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for project in range(60):
        configs.remember(f"{project}.1", config_with(str(project), 1 << 20))  # 60 distinct 1 MB configs
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(configs) == 8 and kept < 4 << 20  # unbounded, it kept 60 MB
    assert configs.schema(None, "59.1") is not None and configs.schema(None, "0.1") is None


def test_another_projects_label_config_gets_an_error_naming_the_missing_questions(served):
    _, backend, good = served()
    other = ('<View><Image name="img" valueList="$frames"/>'
             '<Choices name="weather" toName="img"><Choice value="Sun"/><Choice value="Rain"/></Choices>'
             '<Choices name="gender" toName="img"><Choice value="Robot"/><Choice value="Alien"/></Choices></View>')
    results = backend.predict([task(1, good)], label_config=other)
    error = results[0]["error"]
    assert "result" not in results[0] and error.startswith("label_config_mismatch: model v1 predicts none")
    assert "'weather' (not a question of the model)" in error and "'gender' (classes 'Robot', 'Alien'" in error


def test_setup_config_of_one_project_is_not_used_for_another(served):
    _, backend, good = served()
    backend.setup(project="7.1", label_config='<View><Image name="i" valueList="$frames"/>'
                  '<Choices name="weather" toName="i"><Choice value="a"/><Choice value="b"/></Choices></View>')
    assert backend.predict([task(1, good)], project="7.1")[0]["error"].startswith("label_config_mismatch")
    assert backend.predict([task(1, good)], project="8.1")[0]["result"]


def test_tokens_and_url_passwords_never_reach_logs_or_answers_even_at_debug(tmp_path):
    fake = FakeLabelStudio({}, token="unused")
    stream = io.StringIO()
    try:
        settings = backend_settings(tmp_path, allowed_frame_hosts=("127.0.0.1",), log_level="DEBUG",
                                    basic_auth_user="u", basic_auth_pass="basic-pw-777")
        add_tiny_version(settings.model_dir, tmp_path, "v1")
        app = create_app(settings)
        handler = logging.StreamHandler(stream)
        handler.addFilter(redactor())
        logging.getLogger().addHandler(handler)
        logging.getLogger("urllib3").setLevel(logging.DEBUG)
        host = fake.url.removeprefix("http://")
        refs = [f"http://frameuser:url-pw-555@{host}/data/upload/1/a.png",
                f"{fake.url}/data/upload/1/b.png?token=query-tok-666&X-Amz-Signature=sig-888"]
        body = {"tasks": [task(1, [r]) for r in refs], "project": "1.1"}
        client = TestClient(app)
        client.post("/setup", json={"project": "1.1", "access_token": "setup-tok-999", "hostname": fake.url},
                    auth=("u", "basic-pw-777"))
        answer = client.post("/predict", json=body, auth=("u", "basic-pw-777")).text
        logging.getLogger(__name__).warning("dump %s %s", refs, "basic-pw-777 setup-tok-999")
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger("urllib3").setLevel(logging.NOTSET)
        fake.close()
    logged = stream.getvalue()
    assert "GET /data/upload/1/b.png?token=***" in logged  # urllib3's debug line was there, redacted
    for secret in ("url-pw-555", "query-tok-666", "sig-888", "basic-pw-777", "setup-tok-999"):
        assert secret not in logged and secret not in answer


def test_a_short_setup_token_does_not_garble_the_logs(tmp_path):
    """A /setup with access_token "t" once made every later log line read 'canno*** predic***'."""
    client = TestClient(create_app(backend_settings(tmp_path)))
    client.post("/setup", json={"project": "1.1", "access_token": "t"})
    client.post("/setup", json={"project": "1.1", "access_token": "long-enough-token-1"})
    assert redactor().redact("cannot predict with long-enough-token-1") == "cannot predict with ***"
