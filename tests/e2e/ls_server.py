"""Run a real Label Studio server for end-to-end tests and the demo, and talk to its REST API.

Label Studio lives in its own cached virtualenv (scripts/ls_venv.sh) because its pins clash with ours.
Facts behind the settings: /work/shared/label-studio-1.23.2/PROTOCOL.md.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
LS_VENV_SCRIPT = REPO_ROOT / "scripts" / "ls_venv.sh"
LABEL_STUDIO_VERSION = "1.23.2"
# runserver prints the address it really binds; the launcher silently moves to the next port when busy.
_SERVING_LINE = re.compile(r"Starting development server at http://[^:/]+:(\d+)/")


class LabelStudioError(RuntimeError):
    """Label Studio did not start, or an API call failed (the message names the call and the answer)."""


def ensure_venv(version: str = LABEL_STUDIO_VERSION) -> Path:
    """Path of the cached Label Studio virtualenv, created on first use (serialised by a lock in the script)."""
    done = subprocess.run(
        ["bash", str(LS_VENV_SCRIPT)],
        env={**os.environ, "LABEL_STUDIO_VERSION": version},
        capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise LabelStudioError(f"{LS_VENV_SCRIPT} failed ({done.returncode}): {done.stderr[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class LabelStudioConfig:
    """How to start one Label Studio instance.

    data_dir: fresh per test session (sqlite database, uploads, logs).
    document_root: LOCAL_FILES_DOCUMENT_ROOT; local-files storages must point below it.
    legacy_token: LABEL_STUDIO_USER_TOKEN of the admin (must be longer than 5 characters).
    port: None picks a free one.
    start_timeout_s: a fresh data dir needs ~40 s of migrations on an idle machine; a shared one is slower.
    """
    data_dir: Path
    document_root: Path
    username: str = "admin@example.com"
    password: str = "recmeta-e2e-password"
    legacy_token: str = "recmeta-e2e-legacy-token"
    port: int | None = None
    start_timeout_s: float = 300.0
    version: str = LABEL_STUDIO_VERSION


@dataclass
class LabelStudio:
    """A running Label Studio server plus thin API helpers (legacy-token authenticated)."""
    config: LabelStudioConfig
    port: int = 0
    process: subprocess.Popen | None = None
    _pat: str | None = field(default=None, repr=False)

    # ----- lifecycle ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.config.data_dir / "label-studio.log"

    def environment(self, port: int) -> dict[str, str]:
        cfg = self.config
        # Our PYTHONPATH (repo root: tests/, backend/) must not leak into LS's module namespace,
        # nor a developer's database settings into its sqlite.
        inherited = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DATABASE_NAME")}
        return {
            **inherited,
            "LABEL_STUDIO_USERNAME": cfg.username,
            "LABEL_STUDIO_PASSWORD": cfg.password,
            "LABEL_STUDIO_USER_TOKEN": cfg.legacy_token,
            # Legacy tokens only work when enabled at the first start of a data dir.
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_BASE_DATA_DIR": str(cfg.data_dir),
            # The hostname LS sends in /setup, used by backends to resolve relative frame URLs.
            "LABEL_STUDIO_HOST": f"http://127.0.0.1:{port}",
            "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": "",
            "COLLECT_ANALYTICS": "false", "LATEST_VERSION_CHECK": "false",
            # Otherwise POST /api/ml to a loopback backend is refused with 403.
            "ML_BLOCK_LOCAL_IP": "false", "SSRF_PROTECTION_ENABLED": "false",
            "LOCAL_FILES_SERVING_ENABLED": "true",
            "LOCAL_FILES_DOCUMENT_ROOT": str(cfg.document_root),
            "DJANGO_DB": "sqlite",
        }

    def start(self, attempts: int = 3) -> "LabelStudio":
        venv = ensure_venv(self.config.version)
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(attempts):
            port = self.config.port or free_port()
            try:
                launched = self._launch(venv, port)
            except BaseException:
                self.stop()  # __exit__ does not run when __enter__ fails
                raise
            if launched:
                return self
            # Someone took the port before LS bound it: LS moved elsewhere silently, and its
            # LABEL_STUDIO_HOST would lie. Start again on another port.
            self.stop()
            if self.config.port:
                raise LabelStudioError(f"port {port} is in use; choose another one")
        raise LabelStudioError(f"Label Studio could not keep a port after {attempts} attempts; see {self.log_path}")

    def _launch(self, venv: Path, port: int) -> bool:
        log = self.log_path.open("ab")
        log_start = log.tell()  # earlier attempts' lines in the same log must not count
        self.process = subprocess.Popen(
            [str(venv / "bin" / "label-studio"), "start", "--no-browser",
             "--internal-host", "127.0.0.1", "--port", str(port)],
            env=self.environment(port), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop() ends its children too
        )
        log.close()
        deadline = time.monotonic() + self.config.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LabelStudioError(f"Label Studio exited with {self.process.returncode}: {self._log_tail()}")
            bound = self._bound_port(log_start)
            if bound is not None and bound != port:
                return False
            if bound == port and self._answers(port):
                self.port = port
                return True
            time.sleep(1.0)
        raise LabelStudioError(f"Label Studio did not answer within {self.config.start_timeout_s} s: {self._log_tail()}")

    def _bound_port(self, log_start: int) -> int | None:
        with self.log_path.open("rb") as log:
            log.seek(log_start)
            found = _SERVING_LINE.findall(log.read().decode(errors="replace"))
        return int(found[-1]) if found else None

    def _answers(self, port: int) -> bool:
        """Our server answers (checked with our token, not just any server on that port)."""
        try:
            r = requests.get(f"http://127.0.0.1:{port}/api/current-user/whoami",
                             headers={"Authorization": f"Token {self.config.legacy_token}"}, timeout=5)
        except requests.RequestException:
            return False
        return r.ok and r.json().get("email") == self.config.username

    def _log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else "(no log)"

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            self.process = None
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout_s)
        self.process = None

    def __enter__(self) -> "LabelStudio":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----- tokens ---------------------------------------------------------------------------------
    @property
    def legacy_token(self) -> str:
        return self.config.legacy_token

    def personal_access_token(self) -> str:
        """The admin's personal access token (a JWT refresh token), created once via POST /api/token/.

        LS keeps one valid PAT per user (a second POST answers 409) and lists only truncated tokens,
        so the full one is remembered here.
        """
        if self._pat is None:
            self._pat = self.request("POST", "/api/token/", expect=201).json()["token"]
        return self._pat

    def access_token(self, refresh: str) -> str:
        """A short-lived (5 min) access token for `Authorization: Bearer`, from a PAT."""
        r = requests.post(f"{self.url}/api/token/refresh/", json={"refresh": refresh}, timeout=30)
        _check(r, "POST /api/token/refresh/", 200)
        return r.json()["access"]

    # ----- API helpers ----------------------------------------------------------------------------
    def request(self, method: str, path: str, *, expect: int | tuple[int, ...] = (200, 201),
                timeout: float = 120, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Token {self.legacy_token}", **kwargs.pop("headers", {})}
        r = requests.request(method, f"{self.url}{path}", headers=headers, timeout=timeout, **kwargs)
        _check(r, f"{method} {path}", expect)
        return r

    def create_project(self, title: str, label_config: str) -> dict:
        return self.request("POST", "/api/projects", json={"title": title, "label_config": label_config}).json()

    def add_local_storage(self, project_id: int, path: Path, title: str = "frames") -> dict:
        """Local-files storage; without one, /data/local-files/ URLs of the project answer 404."""
        body = {"project": project_id, "path": str(path), "title": title, "use_blob_urls": True}
        return self.request("POST", "/api/storages/localfiles", json=body).json()

    def import_tasks(self, project_id: int, tasks: list[dict]) -> dict:
        return self.request("POST", f"/api/projects/{project_id}/import", json=tasks).json()

    def create_recordings_project(self, title: str, label_config: str, recordings: Path) -> dict:
        """A project with `label_config`, a local-files storage on `recordings` and its tasks.json imported
        (the layout of training.synthetic: frame URLs relative to the document root)."""
        project = self.create_project(title[:50], label_config)  # LS refuses titles over 50 characters
        self.add_local_storage(project["id"], recordings)
        self.import_tasks(project["id"], json.loads((recordings / "tasks.json").read_text(encoding="utf-8")))
        return project

    def connect_ml_backend(self, project_id: int, url: str, title: str = "recmeta") -> dict:
        """POST /api/ml: LS checks /health and /setup of the backend and adds it to the project."""
        return self.request("POST", "/api/ml", json={"url": url, "project": project_id, "title": title}).json()

    def retrieve_predictions(self, project_id: int, task_ids: list[int] | None = None) -> dict:
        """The Data Manager action "Retrieve Predictions": one /predict call with all selected tasks."""
        selected = {"all": False, "included": task_ids} if task_ids else {"all": True, "excluded": []}
        return self.request(
            "POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={project_id}",
            json={"project": project_id, "selectedItems": selected}, timeout=300,
        ).json()

    def tasks(self, project_id: int) -> list[dict]:
        """All tasks of a project with their predictions and annotations."""
        r = self.request("GET", f"/api/tasks?project={project_id}&fields=all&page_size=100000")
        return r.json()["tasks"]

    def annotate(self, task_id: int, result: list[dict]) -> dict:
        return self.request("POST", f"/api/tasks/{task_id}/annotations", json={"result": result}).json()

    def export(self, project_id: int, export_type: str = "JSON") -> list[dict] | bytes:
        r = self.request("GET", f"/api/projects/{project_id}/export?exportType={export_type}"
                                "&download_all_tasks=true")
        return r.json() if export_type.startswith("JSON") else r.content


def _check(r: requests.Response, call: str, expect: int | tuple[int, ...]) -> None:
    expected = (expect,) if isinstance(expect, int) else expect
    if r.status_code not in expected:
        raise LabelStudioError(f"{call} answered {r.status_code} (expected {expected}): {r.text[:1000]}")
