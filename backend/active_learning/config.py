"""Active-learning settings: one frozen dataclass, read from the backend Settings plus env.

backend.settings.Settings supplies MODEL_DIR, LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY and
LOCAL_FILES_DOCUMENT_ROOT; the active-learning knobs are read from attributes of the same name
(lower case) when Settings has them, else from the environment, else the defaults below.
"""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from backend.env_values import env_text, parse_env_value


class ActiveLearningConfigError(ValueError):
    """An active-learning setting has a value that cannot be used."""


@dataclass(frozen=True)
class ActiveLearningConfig:
    model_dir: Path
    label_studio_url: str | None = None
    label_studio_api_key: str | None = field(default=None, repr=False)  # never written to disk
    data_root: Path | None = None  # LOCAL_FILES_DOCUMENT_ROOT: where export frame paths resolve
    retrain_every: int = 10  # new/changed/deleted annotations that start a job; 0 = only START_TRAINING
    promote_tolerance: float = 0.02  # promote unless new val mean balanced accuracy < current - this
    promote_label_tolerance: float = 0.10  # ... or a gated label's val balanced accuracy < current's - this
    promote_min_labels: int = 5  # a label is gated when the val set holds at least this many of its labels
    full_retrain_on_start: bool = False  # START_TRAINING trains from scratch instead of warm-starting
    warm_epochs_per_step: int = 2  # shorter S4L schedule when warm-started from the current model
    fit_args: str = ""  # extra `python -m training.fit` arguments (shell syntax), same for every job
    redis_url: str | None = None  # set: jobs go to an RQ queue; unset: local worker processes
    rq_queue: str = "active-learning"
    job_timeout_s: int = 6 * 3600  # RQ job timeout
    export_attempts: int = 5  # Label Studio export tries (connection errors, 5xx, 401)
    export_backoff_s: float = 2.0  # first retry delay; doubles per try, capped at 60 s
    export_timeout_s: float = 300.0
    heartbeat_s: float = 5.0  # a running worker touches its heartbeat file this often
    stale_after_s: float = 120.0  # a started job without a heartbeat for this long is dead
    steps_module: str = "backend.active_learning.training_steps"  # train/evaluate implementation

    def __post_init__(self) -> None:
        if self.retrain_every < 0:
            raise ActiveLearningConfigError(f"RETRAIN_EVERY must be >= 0, got {self.retrain_every}")
        for name, value in (("PROMOTE_TOLERANCE", self.promote_tolerance),
                            ("PROMOTE_LABEL_TOLERANCE", self.promote_label_tolerance)):
            if not 0.0 <= value <= 1.0:
                raise ActiveLearningConfigError(f"{name} must be in [0, 1], got {value}")
        if self.promote_min_labels < 1:
            raise ActiveLearningConfigError(f"PROMOTE_MIN_LABELS must be >= 1, got {self.promote_min_labels}")
        if self.export_attempts < 1 or self.warm_epochs_per_step < 1:
            raise ActiveLearningConfigError("AL_EXPORT_ATTEMPTS and AL_WARM_EPOCHS_PER_STEP must be >= 1")
        try:
            shlex.split(self.fit_args)
        except ValueError as exc:
            raise ActiveLearningConfigError(f"AL_FIT_ARGS={self.fit_args!r}: {exc}") from None
        if self.heartbeat_s <= 0 or self.stale_after_s <= 2 * self.heartbeat_s:
            raise ActiveLearningConfigError("AL_STALE_AFTER_S must exceed twice AL_HEARTBEAT_S (> 0)")

    @property
    def state_root(self) -> Path:
        return Path(self.model_dir) / "active_learning"

    def worker_view(self) -> dict:
        """The settings a worker needs, without the API key (workers read it from their env)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "label_studio_api_key"}
        return {k: str(v) if isinstance(v, Path) else v for k, v in out.items()}

    @classmethod
    def from_worker_view(cls, view: Mapping[str, Any], api_key: str | None) -> "ActiveLearningConfig":
        paths = {"model_dir", "data_root"}
        values = {k: (Path(v) if k in paths and v is not None else v) for k, v in view.items()}
        return cls(**values, label_studio_api_key=api_key)


# env name -> (field, type); bool parsing is strict so a typo is an error, not "false"
_ENV = {
    "RETRAIN_EVERY": ("retrain_every", int),
    "PROMOTE_TOLERANCE": ("promote_tolerance", float),
    "PROMOTE_LABEL_TOLERANCE": ("promote_label_tolerance", float),
    "PROMOTE_MIN_LABELS": ("promote_min_labels", int),
    "FULL_RETRAIN_ON_START": ("full_retrain_on_start", bool),
    "AL_WARM_EPOCHS_PER_STEP": ("warm_epochs_per_step", int),
    "AL_FIT_ARGS": ("fit_args", str),
    "REDIS_URL": ("redis_url", str),
    "RQ_QUEUE": ("rq_queue", str),
    "AL_JOB_TIMEOUT_S": ("job_timeout_s", int),
    "AL_EXPORT_ATTEMPTS": ("export_attempts", int),
    "AL_EXPORT_BACKOFF_S": ("export_backoff_s", float),
    "AL_EXPORT_TIMEOUT_S": ("export_timeout_s", float),
    "AL_HEARTBEAT_S": ("heartbeat_s", float),
    "AL_STALE_AFTER_S": ("stale_after_s", float),
    "AL_STEPS_MODULE": ("steps_module", str),
}


def config_from_settings(settings: Any, env: Mapping[str, str] | None = None) -> ActiveLearningConfig:
    """Build the config from a backend Settings (or any object with the same attributes)."""
    if isinstance(settings, ActiveLearningConfig):
        return settings
    env = os.environ if env is None else env
    cfg = ActiveLearningConfig(
        model_dir=Path(settings.model_dir),
        label_studio_url=getattr(settings, "label_studio_url", None),
        label_studio_api_key=getattr(settings, "label_studio_api_key", None),
        data_root=getattr(settings, "local_files_document_root", None),
    )
    overrides = {}
    for name, (attr, kind) in _ENV.items():
        if getattr(settings, attr, None) is not None:
            overrides[attr] = getattr(settings, attr)
        elif env_text(env, name):
            overrides[attr] = parse_env_value(name, env_text(env, name), kind, ActiveLearningConfigError)
    return replace(cfg, **overrides)
