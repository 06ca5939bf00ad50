import io
import json

import numpy as np
import pytest
from PIL import Image

from training.export_reader import Recording
from training.near_duplicates import (duplicate_groups, duplicate_subject_groups, hash_frames, local_reader, main,
                                      near_pairs)


def _brute_pairs(hashes, t):
    return sorted((i, j) for i in range(len(hashes)) for j in range(i + 1, len(hashes))
                  if (hashes[i] ^ hashes[j]).bit_count() <= t)


@pytest.mark.parametrize("threshold", [0, 2, 4, 9])
def test_band_search_equals_brute_force(threshold):
    rng = np.random.default_rng(threshold)
    hashes = [int(rng.integers(0, 2**63)) * 2 + int(rng.integers(2)) for _ in range(300)]
    for _ in range(80):  # plant near and exact copies at distances 0..threshold+2
        base = hashes[int(rng.integers(len(hashes)))]
        flips = rng.choice(64, size=int(rng.integers(0, threshold + 3)), replace=False)
        hashes.append(base ^ sum(1 << int(b) for b in flips))
    assert near_pairs(hashes, threshold) == _brute_pairs(hashes, threshold)


def _png(arr):
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _picture(seed):
    """A smooth random picture (phash-stable) of 64x64."""
    small = np.random.default_rng(seed).integers(0, 256, (8, 8)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((64, 64), Image.BILINEAR))


def _rec(rid, subject, frames):
    return Recording(0, rid, subject, tuple(frames), {}, {}, {})


def test_groups_cross_subject_only_with_callable_reader():
    a = _picture(1)
    store = {
        "a0": _png(a), "a1": _png(_picture(2)),
        "b0": _png(np.clip(a.astype(int) + 6, 0, 255).astype(np.uint8)),  # near copy of a0, other subject
        "c0": _png(_picture(3)), "c1": _png(_picture(3)),  # exact copy inside one subject: not reported
    }
    recs = [_rec("ra", "A", ["a0", "a1"]), _rec("rb", "B", ["b0"]), _rec("rc", "C", ["c0", "c1"])]
    groups = duplicate_groups(recs, store.__getitem__, threshold=4)
    assert [(g.frames, g.recordings, g.subjects) for g in groups] == [(("a0", "b0"), ("ra", "rb"), ("A", "B"))]
    assert duplicate_subject_groups(recs, store.__getitem__) == [["A", "B"]]


def test_local_reader_and_errors(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x y.png").write_bytes(_png(_picture(4)))
    read = local_reader(tmp_path)
    assert read("/data/local-files/?d=d/x%20y.png") == read("d/x y.png")
    with pytest.raises(ValueError, match="outside"):
        read("/data/local-files/?d=../etc/passwd")
    hashes, errors = hash_frames(["d/x y.png", "d/missing.png"], read)
    assert list(hashes) == ["d/x y.png"] and "FileNotFoundError" in errors["d/missing.png"]


def test_cli_reports_crossing_splits(tmp_path, capsys):
    frames = tmp_path / "ds" / "frames"
    frames.mkdir(parents=True)
    tasks = []
    for i, (subject, seed) in enumerate([("s1", 7), ("s2", 7), ("s3", 8)]):
        (frames / f"{i}.png").write_bytes(_png(_picture(seed)))
        tasks.append({"id": i + 1, "annotations": [], "data": {
            "frames": [f"/data/local-files/?d=ds/frames/{i}.png"], "recording_id": f"r{i}", "subject_id": subject}})
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    (tmp_path / "split.json").write_text(json.dumps({"recordings": {"train": ["r0", "r2"], "test": ["r1"]}}))
    main(["--export", str(tmp_path / "export.json"), "--data-root", str(tmp_path), "--split", str(tmp_path / "split.json")])
    out = capsys.readouterr().out
    assert "3 frames hashed, 1 cross-subject near-duplicate groups" in out
    assert "1 groups cross splits" in out and "r0 (train), r1 (test)" in out
