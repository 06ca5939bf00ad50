"""The GPU's mixed-precision path, run on a CPU: autocast (bf16, and fp16 with loss scaling) through the same
train_epoch, VAT's power iteration in float32, and float32 ("auto" on a CPU) left untouched."""
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from training import precision as precision_module
from training.config import LossConfig, RecipeConfig
from training.distributed import DistContext
from training.models.recording_model import RecordingModel
from training.precision import Precision, resolve_precision
from training.trainer import S4LObjective, predict_logits, train_epoch


def test_auto_is_float32_on_a_cpu_and_mixed_on_cuda(monkeypatch):
    assert resolve_precision("auto", "cpu") == Precision("cpu", None)
    assert resolve_precision("bf16", "cpu") == Precision("cpu", torch.bfloat16)
    monkeypatch.setattr(precision_module.torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_precision("auto", "cuda:0") == Precision("cuda", torch.bfloat16)
    monkeypatch.setattr(precision_module.torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_precision("auto", "cuda:1") == Precision("cuda", torch.float16)
    assert resolve_precision("fp32", "cuda:0") == Precision("cuda", None)
    assert not Precision("cuda", torch.bfloat16).scaler().is_enabled()
    with pytest.raises(ValueError, match="recipe.precision"):
        RecipeConfig(precision="fp8")


def _model():
    torch.manual_seed(0)
    return RecordingModel({"a": 2, "b": 3}, kind="multi", frames=2, width=0.25, shared_dim=8)


def _loader():
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(4, 2, 1, 16, 16, generator=g) * 2 - 1
    targets = torch.tensor([[0, 1], [1, -1], [-1, 2], [0, 0]])
    return DataLoader(TensorDataset(frames, torch.ones(4, 2), targets, torch.arange(4)), batch_size=4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_training_keeps_vats_power_iteration_in_float32(dtype):
    model = _model()
    seen = []
    model.encoder.features[0].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    objective = S4LObjective(model, LossConfig(), ("a", "b"), 1, None, None)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    before = [p.detach().clone() for p in model.parameters()]
    stats = train_epoch(objective, _loader(), optimizer, scheduler, semi=True, ctx=DistContext(), progress=False,
                        desc="t", precision=Precision("cpu", dtype),
                        scaler=torch.amp.GradScaler("cpu", init_scale=1.0, enabled=dtype == torch.float16))
    # clean forward, VAT power iteration, VAT perturbed forward, rotation forward
    assert seen == [dtype, torch.float32, dtype, dtype]
    assert torch.isfinite(torch.tensor(stats["loss"])) and set(stats["loss_parts"]) == {"sup", "entmin", "vat", "rotation"}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_float32_evaluation_is_untouched_and_bf16_close_to_it():
    model = _model().eval()
    ds = TensorDataset(*_loader().dataset.tensors)
    full = predict_logits(model, ds, 4, DistContext())
    with torch.no_grad():
        direct = model(ds.tensors[0], ds.tensors[1])
    assert all(torch.equal(torch.from_numpy(full[k]), direct[k]) for k in direct)
    half = predict_logits(model, ds, 4, DistContext(), precision=Precision("cpu", torch.bfloat16))
    for k in full:
        assert half[k].dtype == full[k].dtype and abs(half[k] - full[k]).max() < 0.1
