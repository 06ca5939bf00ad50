"""training.compare on hand-written metrics.json files."""
import json

import pytest

from training import compare


def _label(bal, n, n_total):
    return {"balanced_accuracy": bal, "n": n, "n_total": n_total, "per_class": {}}


@pytest.fixture
def runs(tmp_path):
    a, b = tmp_path / "mtl", tmp_path / "stl"
    a.mkdir()
    b.mkdir()
    (a / "metrics.json").write_text(json.dumps({
        "labels": {"gender": _label(0.7653, 60, 100), "eye_color": _label(0.3686, 40, 100)},
        "mean_balanced_accuracy": (0.7653 + 0.3686) / 2}))
    (b / "metrics.json").write_text(json.dumps({
        "labels": {"gender": _label(0.8266, 60, 100), "eye_color": _label(0.3654, 40, 100),
                   "car": _label(None, 0, 100)},
        "mean_balanced_accuracy": (0.8266 + 0.3654) / 2}))
    (b / "config.json").write_text(json.dumps({"name": "STL"}))
    return a, b


def test_thesis_table(runs, capsys):
    assert compare.main([str(p) for p in runs]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["label", "%", "labelled", "mtl", "STL", "Δ", "STL"]
    cells = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert cells["gender"] == ["60.00", "76.53", "82.66", "+6.13"]
    assert cells["eye_color"] == ["40.00", "36.86", "36.54", "-0.32"]
    assert cells["car"] == ["0.00", "-", "-", "-"]  # only in the second run, and unscored there
    expected_mu = 100 * ((0.8266 + 0.3654) / 2 - (0.7653 + 0.3686) / 2)
    assert cells["mean"][-1] == f"{expected_mu:+.2f}" and cells["mean"][-3:-1] == ["Δμ", "="]


def test_metrics_file_path_and_bad_input(runs, tmp_path):
    run = compare.load_run(runs[0] / "metrics.json")
    assert run.name == "mtl" and "gender" in run.metrics["labels"]
    fit_layout = {"val": {"labels": {"v": {}}, "mean_balanced_accuracy": 0.1},
                  "test": {"labels": {"t": {}}, "mean_balanced_accuracy": 0.2}}
    (tmp_path / "run.json").write_text(json.dumps(fit_layout))
    assert compare.load_run(tmp_path / "run.json").metrics == fit_layout["test"]  # thesis tables: test scores
    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(ValueError, match="x.json"):
        compare.load_run(tmp_path / "x.json")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        compare.load_run(tmp_path / "nowhere")


def test_report_embeds_curves_tables_and_confusions(tmp_path):
    import numpy as np

    from training import metrics, report
    from training.schema import LabelSchema, LabelSpec

    schema = LabelSchema((LabelSpec("gender", ("F", "M")), LabelSpec("eyes<&>", ("a", "b", "c"))))
    doc = metrics.evaluate(schema, {"gender": np.array([0, 1, 1]), "eyes<&>": np.array([2, 0, -1])},
                           {"gender": np.eye(2)[[0, 1, 0]], "eyes<&>": np.eye(3)[[2, 1, 0]]})
    (tmp_path / "metrics.json").write_text(json.dumps({"val": doc, "test": doc, "steps": {}}))  # fit's layout
    (tmp_path / "config.json").write_text(json.dumps({"name": "demo"}))
    log = [{"step": 1, "epoch": 0, "phase": "train", "loss": 2.0, "loss_parts": {"ce": 1.5, "rot": 0.5}},
           {"step": 2, "epoch": 0, "phase": "train", "loss": 1.0, "loss_parts": {"ce": 0.8}},
           {"step": 2, "epoch": 0, "phase": "val", "mean_balanced_accuracy": 0.6}]
    (tmp_path / "log.jsonl").write_text("\n".join(map(json.dumps, log)) + "\n{broken\n")
    page = report.write_report(tmp_path).read_text()
    # Curves + one confusion per label in each of the test and val sections.
    assert page.count("<img src=\"data:image/png;base64,") == 5
    assert "eyes&lt;&amp;&gt;" in page and "eyes<&>" not in page
    assert "line 4: not JSON" in page and "&quot;demo&quot;" in page


def test_report_survives_an_empty_run_dir(tmp_path):
    from training import report

    page = report.write_report(tmp_path).read_text()
    assert "log.jsonl not found" in page and "metrics.json not found" in page
    with pytest.raises(NotADirectoryError):
        report.write_report(tmp_path / "missing")
