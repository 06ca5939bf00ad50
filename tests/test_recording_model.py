import numpy as np
import onnxruntime as ort
import pytest
import torch

from training.models import RecordingModel, StlEnsemble

torch.set_num_threads(1)
HEADS = {"gender": 2, "ears": 3, "glasses": 4}
S = 32  # smallest size MobileNetV2's five stride-2 stages reduce to 1×1


def _batch(b=3, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    frames = torch.rand(b, n, 1, S, S, generator=g) * 2 - 1
    mask = torch.ones(b, n)
    mask[1:, 2:] = 0  # recording 1 (and later ones) padded after two frames
    mask[2:, 1:] = 0  # recording 2 (and later ones) has one real frame
    return frames, mask


@pytest.mark.parametrize("fusion", ["concat", "mean"])
def test_multi_output_shapes_and_padding_ignored(fusion):
    model = RecordingModel(HEADS, frames=4, fusion=fusion).eval()
    frames, mask = _batch()
    out = model(frames, mask)
    assert list(out) == list(HEADS)
    assert all(out[k].shape == (3, c) for k, c in HEADS.items())
    changed = frames.clone()
    changed[1, 2:] = 5.0  # padding content must not matter
    changed[2, 1:] = -3.0
    for k, v in model(changed, mask).items():
        torch.testing.assert_close(v, out[k])


def test_mean_fusion_is_masked_mean_of_embeddings_and_takes_any_frame_count():
    model = RecordingModel(HEADS, frames=4, fusion="mean").eval()
    frames, mask = _batch(n=6)
    out = model(frames, mask)
    for i in range(frames.shape[0]):
        real = frames[i][mask[i] > 0]
        pooled = model.encoder.embed(real).mean(0, keepdim=True)
        ref = {k: h(model.shared(pooled)) for k, h in zip(model.head_names, model.heads)}
        for k in HEADS:
            torch.testing.assert_close(out[k][i:i + 1], ref[k], atol=1e-5, rtol=1e-4)


def test_concat_rejects_other_frame_counts():
    model = RecordingModel(HEADS, frames=4)
    frames, mask = _batch(n=5)
    with pytest.raises(ValueError, match="exactly 4 frames"):
        model(frames, mask)


def test_single_is_log_of_masked_mean_of_frame_softmaxes():
    model = RecordingModel(HEADS, kind="single", frames=4).eval()
    frames, mask = _batch()
    out = model(frames, mask)
    for i in range(frames.shape[0]):
        per_frame = model.frame_logits(frames[i][mask[i] > 0])
        for k in HEADS:
            expected = per_frame[k].softmax(-1).mean(0)
            torch.testing.assert_close(out[k][i].exp(), expected, atol=1e-6, rtol=1e-5)


def test_rotation_head_and_kind_checks():
    model = RecordingModel(HEADS, frames=4)
    assert model.rotation_logits(torch.randn(5, 1, S, S)).shape == (5, 4)
    with pytest.raises(ValueError, match="kind='single'"):
        model.frame_logits(torch.randn(2, 1, S, S))
    with pytest.raises(ValueError, match="kind"):
        RecordingModel(HEADS, kind="both")
    with pytest.raises(ValueError, match="frame_mask"):
        model(torch.randn(2, 4, 1, S, S), torch.ones(2, 3))


def test_gradients_reach_encoder_and_heads_but_not_rotation_head():
    model = RecordingModel(HEADS, frames=4)
    frames, mask = _batch()
    sum(v.sum() for v in model(frames, mask).values()).backward()
    assert model.encoder.features[0][0].weight.grad.abs().sum() > 0
    assert all(h.weight.grad is not None for h in model.heads)
    assert model.rotation_head.weight.grad is None


def test_channels_last_matches_contiguous():
    model = RecordingModel(HEADS, frames=4).eval()
    frames, mask = _batch()
    ref = model(frames, mask)
    model = model.to(memory_format=torch.channels_last)
    assert model.encoder.features[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    for k, v in model(frames, mask).items():
        torch.testing.assert_close(v, ref[k], atol=1e-5, rtol=1e-4)


def test_stl_ensemble_routes_each_label_to_its_model():
    models = {k: RecordingModel({k: c}, frames=4).eval() for k, c in HEADS.items()}
    ens = StlEnsemble(models).eval()
    frames, mask = _batch()
    out = ens(frames, mask)
    assert list(out) == list(HEADS)
    for k in HEADS:
        torch.testing.assert_close(out[k], models[k](frames, mask)[k])
    with pytest.raises(ValueError, match="exactly one head"):
        StlEnsemble({"gender": RecordingModel(HEADS, frames=4)})


def _export_and_compare(model, frames, mask, dynamic_frames, tmp_path, other):
    path = tmp_path / "m.onnx"
    axes = {0: "batch", 1: "frames"} if dynamic_frames else {0: "batch"}
    names = list(model.schema_heads)
    torch.onnx.export(
        model, (frames, mask), str(path), dynamo=False, opset_version=17,
        input_names=["frames", "frame_mask"], output_names=names,
        dynamic_axes={"frames": axes, "frame_mask": axes, **{n: {0: "batch"} for n in names}},
    )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for f, m in [(frames, mask), other]:  # the traced shape and another batch (and frame) size
        got = sess.run(names, {"frames": f.numpy(), "frame_mask": m.numpy()})
        with torch.no_grad():
            ref = model(f, m)
        for n, g in zip(names, got):
            assert g.shape == tuple(ref[n].shape)
            np.testing.assert_allclose(g, ref[n].numpy(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("kind,fusion", [("multi", "concat"), ("multi", "mean"), ("single", "concat")])
def test_onnx_export_matches_torch(kind, fusion, tmp_path):
    model = RecordingModel(HEADS, kind=kind, frames=4, fusion=fusion).eval()
    frames, mask = _batch()
    dynamic_frames = kind == "single" or fusion == "mean"
    other = _batch(b=2, n=6 if dynamic_frames else 4, seed=1)
    _export_and_compare(model, frames, mask, dynamic_frames, tmp_path, other)


def test_stl_ensemble_exports(tmp_path):
    ens = StlEnsemble({k: RecordingModel({k: c}, frames=4) for k, c in HEADS.items()}).eval()
    frames, mask = _batch()
    _export_and_compare(ens, frames, mask, False, tmp_path, _batch(b=2, seed=2))
