"""Export → ONNX Runtime parity, metadata, atomic writes, and int8 quantisation."""
import json

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from training import onnx_export, quantize
from training.models.recording_model import RecordingModel
from training.onnx_runner import OnnxRecordingModel
from training.schema import LabelSchema, LabelSpec

torch.set_num_threads(1)
SIZE = 32
SCHEMA = LabelSchema((LabelSpec("gender", ("F", "M")), LabelSpec("eyes", ("a", "b", "c"))))


def _meta(**extra):
    return {"model_version": "v-test", "kind": "multi", "mode": "mtl", "schema": SCHEMA.to_dict(),
            "untrained": [], "temperatures": {"gender": 2.0}, "frames": 3, "image_size": SIZE,
            "preprocess": {"image_size": SIZE, "standardize": False, "mean": 0.0, "std": 1.0},
            "metrics": {}, **extra}


def _model(**kw):
    torch.manual_seed(0)
    heads = kw.pop("heads", {"gender": 2, "eyes": 3})
    return RecordingModel(heads, frames=3, width=0.35, shared_dim=8, **kw).eval()


def _example(b=2, n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = torch.rand(b, n, 1, SIZE, SIZE, generator=g) * 2 - 1
    mask = torch.ones(b, n)
    mask[0, -1] = 0
    return frames, mask


@pytest.mark.parametrize("fusion", ["concat", "mean"])
def test_export_roundtrip_matches_torch(tmp_path, fusion):
    model = _model(fusion=fusion)
    path = onnx_export.export_onnx(model, tmp_path / "m.onnx", _meta(fusion=fusion), *_example())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temp file left behind
    assert not model.training
    runner = OnnxRecordingModel(path)
    assert runner.output_names == ("gender", "eyes")
    assert runner.meta["model_version"] == "v-test" and runner.meta["format"] == 1 and "created_at" in runner.meta
    n_other = 5 if fusion == "mean" else 3
    frames, mask = _example(b=4, n=n_other, seed=1)  # other batch size (and frame count when allowed)
    with torch.no_grad():
        want = model(frames, mask)
    got = runner.predict_logits(frames.numpy(), mask.numpy())
    for name in ("gender", "eyes"):
        np.testing.assert_allclose(got[name], want[name].numpy(), atol=1e-4)
    assert runner.fixed_frames == (fusion == "concat")


def test_outputs_follow_schema_order_and_reject_unknown_heads(tmp_path):
    model = _model(heads={"eyes": 3, "gender": 2})
    path = onnx_export.export_onnx(model, tmp_path / "m.onnx", _meta(), *_example())
    assert [o.name for o in onnx.load(str(path)).graph.output] == ["gender", "eyes"]
    stray = _model(heads={"gender": 2, "nose": 2})
    with pytest.raises(ValueError, match="'nose'"):
        onnx_export.export_onnx(stray, tmp_path / "x.onnx", _meta(), *_example())
    assert not (tmp_path / "x.onnx").exists()


def test_training_mode_and_bad_meta_are_refused(tmp_path):
    with pytest.raises(ValueError, match="eval"):
        onnx_export.export_onnx(_model().train(), tmp_path / "m.onnx", _meta(), *_example())
    meta = _meta()
    del meta["image_size"]
    with pytest.raises(ValueError, match="image_size"):
        onnx_export.export_onnx(_model(), tmp_path / "m.onnx", meta, *_example())


class _DriftingModel(nn.Module):
    """Stand-in whose output shifts with every call: the traced graph freezes one shift, so the
    ONNX file cannot match the torch outputs computed before tracing."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, frames, frame_mask):
        self.calls += 1
        pooled = (frames.mean(dim=(2, 3, 4)) * frame_mask).sum(1, keepdim=True)
        return {"gender": torch.cat([pooled, -pooled], 1) + float(self.calls)}


def test_parity_failure_raises_and_leaves_no_file(tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"previous model")
    with pytest.raises(onnx_export.OnnxParityError, match="gender"):
        onnx_export.export_onnx(_DriftingModel().eval(), target, _meta(), *_example())
    assert target.read_bytes() == b"previous model"  # the old file survives a failed export
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def _batches(n_batches=4):
    return [tuple(t.numpy() for t in _example(seed=10 + i)) for i in range(n_batches)]


@pytest.mark.parametrize("tolerance,kept", [(1.0, True), (-1.0, False)])
def test_quantize_keeps_metadata_and_applies_tolerance(tmp_path, tolerance, kept):
    fp32 = onnx_export.export_onnx(_model(), tmp_path / "m.onnx", _meta(), *_example())
    frames, mask = _example(b=3, seed=99)
    ref = OnnxRecordingModel(fp32).predict_logits(frames.numpy(), mask.numpy())
    scores = iter([0.80, 0.79])  # fp32 score first, then int8: int8 is 1 point below fp32

    def evaluate(path):
        assert OnnxRecordingModel(path).predict_logits(frames.numpy(), mask.numpy()).keys() == ref.keys()
        return next(scores)

    out = tmp_path / "m.int8.onnx"
    result = quantize.quantize_model(fp32, out, _batches(), evaluate, max_drop_points=tolerance)
    assert result.kept is kept
    assert result.fp32_score == 0.80 and result.int8_score == 0.79
    assert out.exists() is kept
    if kept:
        meta = OnnxRecordingModel(out).meta
        assert meta["schema"] == SCHEMA.to_dict() and meta["quantization"] == "int8-qdq-static"
        ops = {node.op_type for node in onnx.load(str(out)).graph.node}
        assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert json.loads(json.dumps(result.to_dict()))["kept"] is kept
