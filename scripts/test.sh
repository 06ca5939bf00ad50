#!/usr/bin/env bash
# The test command: set up (idempotent), then the whole suite, the real-Label-Studio end-to-end tests included.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
[ -e "$jemalloc" ] && export LD_PRELOAD="$jemalloc${LD_PRELOAD:+:$LD_PRELOAD}"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
