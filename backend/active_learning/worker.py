"""Runs one job: `python -m backend.active_learning.worker JOBFILE` (local) or run_job_file (RQ).

The worker owns the job from start_job to finish_job; any exception (or SIGTERM) becomes a failed
result in the status. A heartbeat file shows it is alive; if it dies silently, the backend notices
the dead PID or the stale heartbeat (jobs.reap_dead_job). Nothing is promoted unless every step
before promotion succeeded, and promotion itself is the registry's atomic add + switch.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

from . import jobs
from .config import ActiveLearningConfig
from .pipeline import run_pipeline
from .store import ProjectStore

log = logging.getLogger("backend.active_learning.worker")


class _Heartbeat:
    def __init__(self, path: Path, every_s: float):
        self.path, self.every_s, self.stop_event = path, every_s, threading.Event()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        self.thread = threading.Thread(target=self._beat, daemon=True, name="al-heartbeat")

    def _beat(self) -> None:
        while not self.stop_event.wait(self.every_s):
            self.path.touch()

    def __enter__(self) -> "_Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop_event.set()


def run_job_file(job_file: str | Path, api_key: str | None = None) -> dict | None:
    """Run the job described by job.json; returns its result, or None if it was not ours to run."""
    spec = json.loads(Path(job_file).read_text(encoding="utf-8"))
    cfg = ActiveLearningConfig.from_worker_view(spec["config"], api_key or os.environ.get("LABEL_STUDIO_API_KEY"))
    store, job_id = ProjectStore(cfg.state_root, spec["project"]), spec["job_id"]
    try:
        with _Heartbeat(store.heartbeat_path(job_id), cfg.heartbeat_s):
            with store.locked() as state:
                job = dict(jobs.start_job(store, state, job_id))
            try:
                result = run_pipeline(store, cfg, job)
            except jobs.JobSuperseded:
                raise
            except BaseException as exc:  # SystemExit from SIGTERM included: report, then end
                log.error("job %s of project %s failed:\n%s", job_id, store.project, traceback.format_exc())
                result = jobs.failed_result(job, f"{type(exc).__name__}: {exc}")
    except jobs.JobSuperseded as exc:
        log.warning("%s", exc)
        return None
    jobs.finish_job(store, cfg, job_id, result)
    return result


def _terminate(signum, frame) -> None:
    raise SystemExit(f"terminated by signal {signum}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m backend.active_learning.worker JOBFILE", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signal.signal(signal.SIGTERM, _terminate)
    result = run_job_file(argv[0])
    return 0 if result is None or result["status"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
