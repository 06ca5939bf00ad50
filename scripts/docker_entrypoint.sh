#!/bin/sh
# Start the ML backend (the serving image's ENTRYPOINT; tests run it directly too).
# Environment: see docs/backend.md. PORT (default 9090) and HOST (default 0.0.0.0) pick the socket.
set -eu

: "${MODEL_DIR:=/models}"
export MODEL_DIR
mkdir -p "$MODEL_DIR"

# jemalloc: glibc malloc re-faults ONNX Runtime's buffers on every request (docs/cpu-facts).
if [ -z "${LD_PRELOAD:-}" ]; then
    for lib in /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 /usr/lib/aarch64-linux-gnu/libjemalloc.so.2; do
        if [ -f "$lib" ]; then
            export LD_PRELOAD="$lib"
            break
        fi
    done
fi

# Prometheus counters of all workers meet here; a stale directory would add old counts.
: "${PROMETHEUS_MULTIPROC_DIR:=$(mktemp -d -t recmeta-prometheus-XXXXXX)}"
export PROMETHEUS_MULTIPROC_DIR

exec "${PYTHON:-python}" -m backend --host "${HOST:-0.0.0.0}" --port "${PORT:-9090}" "$@"
