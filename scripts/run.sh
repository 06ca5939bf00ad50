#!/usr/bin/env bash
# The main job on a fresh machine: set up, build the embedded default model when MODEL_DIR has none, serve.
#   bash scripts/run.sh [--with-label-studio]      (HOST, PORT, MODEL_DIR, WORKERS, ... from the environment)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MODEL_DIR=${MODEL_DIR:-$PWD/models}
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-9090}
if ! .venv/bin/python -c "import sys; from backend.registry import ModelRegistry; sys.exit(0 if ModelRegistry('$MODEL_DIR').current() else 1)"; then
  echo "run: no model in $MODEL_DIR: building the embedded default model (synthetic recordings)"
  bash scripts/build_default_model.sh
fi
# The embedded demo model has a handful of generated validation recordings, too few for the per-label quality
# gate to vouch for any label (docs/backend.md, "Quality gate"): serve it ungated unless QUALITY_GATE is set.
current=$(.venv/bin/python -c "from backend.registry import ModelRegistry; print(ModelRegistry('$MODEL_DIR').current() or '')")
if [[ "$current" == default-synthetic-* && -z "${QUALITY_GATE:-}" ]]; then
  echo "run: $current is the synthetic demo model: QUALITY_GATE=off (set QUALITY_GATE=on to gate it)"
  export QUALITY_GATE=off
fi
# glibc malloc served faster than jemalloc here (docs/backend.md, "Speed"); MALLOC=jemalloc to compare.
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
if [ "${MALLOC:-glibc}" = jemalloc ] && [ -e "$jemalloc" ]; then export LD_PRELOAD="$jemalloc${LD_PRELOAD:+:$LD_PRELOAD}"; fi
if [ "${1:-}" = "--with-label-studio" ]; then
  .venv/bin/python -m backend --host "$HOST" --port "$PORT" &
  backend_pid=$!
  trap 'kill $backend_pid 2>/dev/null' EXIT
  for _ in $(seq 60); do curl -fsS --max-time 2 "http://$HOST:$PORT/health" >/dev/null 2>&1 && break; sleep 1; done
  bash scripts/demo.sh "http://$HOST:$PORT"
  wait $backend_pid
else
  echo "run: serving $MODEL_DIR on http://$HOST:$PORT (connect it in Label Studio: Settings > Model)"
  exec .venv/bin/python -m backend --host "$HOST" --port "$PORT"
fi
