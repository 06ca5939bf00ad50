"""The per-label quality figures (subject bootstrap interval) and the gate rule the backend applies."""
import numpy as np
import pytest

from training.label_quality import (Verdict, bootstrap_interval, gate_verdict, label_quality, single_class_labels,
                                    subject_confusions)
from training.metrics import balanced_accuracy, confusion_matrix


def reference_interval(y, pred, subjects, n_classes, n_boot, level, seed):
    """Plain loop: draw subjects with replacement, pool their recordings, score, take percentiles."""
    labelled = list(dict.fromkeys(s for s, t in zip(subjects, y) if t >= 0))
    rows = {s: [i for i, (u, t) in enumerate(zip(subjects, y)) if u == s and t >= 0] for s in labelled}
    draws = np.random.default_rng(seed).integers(0, len(labelled), size=(n_boot, len(labelled)))
    scores = []
    for draw in draws:
        idx = [i for k in draw for i in rows[labelled[k]]]
        scores.append(balanced_accuracy(confusion_matrix(y[idx], pred[idx], n_classes)))
    tail = (1 - level) / 2 * 100
    return tuple(np.percentile(scores, [tail, 100 - tail]))


def noisy_data(n_subjects=12, per_subject=5, n_classes=3, seed=1):
    rng = np.random.default_rng(seed)
    subjects = np.repeat([f"s{i}" for i in range(n_subjects)], per_subject)
    y = rng.integers(-1, n_classes, size=len(subjects))
    pred = np.where(rng.random(len(y)) < 0.6, np.maximum(y, 0), rng.integers(0, n_classes, size=len(y)))
    return y, pred, list(subjects)


def test_interval_matches_the_plain_reference():
    y, pred, subjects = noisy_data()
    conf = subject_confusions(y, pred, subjects, 3)
    got = bootstrap_interval(conf, n_boot=300, level=0.9, seed=7)
    assert got == pytest.approx(reference_interval(y, pred, subjects, 3, 300, 0.9, 7), abs=1e-12)


def test_subject_confusions_add_up_to_the_pooled_confusion():
    y, pred, subjects = noisy_data()
    conf = subject_confusions(y, pred, subjects, 3)
    assert conf.shape == (12, 3, 3)
    assert (conf.sum(axis=0) == confusion_matrix(y, pred, 3)).all()


def test_perfect_predictions_give_a_point_interval_at_one():
    y, _, subjects = noisy_data()
    assert bootstrap_interval(subject_confusions(y, np.maximum(y, 0), subjects, 3)) == (1.0, 1.0)


def test_one_subject_gives_its_own_score_only():
    y, pred, _ = noisy_data(n_subjects=1, per_subject=40)
    conf = subject_confusions(y, pred, ["a"] * len(y), 3)
    low, high = bootstrap_interval(conf)
    assert low == high == pytest.approx(balanced_accuracy(conf[0]))


def test_interval_is_ordered_within_bounds_and_seeded():
    y, pred, subjects = noisy_data()
    conf = subject_confusions(y, pred, subjects, 3)
    low, high = bootstrap_interval(conf, seed=3)
    assert 0.0 <= low <= balanced_accuracy(conf.sum(axis=0)) <= high <= 1.0
    assert bootstrap_interval(conf, seed=3) == (low, high)


def test_resampling_subjects_is_wider_than_resampling_recordings_when_subjects_differ():
    # whole subjects right or wrong: recordings of one person are not independent evidence
    subjects = list(np.repeat([f"s{i}" for i in range(10)], 8))
    y = np.tile([0, 1], 40)
    pred = np.where(np.repeat(np.arange(10) % 3 == 0, 8), 1 - y, y)
    by_subject = bootstrap_interval(subject_confusions(y, pred, subjects, 2))
    by_recording = bootstrap_interval(subject_confusions(y, pred, list(range(80)), 2))
    assert by_subject[1] - by_subject[0] > 1.5 * (by_recording[1] - by_recording[0])


def test_no_labelled_rows_give_no_interval():
    assert bootstrap_interval(subject_confusions(np.full(4, -1), np.zeros(4), list("abcd"), 2)) is None


def test_label_quality_counts_validation_and_training_classes():
    y = np.array([0, 0, 1, -1, 1])
    probs = np.eye(2)[[0, 1, 1, 0, 1]]
    q = label_quality(y, probs, list("aabbc"), ("no", "yes"), {"no": 5, "yes": 0})
    assert q["val_counts"] == {"no": 2, "yes": 2}
    assert q["val_subjects"] == 3 and q["train_classes"] == 1
    assert q["balanced_accuracy"] == pytest.approx(0.75)


def quality(low, counts, train_classes=2):
    return {"interval": [low, 0.99], "val_counts": counts, "train_classes": train_classes}


@pytest.mark.parametrize("q, n_classes, served, reason_part", [
    (None, 2, True, "no validation figures"),
    (quality(0.9, {"a": 20, "b": 20}, train_classes=1), 2, False, "one class only"),
    (quality(0.9, {"a": 5, "b": 4}), 2, False, "9 validation recordings"),
    (quality(0.9, {"a": 30, "b": 0}), 2, False, "validation holds one class"),
    (quality(0.5, {"a": 30, "b": 30}), 2, False, "<= chance 0.500"),
    (quality(0.51, {"a": 30, "b": 30}), 2, True, "> chance 0.500"),
    (quality(0.34, {"a": 30, "b": 30, "c": 1}), 3, True, "> chance 0.333"),
    (quality(0.30, {"a": 30, "b": 30, "c": 1}), 3, False, "<= chance"),
])
def test_gate_rule(q, n_classes, served, reason_part):
    verdict = gate_verdict(q, n_classes)
    assert isinstance(verdict, Verdict) and verdict.served is served
    assert reason_part in verdict.reason


def test_min_val_is_a_parameter():
    assert gate_verdict(quality(0.9, {"a": 5, "b": 4}), 2, min_val=5).served


def test_single_class_labels():
    assert single_class_labels({"x": {"a": 3, "b": 0}, "y": {"a": 1, "b": 1}, "z": {"a": 0, "b": 0}}) == ["x"]


def test_report_shows_the_gate_per_label(tmp_path):
    import json

    from training.report import write_report

    metrics = {"quality": {"weak": {**quality(0.4, {"a": 30, "b": 30}), "balanced_accuracy": 0.55},
                           "good": {**quality(0.8, {"a": 30, "b": 30}), "balanced_accuracy": 0.9}}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    page = write_report(tmp_path).read_text()
    assert "withheld: interval lower bound 0.400 &lt;= chance 0.500" in page
    assert "served: interval lower bound 0.800 &gt; chance 0.500" in page


def test_an_empty_validation_split_gives_no_interval_and_zero_counts():
    q = label_quality(np.zeros(0, dtype=np.int64), np.zeros((0, 2)), [], ("Yes", "No"), {"Yes": 3, "No": 2})
    assert q["interval"] is None and q["val_counts"] == {"Yes": 0, "No": 0} and q["val_subjects"] == 0
