"""Per-project job state on disk under MODEL_DIR/active_learning/projects/<project>/.

Backend workers share nothing but MODEL_DIR, so every read-modify-write of state.json happens
under an fcntl lock on a sibling lock file, and writes go to a temp file that is os.replace()d.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import re
import time
from pathlib import Path
from typing import Any, Iterator

from training.atomic_write import write_bytes_atomic

PROJECT_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ProjectIdError(ValueError):
    """A webhook or job names a project id that cannot be used as a folder name."""


def project_id_of(project: Any) -> str:
    """The project id from a webhook's `project` (an object with `id`, an int, or '<id>.<ts>')."""
    if isinstance(project, dict):
        project = project.get("id")
    if isinstance(project, bool) or project is None:
        raise ProjectIdError(f"webhook 'project' has no usable id: {project!r}")
    text = str(project).split(".", 1)[0]
    if not PROJECT_RE.match(text):
        raise ProjectIdError(f"project id {text!r} must match {PROJECT_RE.pattern}")
    return text


def write_json_atomic(path: Path, data: Any) -> None:
    write_bytes_atomic(path, json.dumps(data, indent=1, sort_keys=True).encode("utf-8"))




def empty_state(project: str) -> dict:
    return {"project": project, "changes_since_model": 0, "running": None, "queued": None, "last_result": None}


class ProjectStore:
    """State file, lock and job folders of one project."""

    def __init__(self, state_root: Path, project: str):
        self.project = project
        self.dir = Path(state_root) / "projects" / project
        self.state_path = self.dir / "state.json"
        self.lock_path = self.dir / "state.lock"

    def job_dir(self, job_id: str) -> Path:
        return self.dir / "jobs" / job_id

    def heartbeat_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "heartbeat"

    def read(self) -> dict:
        try:
            return json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return empty_state(self.project)

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict]:
        """Yield the state under an exclusive lock; the (mutated) dict is written back on exit."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                state = self.read()
                before = json.dumps(state, sort_keys=True)
                yield state
                if json.dumps(state, sort_keys=True) != before:
                    write_json_atomic(self.state_path, state)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def heartbeat_age(self, job_id: str, now: float | None = None) -> float | None:
        try:
            return (time.time() if now is None else now) - self.heartbeat_path(job_id).stat().st_mtime
        except FileNotFoundError:
            return None


def all_projects(state_root: Path) -> list[str]:
    base = Path(state_root) / "projects"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if PROJECT_RE.match(p.name) and (p / "state.json").is_file())
