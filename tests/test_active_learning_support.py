"""Helpers for the active-learning tests (no tests here): a fake Label Studio export server, a
fake steps module (AL_STEPS_MODULE=test_active_learning_support) and a contract-valid ONNX model
built with onnx.helper (no torch, so fake training takes milliseconds).

Fake steps: train() writes a model whose recmeta.metrics.fake_val is AL_FAKE_SCORE (default 0.8)
and evaluate() returns that number; AL_FAKE_MODE=crash | enospc | sleep:<s> injects faults.
"""
from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from e2e.fake_export_server import FakeLabelStudio  # noqa: F401  (the tests import it from here)
from training.schema import load_label_config

LS_RECORDED = Path(__file__).resolve().parent / "fixtures" / "label_studio"


def recorded(name: str) -> dict:
    return json.loads((LS_RECORDED / name).read_text(encoding="utf-8"))


def write_tiny_onnx(path: Path, score: float, version: str = "tiny", image_size: int = 8, frames: int = 2) -> None:
    """logits[label] = masked mean brightness * w + b; recmeta per docs/architecture.md."""
    schema = load_label_config()
    nodes = [
        helper.make_node("ReduceMean", ["frames"], ["per_frame"], axes=[2, 3, 4], keepdims=0),
        helper.make_node("Mul", ["per_frame", "frame_mask"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axis1"], ["total"], keepdims=1),
        helper.make_node("ReduceSum", ["frame_mask", "axis1"], ["count"], keepdims=1),
        helper.make_node("Div", ["total", "count"], ["f"]),
    ]
    inits = [numpy_helper.from_array(np.array([1], np.int64), "axis1")]
    outputs = []
    for spec in schema.labels:
        c = len(spec.classes)
        inits += [numpy_helper.from_array(np.linspace(-1, 1, c, dtype=np.float32)[None], f"w_{spec.name}"),
                  numpy_helper.from_array(np.zeros(c, np.float32), f"b_{spec.name}")]
        nodes += [helper.make_node("MatMul", ["f", f"w_{spec.name}"], [f"m_{spec.name}"]),
                  helper.make_node("Add", [f"m_{spec.name}", f"b_{spec.name}"], [spec.name])]
        outputs.append(helper.make_tensor_value_info(spec.name, TensorProto.FLOAT, ["B", c]))
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("frames", TensorProto.FLOAT, ["B", frames, 1, image_size, image_size]),
         helper.make_tensor_value_info("frame_mask", TensorProto.FLOAT, ["B", frames])],
        outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {"format": 1, "model_version": version, "kind": "multi", "mode": "mtl", "schema": schema.to_dict(),
            "untrained": [], "temperatures": {}, "frames": frames, "image_size": image_size,
            "preprocess": {"image_size": image_size, "standardize": False, "mean": 0.0, "std": 1.0},
            "metrics": {"fake_val": score}, "created_at": "2026-11-25T00:00:00Z"}
    helper.set_model_props(model, {"recmeta": json.dumps(meta)})
    onnx.save(model, str(path))


def fake_score_of(model: Path) -> float:
    props = {p.key: p.value for p in onnx.load(str(model)).metadata_props}
    return json.loads(props["recmeta"])["metrics"]["fake_val"]


def subjects_split(export: Path) -> dict:
    """Validation = the first subject (sorted): a stand-in for the ILP split."""
    subjects = sorted({str(t["data"].get("subject_id")) for t in json.loads(export.read_text())})
    return {"val": subjects[:1], "train": subjects[1:], "test": []}


# --- the fake steps module interface (see backend/active_learning/training_steps.py) ---
def train(req, env):
    mode = os.environ.get("AL_FAKE_MODE", "")
    if mode.startswith("sleep:"):
        time.sleep(float(mode.split(":", 1)[1]))
    req.out.mkdir(parents=True)
    (req.out / "request.json").write_text(json.dumps({k: str(v) if v is not None else None
                                                      for k, v in vars(req).items()}))
    if mode == "crash":
        raise RuntimeError("fake training crashed")
    if mode == "enospc":  # the model write dies part-way, as on a full disk
        with open(req.out / "model.onnx", "wb") as f:
            f.write(b"\x08\x01partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(req.out / "model.onnx"))
    split = json.loads(req.split.read_text()) if req.split else subjects_split(req.export)
    (req.out / "split.json").write_text(json.dumps(split))
    (req.out / "model.pt").write_bytes(b"fake checkpoint")
    score = float(os.environ.get("AL_FAKE_SCORE", "0.8"))
    write_tiny_onnx(req.out / "model.onnx", score, version=req.out.parent.name)
    (req.out / "metrics.json").write_text(json.dumps({"val": {"mean_balanced_accuracy": score}}))
    return req.out


def evaluate(req, env):
    assert req.split.is_file() and req.export.is_file() and env["LABEL_STUDIO_URL"]
    doc = {"mean_balanced_accuracy": fake_score_of(req.model), "labels": {}}
    req.out.write_text(json.dumps(doc))
    return doc


# --- fake Label Studio ---
def make_export(n_tasks: int = 6) -> list[dict]:
    return [{"id": i + 1, "data": {"frames": [f"/data/upload/1/r{i}_{k}.png" for k in range(2)],
                                   "recording_id": f"rec{i}", "subject_id": f"subj{i % 3}"},
             "annotations": [], "predictions": []} for i in range(n_tasks)]


