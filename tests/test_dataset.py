import io
from dataclasses import dataclass, field

import numpy as np
import pytest
from PIL import Image

from training.config import DataConfig
from training.dataset import (
    FrameDataset, RecordingDataset, jittered_indices, label_matrix, load_recordings, subsample_labels,
)
from training.preprocess import PreprocessConfig, load_frame, pick_frame_indices
from training.schema import LabelSchema, LabelSpec

SCHEMA = LabelSchema((LabelSpec("a", ("x", "y")), LabelSpec("b", ("p", "q", "r"))))


@dataclass(frozen=True)
class Rec:  # the fields of export_reader.Recording that the dataset reads
    recording_id: str
    subject_id: str
    frames: tuple
    labels: dict = field(default_factory=dict)


def _png(seed: int, w=40, h=30) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


class Fetcher:
    def __init__(self, n_frames=12):
        self.blobs = {f"f{i}": _png(i) for i in range(n_frames)}
        self.blobs["bad"] = b"not an image"
        self.calls = 0

    def __call__(self, ref):
        self.calls += 1
        return self.blobs[ref]  # KeyError = missing frame


def _recs():
    return [
        Rec("r0", "s0", tuple(f"f{i}" for i in range(12)), {"a": "y", "b": "r"}),
        Rec("r1", "s1", ("f0", "f1"), {"b": "p"}),
        Rec("r2", "s1", ("f2", "bad"), {"a": "x"}),
        Rec("r3", "s2", ("f3", "missing")),
        Rec("r4", "s2", ()),
    ]


def test_label_matrix_follows_schema_order_and_rejects_unknown_classes():
    np.testing.assert_array_equal(label_matrix(_recs()[:3], SCHEMA), [[1, 2], [-1, 0], [0, -1]])
    with pytest.raises(ValueError, match="'r9'.*'a'.*'z'"):
        label_matrix([Rec("r9", "s", (), {"a": "z"})], SCHEMA)


def test_subsample_keeps_the_fraction_per_label_only_in_the_given_rows():
    labels = np.random.default_rng(0).integers(-1, 3, size=(200, 2))
    rows = list(range(0, 150))
    out = subsample_labels(labels, rows, 0.3, seed=5)
    np.testing.assert_array_equal(out[150:], labels[150:])
    for col in range(2):
        have = (labels[rows, col] >= 0).sum()
        kept = out[rows, col] >= 0
        assert kept.sum() == round(0.3 * have)
        assert (labels[rows, col][kept] == out[rows, col][kept]).all()  # kept labels are unchanged
    np.testing.assert_array_equal(out, subsample_labels(labels, rows, 0.3, seed=5))  # seeded
    assert not np.array_equal(out, subsample_labels(labels, rows, 0.3, seed=6))
    assert ((subsample_labels(labels, rows, 0.0001, 0)[rows] >= 0).sum(axis=0) == 1).all()  # at least one


def test_per_class_subsample_keeps_the_count_and_covers_the_classes():
    rng = np.random.default_rng(1)
    labels = np.full((120, 2), -1)
    labels[:100, 0] = np.r_[np.zeros(97), [1, 2, 2]]  # a class seen 3 times in 100: a plain 3 % draw misses it
    labels[:100, 1] = rng.integers(0, 5, size=100)
    rows = list(range(110))
    for seed in range(20):
        plain = subsample_labels(labels, rows, 0.03, seed)
        out = subsample_labels(labels, rows, 0.03, seed, per_class=True)
        assert ((out >= 0).sum(axis=0) == (plain >= 0).sum(axis=0)).all()  # the same number of labels
        assert set(out[:, 0][out[:, 0] >= 0]) == {0, 1, 2}  # 3 labels: one of each class
        assert len(set(out[:, 1][out[:, 1] >= 0])) == 3  # 3 labels of 5 classes: 3 distinct ones
        kept = out >= 0
        assert (out[kept] == labels[kept]).all()
    np.testing.assert_array_equal(subsample_labels(labels, rows, 0.03, 4, per_class=True),
                                  subsample_labels(labels, rows, 0.03, 4, per_class=True))  # seeded
    misses = sum(set(subsample_labels(labels, rows, 0.03, s)[:, 0]) != {-1, 0, 1, 2} for s in range(20))
    assert misses > 0  # the plain draw does miss classes: the option is what covers them


def test_jittered_indices_pick_one_frame_inside_each_bin():
    rng = np.random.default_rng(0)
    for n_available, n in [(24, 10), (11, 10), (100, 3)]:
        edges = np.floor(np.linspace(0, n_available, n + 1))
        seen = set()
        for _ in range(30):
            idx = jittered_indices(n_available, n, rng)
            assert len(idx) == n and all(edges[i] <= x < edges[i + 1] for i, x in enumerate(idx))
            seen.add(tuple(idx))
        assert len(seen) > 1  # it is random
    assert jittered_indices(4, 10, rng) == [0, 1, 2, 3]


def test_load_reports_broken_recordings_and_stores_exact_preprocessed_frames(tmp_path):
    fetch = Fetcher()
    cfg = DataConfig(frames=4, image_size=16, max_preload_frames=6)
    store = load_recordings(_recs(), SCHEMA, cfg, fetch, tmp_path, progress=False)
    assert store.recording_ids == ["r0", "r1"]
    reasons = {b.recording_id: b.reason for b in store.broken}
    assert set(reasons) == {"r2", "r3", "r4"}
    assert "'bad'" in reasons["r2"] and "'missing'" in reasons["r3"] and reasons["r4"] == "no frames"
    np.testing.assert_array_equal(store.labels, [[1, 2], [-1, 0]])
    pre = PreprocessConfig(image_size=16)
    kept = pick_frame_indices(12, 6)
    assert store.frames[0].dtype == np.uint8 and store.frames[0].shape == (6, 16, 16)
    want = np.stack([load_frame(fetch.blobs[f"f{i}"], pre) for i in kept])[:, None]
    np.testing.assert_array_equal(store.images(0, range(6)), want)  # uint8 storage is lossless
    calls = fetch.calls
    again = load_recordings(_recs()[:2], SCHEMA, cfg, fetch, tmp_path, progress=False)
    assert fetch.calls == calls  # served from the on-disk cache
    np.testing.assert_array_equal(again.frames[0], store.frames[0])
    load_recordings(_recs()[:1], SCHEMA, cfg, fetch, tmp_path, source="elsewhere", progress=False)
    assert fetch.calls == calls + 6  # another source: the same refs are other files


def test_standardised_frames_are_cached_as_float16(tmp_path):
    cfg = DataConfig(image_size=16, standardize=True, mean=0.2, std=0.5)
    store = load_recordings(_recs()[:1], SCHEMA, cfg, Fetcher(), tmp_path, progress=False)
    assert store.frames[0].dtype == np.float16
    want = load_frame(Fetcher().blobs["f0"], PreprocessConfig(image_size=16, standardize=True, mean=0.2, std=0.5))
    np.testing.assert_allclose(store.images(0, [0])[0, 0], want, atol=4e-3)


def test_recording_and_frame_views(tmp_path):
    store = load_recordings(_recs()[:2], SCHEMA, DataConfig(image_size=16), Fetcher(), tmp_path, progress=False)
    targets = store.labels
    ds = RecordingDataset(store, [0, 1], targets, frames=4)
    frames, mask, y, row = ds[1]  # r1 has 2 frames: padded to 4
    assert frames.shape == (4, 1, 16, 16) and mask.tolist() == [1, 1, 0, 0] and frames[2:].abs().sum() == 0
    assert y.tolist() == [-1, 0] and row == 1
    np.testing.assert_array_equal(ds[0][0].numpy(), store.images(0, pick_frame_indices(12, 4)))
    jit = RecordingDataset(store, [0], targets, frames=4, jitter=True, seed=3)
    first = jit[0][0]
    assert np.array_equal(first, jit[0][0])  # same epoch, same frames
    jit.set_epoch(1)
    assert any(not np.array_equal(first, (jit.set_epoch(e), jit[0][0])[1]) for e in range(1, 6))
    fr = FrameDataset(store, [0, 1], targets)
    assert len(fr) == 12 + 2
    img, y, row = fr[13]
    assert img.shape == (1, 16, 16) and y.tolist() == [-1, 0] and row == 1
