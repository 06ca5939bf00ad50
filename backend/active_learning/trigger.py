"""Webhook entry point: count annotation changes, start/coalesce jobs; never trains in the request."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from . import jobs
from .config import config_from_settings
from .status import project_status
from .store import ProjectIdError, ProjectStore, project_id_of, write_bytes_atomic

ANNOTATION_ACTIONS = frozenset({"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATION_DELETED"})
START_TRAINING = "START_TRAINING"


class WebhookError(ValueError):
    """The webhook body cannot be used (the app should answer 400 with this message)."""


def handle_webhook(payload: Any, settings: Any, hosts: Any = None) -> dict:
    """Handle one Label Studio webhook body; returns at once with what was done.

    `hosts` (backend.label_studio_host.ProjectHosts; the app passes it) gives the project's Label
    Studio host and credential for its jobs, and refuses a project it cannot confirm (never set up,
    or unknown to Label Studio) before anything is written for it. Without it the settings' URL
    and key are used and every project is accepted (library use, tests).

    `status` is 'ignored' (other actions), 'counted' (change noted, threshold not reached),
    'started', 'absorbed' (joins the job that has not begun its export), 'queued' or 'coalesced'
    (folded into the already queued job).
    """
    if not isinstance(payload, dict):
        raise WebhookError(f"webhook body must be a JSON object, got {type(payload).__name__}")
    action = payload.get("action")
    if action not in ANNOTATION_ACTIONS and action != START_TRAINING:
        return {"status": "ignored", "action": action}
    project_field = payload.get("project")
    if project_field is None and isinstance(payload.get("annotation"), dict):
        project_field = payload["annotation"].get("project")
    try:
        project = project_id_of(project_field)
    except ProjectIdError as exc:
        raise WebhookError(f"{action} webhook: {exc}") from None

    cfg = config_from_settings(settings)
    store = ProjectStore(cfg.state_root, project)
    if hosts is not None:
        if not store.state_path.is_file() and (why := hosts.why_unknown(project)):
            raise WebhookError(f"{action} refused: {why}")
        connection = hosts.connection(project)
        cfg = replace(cfg, label_studio_url=connection.url, label_studio_api_key=connection.api_key)
    with store.locked() as state:
        jobs.reap_dead_job(store, cfg, state)
        _remember_label_config(store, project_field)
        if action == START_TRAINING:
            outcome = jobs.request_job(store, cfg, state, full=cfg.full_retrain_on_start, reason=START_TRAINING)
        else:
            state["changes_since_model"] = int(state.get("changes_since_model", 0)) + 1
            outcome = "counted"
            if cfg.retrain_every and state["changes_since_model"] >= cfg.retrain_every:
                reason = f"{state['changes_since_model']} annotation changes"
                outcome = jobs.request_job(store, cfg, state, full=False, reason=reason)
        training = project_status(cfg, state)
        # Label Studio stores the answer's "job" as its training-job id: give it the id, not the record.
        job_id = (training["job"] or training["queued_job"] or {}).get("job_id")
        return {"status": outcome, "action": action, "job": job_id, "training": training}


def _remember_label_config(store: ProjectStore, project_field: Any) -> None:
    """Keep the project's latest labeling config for the next job's --label-config."""
    if not isinstance(project_field, dict) or not isinstance(project_field.get("label_config"), str):
        return
    data = project_field["label_config"].encode("utf-8")
    path = store.dir / "label_config.xml"
    if not path.is_file() or path.read_bytes() != data:
        write_bytes_atomic(path, data)
