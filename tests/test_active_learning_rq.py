"""REDIS_URL set: jobs go through a real redis-server and an RQ SimpleWorker (burst)."""
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from backend.active_learning import handle_webhook, training_status
from backend.registry import ModelRegistry
from backend.settings import Settings
from e2e.server_process import free_port
from test_active_learning_support import FakeLabelStudio, make_export, recorded

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
pytestmark = pytest.mark.skipif(not Path(REDIS_SERVER).exists(), reason="redis-server not installed")


@pytest.fixture
def redis_url(tmp_path):
    from redis import Redis

    port = free_port()
    proc = subprocess.Popen([REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path),
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            try:
                Redis.from_url(url).ping()
                break
            except Exception:
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def ls():
    server = FakeLabelStudio(make_export())
    yield server
    server.close()


def test_jobs_run_on_an_rq_worker(tmp_path, redis_url, ls, monkeypatch):
    from redis import Redis
    from rq import Queue, SimpleWorker

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("AL_STEPS_MODULE", "test_active_learning_support")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "fake-legacy-token")  # what the worker machine has
    settings = Settings(model_dir=tmp_path / "models", label_studio_url=ls.url,
                        label_studio_api_key="fake-legacy-token")
    answer = handle_webhook(recorded("webhook_START_TRAINING.json"), settings)
    assert answer["status"] == "started" and answer["training"]["state"] == "queued"
    assert answer["training"]["job"]["runner"] == "rq" and answer["job"] == answer["training"]["job"]["job_id"]
    assert handle_webhook(recorded("webhook_START_TRAINING.json"), settings)["status"] == "absorbed"

    connection = Redis.from_url(redis_url)
    queue = Queue("active-learning", connection=connection)
    assert queue.count == 1  # two webhooks, one RQ job
    assert "fake-legacy-token" not in str(queue.jobs[0].args)  # the key stays off Redis
    SimpleWorker([queue], connection=connection).work(burst=True)

    status = training_status(settings)
    assert status["runner"] == "rq" and status["state"] == "succeeded", status
    result = status["projects"]["1"]["last_result"]
    assert result["promoted"] and ModelRegistry(settings.model_dir).current() == result["version"]
    assert queue.count == 0


def test_unreachable_redis_fails_the_job_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    settings = Settings(model_dir=tmp_path / "models", label_studio_url="http://127.0.0.1:9", label_studio_api_key="k")
    answer = handle_webhook(recorded("webhook_START_TRAINING.json"), settings)
    assert answer["training"]["state"] == "failed"
    assert "could not launch the job" in answer["training"]["last_result"]["error"]
