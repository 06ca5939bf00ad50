"""Jobs end to end with the fake steps: local worker processes, promotion gate, and the faults."""
import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import backend.registry
from backend.active_learning import handle_webhook, recover_on_startup, runners, training_status
from backend.active_learning.config import config_from_settings
from backend.active_learning.store import ProjectStore
from backend.active_learning.worker import run_job_file
from backend.registry import ModelRegistry
from backend.settings import Settings
from test_active_learning_support import FakeLabelStudio, make_export, recorded, write_tiny_onnx

TESTS = Path(__file__).resolve().parent
START = recorded("webhook_START_TRAINING.json")


@pytest.fixture
def ls():
    server = FakeLabelStudio(make_export())
    yield server
    server.close()


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    for name, value in {"AL_STEPS_MODULE": "test_active_learning_support", "AL_EXPORT_ATTEMPTS": "3",
                        "AL_EXPORT_BACKOFF_S": "0.01", "AL_HEARTBEAT_S": "0.2", "AL_STALE_AFTER_S": "15",
                        "RETRAIN_EVERY": "10"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AL_FAKE_MODE", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)


def make_settings(tmp_path, ls_url, key="fake-legacy-token"):
    return Settings(model_dir=tmp_path / "models", label_studio_url=ls_url, label_studio_api_key=key)


class ThreadRunner:
    """Runs the worker in a thread of this process, so a test can monkeypatch what it calls."""
    threads: list = []

    def launch(self, job_file, cfg, on_exit=None):
        t = threading.Thread(target=run_job_file, args=(job_file, cfg.label_studio_api_key))
        t.start()
        ThreadRunner.threads.append(t)
        return {"runner": "thread", "pid": os.getpid()}


@pytest.fixture
def in_process(monkeypatch):
    monkeypatch.setattr(runners, "runner_for", lambda cfg: ThreadRunner())

    def finish():
        while ThreadRunner.threads:
            ThreadRunner.threads.pop().join(30)
    return finish


def wait_for_state(settings, states=("succeeded", "failed"), timeout=60.0, project="1"):
    end = time.time() + timeout
    while time.time() < end:
        status = training_status(settings)["projects"].get(project)
        if status and status["state"] in states:
            return status
        time.sleep(0.1)
    raise AssertionError(f"no state in {states} after {timeout} s: {training_status(settings)}")


def install_current(settings, score=0.8) -> str:
    src = Path(settings.model_dir).parent / "seed"
    src.mkdir(exist_ok=True)
    write_tiny_onnx(src / "model.onnx", score, version="seed-v1")
    return ModelRegistry(settings.model_dir).add(src / "model.onnx", "seed-v1", make_current=True)


def test_local_jobs_promote_warm_start_and_gate_on_tolerance(tmp_path, ls, env, monkeypatch):
    settings = make_settings(tmp_path, ls.url)
    registry = ModelRegistry(settings.model_dir)
    assert handle_webhook(START, settings)["status"] == "started"
    first = wait_for_state(settings)["last_result"]
    assert first["status"] == "succeeded" and first["promoted"], first
    assert first["promotion_reason"] == "there was no current model"
    assert registry.current() == first["version"]
    assert ls.requests[0]["path"] == "/api/projects/1/export?exportType=JSON&download_all_tasks=true"

    monkeypatch.setenv("AL_FAKE_SCORE", "0.79")  # within PROMOTE_TOLERANCE (0.02)
    handle_webhook(START, settings)
    second = wait_for_state(settings)["last_result"]
    assert second["job_id"] != first["job_id"] and second["promoted"] and second["warm_start"], second
    request = (Path(settings.model_dir) / "active_learning/projects/1/jobs" / second["job_id"] / "run/request.json")
    request = json.loads(request.read_text())
    first_artifacts = registry.version_dir(first["version"])  # split.json + model.pt travel with the model
    assert request["split"] == str(first_artifacts / "split.json")  # same validation subjects
    assert request["init_from"] == str(first_artifacts / "model.pt") and request["epochs_per_step"] == "2"
    # the served model's shape (from its recmeta) unless AL_FIT_ARGS says otherwise
    assert request["extra_args"] == str(("--image-size", "8", "--frames", "2", "--model", "multi", "--mode", "mtl"))
    assert second["metrics"]["current_version"] == first["version"]
    assert second["metrics"]["current_val_mean_balanced_accuracy"] == pytest.approx(0.8)

    monkeypatch.setenv("AL_FAKE_SCORE", "0.70")  # worse by more than the tolerance
    handle_webhook(START, settings)
    third = wait_for_state(settings)["last_result"]
    assert third["status"] == "succeeded" and not third["promoted"] and third["version"] is None
    assert "worse by more than the tolerance" in third["promotion_reason"]
    assert registry.current() == second["version"]
    assert [v.version for v in registry.versions()] == [first["version"], second["version"]]


def test_crashing_job_keeps_current_model_and_reports(tmp_path, ls, env, monkeypatch):
    settings = make_settings(tmp_path, ls.url)
    seed = install_current(settings)
    monkeypatch.setenv("AL_FAKE_MODE", "crash")
    handle_webhook(START, settings)
    status = wait_for_state(settings)
    assert status["state"] == "failed"
    assert status["last_result"]["error"] == "RuntimeError: fake training crashed"
    assert ModelRegistry(settings.model_dir).current() == seed
    assert [v.version for v in ModelRegistry(settings.model_dir).versions()] == [seed]
    last = training_status(settings)["last_jobs"]["1"]  # what /health shows per project
    assert last["outcome"] == "failed" and last["reason"] == "RuntimeError: fake training crashed"
    monkeypatch.delenv("AL_FAKE_MODE")
    handle_webhook(START, settings)
    wait_for_state(settings)
    last = training_status(settings)["last_jobs"]["1"]  # a later success replaces the failure
    assert last["outcome"] == "promoted" and "0.8000 vs 0.8000" in last["reason"], last


def test_job_killed_mid_export_is_reported_and_nothing_half_written(tmp_path, env):
    server = FakeLabelStudio(make_export(), script=["stall"], stall_s=5)
    try:
        settings = make_settings(tmp_path, server.url)
        seed = install_current(settings)
        handle_webhook(START, settings)
        status = wait_for_state(settings, states=("running",))
        while not server.requests:  # the export request is in flight
            time.sleep(0.05)
        job = training_status(settings)["projects"]["1"]["job"]
        assert job["stage"] == "exporting"
        os.kill(job["pid"], signal.SIGKILL)
        status = wait_for_state(settings, timeout=10)
    finally:
        server.close()
    assert status["state"] == "failed" and "ended without reporting a result" in status["last_result"]["error"]
    job_dir = Path(settings.model_dir) / "active_learning/projects/1/jobs" / job["job_id"]
    assert not (job_dir / "export.json").exists()
    assert ModelRegistry(settings.model_dir).current() == seed


@pytest.mark.parametrize("script, outcome", [
    (["down"], "failed 3 times; last: ConnectionError"),
    ([401, 401, 401], "failed 3 times; last: HTTP 401"),
    ([503, 503, 503], "failed 3 times; last: HTTP 503"),
    ([503, 401], None),  # recovers on the third try
])
def test_export_errors_are_retried_then_reported(tmp_path, env, in_process, script, outcome):
    server = FakeLabelStudio(make_export(), script=[s for s in script if s != "down"])
    url = server.url
    if script == ["down"]:
        server.close()  # nothing listens on this port any more
    settings = make_settings(tmp_path, url)
    handle_webhook(START, settings)
    in_process()
    result = training_status(settings)["projects"]["1"]["last_result"]
    if outcome is None:
        assert result["status"] == "succeeded" and len(server.requests) == 3
    else:
        assert result["status"] == "failed" and outcome in result["error"], result
        assert "fake-legacy-token" not in result["error"]
    if script != ["down"]:
        server.close()


def test_disk_full_while_training_writes_the_model(tmp_path, ls, env, in_process, monkeypatch):
    settings = make_settings(tmp_path, ls.url)
    seed = install_current(settings)
    monkeypatch.setenv("AL_FAKE_MODE", "enospc")
    handle_webhook(START, settings)
    in_process()
    result = training_status(settings)["projects"]["1"]["last_result"]
    assert result["status"] == "failed" and "No space left on device" in result["error"]
    assert ModelRegistry(settings.model_dir).current() == seed


def test_disk_full_while_copying_into_the_registry(tmp_path, ls, env, in_process, monkeypatch):
    settings = make_settings(tmp_path, ls.url)
    seed = install_current(settings, score=0.5)
    real_copy = backend.registry.shutil.copyfile

    def full_disk_copy(src, dst, *a, **k):  # half the bytes land, then the disk is full
        if str(dst).endswith("model.onnx"):
            Path(dst).write_bytes(Path(src).read_bytes()[:100])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real_copy(src, dst, *a, **k)

    monkeypatch.setattr(backend.registry.shutil, "copyfile", full_disk_copy)
    handle_webhook(START, settings)
    in_process()
    result = training_status(settings)["projects"]["1"]["last_result"]
    assert result["status"] == "failed" and "No space left on device" in result["error"]
    registry = ModelRegistry(settings.model_dir)
    assert registry.current() == seed and [v.version for v in registry.versions()] == [seed]
    assert [p.name for p in registry.versions_dir.iterdir()] == [seed]  # no half-written folder


def _state_with_running(settings, **job):
    store = ProjectStore(config_from_settings(settings).state_root, "1")
    with store.locked() as state:
        state["running"] = {"job_id": "j-old", "stage": "training", "progress": 0.15, "started_at": time.time(),
                            "reasons": ["START_TRAINING"], **job}
        state["queued"] = {"job_id": "j-next", "full": False, "reasons": ["3 annotation changes"]}
    store.heartbeat_path("j-old").parent.mkdir(parents=True, exist_ok=True)
    store.heartbeat_path("j-old").touch()
    return store


def test_restart_fails_a_job_whose_worker_is_gone_and_starts_the_queued_one(tmp_path, ls, env, in_process):
    settings = make_settings(tmp_path, ls.url)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    _state_with_running(settings, pid=gone.pid, host=os.uname().nodename)
    report = recover_on_startup(settings)
    assert report["1"].startswith("failed: worker process") and "ended without reporting" in report["1"]
    in_process()  # the queued job was launched and runs
    status = training_status(settings)["projects"]["1"]
    assert status["state"] == "succeeded" and status["last_result"]["job_id"] == "j-next"


def test_restart_fails_a_job_with_a_stale_heartbeat_on_another_host(tmp_path, ls, env, in_process):
    settings = make_settings(tmp_path, ls.url)
    store = _state_with_running(settings, pid=12345, host="training-box-2")
    os.utime(store.heartbeat_path("j-old"), (time.time() - 60, time.time() - 60))
    assert "stopped sending heartbeats" in recover_on_startup(settings)["1"]
    in_process()


def test_restart_keeps_a_live_local_job(tmp_path, ls, env, monkeypatch):
    settings = make_settings(tmp_path, ls.url)
    monkeypatch.setenv("AL_FAKE_MODE", "sleep:3")
    handle_webhook(START, settings)
    wait_for_state(settings, states=("running",))
    assert recover_on_startup(settings)["1"].startswith("recovered: job")  # the worker outlives the backend
    assert wait_for_state(settings)["state"] == "succeeded"
