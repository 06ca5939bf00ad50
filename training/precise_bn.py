"""Precise BatchNorm: re-estimate the running statistics at the current weights before eval-mode use.

Measured (`python -m research.experiments --bn-check RUN_ID`): with S4L's unsupervised losses moving the weights
every step, BatchNorm's exponential running averages (momentum 0.1) lag behind them, and the
eval-mode model predicted ONE class for every validation recording — while the same weights with
statistics re-estimated by one clean pass scored like the supervised baseline. Validation,
best-epoch choice, pseudo-labelling (step 2) and the exported model all run in eval mode, so the
statistics are recomputed after every epoch: a no-grad, clean (unperturbed, unrotated) pass over
training items in train mode with cumulative averaging (momentum=None). Dropout is off for that
pass; no weight changes. Under DDP every rank averages its shard, then the ranks average.
"""
from __future__ import annotations

import itertools
from typing import Callable, Iterable

import torch
import torch.distributed as dist
from torch import nn

from training.distributed import DistContext


def batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recompute_bn_stats(model: nn.Module, batches: Iterable, forward: Callable[[nn.Module, object], object],
                       ctx: DistContext | None = None) -> int:
    """Reset and re-estimate every BatchNorm's running mean/var from `forward(model, batch)` calls.

    Returns the number of batches seen (0 leaves the statistics untouched)."""
    bns = batchnorms(model)
    batches = iter(batches)
    first = next(batches, None)
    if not bns or first is None:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in bns]
    model.eval()  # dropout off ...
    for m in bns:  # ... BatchNorm in train mode, cumulative average from scratch
        m.reset_running_stats()
        m.momentum = None
        m.train()
    seen = 0
    try:
        for batch in itertools.chain((first,), batches):  # lazily: a loader may be large
            forward(model, batch)
            seen += 1
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        model.train(was_training)
    if ctx is not None and ctx.enabled:
        for m in bns:
            for buf in (m.running_mean, m.running_var):
                dist.all_reduce(buf)
                buf /= ctx.world_size
    return seen
