"""Ramp-up of the prediction-based unsupervised losses (EntMin, VAT) over the start of step 1.

Why: with a handful of labels, an untrained model's predictions are noise. EntMin sharpens and VAT
smooths whatever the model predicts, so at full weight from the first batch they entrench its first
guesses before the few labels have shaped it (confirmation bias). Semi-supervised practice (Laine &
Aila 2017, Tarvainen & Valpola 2017, Oliver et al. 2018) raises their weight from ~0 along
exp(-5 (1 - t)^2). Rotation has its own targets, so it is not ramped; steps 2 and 3 start from a
trained model and run at full weight.
"""
from __future__ import annotations

import math


def sigmoid_rampup(progress: float) -> float:
    """exp(-5 (1 - t)^2) for t = progress clipped to [0, 1]: 0.0067 at 0, 0.29 at 0.5, 1 from 1 on."""
    t = min(max(progress, 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


def ramp_scales(step: int, epoch: int, batches: int, epochs_per_step: int, rampup: float) -> list[float]:
    """Weight multiplier of EntMin and VAT for each of the `batches` batches of `epoch` (1-based).

    `rampup` is the share of step 1's batches the ramp takes (0 = none, the thesis: every scale 1)."""
    if step != 1 or rampup <= 0.0:
        return [1.0] * batches
    total = rampup * epochs_per_step * batches
    return [sigmoid_rampup(((epoch - 1) * batches + i) / total) for i in range(batches)]
