"""The frame store: "disk" reads the per-recording cache files by index and holds no frames in memory;
"ram" holds them; both give the same frames, reuse the cache and leave broken recordings out."""
import gc
import os
import pickle

import numpy as np
import pytest

from tests.test_dataset import SCHEMA, Fetcher, _recs
from training.config import DataConfig
from training.dataset import RecordingDataset, load_recordings
from training.frame_store import DiskFrames, FrameStoreWriter, RamFrames


@pytest.mark.parametrize("standardize", [False, True])
def test_disk_and_ram_stores_give_the_same_frames(tmp_path, standardize):
    cfg = DataConfig(frames=4, image_size=16, max_preload_frames=6, standardize=standardize, std=0.5)
    ram = load_recordings(_recs(), SCHEMA, DataConfig(**{**cfg.__dict__, "store": "ram"}), Fetcher(), tmp_path,
                          progress=False)
    disk = load_recordings(_recs(), SCHEMA, cfg, Fetcher(), tmp_path, progress=False)
    assert isinstance(ram.frames, RamFrames) and isinstance(disk.frames, DiskFrames)
    assert disk.recording_ids == ram.recording_ids == ["r0", "r1"]
    assert [b.recording_id for b in disk.broken] == [b.recording_id for b in ram.broken] == ["r2", "r3", "r4"]
    for row in range(2):
        np.testing.assert_array_equal(disk.frames[row], ram.frames[row])
        np.testing.assert_array_equal(disk.images(row, [1, 0]), ram.images(row, [1, 0]))
    a, b = (RecordingDataset(s, [0, 1], s.labels, 4, jitter=True, seed=3) for s in (disk, ram))
    for i in range(2):
        assert all(np.array_equal(x, y) for x, y in zip(a[i][:3], b[i][:3]))
    assert not any(isinstance(v, np.ndarray) for e in disk.frames.entries for v in vars(e).values())


def test_disk_store_reuses_the_cache_and_rebuilds_a_broken_file(tmp_path):
    fetch = Fetcher()
    cfg = DataConfig(frames=2, image_size=16, max_preload_frames=2)
    first = load_recordings(_recs()[:2], SCHEMA, cfg, fetch, tmp_path, progress=False)
    calls = fetch.calls
    again = load_recordings(_recs()[:2], SCHEMA, cfg, fetch, tmp_path, progress=False)
    assert fetch.calls == calls  # nothing fetched: both recordings came from the cache
    path = again.frames.entries[0].path
    with open(path, "r+b") as fh:  # a file cut short (a crash while copying a cache, a full disk)
        fh.truncate(fh.seek(0, 2) - 5)
    rebuilt = load_recordings(_recs()[:2], SCHEMA, cfg, fetch, tmp_path, progress=False)
    assert fetch.calls == calls + 2  # only the damaged recording's two frames again
    np.testing.assert_array_equal(rebuilt.frames[0], first.frames[0])
    load_recordings(_recs()[:1], SCHEMA, DataConfig(frames=2, image_size=24, max_preload_frames=2), fetch, tmp_path,
                    progress=False)
    assert fetch.calls == calls + 4  # other preprocessing: another cache entry


def test_without_a_cache_dir_the_disk_store_uses_a_temporary_one_removed_with_it(tmp_path):
    store = load_recordings(_recs()[:2], SCHEMA, DataConfig(image_size=16), Fetcher(), None, progress=False)
    folder = store.frames.entries[0].path.rsplit("/", 1)[0]
    copy = pickle.loads(pickle.dumps(store.frames))  # what a DataLoader worker process receives
    np.testing.assert_array_equal(copy[1], store.frames[1])
    del copy
    gc.collect()
    assert np.array_equal(store.frames[0], store.frames.read(0, range(store.frame_count(0))))  # copy left it
    del store
    gc.collect()
    assert not os.path.exists(folder)


def test_unknown_store_and_frame_outside_the_recording_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="data.store"):
        DataConfig(store="mmap")
    with pytest.raises(ValueError, match="data.store"):
        FrameStoreWriter("mmap", tmp_path)
    store = load_recordings(_recs()[1:2], SCHEMA, DataConfig(image_size=16), Fetcher(), tmp_path, progress=False)
    with pytest.raises(IndexError, match="has 2 frames"):
        store.frames.read(0, [2])
