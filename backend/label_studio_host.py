"""Which Label Studio host a project's requests go to, and with which credential.

The policy (docs/backend.md, "Label Studio host and credentials"):
- The host is the operator's LABEL_STUDIO_URL. Without one, it is the `hostname` of the project's
  first /setup, and only if that host is in LABEL_STUDIO_SETUP_HOSTS (loopback by default, so the
  demo needs no settings). That choice is kept in MODEL_DIR (all workers and restarts see it) and no
  later /setup changes it; a /setup for one project never touches another's.
- The operator's LABEL_STUDIO_API_KEY goes only to the operator's LABEL_STUDIO_URL. A token that a
  /setup delivers is kept in memory for that project only, and only when the /setup names the
  project's host; it is used for export pulls and frame downloads against that host alone
  (training.frame_source sends Authorization only to the host it is configured with).
So no /setup, /webhook or /predict can make the backend send a credential to any other host.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import requests

from backend.active_learning.store import ProjectIdError, project_id_of, write_json_atomic
from training.ls_auth import LabelStudioAuth, LabelStudioAuthError, same_origin

log = logging.getLogger(__name__)
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
MAX_PROJECTS = 10_000  # pinned hosts and remembered tokens; beyond it a new project's /setup is not kept
CHECK_TIMEOUT_S = 5.0  # GET /api/projects/<id> while answering a webhook


@dataclass(frozen=True)
class Connection:
    """Where a project's Label Studio is and the credential for it (None: unknown / none)."""

    url: str | None
    api_key: str | None = field(default=None, repr=False)


def normalise_host(hostname: Any) -> str | None:
    """scheme://host[:port][/path] of an http(s) URL without credentials, query or fragment; else None."""
    if not isinstance(hostname, str):
        return None
    parts = urlsplit(hostname.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password \
            or parts.query or parts.fragment:
        return None
    return f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")


def host_allowed(url: str, allowed: tuple[str, ...]) -> bool:
    """`url`'s host (any port) is in `allowed` (lower-case host names or addresses)."""
    return (urlsplit(url).hostname or "").lower() in allowed


class ProjectHosts:
    """The policy above for one backend process; thread-safe."""

    def __init__(self, settings):
        self.configured_url = settings.label_studio_url
        self.configured_key = settings.label_studio_api_key if settings.label_studio_url else None
        self.allowed = tuple(h.lower() for h in settings.setup_hosts)
        self.pins_path = Path(settings.model_dir) / "active_learning" / "label_studio_hosts.json"
        self._pins: dict[str, str] = {}
        self._tokens: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    # --- /setup ---
    def setup(self, project: Any, hostname: Any, access_token: Any) -> str:
        """Record what a /setup may change; returns what was done (for logs and tests)."""
        try:
            pid = project_id_of(project)
        except ProjectIdError:
            return "ignored: no usable project id"
        host = self.configured_url or self._pin(pid, normalise_host(hostname))
        if host is None:
            return f"ignored: host {hostname!r} is not in LABEL_STUDIO_SETUP_HOSTS {list(self.allowed)}"
        if not isinstance(access_token, str) or not access_token.strip():
            return "kept host, no token"
        sent = normalise_host(hostname)
        if sent is None or not same_origin(sent, host):
            return f"token ignored: /setup named {sent!r}, project {pid} uses {host}"
        with self._lock:
            self._tokens[pid] = access_token.strip()
            self._tokens.move_to_end(pid)
            while len(self._tokens) > MAX_PROJECTS:
                self._tokens.popitem(last=False)
        return "token kept"

    def _pin(self, project: str, host: str | None) -> str | None:
        """The project's pinned host; pins `host` first if none is pinned and it is allowed."""
        if project in self._pins:
            return self._pins[project]
        with self._locked_pins() as pins:
            if project not in pins and host and host_allowed(host, self.allowed) and len(pins) < MAX_PROJECTS:
                pins[project] = host
                log.info("project %s: Label Studio host %s (from its first /setup)", project, host)
            self._pins = dict(pins)
        return self._pins.get(project)

    @contextlib.contextmanager
    def _locked_pins(self) -> Iterator[dict]:
        """The pins file under an exclusive lock (workers share MODEL_DIR); written back if changed."""
        self.pins_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.pins_path.with_suffix(".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                pins = json.loads(self.pins_path.read_text(encoding="utf-8")) if self.pins_path.is_file() else {}
                before = dict(pins)
                yield pins
                if pins != before:
                    write_json_atomic(self.pins_path, pins)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # --- what requests use ---
    def connection(self, project: Any) -> Connection:
        """The Label Studio URL and key for `project` (its id, '<id>.<ts>', or None)."""
        try:
            pid = project_id_of(project)
        except ProjectIdError:
            return Connection(self.configured_url, self.configured_key)
        if self.configured_url:
            return Connection(self.configured_url, self.configured_key or self._tokens.get(pid))
        if pid not in self._pins and self.pins_path.is_file():  # pinned by another worker? (replaced atomically)
            self._pins = json.loads(self.pins_path.read_text(encoding="utf-8"))
        url = self._pins.get(pid)
        return Connection(url, self._tokens.get(pid) if url else None)

    def why_unknown(self, project: str) -> str | None:
        """Why no job may run for `project` (never set up, or Label Studio does not know it); None if it may."""
        conn = self.connection(project)
        if not conn.url:
            return (f"project {project} was never set up: no LABEL_STUDIO_URL, and no /setup from Label Studio "
                    f"for it from an allowed host (LABEL_STUDIO_SETUP_HOSTS={','.join(self.allowed)})")
        if not conn.api_key:
            return (f"no credential for project {project} at {conn.url}: set LABEL_STUDIO_API_KEY, or let Label "
                    f"Studio call /setup (it sends a token) on this backend process")
        url = f"{conn.url}/api/projects/{project}"
        try:
            answer = requests.get(url, headers=LabelStudioAuth(conn.url, conn.api_key).headers(),
                                  timeout=CHECK_TIMEOUT_S, allow_redirects=False)
        except (requests.RequestException, LabelStudioAuthError) as exc:
            return f"cannot confirm project {project} at {conn.url}: {type(exc).__name__}"
        if answer.status_code == 200:
            return None
        if answer.status_code == 404:
            return f"project {project} does not exist in Label Studio at {conn.url}"
        return f"Label Studio at {conn.url} answered HTTP {answer.status_code} for project {project}"
