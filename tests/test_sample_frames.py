import json

import av
import numpy as np
import pytest
from PIL import Image

from training.sample_frames import SampleError, load_metadata, main, sample, v1_picks, v2_picks


def _video(path, n=240, codec="ffv1", pix_fmt="gray"):
    """A 32x32 video whose frame i is a flat grey of value i (lossless codec: readable back exactly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=24)
        stream.width = stream.height = 32
        stream.pix_fmt = pix_fmt
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32), i % 256, np.uint8), format="gray")
            for packet in stream.encode(frame if pix_fmt == "gray" else frame.reformat(format=pix_fmt)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def _frames(folder, n, offset=0, ext=".png"):
    folder.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((8, 8), offset + i, np.uint8)).save(folder / f"{i:04d}{ext}")


def _value(root, url):
    return int(np.asarray(Image.open(root / url.split("?d=", 1)[1]))[0, 0])


@pytest.mark.parametrize("n,cams", [(240, 1), (1000, 3), (37, 2), (12, 1)])
def test_v2_picks_match_plain_bins(n, cams):
    expected = []
    for k in range(1, 11):  # 12 bins, first and last dropped
        start, end = k * n / 12, (k + 1) * n / 12
        expected.append(((k - 1) % cams, int((start + end) // 2)))
    assert v2_picks(n, cams) == expected


def test_v1_picks_one_random_frame_per_inner_full_bin():
    picks = v1_picks(3000, 2, 600, np.random.default_rng(0))
    assert [c for c, _ in picks] == [0, 1, 0]
    assert [i // 600 for _, i in picks] == [1, 2, 3]  # bins 0 and 4 dropped
    assert picks == v1_picks(3000, 2, 600, np.random.default_rng(0))
    assert v1_picks(1799, 1, 600, np.random.default_rng(0)) == []  # 2 full bins: both are ends


def test_video_v2_takes_bin_middles(tmp_path):
    _video(tmp_path / "in" / "rec1.mkv")
    tasks, skipped = sample(tmp_path / "in", tmp_path / "out", seed=0)
    assert skipped == []
    (task,) = tasks
    assert task["data"]["recording_id"] == "rec1" and task["data"]["subject_id"] == "rec1"
    assert all(u.startswith("/data/local-files/?d=out/frames/rec1/") for u in task["data"]["frames"])
    assert [_value(tmp_path, u) for u in task["data"]["frames"]] == [i for _, i in v2_picks(240, 1)]
    assert json.loads((tmp_path / "out" / "tasks.json").read_text()) == tasks


def test_lossy_mp4_and_v1(tmp_path):
    _video(tmp_path / "in" / "clip.mp4", n=100, codec="mpeg4", pix_fmt="yuv420p")
    tasks, _ = sample(tmp_path / "in", tmp_path / "out", scheme="v1", bin_frames=20, seed=3)
    values = [_value(tmp_path, u) for u in tasks[0]["data"]["frames"]]
    assert len(values) == 3  # 5 bins of 20, ends dropped
    for k, v in enumerate(values, start=1):
        assert 20 * k - 3 <= v <= 20 * k + 22  # inside its bin, give or take the codec


def test_camera_folders_rotate(tmp_path):
    _frames(tmp_path / "in" / "r" / "camA", 120, offset=0, ext=".pgm")
    _frames(tmp_path / "in" / "r" / "camB", 130, offset=120, ext=".jpg")
    tasks, _ = sample(tmp_path / "in", tmp_path / "out", document_root=tmp_path)
    data = tasks[0]["data"]
    assert data["cameras"] == ["camA", "camB"]
    assert data["frame_cameras"] == ["camA", "camB"] * 5
    got = [_value(tmp_path, u) for u in data["frames"]]
    expected = [(120 if c else 0) + i for c, i in v2_picks(120, 2)]  # bins from the shorter camera
    assert np.max(np.abs(np.array(got) - expected)) <= 2  # jpeg


def test_metadata_becomes_annotations_and_short_recordings_skip(tmp_path, schema):
    _frames(tmp_path / "in" / "long", 24)
    _frames(tmp_path / "in" / "short", 5)
    meta = tmp_path / "meta.csv"
    meta.write_text("recording_id,subject_id,gender,eye_color\nlong,p7,Female,\nghost,,Male,\n")
    tasks, skipped = sample(tmp_path / "in", tmp_path / "out", metadata=load_metadata(meta, schema), schema=schema)
    assert sorted(skipped) == ["ghost: in the metadata but not in --input", "short: 5 frames, scheme v2 needs at least 12"]
    (task,) = tasks
    assert task["data"]["subject_id"] == "p7"
    assert task["annotations"] == [{"result": [{"from_name": "gender", "to_name": "frames", "type": "choices",
                                                "value": {"choices": ["Female"]}}]}]


def test_metadata_json_and_errors(tmp_path, schema):
    good = tmp_path / "m.json"
    good.write_text(json.dumps({"a": {"gender": "Male", "car_recording": ""}}))
    assert load_metadata(good, schema) == {"a": {"gender": "Male"}}
    bad = tmp_path / "m.csv"
    bad.write_text("recording_id,gender\na,Male\nb,Robot\n")
    with pytest.raises(SampleError, match=r"line 3: gender='Robot' is not one of"):
        load_metadata(bad, schema)
    bad.write_text("recording_id,hat\na,yes\n")
    with pytest.raises(SampleError, match="column 'hat'"):
        load_metadata(bad, schema)
    bad.write_text("recording_id,gender\na,Male\na,Female\n")
    with pytest.raises(SampleError, match="twice"):
        load_metadata(bad, schema)


def test_cli_reports_bad_input(tmp_path):
    (tmp_path / "in").mkdir()
    with pytest.raises(SystemExit, match="holds no recordings"):
        main(["--input", str(tmp_path / "in"), "--out", str(tmp_path / "out")])
