#!/usr/bin/env bash
# The test command: set up (idempotent), then the whole suite, the real-Label-Studio end-to-end tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
.venv/bin/ruff check .  # lint first ([tool.ruff] in pyproject.toml): seconds, and a failure says where
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
