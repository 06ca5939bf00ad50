#!/usr/bin/env bash
# Regenerates docs/results.md end to end: split, every training run of the grid, truth.csv scoring, plots, tables.
# Runs whose summary already exists under docs/results/<bench>/runs/ are kept (delete one to retrain it);
# run directories (checkpoints, model.onnx) go to .cache/experiments/. Extra arguments go to training.experiments,
# e.g. scripts/results.sh --bench nuaa --seeds 0.  CPU: ~2-3 hours on 2 cores for the whole grid.
# The fifth and sixth sessions' arms (rampup, two_steps, 10 epochs per step, 128 px) and reruns went to docs/reruns
# (another machine; docs/reruns.md says how to regenerate them); a full run here adds those arms to docs/results.
set -euo pipefail
cd "$(dirname "$0")/.."
# No jemalloc here: glibc malloc trained ~1.5x faster on these machines (docs/training.md).
exec .venv/bin/python -m training.experiments --out docs/results --doc docs/results.md "$@"
