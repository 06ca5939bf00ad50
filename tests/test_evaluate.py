"""training.evaluate end to end: export + local-file frames + ONNX model -> metrics.json."""
import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from training import evaluate
from training.onnx_export import export_onnx
from training.preprocess import PreprocessConfig
from training.schema import LabelSchema, LabelSpec, parse_label_config

torch.set_num_threads(1)
SIZE = 8
MODEL_SCHEMA = LabelSchema((LabelSpec("mask", ("Yes", "No")), LabelSpec("eyes", ("a", "b"))))
CONFIG = """<View><Image name="frames" valueList="$frames"/>
<Choices name="mask" toName="frames" choice="single"><Choice value="Yes"/><Choice value="No"/></Choices>
<Choices name="hair" toName="frames" choice="single"><Choice value="Long"/><Choice value="Short"/></Choices>
</View>"""
# recording -> (pixel value of its frames, number of frames, annotated mask class or None)
RECORDINGS = {"r0": (255, 3, "Yes"), "r1": (255, 1, "Yes"), "r2": (255, 2, None),
              "r3": (0, 2, "No"), "r4": (0, 2, "Yes"), "r5": (255, 2, "Yes")}


class _BrightnessModel(nn.Module):
    """Stand-in under the RecordingModel contract: mask = Yes when the frames are bright."""

    def forward(self, frames, frame_mask):
        w = frame_mask / frame_mask.sum(1, keepdim=True).clamp(min=1)
        mean = (frames.mean(dim=(2, 3, 4)) * w).sum(1, keepdim=True)
        return {"mask": torch.cat([4 * mean, -4 * mean], 1), "eyes": torch.cat([mean, mean * 0], 1)}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    tasks = []
    for i, (rid, (pixel, n_frames, mask)) in enumerate(RECORDINGS.items()):
        folder = root / "bench" / "frames" / rid
        folder.mkdir(parents=True)
        refs = []
        for k in range(n_frames):
            Image.fromarray(np.full((12, 10), pixel, np.uint8)).save(folder / f"{k:02d}.png")
            refs.append(f"/data/local-files/?d=bench/frames/{rid}/{k:02d}.png")
        if rid == "r5":
            (folder / "01.png").unlink()  # a broken recording: one frame file is missing
        result = [{"from_name": "mask", "to_name": "frames", "type": "choices",
                   "value": {"choices": [mask]}}] if mask else []
        tasks.append({"id": i + 1, "data": {"frames": refs, "recording_id": rid, "subject_id": f"s{i}"},
                      "annotations": [{"id": 100 + i, "result": result, "was_cancelled": False}]})
    (root / "export.json").write_text(json.dumps(tasks))
    (root / "config.xml").write_text(CONFIG)
    meta = {"model_version": "v1", "kind": "multi", "mode": "mtl", "fusion": "mean",
            "schema": MODEL_SCHEMA.to_dict(), "untrained": [], "temperatures": {}, "frames": 2,
            "image_size": SIZE, "preprocess": PreprocessConfig(image_size=SIZE).to_dict(), "metrics": {}}
    example = torch.rand(2, 2, 1, SIZE, SIZE) * 2 - 1
    model = export_onnx(_BrightnessModel().eval(), root / "model.onnx", meta, example, torch.ones(2, 2))
    return root, model


def _run(setup, tmp_path, *extra):
    root, model = setup
    out = tmp_path / "metrics.json"
    code = evaluate.main(["--model", str(model), "--export", str(root / "export.json"), "--data-root", str(root),
                          "--label-config", str(root / "config.xml"), "--out", str(out), "--batch-size", "2",
                          *extra])
    assert code == 0
    return json.loads(out.read_text())


def test_scores_export_annotations(setup, tmp_path, capsys):
    doc = _run(setup, tmp_path)
    mask = doc["labels"]["mask"]
    # Scored: r0 Yes ok, r1 Yes ok, r3 No ok, r4 Yes but dark -> wrong; r2 unlabelled; r5 broken.
    assert mask["n"] == 4 and mask["n_total"] == 5
    assert mask["per_class"]["Yes"] == {"recall": pytest.approx(2 / 3), "n": 3}
    assert mask["balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    assert mask["confusion"] == [[2, 1], [0, 1]]
    assert list(doc["labels"]) == ["mask"] and doc["mean_balanced_accuracy"] == mask["balanced_accuracy"]
    assert [s["recording_id"] for s in doc["skipped_recordings"]] == ["r5"]
    assert any("hair" in note for note in doc["notes"])
    printed = capsys.readouterr()
    assert "Yes 66.7 (3)" in printed.out and "No 100.0 (1)" in printed.out
    assert "r5" in printed.err


def test_truth_csv_and_split(setup, tmp_path):
    truth = tmp_path / "truth.csv"
    with truth.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["recording_id", "subject_id", "mask", "hair"])
        w.writerows([["r0", "s0", "Yes", ""], ["r2", "s2", "Yes", "Long"], ["r3", "s3", "No", ""],
                     ["r4", "s4", "No", ""], ["r1", "s1", "", ""]])
    doc = _run(setup, tmp_path, "--truth", str(truth))
    assert doc["labels"]["mask"]["n"] == 4 and doc["labels"]["mask"]["balanced_accuracy"] == 1.0
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"recordings": {"train": ["r1"], "test": ["r3", "r4", "r5"]}}))
    doc = _run(setup, tmp_path, "--split", str(split))
    assert doc["n_recordings"] == 2 and doc["labels"]["mask"]["n"] == 2
    assert doc["labels"]["mask"]["per_class"]["No"]["n"] == 1 and doc["subset"] == "test"


def test_truth_csv_rejects_unknown_class(tmp_path):
    schema = parse_label_config(CONFIG)
    bad = tmp_path / "t.csv"
    bad.write_text("recording_id,mask\nr0,Maybe\n")
    with pytest.raises(ValueError, match=r"line 2: mask='Maybe'"):
        evaluate.read_truth_csv(bad, schema)
    (tmp_path / "n.csv").write_text("id,mask\n")
    with pytest.raises(ValueError, match="recording_id"):
        evaluate.read_truth_csv(tmp_path / "n.csv", schema)


def test_group_by_a_label_scores_each_group_and_the_report_plots_it(setup, tmp_path, capsys):
    from training.report import write_report

    doc = _run(setup, tmp_path, "--group-by", "mask")
    groups = doc["groups"]["labels"]["mask"]
    # r0, r1 bright Yes -> right, r4 dark Yes -> wrong; r3 dark No -> right; r2 unannotated; r5 broken
    assert groups["groups"]["Yes"] == {"n": 3, "balanced_accuracy": pytest.approx(2 / 3), "counts": {"Yes": 3, "No": 0}}
    assert groups["groups"]["No"] == {"n": 1, "balanced_accuracy": 1.0, "counts": {"Yes": 0, "No": 1}}
    assert groups["groups"]["(unknown)"]["n"] == 0 and groups["groups"]["(unknown)"]["balanced_accuracy"] is None
    assert (groups["best"], groups["worst"]) == ("No", "Yes") and groups["gap"] == pytest.approx(1 / 3)
    assert "per mask group" in capsys.readouterr().out
    assert "Per-group accuracy (metrics.json)" in write_report(tmp_path).read_text()


def test_group_by_a_data_field_with_a_prefix(setup, tmp_path):
    doc = _run(setup, tmp_path, "--group-by", "recording_id", "--group-prefix", "1")
    assert doc["groups"]["prefix"] == 1 and list(doc["groups"]["labels"]["mask"]["groups"]) == ["r"]
    assert doc["groups"]["labels"]["mask"]["gap"] == 0.0
