"""Fixtures for the end-to-end tests: one real Label Studio per session, generated recordings,
an installed model and our backend as a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .ls_server import REPO_ROOT, LabelStudio, LabelStudioConfig
from .server_process import free_port, stop_process_group, wait_for_health

RECORDINGS = 5  # a handful of tasks keeps the module within ~3 minutes on 2 shared cores
FRAMES = 3
FRAME_SIZE = 64


@pytest.fixture(scope="session")
def document_root(tmp_path_factory) -> Path:
    """LOCAL_FILES_DOCUMENT_ROOT shared by Label Studio and (in one variant) the backend."""
    return tmp_path_factory.mktemp("documents")


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory, document_root):
    server = LabelStudio(LabelStudioConfig(data_dir=tmp_path_factory.mktemp("label-studio"),
                                           document_root=document_root))
    with server:
        yield server


@pytest.fixture(scope="session")
def recordings(document_root) -> Path:
    """Generated recordings below the document root; their tasks.json holds /data/local-files URLs."""
    from training.synthetic import generate

    return generate(document_root / "synthetic", recordings=RECORDINGS, subjects=3, frames=FRAMES,
                    size=FRAME_SIZE, seed=7).root


@pytest.fixture(scope="session")
def label_config() -> str:
    return (REPO_ROOT / "label_config.xml").read_text(encoding="utf-8")


@pytest.fixture
def project(label_studio, label_config, recordings, request) -> dict:
    """A fresh project with our config, a local-files storage and the generated tasks imported."""
    return label_studio.create_recordings_project(request.node.name, label_config, recordings)


MODEL_VERSION = "e2e-tiny-v1"


@pytest.fixture(scope="session")
def model_version() -> str:
    """The version id under which model_dir holds its model."""
    return MODEL_VERSION


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """MODEL_DIR with one installed tiny ONNX model as version MODEL_VERSION (untrained weights are
    enough: the tests check the protocol, not accuracy)."""
    from backend_fixtures import build_tiny_model

    onnx_path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    build_tiny_model(onnx_path)
    models = tmp_path_factory.mktemp("models")
    subprocess.run([sys.executable, "-m", "backend.models", "--model-dir", str(models), "add", str(onnx_path),
                    "--version", MODEL_VERSION, "--use"], cwd=REPO_ROOT, check=True, capture_output=True)
    return models


# Backend settings a developer's shell may hold; each test names the ones it means.
NOT_INHERITED = ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY", "LOCAL_FILES_DOCUMENT_ROOT",
                 "BASIC_AUTH_USER", "BASIC_AUTH_PASS", "MODEL_DIR")


@pytest.fixture
def start_backend(tmp_path):
    """start_backend(env) -> URL of `python -m backend` on a free loopback port; stopped at teardown."""
    started: list[subprocess.Popen] = []

    def start(env: dict[str, str], timeout_s: float = 60.0) -> str:
        port = free_port()
        log_path = tmp_path / f"backend-{port}.log"
        log = log_path.open("wb")
        inherited = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
        proc = subprocess.Popen([sys.executable, "-m", "backend", "--host", "127.0.0.1", "--port", str(port)],
                                # the tiny generated models here cannot pass the quality gate (too few validation
                                # recordings); tests of the gate turn it on through `env`
                                env={**inherited, "ONNX_THREADS": "1", "OMP_NUM_THREADS": "1", "QUALITY_GATE": "off",
                                     **env},
                                cwd=REPO_ROOT,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()  # the child holds its own copy
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        wait_for_health(url, proc, timeout_s, log=log_path)
        return url

    yield start
    for proc in started:  # each backend leads its own process group (uvicorn workers included)
        stop_process_group(proc, 15)
