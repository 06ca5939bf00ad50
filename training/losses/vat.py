"""Virtual adversarial training (Miyato et al. 2018), as used by S4L.

The perturbation scale: S4L perturbed 224×224×3 inputs in [-1, 1] with an L2 norm eps of about
32 per example. Our inputs are in [-1, 127/128] too but have another size (N frames of 1×S×S), so
by default eps keeps S4L's per-element RMS: ``eps = eps_ref * sqrt(dim / REFERENCE_DIM)`` with dim
the per-example input size (224×224×1 → ~18.5; 10 frames of 224² → ~58). ``VatConfig.eps`` fixes
an absolute value instead.

BatchNorm: the perturbed forwards must not move the running statistics (they would drift towards
adversarial inputs; a forward under ``no_grad`` in train mode still updates them). ``frozen_bn_stats``
keeps the layers in train mode — normalising with the batch's own statistics, exactly as the clean
forward that produced ``clean_logits`` did, so a zero perturbation gives zero loss — and sets
``track_running_stats=False`` for the duration: _BatchNorm then passes no running buffers to
F.batch_norm and skips ``num_batches_tracked``. (Momentum 0 would not do: PyTorch's momentum
weights the NEW batch — the opposite of TF's decay — so 0 freezes mean/var but still counts
``num_batches_tracked``, and a layer with ``momentum=None`` averages cumulatively regardless.
Eval-mode statistics instead would make the perturbed forward a different function from the
clean one.)

Mixed precision (training/precision.py): the power iteration runs with autocast off, in float32 —
at xi = 0.1 the finite difference is already near float32's resolution, and bf16 keeps 8 bits of
mantissa, so under autocast it would measure rounding noise. The final perturbed forward, whose
perturbation is eps (hundreds of times xi), runs at the caller's precision.

In kind="multi" with concat fusion the padded frames get no gradient, so the whole eps lands on
the real frames of a recording.
"""
from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

import torch
from torch import nn

REFERENCE_DIM = 224 * 224 * 3  # S4L's input size, for which eps_ref was tuned

LogitsFn = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]


@dataclass(frozen=True)
class VatConfig:
    # Finite-difference step (L2 norm per example) of the power iteration. Miyato's/S4L's 1e-6 is
    # below float32 resolution here: on a smooth test net the float32 direction had cosine 0.2-0.5
    # with the exact (float64) one at 1e-6, and >= 0.99 for 1e-2 .. 1 (64 and 224 px).
    xi: float = 0.1
    eps_ref: float = 32.0  # L2 norm of the perturbation for a REFERENCE_DIM-sized input
    eps: float | None = None  # absolute L2 norm per example; None = eps_ref scaled to the input size
    n_power: int = 1  # power iterations

    def eps_for(self, x: torch.Tensor) -> float:
        if self.eps is not None:
            return self.eps
        return self.eps_ref * math.sqrt(x[0].numel() / REFERENCE_DIM)


@contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[None]:
    """BatchNorm layers of ``model`` normalise with batch statistics but update no running buffer."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.track_running_stats for m in bns]
    try:
        for m in bns:
            m.track_running_stats = False
        yield
    finally:
        for m, flag in zip(bns, saved):
            m.track_running_stats = flag


def _unit(d: torch.Tensor) -> torch.Tensor:
    """L2-normalise each example over all its non-batch dimensions.

    Scaled by the max-abs first (as Miyato's code does): power-iteration gradients at xi=1e-6 are
    far below any fixed norm floor, and dividing by a tiny norm directly would lose them.
    """
    shape = (-1,) + (1,) * (d.dim() - 1)
    d = d / d.flatten(1).abs().amax(dim=1).clamp(min=torch.finfo(d.dtype).tiny).view(shape)
    return d / d.flatten(1).norm(dim=1).clamp(min=1e-12).view(shape)


def kl_from_logits(clean: Mapping[str, torch.Tensor], other: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """KL(softmax(clean) || softmax(other)) summed over heads, averaged over the batch."""
    total = 0.0
    for name, p_logits in clean.items():
        logp = p_logits.log_softmax(-1)
        logq = other[name].log_softmax(-1)
        total = total + (logp.exp() * (logp - logq)).sum(-1).mean()
    return total


def vat_loss(
    model_fn: LogitsFn,
    x: torch.Tensor,
    clean_logits: Mapping[str, torch.Tensor],
    *,
    model: nn.Module,
    cfg: VatConfig = VatConfig(),
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """VAT loss of ``model_fn`` (input → logits dict) around ``x``; ``model`` owns the BatchNorms to freeze.

    ``clean_logits`` are the logits of the clean forward (detached here). The returned loss carries
    gradients to the parameters through the final perturbed forward only.
    """
    if cfg.n_power < 1:
        raise ValueError(f"VAT n_power must be >= 1, got {cfg.n_power}")
    # float32 (or the caller's float64) logits: under autocast the clean forward's are bf16/fp16
    clean = {k: v.detach().to(torch.promote_types(v.dtype, torch.float32)) for k, v in clean_logits.items()}
    x = x.detach()
    # Drawn in float32 whatever the input dtype, so a float64 check sees the same start direction.
    d = _unit(torch.randn(x.shape, generator=generator).to(device=x.device, dtype=x.dtype))
    with frozen_bn_stats(model):
        with full_precision(x.device.type):
            for _ in range(cfg.n_power):
                d = (cfg.xi * d).requires_grad_()
                distance = kl_from_logits(clean, model_fn(x + d))
                d = _unit(torch.autograd.grad(distance, d)[0].detach())
        return kl_from_logits(clean, model_fn(x + cfg.eps_for(x) * d))


def full_precision(device_type: str):
    """Autocast off inside (when it is on): the forwards run in the weights' dtype, float32."""
    if not torch.is_autocast_enabled(device_type):
        return nullcontext()
    return torch.autocast(device_type, enabled=False)
