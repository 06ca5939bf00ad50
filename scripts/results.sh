#!/usr/bin/env bash
# The research grid on the real benchmarks: split, every training run, truth.csv scoring (research/experiments).
# Outputs go outside the repository (~/.cache/recmeta/research; --out / --work change it); finished runs are
# skipped. Extra arguments go to research.experiments, e.g. scripts/results.sh --bench nuaa --seeds 0.
# CPU: ~2-3 hours on 2 cores for the single-split grid. The published tables then come from the compact evidence:
#   python -m research.evidence --runs ~/.cache/recmeta/research --to docs/evidence
#   python -m research.tables docs/evidence --write docs/results.md
set -euo pipefail
cd "$(dirname "$0")/.."
# No jemalloc here: glibc malloc trained faster (docs/training.md, "CPU facts").
exec .venv/bin/python -m research.experiments "$@"
