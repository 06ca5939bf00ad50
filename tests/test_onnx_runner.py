"""OnnxRecordingModel: metadata accessors, temperatures, input checks, clear errors for bad files."""
import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from training.onnx_export import export_onnx
from training.onnx_runner import ModelFileError, OnnxRecordingModel
from training.preprocess import PreprocessConfig
from training.schema import LabelSchema, LabelSpec

torch.set_num_threads(1)
SIZE = 8
SCHEMA = LabelSchema((LabelSpec("mask", ("Yes", "No")), LabelSpec("eyes", ("a", "b", "c"))))


class _PixelMeanModel(nn.Module):
    """Stand-in under the RecordingModel contract: linear heads on the masked mean frame."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.heads = nn.ModuleDict({"mask": nn.Linear(SIZE * SIZE, 2), "eyes": nn.Linear(SIZE * SIZE, 3)})

    def forward(self, frames, frame_mask):
        weights = frame_mask / frame_mask.sum(1, keepdim=True).clamp(min=1)
        pooled = (frames.flatten(2) * weights.unsqueeze(-1)).sum(1)
        return {name: head(pooled) for name, head in self.heads.items()}


def _meta(**extra):
    pre = PreprocessConfig(image_size=SIZE, standardize=True, mean=0.1, std=0.5)
    return {"model_version": "20260101-abc", "kind": "multi", "mode": "mtl", "fusion": "mean",
            "schema": SCHEMA.to_dict(), "untrained": ["eyes"], "temperatures": {"mask": 2.5},
            "frames": 4, "image_size": SIZE, "preprocess": pre.to_dict(), "metrics": {}, **extra}


def _inputs(b=3, n=4, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.uniform(-1, 1, (b, n, 1, SIZE, SIZE)).astype(np.float32)
    mask = np.ones((b, n), np.float32)
    mask[0, 2:] = 0
    return frames, mask


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    frames, mask = _inputs()
    return export_onnx(_PixelMeanModel().eval(), tmp_path_factory.mktemp("m") / "model.onnx", _meta(),
                       torch.from_numpy(frames), torch.from_numpy(mask))


def test_metadata_accessors(model_path):
    m = OnnxRecordingModel(model_path, intra_op_threads=1)
    assert m.schema == SCHEMA and m.model_version == "20260101-abc"
    assert m.frames == 4 and m.image_size == SIZE
    assert m.preprocess == PreprocessConfig(image_size=SIZE, standardize=True, mean=0.1, std=0.5)
    assert m.temperatures == {"mask": 2.5, "eyes": 1.0}


def test_predict_applies_temperatures(model_path):
    m = OnnxRecordingModel(model_path)
    frames, mask = _inputs(b=5, n=6, seed=1)  # the mean-fusion model takes any frame count
    logits, probs = m.predict_logits(frames, mask), m.predict(frames, mask)
    for name, t in (("mask", 2.5), ("eyes", 1.0)):
        z = logits[name].astype(np.float64) / t
        ref = np.exp(z) / np.exp(z).sum(1, keepdims=True)
        np.testing.assert_allclose(probs[name], ref, rtol=1e-5)
        assert probs[name].shape == (5, len(SCHEMA[name].classes))
    # No mask = every frame real.
    full = np.ones(mask.shape, np.float32)
    np.testing.assert_allclose(m.predict_logits(frames)["mask"], m.predict_logits(frames, full)["mask"])


def test_input_checks(model_path):
    m = OnnxRecordingModel(model_path)
    frames, mask = _inputs()
    with pytest.raises(ValueError, match=r"\[B, N, 1, 8, 8\]"):
        m.predict(frames[:, :, :, :4], mask)
    with pytest.raises(ValueError, match="frame_mask"):
        m.predict(frames, mask[:, :2])


def _rewrite_meta(src, dst, value):
    proto = onnx.load(str(src))
    del proto.metadata_props[:]
    if value is not None:
        entry = proto.metadata_props.add()
        entry.key, entry.value = "recmeta", value
    onnx.save(proto, str(dst))
    return dst


@pytest.mark.parametrize("value,message", [
    (None, "no 'recmeta'"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "JSON object"),
    (json.dumps({"format": 1, "kind": "multi"}), "lacks"),
    (json.dumps({**_meta(), "format": 99}), "format 99"),
    (json.dumps({**_meta(), "format": 1, "schema": {"labels": [{"name": "other", "classes": ["a", "b"]}]}}), "not labels"),
])
def test_bad_metadata_is_a_model_file_error(model_path, tmp_path, value, message):
    bad = _rewrite_meta(model_path, tmp_path / "bad.onnx", value)
    with pytest.raises(ModelFileError, match=message):
        OnnxRecordingModel(bad)


def test_unreadable_file_is_a_model_file_error(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelFileError, match="junk.onnx"):
        OnnxRecordingModel(junk)


def test_runner_is_torch_free():
    code = "import sys, training.onnx_runner; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
