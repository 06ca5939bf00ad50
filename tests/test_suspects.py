"""training.suspects: ranked suspects, the Label Studio predictions, and the CLI on generated recordings."""
import csv
import json

import numpy as np

from training import suspects
from training.export_reader import Recording
from training.schema import LabelSchema, LabelSpec
from training.synthetic import generate

SCHEMA = LabelSchema((LabelSpec("mask", ("Yes", "No")),))


def rec(i: int, mask: str | None) -> Recording:
    labels = {"mask": mask} if mask else {}
    return Recording(100 + i, f"r{i}", f"s{i}", (), labels, {"mask": "annotation"} if mask else {}, data={})


def test_suspect_rows_and_label_studio_predictions():
    recordings = [rec(0, "Yes"), rec(1, "Yes"), rec(2, "Yes"), rec(3, "No"), rec(4, "No"), rec(5, None)]
    probs = {"mask": np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.2, 0.8], [0.3, 0.7], [0.1, 0.9]])}
    # t_Yes = (0.9 + 0.8 + 0.1) / 3 = 0.6, t_No = 0.75: r2 (annotated Yes, p_No 0.9) is the one suspect
    rows = suspects.suspect_rows(recordings, SCHEMA, [r.recording_id for r in recordings], probs)
    assert rows == [{"rank": 1, "task_id": 102, "recording_id": "r2", "label": "mask", "annotated": "Yes",
                     "suggested": "No", "confidence": 0.9, "margin": 0.8}]
    preds = suspects.label_studio_predictions(rows, "frames", "suspects-x")
    assert preds == [{"task": 102, "model_version": "suspects-x", "score": 0.9,
                      "result": [{"from_name": "mask", "to_name": "frames", "type": "choices",
                                  "value": {"choices": ["No"]}}]}]


def test_cli_cross_fits_and_writes_every_output(tmp_path, capsys):
    root = tmp_path / "data"
    generate(root / "syn", recordings=24, subjects=8, frames=3, size=32, label_fraction=0.6, seed=3)
    out = tmp_path / "out"
    code = suspects.main(["--export", str(root / "syn" / "export.json"), "--data-root", str(root),
                          "--out", str(out), "--folds", "2", "--image-size", "32", "--frames", "3",
                          "--epochs-per-step", "1", "--steps", "3", "--threads", "1", "--model-version", "suspects-t"])
    assert code == 0
    splits = [json.loads((out / "folds" / f"split{f}.json").read_text())["recordings"]["test"] for f in (0, 1)]
    assert not set(splits[0]) & set(splits[1]) and len(splits[0]) + len(splits[1]) == 24  # each tested once
    with open(out / "suspects.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == list(suspects.CSV_FIELDS)
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    assert all(r["annotated"] != r["suggested"] for r in rows)
    preds = json.loads((out / "suspects_predictions.json").read_text())
    assert sum(len(p["result"]) for p in preds) == len(rows)
    assert all(p["model_version"] == "suspects-t" for p in preds)
    assert (out / "export_problems.txt").read_text().splitlines()[-1].startswith("problems: ")
    assert "suspect annotations" in capsys.readouterr().out
