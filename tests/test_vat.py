import math

import numpy as np
import pytest
import torch
from torch import nn

from training.losses.vat import REFERENCE_DIM, VatConfig, frozen_bn_stats, kl_from_logits, vat_loss
from training.models import RecordingModel

torch.set_num_threads(1)


def _bn_state(model):
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}


def _recording_model():
    torch.manual_seed(0)
    model = RecordingModel({"a": 2, "b": 3}, frames=2).train()
    frames = torch.rand(3, 2, 1, 32, 32) * 2 - 1
    mask = torch.ones(3, 2)
    return model, frames, mask


def test_constant_model_has_zero_vat():
    model = nn.Linear(8, 3)
    x = torch.randn(4, 8)
    const = lambda z: {"h": model.bias.expand(z.shape[0], 3) + 0 * z.sum(1, keepdim=True)}
    loss = vat_loss(const, x, const(x), model=model)
    assert abs(float(loss.detach())) < 1e-12


def test_running_stats_untouched_and_gradient_reaches_parameters():
    model, frames, mask = _recording_model()
    fn = lambda f: model(f, mask)
    clean = fn(frames)  # the clean forward may move the statistics ...
    before = _bn_state(model)
    loss = vat_loss(fn, frames, clean, model=model, cfg=VatConfig(n_power=2))
    for k, v in _bn_state(model).items():  # ... the perturbed ones may not
        assert torch.equal(v, before[k]), k
    assert all(m.track_running_stats for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert float(loss.detach()) > 0
    loss.backward()
    assert model.encoder.features[0][0].weight.grad.abs().sum() > 0


def test_frozen_bn_stats_uses_batch_statistics_and_restores_on_error():
    bn = nn.BatchNorm1d(3).train()
    x = torch.randn(16, 3) * 5 + 2
    with frozen_bn_stats(bn):
        y = bn(x)
    torch.testing.assert_close(y, (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + bn.eps))
    assert int(bn.num_batches_tracked) == 0 and torch.all(bn.running_mean == 0)
    with pytest.raises(RuntimeError):
        with frozen_bn_stats(bn):
            raise RuntimeError("boom")
    assert bn.track_running_stats
    bn(x)
    assert int(bn.num_batches_tracked) == 1  # normal training forwards update again


@pytest.mark.parametrize("cfg", [VatConfig(), VatConfig(eps=2.5)])
def test_final_perturbation_has_norm_eps(cfg):
    model, frames, mask = _recording_model()
    seen = []

    def fn(f):
        seen.append(f.detach().clone())
        return model(f, mask)

    vat_loss(fn, frames, model(frames, mask), model=model, cfg=cfg)
    norms = (seen[-1] - frames).flatten(1).norm(dim=1)
    expected = cfg.eps if cfg.eps is not None else 32.0 * math.sqrt(2 * 32 * 32 / REFERENCE_DIM)
    torch.testing.assert_close(norms, torch.full_like(norms, expected), rtol=1e-4, atol=0)
    xi_norms = (seen[0] - frames).flatten(1).norm(dim=1)
    torch.testing.assert_close(xi_norms, torch.full_like(xi_norms, cfg.xi), rtol=1e-2, atol=0)


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _unit(v):
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_matches_reference_on_linear_model():
    """Reference: the linear softmax model's KL gradient is (q - p) W in closed form."""
    torch.manual_seed(1)
    lin = nn.Linear(6, 4).double()
    x = torch.randn(5, 6, dtype=torch.float64)
    cfg = VatConfig(xi=1e-3, eps=0.7, n_power=2)
    fn = lambda z: {"h": lin(z)}
    loss = vat_loss(fn, x, fn(x), model=lin, cfg=cfg, generator=torch.Generator().manual_seed(3))

    w, b, xn = lin.weight.detach().numpy(), lin.bias.detach().numpy(), x.numpy()
    start = torch.randn(x.shape, generator=torch.Generator().manual_seed(3)).double().numpy()
    p = _softmax(xn @ w.T + b)
    d = _unit(start)
    for _ in range(cfg.n_power):
        q = _softmax((xn + cfg.xi * d) @ w.T + b)
        d = _unit((q - p) @ w)
    q = _softmax((xn + cfg.eps * d) @ w.T + b)
    ref = np.mean((p * (np.log(p) - np.log(q))).sum(1))
    assert float(loss.detach()) == pytest.approx(ref, rel=1e-8)


def test_default_xi_resolves_the_adversarial_direction_in_float32():
    """The power-iteration direction in float32 must match the exact (float64) one."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), nn.Tanh(), nn.Conv2d(8, 8, 3, 2, 1), nn.Tanh(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5))
    with torch.no_grad():
        net[-1].weight.mul_(30)  # logits of order 1, as in a trained model
    x = torch.randint(0, 256, (3, 1, 32, 32)).float() / 128 - 1

    def final_direction(model, inp):
        seen = []
        fn = lambda z: seen.append(z.detach()) or {"h": model(z)}
        vat_loss(fn, inp, fn(inp), model=model, generator=torch.Generator().manual_seed(5))
        return (seen[-1] - inp).flatten(1).double()

    d32, d64 = final_direction(net, x), final_direction(net.double(), x.double())
    cos = (d32 * d64).sum(1) / (d32.norm(dim=1) * d64.norm(dim=1))
    assert torch.all(cos > 0.95), cos


def test_kl_is_zero_for_equal_logits_and_positive_otherwise():
    a = {"h": torch.randn(4, 3)}
    assert float(kl_from_logits(a, a)) == pytest.approx(0.0, abs=1e-7)
    assert float(kl_from_logits(a, {"h": a["h"].flip(0)})) > 0
