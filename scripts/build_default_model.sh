#!/usr/bin/env bash
# The embedded default model: trained on the repo's own generated recordings (a demo, not a real model),
# installed into MODEL_DIR as the current version. Sized for a first start within minutes on 2 cores: 80
# recordings of 4 frames at 64 px, 1 epoch per S4L step. DEFAULT_RECORDINGS, DEFAULT_FRAMES, DEFAULT_EPOCHS change it.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL_DIR=${MODEL_DIR:-models}
work=${DEFAULT_MODEL_WORK:-.cache/default-model}
PY=.venv/bin/python
rm -rf "$work" && mkdir -p "$work"
frames=${DEFAULT_FRAMES:-4}
$PY -m training.synthetic --out "$work/recordings" --recordings ${DEFAULT_RECORDINGS:-80} --subjects 20 \
    --frames "$frames" --size 64 --label-fraction 0.5 --seed 0
$PY -m training.fit --export "$work/recordings/export.json" --label-config label_config.xml \
    --data-root "$work" --out "$work/run" --image-size ${DEFAULT_IMAGE_SIZE:-64} --frames "$frames" \
    --epochs-per-step ${DEFAULT_EPOCHS:-1} --seed 0 --int8  # int8 kept only within 0.5 points of fp32
$PY -m backend.models --model-dir "$MODEL_DIR" add "$work/run/model.onnx" --use \
    --version "default-synthetic-$(date -u +%Y%m%d-%H%M%S)"
