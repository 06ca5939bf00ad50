#!/bin/sh
# Start the ML backend (the serving image's ENTRYPOINT; tests run it directly too).
# Environment: see docs/backend.md. PORT (default 9090) and HOST (default 0.0.0.0) pick the socket.
set -eu

: "${MODEL_DIR:=/models}"
export MODEL_DIR
mkdir -p "$MODEL_DIR"

# MALLOC picks the allocator of the serving process. glibc by default: jemalloc served slower here
# (docs/backend.md "Speed" measures both side by side).
case "${MALLOC:=glibc}" in
    jemalloc)
        if [ -z "${LD_PRELOAD:-}" ]; then
            for lib in /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 /usr/lib/aarch64-linux-gnu/libjemalloc.so.2; do
                if [ -f "$lib" ]; then
                    export LD_PRELOAD="$lib"
                    break
                fi
            done
        fi ;;
    glibc)
        # drop a jemalloc preload (the image's ENV sets one), keep anything else preloaded
        LD_PRELOAD=$(printf '%s' "${LD_PRELOAD:-}" | tr ': ' '\n\n' | grep -v libjemalloc | paste -sd: -)
        if [ -n "$LD_PRELOAD" ]; then export LD_PRELOAD; else unset LD_PRELOAD; fi ;;
    *)
        echo "MALLOC=$MALLOC: expected jemalloc or glibc" >&2
        exit 2 ;;
esac

# Prometheus counters of all workers meet here; a stale directory would add old counts.
: "${PROMETHEUS_MULTIPROC_DIR:=$(mktemp -d -t recmeta-prometheus-XXXXXX)}"
export PROMETHEUS_MULTIPROC_DIR

exec "${PYTHON:-python}" -m backend --host "${HOST:-0.0.0.0}" --port "${PORT:-9090}" "$@"
