"""Webhook counting and coalescing (the runner is replaced by a recorder: no jobs run here)."""
import json
import multiprocessing as mp
from pathlib import Path

import pytest

from backend.active_learning import WebhookError, handle_webhook, training_status
from backend.active_learning import runners
from backend.active_learning.config import ActiveLearningConfig, ActiveLearningConfigError, config_from_settings
from backend.active_learning.store import ProjectStore
from backend.settings import Settings
from test_active_learning_support import recorded


class RecordingRunner:
    def __init__(self, log: Path):
        self.log = log

    def launch(self, job_file, cfg, on_exit=None):
        with open(self.log, "a") as f:  # O_APPEND: safe across processes
            f.write(json.loads(Path(job_file).read_text())["job_id"] + "\n")
        return {"runner": "recording"}


@pytest.fixture
def launches(tmp_path, monkeypatch):
    log = tmp_path / "launches.txt"
    log.touch()
    monkeypatch.setattr(runners, "runner_for", lambda cfg: RecordingRunner(log))
    return log


@pytest.fixture
def settings(tmp_path, monkeypatch):
    monkeypatch.setenv("RETRAIN_EVERY", "3")
    return Settings(model_dir=tmp_path / "models", label_studio_url="http://127.0.0.1:9", label_studio_api_key="k")


def launched(log: Path) -> list[str]:
    return log.read_text().split()


def test_annotation_changes_start_a_job_every_n(settings, launches):
    bodies = [recorded("webhook_ANNOTATION_CREATED.json"), recorded("webhook_ANNOTATION_UPDATED.json"),
              {"action": "ANNOTATION_DELETED", "project": 1}]  # a body without `annotation`
    answers = [handle_webhook(b, settings) for b in bodies]
    assert [a["status"] for a in answers] == ["counted", "counted", "started"]
    assert answers[1]["training"]["changes_since_model"] == 2
    assert answers[2]["training"]["changes_since_model"] == 0
    assert len(launched(launches)) == 1
    assert answers[2]["training"]["state"] == "queued"  # launched, no worker has taken it yet
    assert isinstance(answers[2]["job"], str) and answers[0]["job"] is None  # LS stores it as its job id
    # the webhook's labeling config is kept for the job's --label-config
    stored = Path(settings.model_dir) / "active_learning/projects/1"
    assert (stored / "label_config.xml").read_text() == bodies[0]["project"]["label_config"]
    assert (stored / "jobs" / launched(launches)[0] / "label_config.xml").is_file()


def test_other_actions_are_ignored(settings, launches):
    for name in ("webhook_PROJECT_UPDATED.json", "webhook_TASKS_CREATED.json"):
        assert handle_webhook(recorded(name), settings)["status"] == "ignored"
    assert launched(launches) == [] and training_status(settings)["projects"] == {}


def test_requests_absorbed_until_export_starts_then_one_queued(settings, launches):
    start = recorded("webhook_START_TRAINING.json")
    assert handle_webhook(start, settings)["status"] == "started"
    assert handle_webhook(start, settings)["status"] == "absorbed"
    store = ProjectStore(config_from_settings(settings).state_root, "1")
    with store.locked() as state:  # a worker takes the job and begins the export
        state["running"]["stage"] = "exporting"
        state["running"]["started_at"] = 1.0
        state["running"]["pid"] = None
        store.heartbeat_path(state["running"]["job_id"]).touch()
    assert handle_webhook(start, settings)["status"] == "queued"
    answer = handle_webhook(start, settings)
    assert answer["status"] == "coalesced" and answer["training"]["state"] == "running"
    assert len(launched(launches)) == 1
    assert answer["training"]["queued_job"]["reasons"] == ["START_TRAINING", "START_TRAINING"]


def _hit(cfg_fields, log, barrier, results):
    runners.runner_for = lambda cfg: RecordingRunner(Path(log))  # a fresh (spawned) interpreter
    barrier.wait()
    results.put(handle_webhook(recorded("webhook_START_TRAINING.json"), ActiveLearningConfig(**cfg_fields))["status"])


def test_simultaneous_webhooks_from_several_processes_make_one_job(tmp_path, launches):
    ctx = mp.get_context("spawn")  # like uvicorn workers: separate processes sharing only MODEL_DIR
    barrier, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_hit, args=(dict(model_dir=tmp_path / "models"), str(launches), barrier, results))
             for _ in range(4)]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(10)
    assert outcomes == ["absorbed"] * 3 + ["started"]
    assert len(launched(launches)) == 1


def test_bad_bodies_and_settings_are_named(settings, monkeypatch):
    with pytest.raises(WebhookError, match="no usable id"):
        handle_webhook({"action": "START_TRAINING"}, settings)
    with pytest.raises(WebhookError, match="must match"):
        handle_webhook({"action": "START_TRAINING", "project": {"id": "../etc"}}, settings)
    with pytest.raises(WebhookError, match="JSON object"):
        handle_webhook(["START_TRAINING"], settings)
    monkeypatch.setenv("PROMOTE_TOLERANCE", "lots")
    with pytest.raises(ActiveLearningConfigError, match="PROMOTE_TOLERANCE='lots'"):
        config_from_settings(settings)
    monkeypatch.setenv("PROMOTE_TOLERANCE", "0.05")
    monkeypatch.setenv("FULL_RETRAIN_ON_START", "yes")
    cfg = config_from_settings(settings)
    assert cfg.promote_tolerance == 0.05 and cfg.full_retrain_on_start and cfg.retrain_every == 3
    assert "label_studio_api_key" not in cfg.worker_view()


def test_status_reads_training_progress_from_the_fit_log(settings, launches):
    handle_webhook(recorded("webhook_START_TRAINING.json"), settings)
    store = ProjectStore(config_from_settings(settings).state_root, "1")
    with store.locked() as state:
        state["running"].update(stage="training", progress=0.15, started_at=1.0, pid=None)
        job_id = state["running"]["job_id"]
    store.heartbeat_path(job_id).touch()
    log = store.job_dir(job_id) / "run" / "log.jsonl"
    log.parent.mkdir()
    rows = [{"phase": "train", "step": 1, "epoch": 1, "loss": 2.0}, {"phase": "step", "step": 1},
            {"phase": "train", "step": 2, "epoch": 1, "loss": 1.5}, {"phase": "step", "step": 2},
            {"phase": "train", "step": 3, "epoch": 1, "loss": 1.0}]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"phase": "tr')  # a line mid-write
    job = training_status(settings)["projects"]["1"]["job"]
    assert job["s4l_steps_done"] == 2 and job["s4l_steps"] == 3
    assert job["progress"] == pytest.approx(0.15 + 0.7 * 2 / 3, abs=1e-3)
    assert job["last_epoch"] == {"step": 3, "epoch": 1, "loss": 1.0}
