"""Confident learning (Northcutt et al. 2021) against a reference worked out by hand."""
import numpy as np
import pytest

from training.confident_learning import find_suspects, per_class_thresholds, ranking

LABELS = np.array([0, 0, 0, 1, 1, 2, 2, -1])
PROBS = np.array([
    [0.90, 0.05, 0.05],  # 0: annotated 0, confidently 0
    [0.70, 0.20, 0.10],  # 1: 0, confidently 0
    [0.20, 0.70, 0.10],  # 2: annotated 0, p1 0.70 >= t1 0.675 -> suspect, suggests 1 (margin 0.50)
    [0.10, 0.80, 0.10],  # 3: 1, confidently 1
    [0.35, 0.55, 0.10],  # 4: 1, above no threshold -> counted nowhere, not a suspect
    [0.10, 0.10, 0.80],  # 5: 2, confidently 2
    [0.62, 0.08, 0.30],  # 6: annotated 2, p0 0.62 >= t0 0.60 -> suspect, suggests 0 (margin 0.32)
    [0.30, 0.30, 0.40],  # 7: not annotated: never a suspect
])


def test_thresholds_are_mean_self_confidence_per_class():
    # t0 = (0.9 + 0.7 + 0.2) / 3, t1 = (0.8 + 0.55) / 2, t2 = (0.8 + 0.3) / 2
    assert per_class_thresholds(LABELS, PROBS) == pytest.approx([0.6, 0.675, 0.55])


def test_suspects_match_the_hand_computed_confident_joint():
    s = find_suspects(LABELS, PROBS)
    assert s.confident.tolist() == [0, 0, 1, 1, -1, 2, 0, -1]
    assert s.flagged.tolist() == [False, False, True, False, False, False, True, False]
    assert s.margin[[2, 6]] == pytest.approx([0.5, 0.32])
    assert np.isnan(s.margin[7])
    # flagged by margin, then the rest by max other - own: 4 (-0.2), 1 (-0.5), 3 and 5 (-0.7), 0 (-0.85)
    assert ranking(s).tolist() == [2, 6, 4, 1, 3, 5, 0]


def test_a_class_nobody_annotated_is_never_suggested():
    s = find_suspects(np.array([0, 0, 1]), np.array([[0.1, 0.1, 0.8], [0.9, 0.05, 0.05], [0.2, 0.7, 0.1]]))
    assert np.isnan(s.thresholds[2]) and 2 not in s.confident.tolist()


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="disagree"):
        find_suspects(np.array([0, 1]), np.ones((3, 2)))
    with pytest.raises(ValueError, match="must be -1 or in"):
        find_suspects(np.array([0, 2]), np.ones((2, 2)))
