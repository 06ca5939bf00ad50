"""The linear baseline: features against a plain reference, sklearn parity of the copied heads, the per-label
serving choice, and the served model's outputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from training.baseline import (
    ABSENT_CLASS_LOGIT, LinearBaseline, ServedModel, Thumbnails, _set_head, choose_heads, fit_baseline,
)
from training.config import BaselineConfig


def test_thumbnails_match_a_plain_block_mean_over_real_frames():
    rng = np.random.default_rng(0)
    frames = rng.uniform(-1, 1, size=(2, 3, 1, 64, 64)).astype(np.float32)
    mask = np.array([[1, 1, 0], [1, 0, 0]], dtype=np.float32)
    got = Thumbnails(64, 32)(torch.from_numpy(frames), torch.from_numpy(mask)).numpy()
    blocks = frames[:, :, 0].reshape(2, 3, 32, 2, 32, 2).mean(axis=(3, 5)).reshape(2, 3, -1)
    want = np.stack([blocks[0, :2].mean(0), blocks[1, 0]])
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert Thumbnails(112, 32).dim == (112 // 4) ** 2  # ~32 x 32 for any input size


@pytest.mark.parametrize("n_classes, present", [(2, [0, 1]), (4, [0, 1, 3]), (3, [1, 2])])
def test_copied_head_reproduces_sklearn_probabilities(n_classes, present):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 5))
    y = np.array(present)[rng.integers(0, len(present), size=60)]
    clf = LogisticRegression(C=0.5, class_weight="balanced", max_iter=2000).fit(x, y)
    head = torch.nn.Linear(5, n_classes)
    _set_head(head, clf, n_classes)
    probs = torch.softmax(head(torch.from_numpy(x).float()), dim=1).detach().numpy()
    np.testing.assert_allclose(probs[:, present], clf.predict_proba(x), atol=1e-5)
    absent = [c for c in range(n_classes) if c not in present]
    if absent:
        assert (head.bias.detach().numpy()[absent] == ABSENT_CLASS_LOGIT).all() and probs[:, absent].max() < 1e-9


def _recordings(n: int, rng) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Frames whose left half is bright for class 1 and dark for class 0, plus noise."""
    y = rng.integers(0, 2, size=n)
    frames = rng.normal(0, 0.3, size=(n, 2, 1, 32, 32)).astype(np.float32)
    frames[:, :, :, :, :16] += np.where(y == 1, 0.5, -0.5)[:, None, None, None, None]
    return torch.from_numpy(frames), torch.ones(n, 2), y


def test_fit_baseline_learns_a_separable_label_and_leaves_one_class_labels_untrained():
    rng = np.random.default_rng(2)
    frames, mask, y = _recordings(40, rng)
    targets = np.stack([y, np.zeros_like(y), np.full_like(y, -1)], axis=1)  # learnable, one class, none
    val_frames, val_mask, val_y = _recordings(20, rng)
    val_truth = np.stack([val_y, np.zeros_like(val_y), np.full_like(val_y, -1)], axis=1)
    heads = {"a": 2, "one_class": 2, "none": 3}
    cfg = BaselineConfig()
    fitted = fit_baseline(heads, 32, cfg.grid, cfg.c_values, [(frames[:20], mask[:20]), (frames[20:], mask[20:])],
                          targets, [(val_frames, val_mask)], val_truth)
    assert fitted.strengths["one_class"] is None and fitted.strengths["none"] is None
    assert fitted.strengths["a"] in cfg.c_values
    out = fitted.model(val_frames, val_mask)
    assert (out["a"].argmax(1).numpy() == val_y).mean() == 1.0
    np.testing.assert_allclose(torch.softmax(out["none"], 1).detach().numpy(), 1 / 3, atol=1e-6)


def test_choose_heads_serves_the_baseline_only_where_it_validates_strictly_better():
    network = {"a": 0.60, "b": 0.80, "c": 0.70, "d": None, "e": 0.5, "f": 0.9}
    baseline = {"a": 0.75, "b": 0.70, "c": 0.70, "d": 0.9, "e": 0.9, "f": None}
    assert choose_heads(network, baseline, untrained_baseline={"e"}) == {
        "a": "baseline", "b": "network", "c": "network", "d": "network", "e": "network", "f": "network"}


class _Constant(torch.nn.Module):
    def __init__(self, logits: dict[str, torch.Tensor]):
        super().__init__()
        self.logits = logits

    def forward(self, frames, mask):
        return {k: v.expand(frames.shape[0], -1) for k, v in self.logits.items()}


def test_served_model_takes_each_label_from_its_chosen_head():
    base = LinearBaseline({"a": 2, "b": 2}, image_size=32)
    with torch.no_grad():
        base.heads[0].bias.copy_(torch.tensor([5.0, -5.0]))
    network = _Constant({"a": torch.tensor([[0.0, 1.0]]), "b": torch.tensor([[2.0, 0.0]])})
    served = ServedModel(network, base, {"a": "baseline", "b": "network"})
    out = served(torch.zeros(3, 2, 1, 32, 32), torch.ones(3, 2))
    assert out["a"].tolist() == [[5.0, -5.0]] * 3 and out["b"].tolist() == [[2.0, 0.0]] * 3
    with pytest.raises(ValueError, match="serving"):
        ServedModel(network, base, {"a": "other"})
