"""Precise BatchNorm: statistics re-estimated at the current weights, nothing else touched."""
import copy

import torch
from torch import nn

from training.precise_bn import recompute_bn_stats


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Linear(4, 2))


def test_statistics_are_the_average_over_the_batches_and_weights_stay():
    model = _model()
    model.train()
    for _ in range(5):  # stale EMA statistics of other inputs, as after S4L epochs
        model(torch.randn(8, 3) * 5 + 3)
    batches = [torch.randn(6, 3) for _ in range(4)]
    before = copy.deepcopy(model.state_dict())
    seen = recompute_bn_stats(model, batches, lambda m, b: m(b))
    assert seen == 4 and model.training  # mode restored
    bn = model[1]
    hidden = [model[0](b) for b in batches]
    ref_mean = torch.stack([h.mean(0) for h in hidden]).mean(0)
    ref_var = torch.stack([h.var(0, unbiased=True) for h in hidden]).mean(0)
    torch.testing.assert_close(bn.running_mean, ref_mean.detach())
    torch.testing.assert_close(bn.running_var, ref_var.detach())
    assert bn.momentum == 0.1 and int(bn.num_batches_tracked) == 4
    for k, v in model.state_dict().items():
        if "running" not in k and "num_batches" not in k:
            assert torch.equal(v, before[k]), k


def test_dropout_is_off_during_the_pass():
    model = _model()
    outputs = []
    recompute_bn_stats(model, [torch.ones(4, 3)] * 2, lambda m, b: outputs.append(m[2](torch.ones(100))))
    assert all(torch.equal(o, torch.ones(100)) for o in outputs)  # identity: eval-mode dropout


def test_no_batches_leaves_statistics_alone():
    model = _model()
    model.train()
    model(torch.randn(8, 3))
    saved = model[1].running_mean.clone()
    assert recompute_bn_stats(model, [], lambda m, b: m(b)) == 0
    assert torch.equal(model[1].running_mean, saved)
