"""Default runner: each job is a separate local process (`python -m backend.active_learning.worker`).

The process gets its own session so that a backend restart does not kill it (recover_on_startup
then finds it alive); the API key travels in its environment, never on disk.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

from .config import ActiveLearningConfig


class LocalRunner:
    def launch(self, job_file: Path, cfg: ActiveLearningConfig, on_exit: Callable[[], None] | None = None) -> dict:
        env = dict(os.environ)
        if cfg.label_studio_api_key:
            env["LABEL_STUDIO_API_KEY"] = cfg.label_studio_api_key
        with open(Path(job_file).parent / "worker.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "backend.active_learning.worker", str(job_file)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )
        # Reap the child (no zombie that looks alive) and report a silent death at once.
        threading.Thread(target=_wait_then, args=(proc, on_exit), daemon=True, name=f"al-reaper-{proc.pid}").start()
        return {"runner": "local", "pid": proc.pid, "host": socket.gethostname()}


def _wait_then(proc: subprocess.Popen, on_exit: Callable[[], None] | None) -> None:
    proc.wait()
    if on_exit is not None:
        on_exit()
