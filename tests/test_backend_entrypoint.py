"""The serving image's start script, run here without Docker; and the torch-free serving path."""
from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from backend_fixtures import add_tiny_version
from e2e.server_process import free_port, wait_for_health

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = ROOT / "scripts" / "docker_entrypoint.sh"


def fastest_keep_alive_request_ms(port: int, n: int = 8) -> float:
    """Nagle's algorithm against the client's delayed ACK adds >= 40 ms to EVERY request after the
    first on a keep-alive connection; the fastest of several shows it even on a loaded machine."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times = []
    for _ in range(n):
        started = time.perf_counter()
        connection.request("GET", "/health")
        connection.getresponse().read()
        times.append(time.perf_counter() - started)
    connection.close()
    return 1000 * min(times[1:])


@pytest.mark.slow
def test_entrypoint_starts_the_backend_on_a_fresh_model_dir(tmp_path):
    model_dir = tmp_path / "models" / "not-yet-created"
    port = free_port()
    env = dict(os.environ, MODEL_DIR=str(model_dir), PORT=str(port), HOST="127.0.0.1", PYTHON=sys.executable,
               WORKERS="2", LABEL_STUDIO_API_KEY="entry-secret-987", PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"))
    log = tmp_path / "entrypoint.log"
    with open(log, "wb") as sink:
        proc = subprocess.Popen(["sh", str(ENTRYPOINT)], env=env, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        health = wait_for_health(url, proc, timeout_s=30, log=log)
        assert health == {"status": "UP", "model_class": "RecordingBackend", "model_version": None,
                          "training": "idle", "training_jobs": {}}
        assert model_dir.is_dir()
        add_tiny_version(model_dir, tmp_path, "live-v1")  # both workers see it without a restart
        time.sleep(1.2)
        for _ in range(4):
            assert wait_for_health(url, proc, timeout_s=30, log=log)["model_version"] == "live-v1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert b"recmeta_predict_seconds" in response.read()
        assert fastest_keep_alive_request_ms(port) < 25  # TCP_NODELAY with several workers too
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert b"entry-secret-987" not in log.read_bytes()


def test_serving_path_never_imports_torch():
    code = ("import sys, backend.app, backend.models, backend.__main__; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0
