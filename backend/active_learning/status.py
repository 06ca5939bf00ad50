"""Read side: training_status() for the status endpoint and /health, recover_on_startup()."""
from __future__ import annotations

import json
import shlex
import time
from typing import Any

from . import jobs
from .config import ActiveLearningConfig, config_from_settings
from .store import ProjectStore, all_projects


def training_progress(store: ProjectStore, cfg: ActiveLearningConfig, job: dict) -> dict:
    """Finer progress while training.fit runs: S4L steps finished and the last epoch, from RUN/log.jsonl."""
    log = store.job_dir(job["job_id"]) / "run" / "log.jsonl"
    try:
        lines = log.read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    rows = []
    for line in lines:
        try:
            rows.append(json.loads(line))
        except ValueError:  # the line being written right now
            continue
    args = shlex.split(cfg.fit_args)
    total = len(args[args.index("--steps") + 1].split(",")) if "--steps" in args[:-1] else 3
    done = sum(1 for r in rows if r.get("phase") == "step")
    epochs = [r for r in rows if r.get("phase") == "train"]
    span = jobs.STAGE_PROGRESS["evaluating"] - jobs.STAGE_PROGRESS["training"]
    return {"progress": round(jobs.STAGE_PROGRESS["training"] + span * min(done, total) / total, 3),
            "s4l_steps_done": done, "s4l_steps": total,
            "last_epoch": {k: epochs[-1].get(k) for k in ("step", "epoch", "loss")} if epochs else None}


def project_status(cfg: ActiveLearningConfig, state: dict, store: ProjectStore | None = None) -> dict:
    running, last = state.get("running"), state.get("last_result")
    if running and store is not None and running.get("stage") == "training":
        running = {**running, **training_progress(store, cfg, running)}
    if running:
        name = "queued" if running.get("stage") == jobs.WAITING else "running"
    else:
        name = last["status"] if last else "idle"
    return {
        "project": state["project"],
        "state": name,  # idle | queued | running | failed | succeeded
        "stage": running.get("stage") if running else None,
        "progress": running.get("progress", 0.0) if running else (1.0 if last else 0.0),
        "job": running,
        "queued_job": state.get("queued"),
        "changes_since_model": state.get("changes_since_model", 0),
        "retrain_every": cfg.retrain_every,
        "last_result": last,
    }


def _fresh_state(store: ProjectStore, cfg: ActiveLearningConfig) -> dict:
    """The state, after failing a running job whose worker is gone (lock taken only then)."""
    state = store.read()
    if state.get("running") and jobs.why_dead(store, cfg, state["running"], time.time()):
        with store.locked() as state:
            jobs.reap_dead_job(store, cfg, state)
    return state


def training_status(settings: Any) -> dict:
    cfg = config_from_settings(settings)
    stores = [ProjectStore(cfg.state_root, p) for p in all_projects(cfg.state_root)]
    projects = {s.project: project_status(cfg, _fresh_state(s, cfg), s) for s in stores}
    states = [s["state"] for s in projects.values()]
    if "running" in states or "queued" in states:
        overall = "running" if "running" in states else "queued"
    else:
        finished = [s for s in projects.values() if s["last_result"]]
        overall = max(finished, key=lambda s: s["last_result"].get("finished_at") or 0)["state"] if finished else "idle"
    return {"state": overall, "runner": "rq" if cfg.redis_url else "local", "retrain_every": cfg.retrain_every,
            "promote_tolerance": cfg.promote_tolerance, "projects": projects,
            "last_jobs": {p: last_job(s["last_result"]) for p, s in projects.items() if s["last_result"]}}


def last_job(result: dict) -> dict:
    """A project's last job in a line: its outcome and why (for /health; a later job replaces it)."""
    if result.get("status") == "failed":
        outcome, reason = "failed", result.get("error") or ""
    else:
        outcome, reason = ("promoted" if result.get("promoted") else "kept current model"), \
            result.get("promotion_reason") or ""
    return {"job_id": result.get("job_id"), "outcome": outcome, "reason": reason[:300],
            "version": result.get("version"), "finished_at": result.get("finished_at")}


def recover_on_startup(settings: Any) -> dict:
    """After a backend (re)start: keep jobs whose worker is alive, fail those whose worker is gone,
    launch a queued job that has no running one. Returns {project: what happened}."""
    cfg = config_from_settings(settings)
    report = {}
    for project in all_projects(cfg.state_root):
        store = ProjectStore(cfg.state_root, project)
        with store.locked() as state:
            failed = jobs.reap_dead_job(store, cfg, state)
            jobs.launch_queued(store, cfg, state)
            running = state.get("running")
            if failed:
                report[project] = f"failed: {failed}"
            elif running:
                report[project] = f"recovered: job {running['job_id']} still {running.get('stage')}"
            else:
                report[project] = "idle"
    return report
