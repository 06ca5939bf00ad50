import csv
import json
import time

import numpy as np
from PIL import Image

from training.schema import load_label_config
from training.synthetic import SyntheticConfig, generate


def _read_truth(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_layout_urls_and_labels(tmp_path):
    schema = load_label_config()
    paths = generate(tmp_path / "synth", recordings=12, subjects=4, frames=3, size=48, seed=1)
    tasks = json.loads(paths.tasks.read_text())
    assert len(tasks) == 12
    for task in tasks:
        data = task["data"]
        assert len(data["frames"]) == 3
        for url in data["frames"]:
            assert url.startswith("/data/local-files/?d=synth/frames/")
            # the URL's path is relative to the output folder's parent (the document root)
            img = Image.open(tmp_path / url.split("?d=", 1)[1])
            assert img.mode == "L" and img.size == (48, 48)
    truth = _read_truth(paths.truth)
    for row in truth:
        for name in schema.names:
            assert row[name] in schema[name].classes
    # subjects keep their own attributes
    by_subject = {}
    for row in truth:
        by_subject.setdefault(row["subject_id"], set()).add((row["gender"], row["eye_color"]))
    assert all(len(v) == 1 for v in by_subject.values())
    assert len(by_subject) == 4


def test_labels_are_consistent():
    from training.propagation import load_rules
    from training.synthetic import draw_labels

    rules = load_rules(load_label_config())
    rng = np.random.default_rng(0)
    for _ in range(500):
        lab = draw_labels(rng, {"gender": "Male", "eye_color": "Blue"})
        assert rules.is_consistent(lab)
        mask = lab["face_mask_kind"] != "Face Mask Kind None"
        assert (lab["wearing_face_mask"] == "Wears Face Mask") == mask
        assert (lab["wearing_glasses"] == "Wears Glasses") == (lab["glasses_kind"] != "Glasses Kind None")
        if mask:
            assert lab["mouth_visibility"] == "Mouth Fully Occluded"
            assert lab["chin_visibility"] == "Chin Fully Occluded"
        if lab["nose_visibility"] == "Nose Fully Occluded":
            assert mask


def test_export_is_partial_subset_of_truth(tmp_path):
    cfg = SyntheticConfig(recordings=40, subjects=10, frames=1, size=32, label_fraction=0.3, seed=2)
    paths = generate(tmp_path / "s", cfg)
    truth = {r["recording_id"]: r for r in _read_truth(paths.truth)}
    export = json.loads(paths.export.read_text())
    answered = {}
    empty = 0
    for task in export:
        if not task["annotations"]:
            empty += 1
            continue
        for res in task["annotations"][0]["result"]:
            assert res["value"]["choices"][0] == truth[task["data"]["recording_id"]][res["from_name"]]
            answered[res["from_name"]] = answered.get(res["from_name"], 0) + 1
    assert empty >= round(0.1 * 40)
    assert answered == {name: 12 for name in load_label_config().names}


def test_deterministic_per_seed_and_fast(tmp_path):
    t0 = time.perf_counter()
    a = generate(tmp_path / "a", seed=5)  # default 48 recordings x 10 frames at 96 px
    elapsed = time.perf_counter() - t0
    assert elapsed < 10
    b = generate(tmp_path / "b", seed=5)
    c = generate(tmp_path / "c", seed=6, recordings=4, frames=2)
    frame = "frames/rec_0003/01.png"
    assert a.export.read_text() == b.export.read_text().replace("d=b/", "d=a/")
    assert np.array_equal(np.asarray(Image.open(a.root / frame)), np.asarray(Image.open(b.root / frame)))
    assert not np.array_equal(np.asarray(Image.open(a.root / frame)), np.asarray(Image.open(c.root / frame)))


def test_frames_vary_within_recording(tmp_path):
    paths = generate(tmp_path / "v", recordings=1, subjects=1, frames=2, size=64)
    f0, f1 = (np.asarray(Image.open(paths.frames_dir / "rec_0000" / f"0{i}.png"), dtype=float) for i in (0, 1))
    assert 1.0 < np.abs(f0 - f1).mean() < 60.0
