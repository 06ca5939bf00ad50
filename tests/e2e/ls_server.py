"""Run a real Label Studio server for end-to-end tests and the demo; its REST calls are in ls_api.py.

Label Studio lives in its own cached virtualenv (scripts/ls_venv.sh) because its pins clash with ours.
Facts behind the settings: tests/fixtures/label_studio/PROTOCOL.md.
"""
from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from .ls_api import LabelStudioApi, LabelStudioError
from .server_process import free_port, log_tail, stop_process_group

REPO_ROOT = Path(__file__).resolve().parents[2]
LS_VENV_SCRIPT = REPO_ROOT / "scripts" / "ls_venv.sh"
LABEL_STUDIO_VERSION = "1.23.2"
# runserver prints the address it really binds; the launcher silently moves to the next port when busy.
_SERVING_LINE = re.compile(r"Starting development server at http://[^:/]+:(\d+)/")


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
class LabelStudio(LabelStudioApi):
    """A running Label Studio server plus the API helpers of ls_api.py (legacy-token authenticated)."""
    config: LabelStudioConfig
    port: int = 0
    process: subprocess.Popen | None = None

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
                raise LabelStudioError(f"Label Studio exited with {self.process.returncode}: {log_tail(self.log_path)}")
            bound = self._bound_port(log_start)
            if bound is not None and bound != port:
                return False
            if bound == port and self._answers(port):
                self.port = port
                return True
            time.sleep(1.0)
        raise LabelStudioError(f"Label Studio did not answer within {self.config.start_timeout_s} s: {log_tail(self.log_path)}")

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

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process is not None:
            stop_process_group(self.process, timeout_s)
        self.process = None

    def __enter__(self) -> "LabelStudio":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def legacy_token(self) -> str:
        return self.config.legacy_token
