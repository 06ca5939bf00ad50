"""Property-based fuzzing of the HTTP API (in-process, no network):

- schemathesis generates requests from the served OpenAPI schema, both fitting it and not
  (negative mode), for every operation: no answer may be a 5xx, and a 200 from /predict has one
  entry per task. (Its strategies are used with hypothesis' @given directly: its lazy pytest
  loader does not run under pytest 9.)
- hypothesis builds /predict batches that mix good tasks with bad ones (junk data, frame refs
  with NUL, surrogates, malformed or foreign URLs, paths escaping the root): every good task
  gets exactly the prediction it gets alone, whatever its neighbours.

Bounded by example counts (FUZZ_EXAMPLES, default 60 per operation and mode, 80 batches).
"""
from __future__ import annotations

import json
import os

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from backend.app import create_app
from backend_fixtures import add_tiny_version, backend_settings, write_recording

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))
RECORDINGS = {"dark": 40, "bright": 200}


def serve(tmp_path_factory):
    """(app, {recording: its refs}): a tiny model and two local recordings."""
    tmp = tmp_path_factory.mktemp("fuzz")
    config = backend_settings(tmp, frame_timeout_s=1.0, predict_timeout_s=20.0)
    add_tiny_version(config.model_dir, tmp, "v1")
    refs = {name: write_recording(config.local_files_document_root, name, [v] * 4) for name, v in RECORDINGS.items()}
    return create_app(config), refs


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    return serve(tmp_path_factory)


@pytest.fixture
def served_alone(tmp_path_factory):
    """An app of its own: what the /setup fuzzing left behind does not change its answers."""
    return serve(tmp_path_factory)


POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
OPERATIONS = [(path, "POST", mode) for path in ("/setup", "/predict", "/webhook") for mode in (POSITIVE, NEGATIVE)]
OPERATIONS += [(path, "GET", POSITIVE) for path in ("/versions", "/health", "/training", "/metrics")]  # no inputs


@pytest.mark.parametrize("path, method, mode", OPERATIONS)
def test_no_generated_request_gets_a_server_error(served, path, method, mode):
    schema = schemathesis.openapi.from_asgi("/openapi.json", served[0])
    schema.config.generation.update(allow_x00=True)
    operation = schema[path][method]

    @given(operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case):
        response = case.call()
        case.validate_response(response, checks=[not_a_server_error])
        if path == "/predict" and response.status_code == 200:
            assert len(response.json()["results"]) == len(case.body["tasks"])
    check()


bad_text = st.text(st.characters(categories=["L", "N", "P", "S", "Cc", "Cs", "Zs"]), max_size=40)
bad_ref = st.one_of(
    bad_text,
    bad_text.map(lambda t: "/data/local-files/?d=" + t),
    bad_text.map(lambda t: "http://" + t),
    st.sampled_from(["http://[bad", "/data/local-files/?d=../../etc/passwd", "file:///etc/passwd",
                     "http://user:pw@10.0.0.1:1/x.png?token=t", "ftp://x/y", "http://h:99999/x", "\x00", "\ud800"]),
)
bad_task = st.one_of(
    st.builds(lambda refs: {"id": 0, "data": {"frames": refs}}, st.lists(bad_ref, min_size=1, max_size=5)),
    st.builds(lambda v: {"id": 0, "data": {"frames": v}}, st.one_of(st.none(), st.integers(), bad_text,
                                                                      st.dictionaries(bad_text, bad_text))),
    st.builds(lambda d: {"id": 0, "data": d}, st.one_of(st.none(), bad_text, st.lists(st.integers()))),
    st.one_of(st.none(), st.integers(), bad_text, st.lists(st.integers(), max_size=3)),
)
# a batch: each slot is a good recording's name or a bad task
batch = st.lists(st.one_of(st.sampled_from(sorted(RECORDINGS)), bad_task), min_size=1, max_size=12)


def predict(client: TestClient, tasks: list) -> dict:
    body = json.dumps({"tasks": tasks})  # ASCII JSON: lone surrogates travel as \ud800 escapes
    response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    return response.json()


def test_no_bad_task_costs_a_good_one_its_prediction(served_alone):
    app, refs = served_alone
    client = TestClient(app)
    alone = {name: predict(client, [{"id": 1, "data": {"frames": r}}])["results"][0] for name, r in refs.items()}
    assert all(entry["result"] for entry in alone.values())

    @given(batch)
    @settings(max_examples=int(EXAMPLES * 4 / 3), deadline=None, suppress_health_check=list(HealthCheck))
    def check(slots):
        tasks = [{"id": i, "data": {"frames": refs[s]}} if isinstance(s, str) and s in refs else s
                 for i, s in enumerate(slots)]
        results = predict(client, tasks)["results"]
        assert len(results) == len(tasks)
        for slot, entry in zip(slots, results):
            if isinstance(slot, str) and slot in refs:
                assert entry == alone[slot]
            else:
                assert "result" in entry or entry["error"].split(":")[0] in {
                    "no_frames", "bad_frames", "bad_task", "frame_unavailable", "bad_image"}
    check()
