"""Training-time augmentation (training/augment.py): one draw per recording, label-preserving transforms only,
and only the training batch sees it."""
import pytest
import torch

from training.augment import augment_batch
from training.config import AugmentConfig

NOTHING = AugmentConfig(enabled=True, flip=False, shift=0.0, zoom=0.0, brightness=0.0, contrast=0.0)


def _images(*shape) -> torch.Tensor:
    torch.manual_seed(3)
    return torch.rand(*shape) * 2 - 1


def test_a_draw_of_nothing_is_the_identity_and_the_input_is_not_changed():
    x = _images(3, 4, 1, 16, 16)
    before = x.clone()
    torch.testing.assert_close(augment_batch(x, NOTHING), x, atol=1e-5, rtol=0)
    torch.manual_seed(0)
    y = augment_batch(x, AugmentConfig(enabled=True))
    assert torch.equal(x, before) and y.shape == x.shape and not torch.allclose(y, x)


def test_mirror_only_gives_each_recording_itself_or_its_mirror_image():
    x = _images(16, 3, 1, 8, 8)
    torch.manual_seed(1)
    y = augment_batch(x, AugmentConfig(enabled=True, flip=True, shift=0, zoom=0, brightness=0, contrast=0))
    mirrored = [torch.allclose(y[i], x[i].flip(-1), atol=1e-5) for i in range(16)]
    same = [torch.allclose(y[i], x[i], atol=1e-5) for i in range(16)]
    assert all(m != s for m, s in zip(mirrored, same))  # exactly one of the two, every frame alike
    assert 0 < sum(mirrored) < 16


def test_every_frame_of_a_recording_gets_the_same_draw_and_recordings_differ():
    frame = _images(1, 1, 1, 12, 12)
    x = frame.expand(6, 5, 1, 12, 12).contiguous()  # 6 recordings of 5 identical frames
    torch.manual_seed(2)
    y = augment_batch(x, AugmentConfig(enabled=True))
    for i in range(6):
        for t in range(1, 5):
            torch.testing.assert_close(y[i, t], y[i, 0])
    assert not torch.allclose(y[0], y[1])


def test_brightness_and_contrast_stay_in_their_ranges():
    x = _images(64, 1, 6, 6)
    cfg = AugmentConfig(enabled=True, flip=False, shift=0, zoom=0, brightness=0.1, contrast=0.2)
    torch.manual_seed(4)
    y = augment_batch(x, cfg)
    for i in range(64):  # y = gain * x + offset per image: fit it back exactly
        a = torch.stack([x[i].flatten(), torch.ones(36)], 1)
        gain, offset = torch.linalg.lstsq(a, y[i].flatten()[:, None]).solution.flatten()
        assert 0.8 - 1e-4 <= gain <= 1.2 + 1e-4 and -0.1 - 1e-4 <= offset <= 0.1 + 1e-4
        torch.testing.assert_close(y[i], gain * x[i] + offset, atol=1e-4, rtol=0)


def test_a_shift_moves_the_content_by_at_most_its_share_of_the_side():
    x = torch.full((32, 1, 20, 20), -1.0)
    x[:, :, 9:11, 9:11] = 1.0  # a bright square in the middle
    torch.manual_seed(5)
    y = augment_batch(x, AugmentConfig(enabled=True, flip=False, shift=0.1, zoom=0, brightness=0, contrast=0))
    centres = []
    for i in range(32):
        rows, cols = torch.nonzero(y[i, 0] > 0, as_tuple=True)
        centres.append((rows.float().mean() - 9.5, cols.float().mean() - 9.5))
    moves = torch.tensor(centres)
    assert moves.abs().max() <= 0.1 * 20 + 0.5 and moves.abs().max() >= 0.5  # moved, within 2 px (+ rounding)


def test_bad_shapes_and_ranges_are_named():
    with pytest.raises(ValueError, match=r"\[B, C, S, S\]"):
        augment_batch(torch.zeros(2, 8, 8), AugmentConfig(enabled=True))
    with pytest.raises(ValueError, match="data.augment.shift"):
        AugmentConfig(shift=1.5)
