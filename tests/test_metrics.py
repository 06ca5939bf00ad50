"""Metrics against plain-python reference loops and invariants."""
import itertools
import json

import numpy as np
import pytest

from training import metrics
from training.schema import LabelSchema, LabelSpec


def _random_case(rng, n=60, c=3, missing=0.3):
    y = rng.integers(0, c, n)
    y[rng.random(n) < missing] = -1
    logits = rng.normal(size=(n, c))
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, p


def _reference_balanced(y, p):
    recalls = []
    for k in sorted({int(v) for v in y if v >= 0}):
        rows = [i for i in range(len(y)) if y[i] == k]
        recalls.append(sum(int(np.argmax(p[i]) == k) for i in rows) / len(rows))
    return sum(recalls) / len(recalls)


def _reference_weighted(y, p):
    # Thesis definition: each labelled example weighted by 1 / frequency of its class.
    labelled = [i for i in range(len(y)) if y[i] >= 0]
    freq = {k: sum(1 for i in labelled if y[i] == k) for k in set(int(y[i]) for i in labelled)}
    w = {i: 1.0 / freq[int(y[i])] for i in labelled}
    return sum(w[i] * (np.argmax(p[i]) == y[i]) for i in labelled) / sum(w.values())


def _reference_auc(scores, pos):
    pairs = [(a, b) for a, b in itertools.product(range(len(scores)), repeat=2) if pos[a] and not pos[b]]
    return sum(1.0 if scores[a] > scores[b] else 0.5 if scores[a] == scores[b] else 0.0
               for a, b in pairs) / len(pairs)


@pytest.mark.parametrize("seed", range(5))
def test_label_metrics_match_reference_loops(seed):
    rng = np.random.default_rng(seed)
    y, p = _random_case(rng)
    m = metrics.label_metrics(y, p, ["a", "b", "c"])
    assert m["n"] == int((y >= 0).sum()) and m["n_total"] == len(y)
    assert m["balanced_accuracy"] == pytest.approx(_reference_balanced(y, p))
    assert m["weighted_accuracy"] == pytest.approx(_reference_weighted(y, p))
    labelled = y >= 0
    assert m["accuracy"] == pytest.approx(np.mean(p[labelled].argmax(1) == y[labelled]))
    for k, cls in enumerate("abc"):
        assert m["per_class"][cls]["n"] == int((y == k).sum())
        assert sum(m["confusion"][k]) == m["per_class"][cls]["n"]
        for j in range(3):
            assert m["confusion"][k][j] == sum(1 for i in range(len(y)) if y[i] == k and p[i].argmax() == j)
    assert "eer" not in m and "roc_auc" not in m
    json.dumps(m)  # JSON-ready: python scalars only


def test_perfect_and_constant_predictions():
    y = np.array([0, 1, 2, 2, 1, -1, 0, 2])
    onehot = np.eye(3)[np.where(y < 0, 0, y)]
    perfect = metrics.label_metrics(y, onehot, ["a", "b", "c"])
    assert perfect["balanced_accuracy"] == perfect["accuracy"] == 1.0
    # Constant prediction: balanced accuracy = 1 / number of classes present (class "d" never occurs).
    constant = metrics.label_metrics(y, np.tile([0.1, 0.7, 0.1, 0.1], (len(y), 1)), ["a", "b", "c", "d"])
    assert constant["balanced_accuracy"] == pytest.approx(1 / 3)
    assert constant["per_class"]["d"] == {"recall": None, "n": 0}


def test_unlabelled_label_has_null_accuracies():
    m = metrics.label_metrics(np.array([-1, -1]), np.full((2, 2), 0.5), ["x", "y"])
    assert m["n"] == 0 and m["balanced_accuracy"] is None and m["accuracy"] is None
    assert m["eer"] is None and m["roc_auc"] is None and m["ece"] is None


@pytest.mark.parametrize("seed", range(4))
def test_binary_auc_matches_pairwise_count(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 40)
    s = np.round(rng.random(40) * 5) / 5  # coarse scores so ties occur
    p = np.stack([1 - s, s], 1)
    m = metrics.label_metrics(y, p, ["neg", "pos"])
    assert m["roc_auc"] == pytest.approx(_reference_auc(s, y == 1))


def test_eer_bounds_and_known_values():
    pos = np.array([True, True, False, False])
    assert metrics.equal_error_rate(np.array([0.9, 0.8, 0.2, 0.1]), pos) == 0.0
    assert metrics.equal_error_rate(np.array([0.1, 0.2, 0.8, 0.9]), pos) == 1.0
    # One positive below one negative: at threshold 0.6 FAR = FRR = 1/2.
    assert metrics.equal_error_rate(np.array([0.9, 0.4, 0.6, 0.1]), pos) == pytest.approx(0.5)
    # A tie jumps from (FAR 0, FRR 1) to (1, 0) in one step: the interpolated crossing is 1/2.
    assert metrics.equal_error_rate(np.array([0.5, 0.5]), np.array([True, False])) == pytest.approx(0.5)
    # pos 0.9, 0.7, 0.3 / neg 0.8, 0.2, 0.1: at threshold 0.7 FAR = FRR = 1/3.
    pos3 = np.array([True, True, True, False, False, False])
    assert metrics.equal_error_rate(np.array([0.9, 0.7, 0.3, 0.8, 0.2, 0.1]), pos3) == pytest.approx(1 / 3)
    rng = np.random.default_rng(0)
    s, p = rng.random(50), rng.random(50) < 0.5
    assert 0.0 <= metrics.equal_error_rate(s, p) <= 1.0


def test_reliability_bins_and_ece():
    rng = np.random.default_rng(3)
    y, p = _random_case(rng, n=200, missing=0.2)
    bins = metrics.reliability_bins(p, y, bins=10)
    assert sum(b["count"] for b in bins) == int((y >= 0).sum())
    ref, labelled = 0.0, np.flatnonzero(y >= 0)
    for b in bins:
        rows = [i for i in labelled if b["lower"] < p[i].max() <= b["upper"]]
        assert len(rows) == b["count"]
        if rows:
            conf = np.mean([p[i].max() for i in rows])
            acc = np.mean([p[i].argmax() == y[i] for i in rows])
            assert b["confidence"] == pytest.approx(conf)
            ref += len(rows) * abs(acc - conf)
    assert metrics.expected_calibration_error(p, y, bins=10) == pytest.approx(ref / len(labelled))
    # Confident and always right: calibrated.
    assert metrics.expected_calibration_error(np.eye(3)[[0, 1, 2]], np.array([0, 1, 2])) == 0.0


def test_evaluate_document():
    schema = LabelSchema((LabelSpec("g", ("F", "M")), LabelSpec("e", ("a", "b", "c")), LabelSpec("u", ("x", "y"))))
    truth = {"g": np.array([0, 1, 1, -1]), "e": np.array([2, 2, 0, 1])}
    probs = {"g": np.eye(2)[[0, 1, 0, 0]], "e": np.eye(3)[[2, 2, 0, 1]], "u": np.full((4, 2), 0.5)}
    doc = metrics.evaluate(schema, truth, probs)
    assert list(doc["labels"]) == ["g", "e", "u"]
    assert doc["labels"]["u"]["n"] == 0 and doc["labels"]["u"]["balanced_accuracy"] is None
    assert doc["mean_balanced_accuracy"] == pytest.approx((0.75 + 1.0) / 2)
    json.dumps(doc)
    with pytest.raises(KeyError, match="'u'"):
        metrics.evaluate(schema, truth, {"g": probs["g"], "e": probs["e"]})
    with pytest.raises(ValueError, match="'e'.*columns"):
        metrics.evaluate(schema, truth, {**probs, "e": np.full((4, 2), 0.5)})


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="y_true values"):
        metrics.label_metrics(np.array([0, 3]), np.full((2, 3), 1 / 3), "abc")
    with pytest.raises(ValueError, match="n = len"):
        metrics.label_metrics(np.array([0, 1]), np.full((3, 3), 1 / 3), "abc")


def test_mean_by_group_matches_loop():
    rng = np.random.default_rng(1)
    groups = ["r2", "r1", "r2", "r3", "r1", "r2"]
    p = rng.random((6, 3))
    keys, means = metrics.mean_by_group(p, groups)
    assert keys == ["r2", "r1", "r3"]
    for key, row in zip(keys, means):
        assert np.allclose(row, np.mean([p[i] for i, g in enumerate(groups) if g == key], axis=0))


def test_metrics_is_torch_free():
    import subprocess
    import sys
    code = "import sys, training.metrics; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_balanced_accuracy_of_a_confusion_skips_absent_classes():
    from training.metrics import balanced_accuracy

    assert balanced_accuracy([[3, 1, 0], [0, 0, 0], [1, 1, 2]]) == pytest.approx((3 / 4 + 2 / 4) / 2)
    assert balanced_accuracy([[0, 0], [0, 0]]) is None
