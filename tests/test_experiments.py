"""training.experiments: the grid, the arms' configurations, and one tiny end-to-end pass on synthetic data."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from training import evaluate, experiments
from training.experiments import ABLATIONS, PROBES, S4L_ARMS, Arm, BENCHES, plan
from training.synthetic import generate

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]


def test_plan_pairs_both_arms_on_the_same_fractions_and_seeds():
    runs = plan("nuaa", (0, 1, 2))
    assert len({a.run_id for a in runs}) == len(runs)
    for f in experiments.FRACTIONS:
        for s in (0, 1, 2):
            assert {a.recipe for a in runs if (a.fraction, a.seed, a.mode, a.kind) == (f, s, "mtl", "multi")} >= {"supervised", "s4l"}
    assert {a.recipe for a in runs if a.fraction == 0.3} >= {*ABLATIONS, *PROBES}
    assert {(a.mode, a.kind) for a in runs} == {("mtl", "multi"), ("stl", "multi"), ("mtl", "single")}
    assert {(a.mode, a.kind) for a in plan("facemask", (0,))} == {("mtl", "multi")}  # one label, one frame
    # the bar's runs (10 % and 30 %, both arms) come first
    assert {(a.recipe, a.fraction) for a in runs[:12]} == {(r, f) for r in ("supervised", "s4l") for f in (0.1, 0.3)}


def test_fit_config_of_each_arm(tmp_path):
    settings, paths = BENCHES["nuaa"], experiments.bench_paths("nuaa", tmp_path)
    cfg = {r: experiments.fit_config(Arm(r, 0.3, 2), settings, paths, tmp_path / "split.json", tmp_path / "b" / "runs" / r, 1)
           for r in experiments.ARMS}
    sup, full = cfg["supervised"], cfg["s4l"]
    assert sup.recipe.steps == (3,) and full.recipe.steps == (1, 2, 3)
    # supervised only: step 1's optimiser schedule, as many epochs as the three S4L steps
    assert sup.recipe.finetune_lr == full.recipe.lr and sup.recipe.finetune_min_lr_fraction == full.recipe.min_lr_fraction
    assert sup.recipe.epochs_per_step == 3 * full.recipe.epochs_per_step
    for r, (loss_changes, recipe_changes) in S4L_ARMS.items():  # exactly the named change, nothing else
        for part, changes in (("loss", loss_changes), ("recipe", recipe_changes)):
            mine, ref = vars(getattr(cfg[r], part)), vars(getattr(full, part))
            assert {k: v for k, v in mine.items() if k in changes} == changes
            assert {k: v for k, v in mine.items() if k not in changes} == {k: v for k, v in ref.items() if k not in changes}
    for r in ABLATIONS:
        assert sum(v == 0.0 for k, v in vars(cfg[r].loss).items() if k.endswith("_weight")) == 1
    for c in cfg.values():  # same labels and subjects for every arm of a seed
        assert (c.data.label_fraction, c.data.label_fraction_seed, c.recipe.seed, c.split) == (0.3, 2, 2, str(tmp_path / "split.json"))


def test_spread_is_mean_and_sample_std():
    values = [0.5, 0.7, 0.9]
    m, sd, n = experiments.spread(values)
    assert (n, m) == (3, pytest.approx(np.mean(values))) and sd == pytest.approx(np.std(values, ddof=1))
    assert experiments.spread([0.4]) == (0.4, 0.0, 1)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """Two quick runs (supervised, S4L) on a synthetic 'nuaa' folder, and the written results.md."""
    root = tmp_path_factory.mktemp("bench")
    generate(root / "nuaa", recordings=24, subjects=8, frames=2, size=32, label_fraction=0.6, seed=1)
    shutil.copy(REPO / "label_config.xml", root / "nuaa" / "label_config.xml")
    out, work = root / "results", root / "work"
    only = {"supervised-mtl-multi-f030-s0", "s4l-mtl-multi-f030-s0"}
    summaries = experiments.run_bench("nuaa", out, work, (0,), True, only, 1, root)
    doc = out / "results.md"
    experiments.write_doc(out, doc, data_root=root)
    return root, out, work, summaries, doc


def test_runs_score_the_test_split_against_truth(grid):
    root, out, work, summaries, _ = grid
    split = json.loads((out / "nuaa" / "split.json").read_text())
    train_subjects, test_subjects = set(split["subjects"]["train"]), set(split["subjects"]["test"])
    assert train_subjects and test_subjects and not train_subjects & test_subjects
    assert [s["run_id"] for s in summaries] == ["supervised-mtl-multi-f030-s0", "s4l-mtl-multi-f030-s0"]
    for s in summaries:
        assert s["test"]["n_recordings"] == len(split["recordings"]["test"])
        assert set(s["steps"]) == set(map(str, s["config"]["recipe"]["steps"]))
        # temperature scaling never moves the argmax: the accuracies at T and at T = 1 agree
        fitted, t1 = s["test"]["metrics"], s["test"]["metrics_t1"]
        for name, m in fitted["labels"].items():
            assert m["balanced_accuracy"] == t1["labels"][name]["balanced_accuracy"]
            bins = s["test"]["calibration"]["fitted"][name]["bins"]
            assert sum(b["count"] for b in bins) == m["n"]  # every labelled test recording in one bin
    # the plain reference: training.evaluate's CLI on the same model, split and truth.csv
    run = work / "nuaa" / "runs" / "s4l-mtl-multi-f030-s0"
    ref = out / "ref.json"
    evaluate.main(["--model", str(run / "model.onnx"), "--export", str(root / "nuaa" / "export.json"), "--data-root", str(root),
                   "--split", str(out / "nuaa" / "split.json"), "--truth", str(root / "nuaa" / "truth.csv"), "--out", str(ref)])
    expected = json.loads(ref.read_text())
    got = summaries[1]["test"]["metrics"]
    assert got["mean_balanced_accuracy"] == pytest.approx(expected["mean_balanced_accuracy"])
    for name, m in expected["labels"].items():
        assert got["labels"][name]["n"] == m["n"]
        assert got["labels"][name]["ece"] == pytest.approx(m["ece"], abs=1e-6)


def test_finished_runs_are_skipped(grid, monkeypatch):
    root, out, work, summaries, _ = grid
    monkeypatch.setattr("training.fit.fit", lambda *a, **k: pytest.fail("a finished run was trained again"))
    again = experiments.run_bench("nuaa", out, work, (0,), True, {"s4l-mtl-multi-f030-s0"}, 1, root)
    assert again == summaries[1:]


def test_doc_has_tables_plots_and_commands(grid):
    _, out, _, summaries, doc = grid
    text = doc.read_text()
    assert "### Label budget (nuaa)" in text and "not run" in text  # missing arms are marked, not invented
    for s in summaries:
        assert f"`{s['command']}`" in text
    assert (out / "nuaa" / "label_budget.png").stat().st_size > 0 and (out / "nuaa" / "reliability.png").stat().st_size > 0
    # a hand-written preface survives a rewrite
    doc.write_text("# Results\nanalysis\n" + experiments.DOC_MARKER + "\nold tables\n")
    for _ in range(2):  # rewriting twice keeps one preface and one set of tables
        experiments.main(["--out", str(out), "--doc", str(doc), "--doc-only", "--data-root", str(grid[0])])
    new = doc.read_text()
    assert new.startswith("# Results\nanalysis\n" + experiments.DOC_MARKER) and "old tables" not in new
    assert new.count(experiments.DOC_MARKER) == 1 and new.count("### Label budget (nuaa)") == 1


def test_training_label_counts_follow_the_export_and_the_fraction(grid):
    root, out, _, _, _ = grid
    paths = experiments.bench_paths("nuaa", root)
    split = json.loads((out / "nuaa" / "split.json").read_text())
    schema = experiments.load_label_config(paths["label_config"])
    train = set(split["recordings"]["train"])
    recordings = [r for r in experiments.read_export(paths["export"], schema).recordings if r.recording_id in train]
    full = experiments.training_label_counts(paths, split, 1.0, 0)
    part = experiments.training_label_counts(paths, split, 0.3, 1)
    for spec in schema.labels:
        expected = [sum(r.labels.get(spec.name) == c for r in recordings) for c in spec.classes]
        assert full[spec.name] == expected
        assert all(p <= f for p, f in zip(part[spec.name], expected))
        total = sum(expected)
        assert sum(part[spec.name]) == (max(1, round(0.3 * total)) if total else 0)


def test_bn_check_scores_every_kept_checkpoint(grid):
    root, out, work, _, _ = grid
    run_id = "s4l-mtl-multi-f030-s0"
    result = experiments.bn_check("nuaa", run_id, out, work, root)
    kept = sorted(p.stem for p in (work / "nuaa" / "runs" / run_id / "checkpoints").glob("*.pt"))
    assert sorted(result) == kept and kept
    split = json.loads((out / "nuaa" / "split.json").read_text())
    for row in result.values():
        for part in ("val", "test"):
            for how in ("stored", "re-estimated"):
                assert all(sum(c) == len(split["recordings"][part]) for c in row[f"{part} {how}"]["predicted"].values())
    assert "### BatchNorm check (nuaa)" in "\n".join(experiments.bn_check_section("nuaa", out))
