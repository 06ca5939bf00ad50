"""Run an exported recording model with ONNX Runtime (torch-free: the backend imports this).

The file contract (docs/architecture.md): inputs ``frames`` float32 [B, N, 1, S, S] and
``frame_mask`` float32 [B, N]; one logits output [B, C] per label, named as the label; JSON
metadata under the ``recmeta`` key (schema, temperatures, frames, image_size, preprocess, ...).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import onnxruntime as ort

from training.preprocess import PreprocessConfig
from training.schema import LabelSchema

META_KEY = "recmeta"
META_FORMAT = 1
REQUIRED_META_KEYS = ("format", "kind", "schema", "frames", "image_size", "preprocess")
CPU_PROVIDERS = ("CPUExecutionProvider",)


class ModelFileError(ValueError):
    """The file is not a usable recording model (unreadable, or missing/bad recmeta metadata)."""


def parse_meta(text: str | None, where: str) -> dict:
    """Parse and check a recmeta JSON string; `where` names the file in errors."""
    if text is None:
        raise ModelFileError(f"{where}: no '{META_KEY}' metadata (not exported by training.onnx_export?)")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{where}: '{META_KEY}' metadata is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise ModelFileError(f"{where}: '{META_KEY}' metadata must be a JSON object")
    missing = [k for k in REQUIRED_META_KEYS if k not in meta]
    if missing:
        raise ModelFileError(f"{where}: '{META_KEY}' metadata lacks {missing}")
    if meta["format"] != META_FORMAT:
        raise ModelFileError(f"{where}: '{META_KEY}' format {meta['format']!r} unsupported (expected {META_FORMAT})")
    return meta


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class OnnxRecordingModel:
    """A loaded model file: metadata accessors plus logits / calibrated probabilities."""

    def __init__(self, path: str | Path, providers: Sequence[str] = CPU_PROVIDERS,
                 intra_op_threads: int | None = None, spinning: bool = False):
        """`spinning`: let idle intra-op threads busy-wait for the next operator (ONNX Runtime's
        default). Off by default: between runs the spinning threads took the cores that frame
        decoding and other processes need (measured: 30-40 ms more CPU per served recording, docs/backend.md)."""
        self.path = Path(path)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Sequential: operators one after another; parallelism comes from intra-op threads.
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if intra_op_threads is not None:
            opts.intra_op_num_threads = intra_op_threads
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=list(providers))
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable files
            raise ModelFileError(f"{self.path}: cannot load as an ONNX model: {exc}") from exc
        custom = self.session.get_modelmeta().custom_metadata_map
        self.meta = parse_meta(custom.get(META_KEY), str(self.path))
        try:
            self.schema = LabelSchema.from_dict(self.meta["schema"])
        except (KeyError, TypeError) as exc:
            raise ModelFileError(f"{self.path}: '{META_KEY}' schema is malformed: {exc!r}") from exc
        inputs = {i.name: i for i in self.session.get_inputs()}
        if set(inputs) != {"frames", "frame_mask"}:
            raise ModelFileError(f"{self.path}: inputs must be 'frames' and 'frame_mask', got {sorted(inputs)}")
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        unknown = [n for n in self.output_names if n not in self.schema]
        if unknown:
            raise ModelFileError(f"{self.path}: outputs {unknown} are not labels of the embedded schema")
        # A symbolic frame axis (str) means the model accepts any frame count.
        self.fixed_frames = isinstance(inputs["frames"].shape[1], int)

    @property
    def model_version(self) -> str | None:
        return self.meta.get("model_version")

    @property
    def frames(self) -> int:
        return int(self.meta["frames"])

    @property
    def image_size(self) -> int:
        return int(self.meta["image_size"])

    @property
    def temperatures(self) -> dict[str, float]:
        temps = self.meta.get("temperatures") or {}
        return {name: float(temps.get(name, 1.0)) for name in self.output_names}

    @property
    def preprocess(self) -> PreprocessConfig:
        return PreprocessConfig.from_dict(self.meta["preprocess"])

    def _check(self, frames, mask) -> tuple[np.ndarray, np.ndarray]:
        x = np.ascontiguousarray(frames, dtype=np.float32)
        s = self.image_size
        if x.ndim != 5 or x.shape[2:] != (1, s, s):
            raise ValueError(f"frames must be [B, N, 1, {s}, {s}], got {x.shape}")
        if self.fixed_frames and x.shape[1] != self.frames:
            raise ValueError(f"this model takes exactly {self.frames} frames per recording, got {x.shape[1]}")
        m = np.ones(x.shape[:2], np.float32) if mask is None else np.ascontiguousarray(mask, dtype=np.float32)
        if m.shape != x.shape[:2]:
            raise ValueError(f"frame_mask must be [B, N] = {x.shape[:2]}, got {m.shape}")
        return x, m

    def predict_logits(self, frames, mask=None) -> dict[str, np.ndarray]:
        """Raw logits per label: {name: [B, C]}. mask None = every frame is real."""
        x, m = self._check(frames, mask)
        outs = self.session.run(list(self.output_names), {"frames": x, "frame_mask": m})
        return dict(zip(self.output_names, outs))

    def predict(self, frames, mask=None) -> dict[str, np.ndarray]:
        """Calibrated probabilities per label: softmax(logits / T_label)."""
        temps = self.temperatures
        return {name: _softmax(z.astype(np.float64) / temps[name]).astype(np.float32)
                for name, z in self.predict_logits(frames, mask).items()}
