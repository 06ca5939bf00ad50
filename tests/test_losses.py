import math

import numpy as np
import pytest
import torch

from training.losses import (
    entropy_minimisation, imbalance_weights, masked_cross_entropy, rotate_batch, rotation_loss,
    select_rotation_frames,
)

torch.set_num_threads(1)
HEADS = {"a": 2, "b": 3, "c": 4}


def _logits(b=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(b, c, generator=g, dtype=torch.float64).requires_grad_() for k, c in HEADS.items()}


TARGETS = torch.tensor([[0, 2, -1], [1, -1, -1], [-1, 0, -1], [1, 1, -1], [0, -1, -1], [-1, 2, -1]])


def _reference(logits, targets, class_weights, label_weights):
    """Plain loop: per label, weighted mean of -log softmax over present examples; weighted sum."""
    total = 0.0
    for j, name in enumerate(logits):
        num = den = 0.0
        for i in range(targets.shape[0]):
            t = int(targets[i, j])
            if t < 0:
                continue
            row = logits[name][i].detach().numpy()
            nll = -(row[t] - math.log(np.exp(row).sum()))
            w = float(class_weights[name][t]) if class_weights else 1.0
            num, den = num + w * nll, den + w
        if den > 0:
            total += (float(label_weights[j]) if label_weights is not None else 1.0) * num / den
    return total


@pytest.mark.parametrize("weighted", [False, True])
def test_masked_ce_matches_loop_reference(weighted):
    logits = _logits()
    cw = {"a": torch.tensor([1.0, 3.0]), "b": torch.tensor([0.5, 1.0, 2.0]), "c": torch.ones(4)} if weighted else None
    lw = torch.tensor([2.0, 0.5, 7.0]) if weighted else None
    loss, per_label = masked_cross_entropy(logits, TARGETS, cw, lw)
    assert float(loss.detach()) == pytest.approx(_reference(logits, TARGETS, cw, lw), rel=1e-10)
    assert set(per_label) == {"a", "b"}  # "c" has no example in the batch


def test_missing_entries_change_neither_loss_nor_gradient():
    logits = _logits()
    loss, _ = masked_cross_entropy(logits, TARGETS)
    loss.backward()
    grads = {k: v.grad.clone() for k, v in logits.items()}
    moved = {k: v.detach().clone() for k, v in logits.items()}
    missing = TARGETS < 0
    for j, k in enumerate(HEADS):
        moved[k][missing[:, j]] = 1e4 * torch.randn_like(moved[k][missing[:, j]])
        moved[k].requires_grad_()
    loss2, _ = masked_cross_entropy(moved, TARGETS)
    loss2.backward()
    assert float(loss2.detach()) == float(loss.detach())
    for j, k in enumerate(HEADS):
        assert torch.equal(moved[k].grad, grads[k])
        assert torch.all(moved[k].grad[missing[:, j]] == 0)


def test_batch_without_any_label_is_exactly_zero_and_backpropagates():
    logits = _logits()
    loss, per_label = masked_cross_entropy(logits, torch.full((6, 3), -1))
    assert float(loss.detach()) == 0.0 and per_label == {}
    loss.backward()
    assert all(torch.all(v.grad == 0) for v in logits.values())


def test_masked_ce_rejects_bad_shapes_and_classes():
    with pytest.raises(ValueError, match=r"targets must be \[B, 3\]"):
        masked_cross_entropy(_logits(), TARGETS[:, :2])
    bad = TARGETS.clone()
    bad[0, 0] = 5
    with pytest.raises(ValueError, match="label 'a'"):
        masked_cross_entropy(_logits(), bad)


def test_imbalance_weights_normalisation_and_empty_classes():
    rng = np.random.default_rng(0)
    targets = np.stack([rng.choice([0, 0, 0, 1], 200), rng.choice([-1, 0, 2], 200), np.full(200, -1)], axis=1)
    targets[:150, 0] = -1  # label "a" on 25 % of recordings, "b" on ~67 %, "c" on none
    w = imbalance_weights(targets, HEADS)
    for j, name in enumerate(["a", "b"]):
        col = targets[:, j][targets[:, j] >= 0]
        # weighted mean over the labelled examples is 1, and every occurring class weighs the same in total
        assert w.class_weights[name][col].mean() == pytest.approx(1.0, rel=1e-6)
        totals = w.class_weights[name] * w.counts[name]
        assert np.allclose(totals[totals > 0], totals[totals > 0][0])
    assert w.empty_classes == {"b": (1,), "c": (0, 1, 2, 3)}
    assert w.class_weights["b"][1] == 0 and np.all(w.class_weights["c"] == 0)
    coverage = np.array([50 / 200, (targets[:, 1] >= 0).mean()])
    expected = (1 / coverage) / (1 / coverage).mean()
    np.testing.assert_allclose(w.label_weights[:2], expected, rtol=1e-6)
    assert w.label_weights[2] == 0
    milder = imbalance_weights(targets, HEADS, power=0.5).label_weights
    assert milder[0] / milder[1] == pytest.approx(math.sqrt(w.label_weights[0] / w.label_weights[1]), rel=1e-5)
    cw, lw = w.as_tensors()
    assert isinstance(lw, torch.Tensor) and set(cw) == set(HEADS)


def test_imbalance_weights_rejects_out_of_range_class():
    with pytest.raises(ValueError, match="label 'a'"):
        imbalance_weights(np.array([[2, 0, 0]]), HEADS)


def test_entropy_matches_reference_and_bounds():
    logits = _logits()
    ref = np.mean([
        np.mean([-(p * np.log(p)).sum() for p in torch.softmax(v, -1).detach().numpy()]) for v in logits.values()
    ])
    assert float(entropy_minimisation(logits).detach()) == pytest.approx(ref, rel=1e-10)
    uniform = {k: torch.zeros(4, c) for k, c in HEADS.items()}
    assert float(entropy_minimisation(uniform)) == pytest.approx(np.mean([math.log(c) for c in HEADS.values()]))
    confident = {k: torch.eye(c)[:1].repeat(4, 1) * 100 for k, c in HEADS.items()}
    assert float(entropy_minimisation(confident)) < 1e-30


def test_rotation_targets_match_the_rotation():
    images = torch.randn(3, 1, 5, 5)
    rotated, targets = rotate_batch(images)
    assert rotated.shape == (12, 1, 5, 5) and targets.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    for r, t, i in zip(rotated, targets, list(range(3)) * 4):
        # numpy's rot90 rotates counter-clockwise in the (row, col) plane, as torch's does
        np.testing.assert_array_equal(r[0].numpy(), np.rot90(images[i, 0].numpy(), int(t)))
    marker = torch.zeros(1, 1, 4, 4)
    marker[0, 0, 0, 3] = 1  # top-right → k=1 (90° counter-clockwise) moves it to top-left
    assert rotate_batch(marker)[0][1, 0, 0, 0] == 1
    loss = rotation_loss(torch.zeros(12, 4), targets)
    assert float(loss) == pytest.approx(math.log(4))


def test_select_rotation_frames_takes_only_real_frames():
    frames = torch.arange(3 * 4, dtype=torch.float32).view(3, 4, 1, 1, 1).expand(3, 4, 1, 2, 2).clone()
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.float32)
    real_ids = {float(v) for v in frames[mask > 0][:, 0, 0, 0]}
    assert len(select_rotation_frames(frames, mask, None)) == 7
    for k, expected in [(1, 3), (2, 5), (4, 7)]:
        picked = select_rotation_frames(frames, mask, k, torch.Generator().manual_seed(k))
        ids = [float(v) for v in picked[:, 0, 0, 0]]
        assert len(ids) == expected and len(set(ids)) == expected and set(ids) <= real_ids
