import numpy as np
import pytest
import torch

from training import calibration

torch.set_num_threads(1)


def _synthetic(rng, n=4000, c=4, true_t=3.0):
    """Labels drawn from softmax(z); the model reports z * true_t, so T = true_t undoes it."""
    z = rng.normal(scale=2.0, size=(n, c))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(c, p=row) for row in p])
    return z * true_t, y


@pytest.mark.parametrize("true_t", [0.5, 3.0])
def test_recovers_known_temperature(true_t):
    logits, y = _synthetic(np.random.default_rng(0), true_t=true_t)
    assert calibration.fit_temperature(logits, y) == pytest.approx(true_t, rel=0.1)


def test_calibrated_nll_not_worse_and_ignores_unknown_rows():
    rng = np.random.default_rng(1)
    logits, y = _synthetic(rng, n=500, true_t=2.0)
    y[rng.random(len(y)) < 0.3] = -1
    t = calibration.fit_temperature(torch.tensor(logits, dtype=torch.float32), torch.tensor(y))
    assert calibration.nll(logits, y, t) <= calibration.nll(logits, y, 1.0) + 1e-9
    assert calibration.fit_temperature(logits[y >= 0], y[y >= 0]) == pytest.approx(t, rel=1e-4)


def test_few_labels_keep_unit_temperature_and_clamp():
    logits = np.array([[5.0, -5.0]] * 3)
    assert calibration.fit_temperature(logits, np.array([0, 1, -1])) == 1.0
    # Perfectly separable: NLL keeps falling as T -> 0 (until its gradient vanishes), never below the clamp.
    big = np.array([[1.0, -1.0], [-1.0, 1.0]] * 10)
    assert calibration.MIN_TEMPERATURE <= calibration.fit_temperature(big, np.array([0, 1] * 10)) < 0.2
    # Always wrong: NLL falls as T grows, the upper clamp stops it.
    assert calibration.fit_temperature(big, np.array([1, 0] * 10)) == calibration.MAX_TEMPERATURE


def test_fit_temperatures_per_head_and_bad_shapes():
    logits, y = _synthetic(np.random.default_rng(2), n=300, true_t=2.0)
    temps = calibration.fit_temperatures({"a": logits, "b": logits}, {"a": y})
    assert temps["b"] == 1.0 and temps["a"] > 1.2
    with pytest.raises(ValueError, match="class index 4"):
        calibration.fit_temperature(logits, np.full(len(y), 4))
    with pytest.raises(ValueError, match=r"\[n, C\]"):
        calibration.fit_temperature(logits[:, 0], y)
