"""Ramp-up of EntMin and VAT over step 1 (training/rampup.py); the objective's use of it: tests/test_trainer.py."""
import math

import pytest

from training.config import LossConfig
from training.rampup import ramp_scales, sigmoid_rampup


def test_sigmoid_rampup_follows_its_formula_and_is_clipped():
    assert sigmoid_rampup(0.0) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(0.5) == pytest.approx(math.exp(-1.25))
    assert sigmoid_rampup(1.0) == 1.0 and sigmoid_rampup(3.0) == 1.0 and sigmoid_rampup(-1.0) == sigmoid_rampup(0.0)
    values = [sigmoid_rampup(t / 10) for t in range(11)]
    assert values == sorted(values)


def test_ramp_scales_rise_over_step_1_only():
    whole = ramp_scales(1, 1, 4, 2, 1.0) + ramp_scales(1, 2, 4, 2, 1.0)  # step 1: 2 epochs x 4 batches
    assert whole == [pytest.approx(sigmoid_rampup(i / 8)) for i in range(8)]
    assert whole == sorted(whole) and whole[0] < 0.01 and whole[-1] < 1.0
    assert ramp_scales(1, 2, 4, 2, 0.5) == [1.0] * 4  # a ramp over half of step 1 is over after epoch 1
    assert ramp_scales(1, 1, 4, 2, 0.0) == [1.0] * 4  # the thesis: full weight
    assert ramp_scales(2, 1, 4, 2, 1.0) == [1.0] * 4 and ramp_scales(3, 1, 4, 2, 1.0) == [1.0] * 4


def test_rampup_out_of_range_is_named():
    with pytest.raises(ValueError, match="loss.rampup"):
        LossConfig(rampup=1.5)
