"""Job lifecycle in a project's state: request (coalescing), launch, progress, finish, dead workers.

Invariant: at most one job `running` (launched, maybe still waiting for a worker) and at most one
`queued` per project. A request while the running job has not begun its export is absorbed into
it (its export will contain the new annotations); later requests fold into the one queued job.
Every function that takes `state` must be called inside `ProjectStore.locked()`.
"""
from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from pathlib import Path

from . import runners
from .config import ActiveLearningConfig
from .store import ProjectStore, write_json_atomic

WAITING = "waiting"  # launched, worker not started; the export has not begun, so requests are absorbed
STAGE_PROGRESS = {WAITING: 0.0, "exporting": 0.05, "training": 0.15, "evaluating": 0.85, "promoting": 0.95}


class JobSuperseded(RuntimeError):
    """The job is no longer the project's running job (it was declared dead meanwhile)."""


def new_job(full: bool, reason: str) -> dict:
    now = time.time()
    job_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + "-" + uuid.uuid4().hex[:8]
    return {"job_id": job_id, "full": bool(full), "reasons": [reason], "requested_at": now}


def request_job(store: ProjectStore, cfg: ActiveLearningConfig, state: dict, *, full: bool, reason: str) -> str:
    """Ask for a training job; returns 'started', 'absorbed', 'queued' or 'coalesced'."""
    state["changes_since_model"] = 0  # the job's export will contain every change so far
    running, queued = state.get("running"), state.get("queued")
    if running is None:
        _launch(store, cfg, state, new_job(full, reason))
        return "started"
    if running.get("stage") == WAITING:
        _merge(running, full, reason)
        return "absorbed"
    if queued is None:
        state["queued"] = new_job(full, reason)
        return "queued"
    _merge(queued, full, reason)
    return "coalesced"


def _merge(job: dict, full: bool, reason: str) -> None:
    job["full"] = bool(job.get("full")) or bool(full)
    job["reasons"] = (job.get("reasons") or [])[-9:] + [reason]


def _launch(store: ProjectStore, cfg: ActiveLearningConfig, state: dict, job: dict) -> None:
    job = {**job, "stage": WAITING, "progress": 0.0, "launched_at": time.time()}
    job_dir = store.job_dir(job["job_id"])
    job_dir.mkdir(parents=True, exist_ok=True)
    label_config = store.dir / "label_config.xml"
    if label_config.is_file():
        shutil.copyfile(label_config, job_dir / "label_config.xml")
    job_file = job_dir / "job.json"
    write_json_atomic(job_file, {"project": store.project, "job_id": job["job_id"], "config": cfg.worker_view()})
    state["running"] = job
    try:
        job.update(runners.runner_for(cfg).launch(job_file, cfg, on_exit=lambda: _reap_after_exit(store, cfg)))
    except Exception as exc:  # a runner that cannot start (Redis down, fork failure) fails the job now
        _finish(store, cfg, state, job["job_id"], failed_result(job, f"could not launch the job: {exc!r}"))


def launch_queued(store: ProjectStore, cfg: ActiveLearningConfig, state: dict) -> None:
    if state.get("running") is None and state.get("queued") is not None:
        job, state["queued"] = state["queued"], None
        _launch(store, cfg, state, job)


def start_job(store: ProjectStore, state: dict, job_id: str) -> dict:
    """A worker takes the job: record who runs it and that the export begins now."""
    job = owned(state, job_id)
    job.update(stage="exporting", progress=STAGE_PROGRESS["exporting"], pid=os.getpid(),
               host=socket.gethostname(), started_at=time.time())
    return job


def set_stage(store: ProjectStore, job_id: str, stage: str, **extra) -> None:
    with store.locked() as state:
        owned(state, job_id).update(stage=stage, progress=STAGE_PROGRESS[stage], **extra)


def owned(state: dict, job_id: str) -> dict:
    job = state.get("running")
    if not job or job.get("job_id") != job_id:
        raise JobSuperseded(f"job {job_id} is no longer the running job of project {state.get('project')}")
    return job


def failed_result(job: dict, error: str) -> dict:
    return {"job_id": job["job_id"], "status": "failed", "error": error, "promoted": False,
            "full": job.get("full", False), "reasons": job.get("reasons", []),
            "started_at": job.get("started_at"), "finished_at": time.time()}


def finish_job(store: ProjectStore, cfg: ActiveLearningConfig, job_id: str, result: dict) -> bool:
    """Record a worker's result and launch the queued job; False if the job was superseded."""
    with store.locked() as state:
        running = state.get("running")
        if not running or running.get("job_id") != job_id:
            return False
        _finish(store, cfg, state, job_id, result)
        return True


def _finish(store: ProjectStore, cfg: ActiveLearningConfig, state: dict, job_id: str, result: dict) -> None:
    state["last_result"] = result
    state["running"] = None
    store.heartbeat_path(job_id).unlink(missing_ok=True)
    launch_queued(store, cfg, state)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # an exited child that nobody reaped yet is a zombie: dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def why_dead(store: ProjectStore, cfg: ActiveLearningConfig, job: dict, now: float) -> str | None:
    """Why the running job's worker must be dead, or None while it may still be alive."""
    pid, host = job.get("pid"), job.get("host")
    if pid and host == socket.gethostname() and not pid_alive(pid):
        return f"worker process {pid} on {host} ended without reporting a result (crashed or killed)"
    if job.get("started_at"):
        age = store.heartbeat_age(job["job_id"], now)
        if age is None or age > cfg.stale_after_s:
            seen = "never" if age is None else f"{age:.0f} s ago"
            return f"worker {pid} on {host} stopped sending heartbeats (last {seen}; limit {cfg.stale_after_s:.0f} s)"
    return None


def _reap_after_exit(store: ProjectStore, cfg: ActiveLearningConfig) -> None:
    with store.locked() as state:
        reap_dead_job(store, cfg, state)


def reap_dead_job(store: ProjectStore, cfg: ActiveLearningConfig, state: dict, now: float | None = None) -> str | None:
    """Mark a running job whose worker is gone as failed (and start the queued one)."""
    job = state.get("running")
    if not job:
        return None
    reason = why_dead(store, cfg, job, time.time() if now is None else now)
    if reason:
        _finish(store, cfg, state, job["job_id"], failed_result(job, reason))
    return reason
