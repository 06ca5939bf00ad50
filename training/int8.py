"""Optional int8 companion of a run's model.onnx: static QDQ calibrated on training frames, kept only
when its validation mean balanced accuracy is within 0.5 points of fp32 (training.quantize)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from training.dataset import RecordingDataset
from training.metrics import evaluate
from training.onnx_runner import OnnxRecordingModel
from training.quantize import QuantizeResult, quantize_model

CALIBRATION_RECORDINGS = 64  # enough for stable activation ranges; calibration is the slow part
BATCH = 8


def _batches(store, rows, frames: int):
    ds = RecordingDataset(store, list(rows), store.labels, frames)
    for start in range(0, len(ds), BATCH):
        items = [ds[i] for i in range(start, min(start + BATCH, len(ds)))]
        yield (np.stack([it[0].numpy() for it in items]), np.stack([it[1].numpy() for it in items]))


def quantize_run(run: Path, schema, store, rows: dict, frames: int) -> QuantizeResult | None:
    """Write RUN/model.int8.onnx when it holds up on the validation recordings; None without them."""
    if not rows["val"]:
        return None
    truth = {n: store.labels[rows["val"], i] for i, n in enumerate(schema.names)}

    def val_score(path: Path) -> float:
        model = OnnxRecordingModel(path)
        parts = [model.predict(f, m) for f, m in _batches(store, rows["val"], frames)]
        probs = {n: np.concatenate([p[n] for p in parts]) for n in schema.names}
        return float(evaluate(schema, truth, probs)["mean_balanced_accuracy"] or 0.0)

    calibration = _batches(store, rows["train"][:CALIBRATION_RECORDINGS], frames)
    return quantize_model(run / "model.onnx", run / "model.int8.onnx", calibration, val_score)
