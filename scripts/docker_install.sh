#!/bin/sh
# The images' install step: the Dockerfile RUNs it, and tests/test_docker_image_steps.py runs it into a
# clean virtualenv, so what each image installs is tested without a Docker engine.
# It installs the folder above scripts/ (/app in the image, where the Dockerfile's COPYs land).
# PYTHON: the interpreter whose environment receives the install (default: python).
# EXTRAS: "serve" (the serving image, default) or "serve,train" (the training image).
set -eu
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python}"
EXTRAS="${EXTRAS:-serve}"

# Pinned CPU wheels only (constraints-cpu.txt pins torch to its CPU build); nothing needs a compiler.
"$PYTHON" -m pip install --constraint constraints-cpu.txt ".[$EXTRAS]"

if [ "$EXTRAS" = serve ]; then
    # The serving path must stay torch-free (a multi-GB dependency the serving image does not have).
    "$PYTHON" -c "import sys, backend.app; sys.exit('backend.app imported torch' if 'torch' in sys.modules else 0)"
else
    # What an active-learning job runs: the training CLIs, their ILP solver and the hashing.
    "$PYTHON" -c "import torch, pulp, imagehash, training.fit, training.evaluate, backend.app"
fi
