"""The backend's thread-pool frame loading gives exactly training's pixels, and a broken frame
fails only its own task while other tasks share the same pool."""
from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from backend.task_frames import FrameBatchShape, TaskError, TaskFrameLoader
from training.frame_source import FrameFetcher, FrameSourceConfig
from training.preprocess import PreprocessConfig, frames_to_batch

SHAPE = FrameBatchShape(frames=4, preprocess=PreprocessConfig(image_size=32))


def noise_jpeg(seed: int, size=(160, 100)) -> bytes:
    """A JPEG larger than the model input (so draft decoding applies), different for every seed."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0]), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "L").convert("RGB").save(buf, format="JPEG", quality=80)
    return buf.getvalue()


@pytest.fixture
def recording(tmp_path):
    """write(name, n) -> (local-files refs, frame bytes) of an n-frame recording under the root."""
    def write(name: str, n: int, seed: int = 0):
        (tmp_path / name).mkdir()
        refs, data = [], []
        for i in range(n):
            data.append(noise_jpeg(seed * 100 + i))
            (tmp_path / name / f"{i}.jpg").write_bytes(data[-1])
            refs.append(f"/data/local-files/?d={name}/{i}.jpg")
        return refs, data
    return write


@pytest.fixture
def loader():
    with ThreadPoolExecutor(4) as pool:
        yield TaskFrameLoader(pool)


def fetcher_for(root) -> FrameFetcher:
    return FrameFetcher(FrameSourceConfig(document_root=str(root)))


@pytest.mark.parametrize("n_frames", [9, 4, 2])  # more than N (evenly picked), exactly N, fewer (padded)
def test_pool_loading_gives_exactly_the_training_arrays(tmp_path, recording, loader, n_frames):
    refs, data = recording("r", n_frames)
    frames, mask = loader.collect(loader.submit(fetcher_for(tmp_path), refs, SHAPE), SHAPE)
    expected_frames, expected_mask = frames_to_batch(data, SHAPE.frames, SHAPE.preprocess)
    assert frames.dtype == np.float32 and np.array_equal(frames, expected_frames)
    assert np.array_equal(mask, expected_mask)


def test_a_broken_frame_fails_only_its_task_on_a_shared_pool(tmp_path, recording, loader):
    fetcher = fetcher_for(tmp_path)
    good_refs, good_data = recording("good", 4, seed=1)
    bad_refs, _ = recording("bad", 4, seed=2)
    (tmp_path / "bad" / "2.jpg").write_bytes(b"not a jpeg")
    missing_refs = good_refs[:3] + ["/data/local-files/?d=good/none.jpg"]
    started = [loader.submit(fetcher, refs, SHAPE) for refs in (bad_refs, good_refs, missing_refs)]
    with pytest.raises(TaskError) as bad:
        loader.collect(started[0], SHAPE)
    assert bad.value.reason == "bad_image" and "bad/2.jpg" in bad.value.message
    frames, _ = loader.collect(started[1], SHAPE)
    assert np.array_equal(frames, frames_to_batch(good_data, SHAPE.frames, SHAPE.preprocess)[0])
    with pytest.raises(TaskError) as missing:
        loader.collect(started[2], SHAPE)
    assert missing.value.reason == "frame_unavailable" and "none.jpg" in missing.value.message
