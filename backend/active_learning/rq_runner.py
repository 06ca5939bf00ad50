"""Redis + RQ runner (REDIS_URL set): jobs go to an RQ queue and run on any machine with a worker.

Workers run `rq worker <RQ_QUEUE>` with this project installed, the same MODEL_DIR mounted (job
state, exports and the registry live there) and LABEL_STUDIO_API_KEY in their environment.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .config import ActiveLearningConfig

WORKER_FUNCTION = "backend.active_learning.worker.run_job_file"


class RQRunner:
    def launch(self, job_file: Path, cfg: ActiveLearningConfig, on_exit: Callable[[], None] | None = None) -> dict:
        from redis import Redis
        from rq import Queue

        queue = Queue(cfg.rq_queue, connection=Redis.from_url(cfg.redis_url))
        rq_job = queue.enqueue(WORKER_FUNCTION, str(job_file), job_timeout=cfg.job_timeout_s,
                               result_ttl=86400, failure_ttl=7 * 86400)
        return {"runner": "rq", "rq_job_id": rq_job.id}
