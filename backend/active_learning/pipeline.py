"""The body of one job: export -> train (warm or full, on the current split extended to new subjects)
-> evaluate both models on the extended validation set -> per-label gate -> promote or not."""
from __future__ import annotations

import importlib
import json
import shlex
import time
from pathlib import Path

from . import jobs, promotion
from .config import ActiveLearningConfig
from .export_pull import pull_export
from .store import ProjectStore
from .training_steps import EvalRequest, TrainRequest


def default_label_config() -> Path:
    from training.schema import DEFAULT_LABEL_CONFIG

    return DEFAULT_LABEL_CONFIG


def run_pipeline(store: ProjectStore, cfg: ActiveLearningConfig, job: dict) -> dict:
    """Returns the job's result record; raises on failure (the worker records the error)."""
    steps = importlib.import_module(cfg.steps_module)
    job_id, job_dir = job["job_id"], store.job_dir(job["job_id"])
    export = job_dir / "export.json"
    env = {k: v for k, v in (("LABEL_STUDIO_URL", cfg.label_studio_url),
                             ("LABEL_STUDIO_API_KEY", cfg.label_studio_api_key)) if v}

    def note_retry(attempt: int, error: str) -> None:
        jobs.set_stage(store, job_id, "exporting", export_retries=attempt, last_export_error=error)

    n_tasks = pull_export(cfg, store.project, export, on_retry=note_retry)

    current = promotion.current_model(cfg.model_dir)
    current_version = current.version if current else None
    warm = not job.get("full") and current is not None and current.checkpoint is not None
    jobs.set_stage(store, job_id, "training", export_tasks=n_tasks, warm_start=warm, compared_with=current_version)
    label_config = job_dir / "label_config.xml"
    run_dir = Path(steps.train(TrainRequest(
        export=export,
        label_config=label_config if label_config.is_file() else default_label_config(),
        data_root=cfg.data_root,
        out=job_dir / "run",
        split=current.split if current else None,
        init_from=current.checkpoint if warm else None,
        epochs_per_step=cfg.warm_epochs_per_step if warm else None,
        # the served model's shape first: AL_FIT_ARGS come later and win (argparse keeps the last value)
        extra_args=(promotion.architecture_args(current.onnx) if current else ()) + tuple(shlex.split(cfg.fit_args)),
    ), env))
    # The extended split (training wrote it): both models are scored on the same, grown validation set.
    split = run_dir / promotion.SPLIT_FILE
    if not split.is_file():
        raise FileNotFoundError(f"training wrote no {split} (needed to compare models on the same subjects)")

    jobs.set_stage(store, job_id, "evaluating")

    def score(model: Path, out: str) -> dict:
        return steps.evaluate(EvalRequest(model, export, cfg.data_root, split, job_dir / out), env)

    new_eval = score(run_dir / "model.onnx", "eval_new.json")
    current_eval = score(current.onnx, "eval_current.json") if current else None
    gate = promotion.GateConfig(cfg.promote_tolerance, cfg.promote_label_tolerance, cfg.promote_min_labels)
    decision = promotion.decide(new_eval, current_eval, gate, current_version)
    version = None
    if decision.promote:
        jobs.set_stage(store, job_id, "promoting")
        decision, version = _promote_if_still_current(store, cfg, job_id, run_dir, split, current_version, decision)
    extended = json.loads(split.read_text(encoding="utf-8"))

    return {
        "job_id": job_id, "status": "succeeded", "error": None, "full": bool(job.get("full")),
        "reasons": job.get("reasons", []), "warm_start": warm, "export_tasks": n_tasks,
        "started_at": job.get("started_at"), "finished_at": time.time(),
        "promoted": version is not None, "version": version, "promotion_reason": decision.reason,
        "metrics": {"new_val_mean_balanced_accuracy": (new_eval or {}).get("mean_balanced_accuracy"),
                    "current_val_mean_balanced_accuracy": (current_eval or {}).get("mean_balanced_accuracy"),
                    "current_version": current_version, "tolerance": cfg.promote_tolerance,
                    "label_tolerance": cfg.promote_label_tolerance, "min_labels": cfg.promote_min_labels,
                    "labels": list(decision.labels)},
        "split": {"new_subjects": extended.get("new_subjects"), "provisional": extended.get("provisional"),
                  "val_subjects": len((extended.get("subjects") or {}).get("val") or ())},
    }


def _promote_if_still_current(store: ProjectStore, cfg: ActiveLearningConfig, job_id: str, run_dir: Path,
                              split: Path, compared: str | None, decision: promotion.Decision):
    """Promote while still owning the job, and only over the model that was compared against."""
    with store.locked() as state:
        jobs.owned(state, job_id)
        now = promotion.current_model(cfg.model_dir)
        now_version = now.version if now else None
        if now_version != compared:
            return promotion.Decision(False, f"the current model changed during the job ({compared} -> "
                                             f"{now_version}); not promoted", decision.labels), None
        return decision, promotion.promote(cfg.model_dir, run_dir, f"p{store.project}-{job_id}", split)
