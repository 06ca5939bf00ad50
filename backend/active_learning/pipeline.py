"""The body of one job: export -> train (warm or full) -> evaluate both models -> promote or not."""
from __future__ import annotations

import importlib
import time
from pathlib import Path

from . import jobs, promotion
from .config import ActiveLearningConfig
from .export_pull import pull_export
from .store import ProjectStore
from .training_steps import TrainRequest


def default_label_config() -> Path:
    from training.schema import DEFAULT_LABEL_CONFIG

    return DEFAULT_LABEL_CONFIG


def run_pipeline(store: ProjectStore, cfg: ActiveLearningConfig, job: dict) -> dict:
    """Returns the job's result record; raises on failure (the worker records the error)."""
    steps = importlib.import_module(cfg.steps_module)
    job_id, job_dir = job["job_id"], store.job_dir(job["job_id"])
    export = job_dir / "export.json"

    def note_retry(attempt: int, error: str) -> None:
        jobs.set_stage(store, job_id, "exporting", export_retries=attempt, last_export_error=error)

    n_tasks = pull_export(cfg, store.project, export, on_retry=note_retry)

    current = promotion.current_model(cfg.model_dir)
    warm = not job.get("full") and current is not None and current.checkpoint is not None
    label_config = job_dir / "label_config.xml"
    jobs.set_stage(store, job_id, "training", export_tasks=n_tasks, warm_start=warm,
                   compared_with=current.version if current else None)
    run_dir = steps.train(TrainRequest(
        export=export,
        label_config=label_config if label_config.is_file() else default_label_config(),
        data_root=cfg.data_root,
        out=job_dir / "run",
        split=current.split if current else None,
        init_from=current.checkpoint if warm else None,
        epochs_per_step=cfg.warm_epochs_per_step if warm else None,
    ))
    split = current.split if current and current.split else Path(run_dir) / promotion.SPLIT_FILE
    if not split.is_file():
        raise FileNotFoundError(f"training wrote no {split} (needed to compare models on the same subjects)")

    jobs.set_stage(store, job_id, "evaluating")
    new_score = steps.evaluate(Path(run_dir) / "model.onnx", export, cfg.data_root, split, job_dir / "eval_new.json")
    current_score = None
    if current is not None:
        current_score = steps.evaluate(current.onnx, export, cfg.data_root, split, job_dir / "eval_current.json")
    decision = promotion.decide(new_score, current_score, cfg.promote_tolerance, current.version if current else None)

    version = None
    if decision.promote:
        jobs.set_stage(store, job_id, "promoting")
        with store.locked() as state:  # promote only while still the owner, against the model we compared
            jobs.owned(state, job_id)
            now_current = promotion.current_model(cfg.model_dir)
            if (now_current.version if now_current else None) != (current.version if current else None):
                decision = promotion.Decision(False, f"the current model changed during the job "
                                                     f"({current.version if current else None} -> "
                                                     f"{now_current.version if now_current else None})")
            else:
                version = promotion.promote(cfg.model_dir, Path(run_dir), f"p{store.project}-{job_id}", split)

    return {
        "job_id": job_id, "status": "succeeded", "error": None, "full": bool(job.get("full")),
        "reasons": job.get("reasons", []), "warm_start": warm, "export_tasks": n_tasks,
        "started_at": job.get("started_at"), "finished_at": time.time(),
        "promoted": version is not None, "version": version, "promotion_reason": decision.reason,
        "metrics": {"new_val_mean_balanced_accuracy": new_score, "current_val_mean_balanced_accuracy": current_score,
                    "current_version": current.version if current else None, "tolerance": cfg.promote_tolerance},
    }
