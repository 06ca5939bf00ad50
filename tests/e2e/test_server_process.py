"""The subprocess-server helpers, against tiny real servers (no Label Studio needed)."""
from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from .server_process import free_port, log_tail, stop_process_group, wait_for_health

# Answers GET /health with JSON after a short delay, and starts a child that shares its process group.
HEALTH_SERVER = """
import http.server, json, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print("child", child.pid, flush=True)
time.sleep(0.5)

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"status": "UP", "path": self.path}).encode()
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that may never come counts as ended)."""
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_free_port_can_be_bound():
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_waits_for_health_then_stops_the_whole_group(tmp_path):
    port, log_path = free_port(), tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", HEALTH_SERVER, str(port)], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert wait_for_health(f"http://127.0.0.1:{port}", proc, timeout_s=30) == {"status": "UP", "path": "/health"}
        child = int(log_tail(log_path).split()[1])
        assert _alive(child)
    finally:
        stop_process_group(proc, 10)
    assert proc.returncode is not None
    deadline = time.monotonic() + 10  # the child got SIGTERM too; it ends on its own schedule
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def test_a_server_that_exits_is_reported_with_its_log(tmp_path):
    log_path = tmp_path / "server.log"
    log_path.write_text("boom: port taken\n")
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(RuntimeError, match=r"exited with 3 .*boom: port taken"):
        wait_for_health(f"http://127.0.0.1:{free_port()}", proc, timeout_s=30, log=log_path)


def test_no_answer_within_the_timeout(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        with pytest.raises(RuntimeError, match="no /health answer within 0.5 s: \\(no log\\)"):
            wait_for_health(f"http://127.0.0.1:{free_port()}", proc, timeout_s=0.5, log=tmp_path / "missing.log")
    finally:
        stop_process_group(proc, 10)
    assert proc.returncode is not None
