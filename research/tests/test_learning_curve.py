"""The learning-curve table: rows from a run's metrics.json, the served head by the product's rule, the markdown."""
from __future__ import annotations

import json

from research.learning_curve import BEGIN, END, cell_rows, main, markdown


def _labels(**accs):
    return {"labels": {n: {"balanced_accuracy": a, "per_class": {"Yes": {"n": 3}, "No": {"n": 2}}}
                       for n, a in accs.items()}}


def _run(tmp_path, name, arm_steps, vat):
    run = tmp_path / "lc" / "bench" / name
    run.mkdir(parents=True)
    metrics = {
        "test": _labels(a=0.0, b=0.0),  # whatever the run served under its own rule: rescored below
        "network": {"val": _labels(a=0.9, b=0.5), "test": _labels(a=0.8, b=0.6)},
        "baseline": {"val": _labels(a=0.7, b=0.5), "test": _labels(a=0.6, b=0.7), "strengths": {"a": 0.1, "b": 0.1}},
        "training_labels": {"a": {"Yes": 4, "No": 1}, "b": {"Yes": 2, "No": 2}},
    }
    config = {"split": "/x/split_cv0.json", "data": {"label_fraction": 1.0}, "recipe": {"seed": 0, "steps": arm_steps},
              "loss": {"vat_weight": vat}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "config.json").write_text(json.dumps(config))
    return run


def test_rows_score_the_served_head_by_the_serving_rule(tmp_path):
    rows = cell_rows(_run(tmp_path, "s4l", [1, 2, 3], 0.3), "bench")
    served = {r["label"]: r["balanced_accuracy"] for r in rows if r["head"] == "served"}
    assert served == {"a": "0.8000", "b": "0.6000"}  # a: network validated better; b: a tie keeps the network
    assert {r["arm"] for r in rows} == {"s4l"} and rows[0]["training_labels"] == "Yes:4; No:1"


def test_markdown_means_per_label_and_over_runs_and_the_doc_block_round_trips(tmp_path):
    _run(tmp_path, "s4l", [1, 2, 3], 0.3)
    _run(tmp_path, "sup", [1], 0)
    out = tmp_path / "lc.csv"
    assert main(["table", str(tmp_path / "lc"), "--out", str(out)]) == 0
    doc = tmp_path / "doc.md"
    doc.write_text(f"head\n{BEGIN}\nold\n{END}\ntail\n")
    assert main(["markdown", str(out), "--write", str(doc)]) == 0
    assert main(["markdown", str(out), "--check", str(doc)]) == 0
    text = doc.read_text()
    assert text.startswith("head\n") and text.endswith(f"{END}\ntail\n")
    assert "| 100% | supervised | network | 1 | 80.0 | 60.0 | **70.0** |" in text
    assert "a Yes 3, No 2" in text
    with open(out) as fh:
        import csv
        assert markdown(list(csv.DictReader(fh))) in text
