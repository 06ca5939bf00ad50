"""Serving speed settings: ONNX Runtime thread spinning and the allocator the entrypoint picks."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from backend.recording_model import RecordingBackend
from backend_fixtures import add_tiny_version, backend_settings

ROOT = Path(__file__).resolve().parent.parent
ENTRYPOINT = ROOT / "scripts" / "docker_entrypoint.sh"
JEMALLOCS = [Path("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"), Path("/usr/lib/aarch64-linux-gnu/libjemalloc.so.2")]
SPIN_KEY = "session.intra_op.allow_spinning"


@pytest.mark.parametrize("spinning, expected", [(False, "0"), (True, "1")])
def test_served_sessions_spin_only_when_asked(tmp_path, spinning, expected):
    settings = backend_settings(tmp_path, onnx_spinning=spinning)
    add_tiny_version(settings.model_dir, tmp_path)
    session = RecordingBackend(settings).live.get().model.session
    assert session.get_session_options().get_session_config_entry(SPIN_KEY) == expected


def run_entrypoint(tmp_path, **env) -> subprocess.CompletedProcess:
    """The entrypoint with a stand-in python that prints the LD_PRELOAD it was started with."""
    fake_python = tmp_path / "python"
    fake_python.write_text('#!/bin/sh\necho "LD_PRELOAD=${LD_PRELOAD:-}"\n')
    fake_python.chmod(0o755)
    base = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "MALLOC")}
    base.update(PYTHON=str(fake_python), MODEL_DIR=str(tmp_path / "models"),
                PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"))
    base.update(env)
    return subprocess.run(["sh", str(ENTRYPOINT)], env=base, capture_output=True, text=True, timeout=30, check=False)


def preload_of(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().removeprefix("LD_PRELOAD=")


def test_glibc_is_the_default_and_drops_only_a_jemalloc_preload(tmp_path):
    # paths that do not exist: the dynamic loader only warns on stderr
    image_env = "/opt/none/libjemalloc.so.2:/opt/none/libother.so"
    assert preload_of(run_entrypoint(tmp_path, LD_PRELOAD=image_env)) == "/opt/none/libother.so"
    assert preload_of(run_entrypoint(tmp_path, MALLOC="glibc", LD_PRELOAD="/opt/none/libjemalloc.so.2")) == ""
    assert preload_of(run_entrypoint(tmp_path)) == ""


def test_jemalloc_is_preloaded_when_installed(tmp_path):
    installed = next((str(p) for p in JEMALLOCS if p.is_file()), "")
    assert preload_of(run_entrypoint(tmp_path, MALLOC="jemalloc")) == installed


def test_unknown_allocator_stops_the_start(tmp_path):
    result = run_entrypoint(tmp_path, MALLOC="tcmalloc")
    assert result.returncode == 2 and "MALLOC=tcmalloc" in result.stderr and not result.stdout
