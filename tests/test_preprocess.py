import io

import numpy as np
import pytest
from PIL import Image

from training.preprocess import (
    FrameDecodeError,
    PreprocessConfig,
    decode_frame,
    frames_to_batch,
    load_frame,
    pick_frame_indices,
    preprocess_image,
)


def encode(img: Image.Image, fmt="JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def smooth_image(w, h, seed=0, mode="L"):
    """A smooth gradient plus mild noise: like a camera frame, unlike a flat test card."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = 127 + 80 * np.sin(x / w * 6.0) * np.cos(y / h * 4.0) + rng.normal(0, 4, (h, w))
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "L")
    return img.convert(mode)


def reference_preprocess(img: Image.Image, size: int) -> np.ndarray:
    """Plain reference: pad to a black square (centred) first, then resize, then scale."""
    a = np.asarray(img.convert("L"), dtype=np.uint8)
    side = max(a.shape)
    square = np.zeros((side, side), dtype=np.uint8)
    top, left = (side - a.shape[0]) // 2, (side - a.shape[1]) // 2
    square[top:top + a.shape[0], left:left + a.shape[1]] = a
    resized = Image.fromarray(square).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32) / 128 - 1


def test_range_is_minus_one_to_127_over_128():
    cfg = PreprocessConfig(image_size=8)
    assert np.all(preprocess_image(Image.new("L", (8, 8), 255), cfg) == np.float32(127 / 128))
    assert np.all(preprocess_image(Image.new("L", (8, 8), 0), cfg) == -1.0)
    assert preprocess_image(Image.new("L", (8, 8), 128), cfg).dtype == np.float32


def test_wide_image_is_padded_not_distorted():
    cfg = PreprocessConfig(image_size=16)
    out = preprocess_image(Image.new("L", (40, 20), 255), cfg)
    assert out.shape == (16, 16)
    assert np.all(out[:4] == -1) and np.all(out[12:] == -1)  # black bands above and below
    assert np.all(out[4:12] == np.float32(127 / 128))  # the image fills the full width


# sizes where the padding falls on whole output pixels in both orders
@pytest.mark.parametrize("w,h,size", [(64, 40, 16), (30, 90, 15), (50, 50, 25), (80, 48, 20)])
def test_matches_pad_then_resize_reference(w, h, size):
    img = smooth_image(w, h, seed=w)
    out = preprocess_image(img, PreprocessConfig(image_size=size))
    ref = reference_preprocess(img, size)
    assert out.shape == ref.shape == (size, size)
    # equal except where the reference's resize filter blends black into the content edges
    scale = size / max(w, h)
    top, left = (size - round(h * scale)) // 2, (size - round(w * scale)) // 2
    inner = np.s_[top + 2:size - top - 2, left + 2:size - left - 2]
    assert np.abs(out[inner] - ref[inner]).max() < 0.02
    outside = np.ones((size, size), bool)
    outside[top:size - top, left:size - left] = False
    assert np.all(out[outside] == -1)  # padding stays pure black (the reference blurs across it)


def test_standardisation_and_colour_input():
    img = smooth_image(20, 20, mode="RGB")
    plain = preprocess_image(img, PreprocessConfig(image_size=20))
    std = preprocess_image(img, PreprocessConfig(image_size=20, standardize=True, mean=-0.1, std=0.5))
    np.testing.assert_allclose(std, (plain + 0.1) / 0.5, rtol=1e-6)
    np.testing.assert_array_equal(plain, preprocess_image(img.convert("L"), PreprocessConfig(image_size=20)))


@pytest.mark.parametrize("fmt", ["PNG", "PPM"])
def test_16_bit_frames_keep_their_contrast(fmt):
    wide = (np.arange(16 * 16).reshape(16, 16) * 256).astype(np.uint16)  # 0 .. 65280
    img = decode_frame(encode(Image.fromarray(wide), fmt), 16)
    assert img.mode == "L"
    np.testing.assert_array_equal(np.asarray(img), (wide >> 8).astype(np.uint8))


def test_draft_decoding_matches_full_decode():
    img = smooth_image(1280, 800)
    data = encode(img, quality=90)
    cfg = PreprocessConfig(image_size=160)
    drafted = decode_frame(data, cfg.image_size)
    assert drafted.mode == "L"
    assert 160 <= max(drafted.size) < 1280  # reduced-size decode, still enough pixels
    full = Image.open(io.BytesIO(data)).convert("L")
    assert full.size == (1280, 800)
    diff = np.abs(preprocess_image(drafted, cfg) - preprocess_image(full, cfg))
    assert diff.mean() < 0.02


def test_small_frames_are_not_reduced():
    data = encode(smooth_image(100, 60))
    assert decode_frame(data, 224).size == (100, 60)


def test_real_benchmark_frame(benchmarks_dir):
    frame = next((benchmarks_dir / "nuaa" / "frames").glob("*/00.jpg"))
    out = load_frame(frame.read_bytes(), PreprocessConfig(image_size=32))
    assert out.shape == (32, 32) and -1 <= out.min() < out.max() <= 127 / 128


@pytest.mark.parametrize("data,match", [
    (b"definitely not an image", "cannot decode"),
    (b"", "cannot decode"),
])
def test_not_an_image(data, match):
    with pytest.raises(FrameDecodeError, match=match):
        decode_frame(data, 32)


def test_truncated_jpeg_and_png():
    for fmt in ("JPEG", "PNG"):
        data = encode(smooth_image(64, 64), fmt)
        with pytest.raises(FrameDecodeError):
            decode_frame(data[: len(data) // 2], 32)


def test_pixel_limit_refuses_before_decoding():
    data = encode(smooth_image(100, 100), "PNG")
    with pytest.raises(FrameDecodeError, match="10000 pixels, above the limit of 9999"):
        decode_frame(data, 32, max_pixels=9999)
    with pytest.raises(FrameDecodeError, match="limit"):
        load_frame(data, PreprocessConfig(image_size=32, max_pixels=5000))
    assert decode_frame(data, 32, max_pixels=10000).size == (100, 100)


@pytest.mark.parametrize("n_available,n", [(24, 10), (10, 10), (3, 10), (100, 7), (11, 10), (0, 4), (1, 1)])
def test_pick_frame_indices(n_available, n):
    idx = pick_frame_indices(n_available, n)
    if n_available <= n:
        assert idx == list(range(n_available))
        return
    assert len(idx) == n and idx == sorted(set(idx)) and 0 <= idx[0] and idx[-1] < n_available
    bin_width = n_available / n
    # one index per equal bin, near its middle
    assert all(i * bin_width <= k < (i + 1) * bin_width for i, k in enumerate(idx))
    assert all(abs(k - (i + 0.5) * bin_width) <= 0.5 for i, k in enumerate(idx))


def test_pick_frame_indices_rejects_nonsense():
    with pytest.raises(ValueError):
        pick_frame_indices(5, 0)


def test_frames_to_batch_pads_and_masks():
    cfg = PreprocessConfig(image_size=12)
    frames = [encode(Image.new("L", (20, 20), v)) for v in (0, 128, 255)]
    batch, mask = frames_to_batch(frames, 5, cfg)
    assert batch.shape == (5, 1, 12, 12) and batch.dtype == np.float32 and mask.dtype == np.float32
    np.testing.assert_array_equal(mask, [1, 1, 1, 0, 0])
    assert np.all(batch[3:] == 0)
    np.testing.assert_allclose(batch[2, 0], load_frame(frames[2], cfg))


def test_frames_to_batch_picks_evenly_when_too_many():
    cfg = PreprocessConfig(image_size=8)
    frames = [encode(Image.new("L", (8, 8), 10 * v), "PNG") for v in range(12)]
    batch, mask = frames_to_batch(frames, 4, cfg)
    assert mask.tolist() == [1, 1, 1, 1]
    picked = [int(round((batch[i, 0, 0, 0] + 1) * 128 / 10)) for i in range(4)]
    assert picked == pick_frame_indices(12, 4)


def test_config_round_trip_and_validation():
    cfg = PreprocessConfig(image_size=96, standardize=True, mean=0.1, std=0.5)
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="std"):
        PreprocessConfig(std=0)
