"""research.experiments: the grid, the arms' configurations, and one tiny end-to-end pass on synthetic data."""
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from training import evaluate
from research.experiments import doc, runner, tables
from research.experiments.__main__ import main as experiments_main
from research.experiments.arms import (
    ABLATIONS, ARMS, BENCHES, CV_FRAME_POOLS, CV_LONGER, CV_PROBES, CV_SIZES, FRACTIONS, PROBES, S4L_ARMS, Arm, BenchSettings,
    bench_paths, plan,
)
from research.experiments.bn_check import bn_check, bn_check_section
from research.experiments.summaries import group, spread
from training.export_reader import read_export
from training.schema import load_label_config
from training.synthetic import generate

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]


def test_plan_pairs_both_arms_on_the_same_fractions_and_seeds():
    runs = plan("nuaa", (0, 1, 2))
    assert len({a.run_id for a in runs}) == len(runs)
    for f in FRACTIONS:
        for s in (0, 1, 2):
            assert {a.recipe for a in runs if (a.fraction, a.seed, a.mode, a.kind) == (f, s, "mtl", "multi")} >= {"supervised", "s4l"}
    assert {a.recipe for a in runs if a.fraction == 0.3} >= {*ABLATIONS, *PROBES}
    variants = {("mtl", "multi", "concat"), ("stl", "multi", "concat"), ("mtl", "single", "concat"), ("mtl", "multi", "mean")}
    assert {(a.mode, a.kind, a.fusion) for a in runs} == variants
    for variant in variants - {("mtl", "multi", "concat")}:  # supervised, 100 %, every seed
        expected = {("supervised", 1.0, s) for s in (0, 1, 2)}
        if variant == ("mtl", "multi", "mean"):  # the default fusion: the label budget and the ablations too
            expected = {(r, f, s) for r in ("supervised", "s4l") for f in FRACTIONS for s in (0, 1, 2)}
            expected |= {(r, f, s) for r in (*ABLATIONS, *PROBES, *CV_PROBES) for f in FRACTIONS[:2] for s in (0, 1, 2)}
        assert {(a.recipe, a.fraction, a.seed) for a in runs if (a.mode, a.kind, a.fusion) == variant} == expected
    assert {(a.mode, a.kind, a.fusion) for a in plan("facemask", (0,))} == {("mtl", "multi", "concat")}  # one label, one frame
    # the bar's runs (10 % and 30 %, both arms) come first
    assert {(a.recipe, a.fraction) for a in runs[:12]} == {(r, f) for r in ("supervised", "s4l") for f in (0.1, 0.3)}


def test_fit_config_of_each_arm(tmp_path):
    settings, paths = BENCHES["nuaa"], bench_paths("nuaa", tmp_path)
    cfg = {r: runner.fit_config(Arm(r, 0.3, 2), settings, paths, tmp_path / "split.json", tmp_path / "b" / "runs" / r, 1)
           for r in ARMS}
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


def test_per_class_draw_is_an_arm_field_that_reaches_the_data_config(tmp_path):
    paths = {"export": tmp_path / "e.json", "label_config": tmp_path / "l.xml", "data_root": tmp_path}
    for labels, expected in (("random", False), ("per_class", True)):
        arm = Arm("s4l", 0.1, 0, fusion="mean", fold=2, labels=labels)
        cfg = runner.fit_config(arm, BENCHES["nuaa"], paths, tmp_path / "split.json", tmp_path / "w" / "r" / "x", 1)
        assert cfg.data.label_fraction_per_class is expected


@pytest.mark.parametrize("arm_field, data_field, value", [("image_size", "image_size", 128),
                                                          ("frame_pool", "max_preload_frames", 24)])
def test_input_arm_fields_reach_the_data_config_only(tmp_path, arm_field, data_field, value):
    settings, paths = BENCHES["nuaa"], bench_paths("nuaa", tmp_path)
    run_dir = tmp_path / "w" / "r" / "x"
    plain = runner.fit_config(Arm("s4l", 0.1, 0, fusion="mean", fold=1), settings, paths, tmp_path / "s.json", run_dir, 1)
    changed = runner.fit_config(Arm("s4l", 0.1, 0, fusion="mean", fold=1, **{arm_field: value}), settings, paths,
                                tmp_path / "s.json", run_dir, 1)
    before = getattr(plain.data, data_field)
    assert before != value and getattr(changed.data, data_field) == value
    assert replace(changed, data=replace(changed.data, **{data_field: before})) == plain


def test_fusion_is_an_arm_field_that_reaches_the_model_config_only(tmp_path):
    settings, paths = BENCHES["nuaa"], bench_paths("nuaa", tmp_path)
    concat, mean = Arm("supervised", 1.0, 0), Arm("supervised", 1.0, 0, fusion="mean")
    # concat arms keep the ids their summaries were written under; other fusions get a suffix
    assert concat.run_id == "supervised-mtl-multi-f100-s0" and mean.run_id == "supervised-mtl-multi-f100-s0-mean"
    a, b = (runner.fit_config(arm, settings, paths, tmp_path / "split.json", tmp_path / "runs" / "x", 1) for arm in (concat, mean))
    assert (a.model.fusion, b.model.fusion) == ("concat", "mean")
    assert {**a.to_dict(), "model": None} == {**b.to_dict(), "model": None}
    assert {**vars(a.model), "fusion": None} == {**vars(b.model), "fusion": None}


def _summary(recipe, seed, accuracies, fusion=None, kind="multi"):
    """A run summary as far as the tables read it; fusion None = written before Arm.fusion existed."""
    arm = {"recipe": recipe, "fraction": 1.0, "seed": seed, "mode": "mtl", "kind": kind}
    if fusion:
        arm["fusion"] = fusion
    labels = {n: {"balanced_accuracy": v, "n": 4, "per_class": {"A": {"n": 2}, "B": {"n": 2}}} for n, v in accuracies.items()}
    return {"arm": arm, "test": {"metrics": {"mean_balanced_accuracy": float(np.mean(list(accuracies.values()))),
                                            "labels": labels}}}


def test_variants_table_has_the_mean_fusion_column_against_concat():
    runs = [_summary("supervised", 0, {"x": 0.5, "y": 0.7}), _summary("supervised", 1, {"x": 0.7, "y": 0.7}),
            _summary("supervised", 0, {"x": 0.9, "y": 0.6}, "mean"), _summary("supervised", 1, {"x": 0.8, "y": 0.6}, "mean"),
            _summary("supervised", 0, {"x": 0.4, "y": 0.4}, kind="single")]
    summaries = {str(i): s for i, s in enumerate(runs)}
    assert [s["arm"]["seed"] for s in group(summaries, "supervised", 1.0)] == [0, 1]  # old summaries read as concat
    assert [s["arm"]["seed"] for s in group(summaries, "supervised", 1.0, fusion="mean")] == [0, 1]
    lines = tables.variants_section(summaries)
    header = next(line for line in lines if line.startswith("| label"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[-2:] == ["MTL multi, mean fusion", "Δ mean"]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in lines if line.startswith("| x")
            or line.startswith("| mean")}
    x = rows["x (A 2 / B 2)"]
    assert x[1].startswith("60.0 ± 14.1 (n=2)") and x[-2].startswith("85.0 ± 7.1 (n=2)") and x[-1] == "+25.0"
    assert x[2] == "not run" and x[3] == "-"  # no STL run: marked, not invented
    assert rows["mean (Δμ)"][-1] == f"{100 * (np.mean([0.75, 0.7]) - np.mean([0.6, 0.7])):+.1f}"


def test_contribution_table_lists_only_the_probes_run_on_that_split():
    runs = [_summary(r, 0, {"x": 0.5}) for r in ("supervised", "s4l", "no_vat")]
    for run in runs:
        run["steps"] = {}
    lines = tables.steps_section("nuaa", {str(i): s for i, s in enumerate(runs)})
    header = lines.index(next(line for line in lines if line.startswith("| arm")))
    assert [line.split("|")[1].strip() for line in lines[header + 2:-1]] == ["supervised", "s4l", "no_vat"]


def test_spread_is_mean_and_sample_std():
    values = [0.5, 0.7, 0.9]
    m, sd, n = spread(values)
    assert (n, m) == (3, pytest.approx(np.mean(values))) and sd == pytest.approx(np.std(values, ddof=1))
    assert spread([0.4]) == (0.4, 0.0, 1)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """Two quick runs (supervised, S4L) on a synthetic 'nuaa' folder, and the written results.md."""
    root = tmp_path_factory.mktemp("bench")
    generate(root / "nuaa", recordings=24, subjects=8, frames=2, size=32, label_fraction=0.6, seed=1)
    shutil.copy(REPO / "label_config.xml", root / "nuaa" / "label_config.xml")
    out, work = root / "results", root / "work"
    only = {"supervised-mtl-multi-f030-s0", "s4l-mtl-multi-f030-s0"}
    summaries = runner.run_bench("nuaa", out, work, (0,), True, only, 1, root)
    doc.write_doc(out, out / "results.md", data_root=root)
    return root, out, work, summaries, out / "results.md"


def test_runs_score_the_test_split_against_truth(grid):
    root, out, work, summaries, _ = grid
    split = json.loads((out / "nuaa" / "split.json").read_text())
    train_subjects, test_subjects = set(split["subjects"]["train"]), set(split["subjects"]["test"])
    assert train_subjects and test_subjects and not train_subjects & test_subjects
    assert [s["run_id"] for s in summaries] == ["supervised-mtl-multi-f030-s0", "s4l-mtl-multi-f030-s0"]
    for s in summaries:
        assert s["test"]["n_recordings"] == len(split["recordings"]["test"])
        assert set(s["steps"]) == set(map(str, s["config"]["recipe"]["steps"]))
        assert s["machine"]["cpus"] >= 1 and s["machine"]["cpu"] and s["machine"]["torch"]  # where it ran
        # the command names the benchmark's data root when it is not the default one (a derived benchmark)
        assert s["command"].endswith(f"--out {out} --data-root {root} --only {s['run_id']}")
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
    again = runner.run_bench("nuaa", out, work, (0,), True, {"s4l-mtl-multi-f030-s0"}, 1, root)
    assert again == summaries[1:]


def test_doc_has_tables_plots_and_commands(grid):
    _, out, _, summaries, results = grid
    text = results.read_text()
    assert "### Label budget (nuaa)" in text and "not run" in text  # missing arms are marked, not invented
    for s in summaries:
        assert f"`{s['command']}`" in text
    assert (out / "nuaa" / "label_budget.png").stat().st_size > 0 and (out / "nuaa" / "reliability.png").stat().st_size > 0
    # a hand-written preface survives a rewrite
    results.write_text("# Results\nanalysis\n" + doc.DOC_MARKER + "\nold tables\n")
    for _ in range(2):  # rewriting twice keeps one preface and one set of tables
        experiments_main(["--out", str(out), "--doc", str(results), "--doc-only", "--data-root", str(grid[0])])
    new = results.read_text()
    assert new.startswith("# Results\nanalysis\n" + doc.DOC_MARKER) and "old tables" not in new
    assert new.count(doc.DOC_MARKER) == 1 and new.count("### Label budget (nuaa)") == 1


def test_the_package_runs_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "research.experiments", "--bench", "all", "--bn-check", "x"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "--bn-check needs --bench nuaa or facemask" in proc.stderr


def test_export_label_counts_follow_the_export_and_the_fraction(grid):
    root, out, _, _, _ = grid
    paths = bench_paths("nuaa", root)
    split = json.loads((out / "nuaa" / "split.json").read_text())
    schema = load_label_config(paths["label_config"])
    train = set(split["recordings"]["train"])
    recordings = [r for r in read_export(paths["export"], schema).recordings if r.recording_id in train]
    labels = tables.ExportLabels(paths)
    full = labels.counts(split, 1.0, 0)
    part = labels.counts(split, 0.3, 1)
    for spec in schema.labels:
        expected = [sum(r.labels.get(spec.name) == c for r in recordings) for c in spec.classes]
        assert full[spec.name] == expected
        assert all(p <= f for p, f in zip(part[spec.name], expected))
        total = sum(expected)
        assert sum(part[spec.name]) == (max(1, round(0.3 * total)) if total else 0)


def test_bn_check_scores_every_kept_checkpoint(grid):
    root, out, work, _, _ = grid
    run_id = "s4l-mtl-multi-f030-s0"
    result = bn_check("nuaa", run_id, out, work, root)
    kept = sorted(p.stem for p in (work / "nuaa" / "runs" / run_id / "checkpoints").glob("*.pt"))
    assert sorted(result) == kept and kept
    split = json.loads((out / "nuaa" / "split.json").read_text())
    for row in result.values():
        for part in ("val", "test"):
            for how in ("stored", "re-estimated"):
                assert all(sum(c) == len(split["recordings"][part]) for c in row[f"{part} {how}"]["predicted"].values())
    assert "### BatchNorm check (nuaa)" in "\n".join(bn_check_section("nuaa", out))


def test_paired_deltas_use_only_the_seeds_both_arms_ran():
    runs = [_summary("supervised", 0, {"x": 0.5}), _summary("supervised", 1, {"x": 0.6}),
            _summary("s4l", 1, {"x": 0.7}), _summary("s4l", 2, {"x": 0.9})]
    for s in runs:
        s["arm"]["fraction"] = 0.1
    summaries = {str(i): s for i, s in enumerate(runs)}
    assert tables.paired_deltas(summaries, 0.1) == pytest.approx([0.1])  # seed 1 only
    assert tables.paired_deltas(summaries, 0.3) == []


def test_pool_arms_exist_only_for_subsampled_benches_and_keep_other_ids():
    assert Arm("s4l", 0.1, 0).run_id == "s4l-mtl-multi-f010-s0"
    assert Arm("s4l", 0.1, 0, pool="all").run_id == "s4l-mtl-multi-f010-s0-allpool"
    pooled = lambda bench: [a for a in plan(bench, (0,)) if a.pool == "all"]
    assert not pooled("nuaa")
    assert {(a.recipe, a.fraction) for a in pooled("facemask")} == {(r, f) for r in ("supervised", "s4l")
                                                                     for f in FRACTIONS[:2]}


def test_pool_inputs_hide_the_annotations_of_the_left_out_training_subjects(tmp_path):
    generate(tmp_path / "b", recordings=40, subjects=20, frames=1, size=32, label_fraction=0.6, seed=2)
    paths = {"export": tmp_path / "b" / "export.json", "label_config": REPO / "label_config.xml"}
    settings = BenchSettings(frames=1, image_size=32, epochs_per_step=1, batch_size=4,
                                             max_train_recordings=10)
    split = runner.make_split("b", paths, settings)
    out, work = tmp_path / "out", tmp_path / "work"
    (out / "b").mkdir(parents=True)
    pool_paths, split_path = runner.pool_inputs("b", paths, settings, split, out, work)
    full = json.loads(split_path.read_text())
    assert set(split["recordings"]["train"]) < set(full["recordings"]["train"])
    assert {k: full["recordings"][k] for k in ("val", "test")} == {k: split["recordings"][k] for k in ("val", "test")}
    schema = load_label_config(paths["label_config"])
    before = {r.recording_id: r.labels for r in read_export(paths["export"], schema).recordings}
    after = {r.recording_id: r.labels for r in read_export(pool_paths["export"], schema).recordings}
    kept = set(split["recordings"]["train"]) | set(split["recordings"]["val"]) | set(split["recordings"]["test"])
    assert set(after) == set(before)
    for rid in before:
        assert after[rid] == (before[rid] if rid in kept else {}), rid
    assert any(before[rid] for rid in set(before) - kept)  # something really was hidden


def test_cross_validated_arms_cover_every_fold_for_nuaa_only():
    cv = [a for a in plan("nuaa", (0, 1))
          if a.fold >= 0 and a.labels == "random" and not a.augment and not a.epochs and not a.image_size
          and not a.frame_pool]
    assert {(a.recipe, a.fraction, a.seed, a.fold) for a in cv} == {
        (r, f, s, k) for r in ("supervised", "s4l", *CV_PROBES) for f in FRACTIONS[:2] for s in (0, 1) for k in range(5)}
    assert all(a.fusion == "mean" and a.run_id.endswith(f"-mean-cv{a.fold}") for a in cv)
    per_class = [a for a in plan("nuaa", (0, 1)) if a.labels == "per_class"]  # the 10 % diagnosis
    assert {(a.recipe, a.fraction, a.seed, a.fold) for a in per_class} == {
        (r, 0.1, s, k) for r in ("supervised", "s4l") for s in (0, 1) for k in range(5)}
    assert all(a.run_id.endswith(f"-mean-perclass-cv{a.fold}") for a in per_class)
    augmented = [a for a in plan("nuaa", (0, 1)) if a.augment]  # the augmentation lever, both arms and budgets
    assert {(a.recipe, a.fraction, a.seed, a.fold) for a in augmented} == {
        (r, f, s, k) for r in ("supervised", "s4l") for f in FRACTIONS[:2] for s in (0, 1) for k in range(5)}
    assert all(a.fold >= 0 and a.run_id.endswith(f"-mean-aug-cv{a.fold}") for a in augmented)
    longer = [a for a in plan("nuaa", (0, 1)) if a.epochs]  # longer training, both arms and budgets
    assert {(a.epochs, a.recipe, a.fraction, a.seed, a.fold) for a in longer} == {(e, r, f, s, k) for e in CV_LONGER
        for r in ("supervised", "s4l") for f in FRACTIONS[:2] for s in (0, 1) for k in range(5)}
    assert all(a.run_id.endswith(f"-mean-k{a.epochs}-cv{a.fold}") for a in longer)
    larger = [a for a in plan("nuaa", (0, 1)) if a.image_size]  # larger input, both arms and budgets, and 100 %
    assert {(a.image_size, a.recipe, a.fraction, a.seed, a.fold) for a in larger} == {(px, r, f, s, k)
        for px in CV_SIZES for r in ("supervised", "s4l") for f in FRACTIONS[:2] for s in (0, 1) for k in range(5)} | {
        (px, "supervised", 1.0, s, k) for px in CV_SIZES for s in (0, 1) for k in range(5)}  # and its ceiling
    assert all(a.run_id.endswith(f"-mean-px{a.image_size}-cv{a.fold}") for a in larger)
    every_frame = [a for a in plan("nuaa", (0, 1)) if a.frame_pool]  # all frames jittered, both arms and budgets
    assert {(a.frame_pool, a.recipe, a.fraction, a.seed, a.fold) for a in every_frame} == {(n, r, f, s, k)
        for n in CV_FRAME_POOLS for r in ("supervised", "s4l") for f in FRACTIONS[:2] for s in (0, 1) for k in range(5)}
    assert all(a.run_id.endswith(f"-mean-fp{a.frame_pool}-cv{a.fold}") for a in every_frame)
    assert not [a for a in plan("facemask", (0,)) if a.fold >= 0]


def _cv_summary(recipe, seed, fold, confusion, **variant):
    arm = {"recipe": recipe, "fraction": 0.1, "seed": seed, "mode": "mtl", "kind": "multi", "fusion": "mean",
           "pool": "subsample", "fold": fold, "labels": "random", **variant}
    label = {"confusion": confusion, "per_class": {"A": {}, "B": {}}}
    return {"arm": arm, "test": {"metrics": {"labels": {"x": label}}}}


def test_cross_validated_score_pools_the_folds_test_confusions():
    from research.experiments.cv_tables import pooled

    runs = [_cv_summary("s4l", 0, 0, [[2, 0], [1, 1]]), _cv_summary("s4l", 0, 1, [[0, 0], [0, 4]]),
            _cv_summary("s4l", 1, 0, [[1, 1], [0, 2]]),  # seed 1 lacks fold 1: left out
            _cv_summary("s4l", 0, 0, [[0, 2], [3, 0]], labels="per_class"),  # another draw: its own pool
            _cv_summary("s4l", 0, 0, [[0, 2], [3, 0]], augment=True),  # augmented: its own pool
            _cv_summary("s4l", 0, 0, [[0, 2], [3, 0]], epochs=4), _cv_summary("s4l", 0, 1, [[1, 1], [0, 4]], epochs=4)]
    scores = pooled({str(i): s for i, s in enumerate(runs)}, "s4l", 0.1, k=2)
    assert list(scores) == [0]
    # the predictions together: A 2 of 2 right, B 5 of 6 -> (1 + 5/6) / 2, not the mean of the folds' scores
    assert scores[0]["labels"]["x"] == pytest.approx((1 + 5 / 6) / 2)
    assert scores[0]["support"]["x"] == {"A": 2, "B": 6}
    assert scores[0]["mean"] == pytest.approx((1 + 5 / 6) / 2)
    assert pooled({str(i): s for i, s in enumerate(runs)}, "s4l", 0.1, k=2, labels="per_class") == {}  # 1 of 2 folds
    assert pooled({str(i): s for i, s in enumerate(runs)}, "s4l", 0.1, k=2, augment=True) == {}
    longer = pooled({str(i): s for i, s in enumerate(runs)}, "s4l", 0.1, k=2, epochs=4)
    assert longer[0]["labels"]["x"] == pytest.approx((1 / 4 + 4 / 7) / 2)  # A 1 of 4, B 4 of 7


def test_variant_table_gives_each_label_pooled_over_the_folds_for_both_arms():
    from research.experiments.cv_tables import _variant_label_lines, _variant_scores

    runs = [_cv_summary("supervised", 0, 0, [[2, 0], [1, 1]], image_size=128),
            _cv_summary("supervised", 0, 1, [[0, 0], [0, 4]], image_size=128),
            _cv_summary("s4l", 0, 0, [[1, 1], [0, 2]], image_size=128), _cv_summary("s4l", 0, 1, [[2, 0], [0, 4]], image_size=128),
            _cv_summary("s4l", 0, 0, [[2, 0], [0, 2]]), _cv_summary("s4l", 0, 1, [[2, 0], [0, 4]])]  # plain: not a variant
    lines = _variant_label_lines(_variant_scores({str(i): s for i, s in enumerate(runs)}, k=2))
    rows = [line for line in lines if line.startswith("| 10 %")]
    # supervised: A 2 of 2, B 5 of 6; S4L: A 3 of 4, B 6 of 6 (folds added up)
    assert rows == [f"| 10 %, 128 px input | x | {100 * (1 + 5 / 6) / 2:.1f} ± 0.0 (n=1) | {100 * (3 / 4 + 1) / 2:.1f} ± 0.0 (n=1) |"]
    assert _variant_label_lines(_variant_scores({str(i): s for i, s in enumerate(runs[2:])}, k=2)) == []  # one arm only


def test_a_variant_with_fresh_seeds_is_tabled_for_the_old_seeds_the_fresh_ones_and_all():
    from research.experiments.cv_tables import _pooled_bar_cells, _variant_scores

    def seed(recipe, s, right):  # both folds of one seed; `right` of 2 per class right in each
        return [_cv_summary(recipe, s, k, [[right, 2 - right], [2 - right, right]], epochs=10) for k in range(2)]

    runs = [*seed("supervised", 0, 1), *seed("s4l", 0, 2), *seed("supervised", 5, 1), *seed("s4l", 5, 1),
            *seed("supervised", 6, 0), *seed("s4l", 6, 1), *seed("s4l", 7, 2)]  # seed 7: S4L only
    rows = {what: _pooled_bar_cells(sup, s4l) for f, what, sup, s4l in _variant_scores(
        {str(i): s for i, s in enumerate(runs)}, k=2) if sup or s4l}
    assert list(rows) == [", 10 epochs per step, seeds 0", ", 10 epochs per step, fresh seeds 5–7",
                          ", 10 epochs per step, seeds 0, 5, 6, 7"]
    assert rows[", 10 epochs per step, seeds 0"].startswith("50.0 ± 0.0 (n=1) | 100.0 ± 0.0 (n=1) | +50.0")
    # fresh: supervised 50, 0; S4L 50, 50, 100; paired over the seeds both ran: 0 and +50
    assert rows[", 10 epochs per step, fresh seeds 5–7"].endswith("| 25.0 ± 35.4 (n=2) | 1 of 2 seeds")
    assert rows[", 10 epochs per step, seeds 0, 5, 6, 7"].endswith("| 33.3 ± 28.9 (n=3) | 2 of 3 seeds")
    only_fresh = _variant_scores({str(i): s for i, s in enumerate(runs[4:])}, k=2)  # no old seed: one row, no "all"
    assert [what for f, what, sup, s4l in only_fresh if sup or s4l] == [", 10 epochs per step, fresh seeds 5–7"]


def test_plain_budget_rows_split_fresh_seeds_and_the_detail_tables_keep_the_first_ones(tmp_path, monkeypatch):
    from research.experiments import cv_tables

    monkeypatch.setitem(cv_tables.CV_FOLDS, "nuaa", 2)
    (tmp_path / "nuaa").mkdir()
    (tmp_path / "nuaa" / "split_cv0.json").write_text(json.dumps({"fold": {"folds": [["a"], ["b"]]}}))
    right = {("supervised", 0): 1, ("s4l", 0): 2, ("supervised", 5): 1, ("s4l", 5): 1, ("best_step", 0): 0}
    runs = {}
    for (recipe, seed), n in right.items():  # n of 2 per class right in each of the 2 folds
        for k in range(2):
            run = _cv_summary(recipe, seed, k, [[n, 2 - n], [2 - n, n]])
            run["test"]["metrics"]["labels"]["x"]["balanced_accuracy"] = n / 2
            run["test"]["metrics"]["mean_balanced_accuracy"] = n / 2
            runs[f"{recipe}{seed}{k}"] = run
    lines = cv_tables.cv_section("nuaa", runs, tmp_path)
    rows = [line for line in lines if line.startswith("| 10 %")]
    assert rows[0].startswith("| 10 %, seeds 0 | s4l | 50.0 ± 0.0 (n=1) | 100.0 ± 0.0 (n=1) |")
    assert rows[1].startswith("| 10 %, fresh seeds 5 | s4l | 50.0 ± 0.0 (n=1) | 50.0 ± 0.0 (n=1) |")
    assert rows[2].startswith("| 10 %, seeds 0, 5 | s4l | 50.0 ± 0.0 (n=2) | 75.0 ± 35.4 (n=2) |")
    assert rows[3].startswith("| 10 % | best_step | 50.0 ± 0.0 (n=1) | 0.0 ± 0.0 (n=1) |")  # its own seed only
    # the detail tables: seed 0 only
    assert next(line for line in lines if line.startswith("| x (A")).startswith(
        "| x (A 4 / B 4) | 50.0 ± 0.0 (n=1) | 100.0 ± 0.0 (n=1) |")
    assert "over seeds 0, not the fresh ones" in "\n".join(lines)
    assert next(line for line in lines if line.startswith("| 0 |")) == "| 0 | 50.0 (n=1) | 100.0 (n=1) | not run | not run |"


def test_sections_without_any_of_their_runs_are_left_out(tmp_path):
    runs = {str(k): _cv_summary("s4l", 0, k, [[1, 1], [1, 1]]) for k in range(2)}  # cross-validated runs only
    assert tables.steps_section("nuaa", runs) == tables.steps_section("nuaa", runs, "mean") == []
    assert tables.variants_section(runs) == []
    assert tables.calibration_section("nuaa", runs, tmp_path) == []


def test_fold_mean_table_scores_each_fold_alone_not_pooled():
    from research.experiments.cv_tables import _fold_mean_lines

    runs = [_cv_summary("supervised", 0, 0, [[2, 0], [2, 0]]), _cv_summary("supervised", 0, 1, [[0, 2], [0, 2]])]
    for run in runs:  # each fold alone: 50 %; pooled: A 2 of 4, B 2 of 4, also 50 % (and the runner's own figure)
        run["test"]["metrics"]["labels"]["x"]["balanced_accuracy"] = 0.5
    runs += [_cv_summary("s4l", 0, 0, [[1, 0], [0, 1]]), _cv_summary("s4l", 0, 1, [[0, 1], [0, 1]])]
    runs[2]["test"]["metrics"]["labels"]["x"]["balanced_accuracy"] = 1.0
    runs[3]["test"]["metrics"]["labels"]["x"]["balanced_accuracy"] = None  # one class only in that fold: no score
    lines = _fold_mean_lines({str(i): s for i, s in enumerate(runs)}, {"x": {}}, ["| {} | a | b | c | d |", "|---|"])
    assert lines[-1] == "| x | 50.0 ± 0.0 (n=2) | 100.0 ± 0.0 (n=1) | not run | not run |"


def test_cross_validated_runs_end_to_end(tmp_path, monkeypatch):
    """Two folds x both arms on a synthetic 'nuaa': every subject tested once, the doc pools both folds."""
    from research.experiments import arms, cv_tables

    monkeypatch.setitem(arms.CV_FOLDS, "nuaa", 2)
    generate(tmp_path / "nuaa", recordings=24, subjects=8, frames=2, size=32, label_fraction=0.6, seed=1)
    shutil.copy(REPO / "label_config.xml", tmp_path / "nuaa" / "label_config.xml")
    out, work = tmp_path / "results", tmp_path / "work"
    only = {Arm(r, 0.1, 0, fusion="mean", fold=k).run_id for r in ("supervised", "s4l") for k in range(2)}
    summaries = runner.run_bench("nuaa", out, work, (0,), True, only, 1, tmp_path)
    assert len(summaries) == 4
    splits = [json.loads((out / "nuaa" / f"split_cv{k}.json").read_text()) for k in range(2)]
    assert sorted(splits[0]["subjects"]["test"] + splits[1]["subjects"]["test"]) == sorted(
        {s for part in splits[0]["subjects"].values() for s in part})
    for s in summaries:  # each run scored the test recordings of its own fold
        assert s["test"]["n_recordings"] == len(splits[s["arm"]["fold"]]["recordings"]["test"])
        assert s["config"]["split"].endswith(f"split_cv{s['arm']['fold']}.json")
    doc.write_doc(out, out / "results.md", data_root=tmp_path)
    text = (out / "results.md").read_text()
    assert "### Label budget, cross-validated (nuaa, 2 subject folds" in text
    row = next(line for line in text.splitlines() if line.startswith("| 10 % | s4l |"))
    pooled_s4l = cv_tables.pooled({s["run_id"]: s for s in summaries}, "s4l", 0.1, 2)[0]["mean"]
    assert f"{100 * pooled_s4l:.1f} ± 0.0 (n=1)" in row
    assert "| 10 % | gender |" in text  # the training-label coverage table
    # a variant replicated on a fresh seed gets its own rows and its own label-coverage table
    for s in summaries:
        fresh = {**s, "arm": {**s["arm"], "seed": 5, "epochs": 10}}
        (out / "nuaa" / "runs" / f"{s['run_id']}-fresh.json").write_text(json.dumps(fresh))
    doc.write_doc(out, out / "results.md", data_root=tmp_path)
    text = (out / "results.md").read_text()
    assert "| 10 %, 10 epochs per step, fresh seeds 5 | s4l |" in text
    assert "Training labels of these runs, 10 epochs per step (mean over the 2 splits x 1 seeds 5;" in text
    assert "Training labels of these runs (mean over the 2 splits x 1 seeds 0;" in text


def test_step_check_scores_every_step_and_the_pseudo_labels_on_truth(tmp_path):
    from research.experiments.cv_tables import pooled
    from research.experiments.run_inputs import run_inputs
    from research.experiments.step_check import step_check, step_check_section
    from research.experiments.summaries import fmt, load_summaries

    root, out, work = tmp_path / "bench", tmp_path / "out", tmp_path / "work"
    generate(root / "nuaa", recordings=30, subjects=10, frames=2, size=32, label_fraction=0.6, seed=2)
    shutil.copy(REPO / "label_config.xml", root / "nuaa" / "label_config.xml")
    ids = {Arm("s4l", 0.3, 0, fusion="mean", fold=k).run_id for k in range(5)}
    runner.run_bench("nuaa", out, work, (0,), True, ids, 1, root)
    assert sorted(step_check("nuaa", "*-cv*", out, work, root)) == sorted(ids)
    summaries = load_summaries(out, "nuaa")
    for rid in ids:
        check = json.loads((out / "nuaa" / "step_check" / f"{rid}.json").read_text())
        assert check["matches_summary"] and sorted(check["steps"]) == ["1", "2", "3"]
        for name, m in summaries[rid]["test"]["metrics"]["labels"].items():  # step 3 is the summarised model
            assert check["steps"]["3"][name] == m["confusion"]
        inputs = run_inputs(work / "nuaa" / "runs" / rid, root / "nuaa" / "truth.csv")
        rows, targets = inputs.rows("train"), inputs.train_targets()
        for i, name in enumerate(inputs.schema.names):  # threshold 0: a pseudo-label in every missing known slot
            if name in check["pseudo_labels"]:
                gaps = (targets[rows, i] < 0) & (inputs.truth[rows, i] >= 0)
                assert np.sum(check["pseudo_labels"][name]["confusion"]) == gaps.sum() > 0
    section = "\n".join(step_check_section("nuaa", out))
    step3 = fmt([v["mean"] for v in pooled(summaries, "s4l", 0.3, 5).values()])
    assert "| 30 % | not run | " in section and f" | {step3} |\n" in section  # no supervised runs here


def test_seed_groups_give_each_block_of_fresh_seeds_apart_and_all_seeds_together():
    from research.experiments.cv_tables import seed_groups

    arm = {s: s for s in (0, 1, 5, 6, 10, 11)}
    assert [(name, sorted(a)) for name, (a,) in seed_groups(arm)] == [
        (", seeds 0–1", [0, 1]), (", fresh seeds 5–6", [5, 6]), (", fresh seeds 10–11", [10, 11]),
        (", seeds 0, 1, 5, 6, 10, 11", [0, 1, 5, 6, 10, 11])]
    assert [name for name, _ in seed_groups({10: 0, 12: 0})] == [", fresh seeds 10, 12"]  # one group: no "all"
    assert seed_groups({0: 0, 1: 0}) == [("", ({0: 0, 1: 0},))]
