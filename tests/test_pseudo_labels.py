import numpy as np
import pytest

from training.pseudo_labels import make_pseudo_labels

NAMES = ("a", "b", "c")


def _reference(true, probs, threshold, trained):
    """Plain loop: fill a missing slot with the argmax when confident enough and the head is trained."""
    out = true.copy()
    for r in range(true.shape[0]):
        for col, name in enumerate(NAMES):
            if true[r, col] >= 0 or name not in probs or name not in trained:
                continue
            if max(probs[name][r]) >= threshold:
                out[r, col] = int(np.argmax(probs[name][r]))
    return out


@pytest.mark.parametrize("threshold", [0.0, 0.6, 0.95])
def test_fills_only_missing_labels_like_the_reference(threshold):
    rng = np.random.default_rng(int(threshold * 100))
    true = rng.integers(-1, 2, size=(40, 3))
    probs = {"a": rng.dirichlet([1, 1], 40), "b": rng.dirichlet([1, 1], 40), "c": rng.dirichlet([1, 1, 1], 40)}
    trained = {"a", "c"}
    pl = make_pseudo_labels(true, probs, NAMES, threshold=threshold, trained=trained)
    np.testing.assert_array_equal(pl.targets, _reference(true, probs, threshold, trained))
    known = true >= 0
    np.testing.assert_array_equal(pl.targets[known], true[known])  # never overwrites a true label
    assert not pl.filled[known].any() and not pl.filled[:, 1].any()  # untrained head b: nothing
    np.testing.assert_array_equal(pl.confidence[known], 1.0)
    filled = pl.filled
    assert (pl.confidence[filled] >= threshold).all()
    assert pl.counts(NAMES) == {n: int(filled[:, i].sum()) for i, n in enumerate(NAMES)}


def test_threshold_zero_fills_every_missing_slot_of_trained_heads():
    true = np.array([[-1, 0, -1], [1, -1, -1]])
    probs = {n: np.array([[0.2, 0.8], [0.9, 0.1]]) for n in ("a", "b")} | {"c": np.array([[0.1, 0.2, 0.7], [1, 0, 0]])}
    pl = make_pseudo_labels(true, probs, NAMES)
    np.testing.assert_array_equal(pl.targets, [[1, 0, 2], [1, 0, 0]])


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="probs\\['a'\\] has 2 rows"):
        make_pseudo_labels(np.full((3, 3), -1), {"a": np.ones((2, 2)) / 2}, NAMES)
