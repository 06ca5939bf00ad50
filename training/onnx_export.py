"""Export a RecordingModel to ONNX with its recmeta metadata, verified against ONNX Runtime.

The file appears at `path` only after ONNX Runtime reproduced the torch logits on the example
(max |diff| <= PARITY_ATOL x max(1, max |logit|), identical argmax); otherwise nothing is written and OnnxParityError is
raised. Pass real preprocessed frames as the example: random noise can hide numeric problems.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from training.atomic_write import atomic_path
from training.onnx_runner import META_FORMAT, META_KEY, OnnxRecordingModel, parse_meta

OPSET = 17
PARITY_ATOL = 1e-4


class OnnxParityError(RuntimeError):
    """ONNX Runtime's outputs differ from torch's on the example beyond tolerance."""


class _OrderedOutputs(nn.Module):
    """Returns the model's dict outputs as a tuple in a fixed order (ONNX outputs are positional)."""

    def __init__(self, model: nn.Module, names: tuple[str, ...]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, frames, frame_mask):
        out = self.model(frames, frame_mask)
        return tuple(out[n] for n in self.names)


def _output_names(outputs: dict, meta: dict) -> tuple[str, ...]:
    schema_names = [spec["name"] for spec in meta["schema"]["labels"]]
    unknown = [n for n in outputs if n not in schema_names]
    if unknown:
        raise ValueError(f"model outputs {unknown} are not labels of meta['schema']")
    return tuple(n for n in schema_names if n in outputs)


def _check_parity(path: Path, expected: dict[str, np.ndarray], frames: np.ndarray, mask: np.ndarray) -> None:
    got = OnnxRecordingModel(path).predict_logits(frames, mask)
    for name, want in expected.items():
        diff = float(np.max(np.abs(got[name] - want))) if want.size else 0.0
        # float32 round-off grows with the logits' size (a warm-started model's can be large)
        limit = PARITY_ATOL * max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
        if not diff <= limit:  # also catches NaN
            raise OnnxParityError(f"output {name!r}: max |onnx - torch| = {diff:.3g} > {limit:.3g}")
        if not np.array_equal(got[name].argmax(axis=1), want.argmax(axis=1)):
            raise OnnxParityError(f"output {name!r}: argmax differs between onnx and torch")


def export_onnx(model: nn.Module, path: str | Path, meta: dict,
                example_frames: torch.Tensor, example_mask: torch.Tensor) -> Path:
    """Write `model` to `path` as ONNX (opset 17) with `meta` embedded as recmeta; return the path.

    Outputs follow the order of meta["schema"]; the batch axis is dynamic, and so is the frame axis
    when the model takes any frame count (meta["fusion"] == "mean" or meta["kind"] == "single").
    `format` and `created_at` are filled in when absent. The model must be in eval mode.
    """
    if model.training:
        raise ValueError("export_onnx needs model.eval() (dropout / batch-norm statistics must be frozen)")
    path = Path(path)
    meta = {"format": META_FORMAT, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), **meta}
    meta_json = json.dumps(meta, sort_keys=True)  # fails early on values JSON cannot hold
    parse_meta(meta_json, "meta")
    frames = torch.as_tensor(example_frames, dtype=torch.float32)
    mask = torch.as_tensor(example_mask, dtype=torch.float32)
    with torch.no_grad():
        expected = {k: v.detach().numpy() for k, v in model(frames, mask).items()}
    names = _output_names(expected, meta)
    dynamic = {0: "batch"}
    any_frame_count = meta.get("fusion") == "mean" or meta["kind"] == "single"
    frame_axes = {0: "batch", 1: "frames"} if any_frame_count else dynamic
    axes = {"frames": frame_axes, "frame_mask": frame_axes, **{n: dynamic for n in names}}

    with atomic_path(path, mode=0o644) as tmp:  # owner-only by default; the backend may run as another user
        # The wrapper must be in eval mode too: the exporter restores the wrapper's mode afterwards,
        # recursively, which would otherwise leave `model` in training mode.
        torch.onnx.export(_OrderedOutputs(model, names).eval(), (frames, mask), str(tmp), dynamo=False,
                          opset_version=OPSET, input_names=["frames", "frame_mask"],
                          output_names=list(names), dynamic_axes=axes)
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = META_KEY, meta_json
        onnx.save(proto, str(tmp))
        _check_parity(tmp, {n: expected[n] for n in names}, frames.numpy(), mask.numpy())
    return path
