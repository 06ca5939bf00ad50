"""Pick the job runner: Redis + RQ when REDIS_URL is set, else local worker processes."""
from __future__ import annotations

from .config import ActiveLearningConfig
from .local_runner import LocalRunner
from .rq_runner import RQRunner


def runner_for(cfg: ActiveLearningConfig) -> LocalRunner | RQRunner:
    return RQRunner() if cfg.redis_url else LocalRunner()
