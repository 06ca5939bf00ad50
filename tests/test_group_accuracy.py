"""Per-group balanced accuracy against hand-computed values."""
import numpy as np
import pytest

from training.group_accuracy import UNKNOWN_GROUP, group_metrics, group_of
from training.export_reader import Recording


def test_group_metrics_by_hand():
    # group a: truth 0,0,1 predicted 0,1,1 -> recalls 1/2 and 1 -> 0.75; group b: truth 1,1 predicted 0,1 -> 0.5
    y = np.array([0, 0, 1, 1, 1, -1])
    probs = np.eye(2)[[0, 1, 1, 0, 1, 0]]
    m = group_metrics(("x", "y"), y, probs, ["a", "a", "a", "b", "b", "c"])
    assert m["groups"]["a"] == {"n": 3, "balanced_accuracy": 0.75, "counts": {"x": 2, "y": 1}}
    assert m["groups"]["b"] == {"n": 2, "balanced_accuracy": 0.5, "counts": {"x": 0, "y": 2}}
    assert m["groups"]["c"]["balanced_accuracy"] is None
    assert (m["best"], m["worst"], m["gap"]) == ("a", "b", pytest.approx(0.25))


def test_group_of_prefers_the_label_then_the_data_field():
    rec = Recording(1, "r1", "site7-042", (), {}, {}, data={"subject_id": "site7-042", "car_recording": True})
    assert group_of(rec, "subject_id", {}, prefix=5) == "site7"
    assert group_of(rec, "car_recording", {}) == "True"
    assert group_of(rec, "gender", {"gender": "female"}) == "female"
    assert group_of(rec, "gender", {}) == UNKNOWN_GROUP
