"""Optional static int8 quantisation (QDQ, per-channel weights) of an exported recording model.

Static QDQ runs ~20 % faster than fp32 on the AVX-512 CPUs we serve from; DYNAMIC int8 is 10-20x
slower there (docs/training.md, "CPU facts"), so it is not offered. Activation ranges are calibrated on sample
batches of real training frames. The int8 file is kept only if its validation score (mean balanced
accuracy from the caller's callback) is at most `max_drop_points` percentage points below fp32.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from training.atomic_write import atomic_path
from training.onnx_runner import META_KEY, OnnxRecordingModel

QUANTIZATION = "int8-qdq-static"
DEFAULT_MAX_DROP_POINTS = 0.5


@dataclass(frozen=True)
class QuantizeResult:
    kept: bool
    fp32_score: float
    int8_score: float
    path: str | None  # the int8 file when kept

    def to_dict(self) -> dict:
        return asdict(self)


class _BatchReader(CalibrationDataReader):
    """Feeds (frames [B,N,1,S,S], frame_mask [B,N]) batches to the calibrator."""

    def __init__(self, batches: Iterable[tuple[np.ndarray, np.ndarray]]):
        self._it = iter(batches)

    def get_next(self):
        batch = next(self._it, None)
        if batch is None:
            return None
        frames, mask = batch
        return {"frames": np.ascontiguousarray(frames, np.float32), "frame_mask": np.ascontiguousarray(mask, np.float32)}


def _quantize_to(fp32_path: Path, out_path: Path, batches) -> None:
    meta = dict(OnnxRecordingModel(fp32_path).meta, quantization=QUANTIZATION)
    # Without shape inference + BatchNorm folding first, biases are not initializers and part of the
    # graph stays fp32 with extra Q/DQ pairs: the int8 model ran ~2x SLOWER than fp32 (measured).
    prepared = out_path.with_name(out_path.name + ".prep.onnx")
    try:
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        # A BatchNormalization's scale is rank 1 (one value per channel: axis 0), but the quantizer asks for
        # per-channel axis 1 by default, warns "Axis 1 is out-of-range for weight ..." and falls back to per-tensor.
        # The shared layer's BatchNorm1d (after a Gemm, which pre-processing does not fold) is such a node.
        quantize_static(str(prepared), str(out_path), _BatchReader(batches), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        extra_options={"QDQOpTypePerChannelSupportToAxis": {"BatchNormalization": 0}})
    finally:
        prepared.unlink(missing_ok=True)
    proto = onnx.load(str(out_path))
    # quantize_static may or may not carry metadata over; set recmeta explicitly either way.
    kept = [p for p in proto.metadata_props if p.key != META_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    entry = proto.metadata_props.add()
    entry.key, entry.value = META_KEY, json.dumps(meta, sort_keys=True)
    onnx.save(proto, str(out_path))


def quantize_model(fp32_path: str | Path, out_path: str | Path,
                   calibration_batches: Iterable[tuple[np.ndarray, np.ndarray]],
                   evaluate: Callable[[Path], float],
                   max_drop_points: float = DEFAULT_MAX_DROP_POINTS) -> QuantizeResult:
    """Quantise `fp32_path` into `out_path` and keep it only if `evaluate` (score in [0, 1]) holds up.

    `evaluate(path)` is called on the fp32 model first, then on the int8 candidate. A dropped
    candidate is deleted; `out_path` is only ever replaced by a kept one.
    """
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    fp32_score = float(evaluate(fp32_path))
    with atomic_path(out_path, mode=0o644) as tmp:
        _quantize_to(fp32_path, tmp, calibration_batches)
        int8_score = float(evaluate(tmp))
        # Round away float noise so a drop of exactly the tolerance counts as within it.
        kept = round((fp32_score - int8_score) * 100.0, 9) <= max_drop_points
        if not kept:
            tmp.unlink()  # out_path stays as it was
    return QuantizeResult(kept, fp32_score, int8_score, str(out_path) if kept else None)
