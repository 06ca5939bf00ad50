"""Local servers run as subprocesses: a free port, waiting for /health, stopping a process group.

Shared by the end-to-end tests, the unit tests and the benchmarks. It lives in this package so
that every way these are run can import it: pytest (``from e2e.server_process import ...`` or,
inside tests/e2e, ``from .server_process import ...``) and scripts with the repo root on sys.path
(``from tests.e2e.server_process import ...``; benchmarks/ and scripts/demo.sh do that).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests


def free_port() -> int:
    """A loopback port nobody listens on right now (another process may still take it first)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path, chars: int = 3000) -> str:
    path = Path(path)
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


def wait_for_health(url: str, proc: subprocess.Popen, timeout_s: float = 60.0, log: Path | None = None) -> dict:
    """Poll GET url/health until it answers 2xx and return its JSON body. Raises RuntimeError, with
    the tail of `log` when given, if `proc` exits first or `timeout_s` passes."""
    def failed(what: str) -> RuntimeError:
        return RuntimeError(f"{url}: {what}" + (f": {log_tail(log)}" if log is not None else ""))

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise failed(f"the server exited with {proc.returncode} before answering /health")
        try:
            answer = requests.get(f"{url}/health", timeout=2)
            if answer.ok:
                return answer.json()
        except requests.RequestException:  # not listening yet
            pass
        time.sleep(0.3)
    raise failed(f"no /health answer within {timeout_s} s")


def stop_process_group(proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """SIGTERM the process group `proc` leads (started with start_new_session=True, so its workers
    go too); SIGKILL if it is still there after timeout_s."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout_s)


class ThreadedHTTPServer:
    """An http.server on a free loopback port, served from a daemon thread (fakes of the tests)."""

    def __init__(self, handler: type):
        import http.server
        import threading

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
