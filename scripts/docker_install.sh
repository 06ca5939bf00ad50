#!/bin/sh
# The serving image's install step: the Dockerfile RUNs it, and tests/test_docker_image_steps.py runs it
# into a clean virtualenv, so what the image installs is tested without a Docker engine.
# It installs the folder above scripts/ (/app in the image, where the Dockerfile's COPYs land).
# PYTHON: the interpreter whose environment receives the install (default: python).
set -eu
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"

# Pinned CPU wheels only; ".[serve]" is ONNX Runtime without torch, so nothing needs a compiler.
"$PYTHON" -m pip install --constraint constraints-cpu.txt ".[serve]"

# The serving path must stay torch-free (a multi-GB dependency the image does not have).
"$PYTHON" -c "import sys, backend.app; sys.exit('backend.app imported torch' if 'torch' in sys.modules else 0)"
