"""S4L's lead pooled over machines: per-seed leads from the pooled CV score, averaged per seed, t-tested."""
import json
import math

import pytest

from research.experiments import inputs_compare, machines
from research.experiments.summaries import load_summaries


def _summary(recipe, fraction, seed, fold, right):
    """A cross-validated run whose one binary label got `right` of 2 per class right (A then B)."""
    arm = {"recipe": recipe, "fraction": fraction, "seed": seed, "mode": "mtl", "kind": "multi", "fusion": "mean",
           "pool": "subsample", "fold": fold, "labels": "random"}
    a, b = right
    label = {"confusion": [[a, 2 - a], [2 - b, b]], "per_class": {"A": {}, "B": {}}}
    return {"arm": arm, "test": {"metrics": {"labels": {"x": label}}}}


def _write(out, runs):
    folder = out / "nuaa" / "runs"
    folder.mkdir(parents=True)
    for i, s in enumerate(runs):
        (folder / f"run{i}-cv{s['arm']['fold']}.json").write_text(json.dumps(s))


def _machine(out, s4l_right, seeds=(0, 1, 2)):
    """Every fold of supervised (1 of 2 right per class: 50 %) and S4L (s4l_right[seed]) at 10 % and 30 %."""
    _write(out, [_summary(r, f, s, k, (1, 1) if r == "supervised" else s4l_right[s])
                 for r in ("supervised", "s4l") for f in (0.1, 0.3) for s in seeds for k in range(5)])


def test_seed_leads_pool_the_folds_and_subtract_the_supervised_arm(tmp_path):
    _machine(tmp_path, {0: (2, 1), 1: (1, 1), 2: (2, 2)})
    assert machines.seed_leads(tmp_path, "nuaa", 0.1) == pytest.approx({0: 25.0, 1: 0.0, 2: 50.0})


def test_lead_test_averages_machines_per_seed_and_matches_the_t_formula():
    res = machines.lead_test([{0: 2.0, 1: 4.0, 2: 9.0, 3: 1.0}, {0: 4.0, 1: 0.0, 2: 3.0, 5: 7.0}])
    assert res["seeds"] == [0, 1, 2]  # seeds every machine ran
    assert res["per_seed"] == [3.0, 2.0, 6.0]
    mean, sd = 11 / 3, math.sqrt(((3 - 11 / 3) ** 2 + (2 - 11 / 3) ** 2 + (6 - 11 / 3) ** 2) / 2)
    assert (res["mean"], res["std"]) == pytest.approx((mean, sd))
    assert res["t"] == pytest.approx(mean / (sd / math.sqrt(3)))
    # t's 97.5 % point at df 4 is 2.776445: centred values shifted so their t is exactly that have p = 0.05
    centred = [-1.0, -0.5, 0.0, 0.5, 1.0]
    sd = math.sqrt(sum(v * v for v in centred) / 4)
    at_critical = [v + 2.776445 * sd / math.sqrt(5) for v in centred]
    assert machines.lead_test([dict(enumerate(at_critical))])["p"] == pytest.approx(0.05, abs=1e-5)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        machines.lead_test([{0: 1.0}, {1: 2.0}])


def test_table_has_one_row_per_budget_and_the_cli_prints_it(tmp_path, capsys):
    _machine(tmp_path / "m1", {0: (2, 1), 1: (1, 1), 2: (2, 2)})
    _machine(tmp_path / "m2", {0: (2, 2), 1: (2, 1), 2: (2, 1)})
    assert machines.main([str(tmp_path / "m1"), str(tmp_path / "m2"), "--bench", "nuaa"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 10 %") or line.startswith("| 30 %")]
    assert len(rows) == 2
    # per seed: (25 + 50) / 2, (0 + 25) / 2, (50 + 25) / 2
    assert "| +37.5, +12.5, +37.5 | +29.2 ± 14.4 |" in rows[0]


def test_seeds_and_variant_pick_the_runs_of_one_machine(tmp_path, capsys):
    plain = [_summary(r, f, s, k, (1, 1) if r == "supervised" else (2, 2))
             for r in ("supervised", "s4l") for f in (0.1, 0.3) for s in (0, 1) for k in range(5)]
    longer = [{**run, "arm": {**run["arm"], "epochs": 10, "seed": run["arm"]["seed"] + 5}} for run in
              [_summary(r, f, s, k, (1, 1) if r == "supervised" else ((2, 1) if s else (1, 1)))
               for r in ("supervised", "s4l") for f in (0.1, 0.3) for s in (0, 1, 2) for k in range(5)]]
    _write(tmp_path, plain + longer)
    assert machines.seed_leads(tmp_path, "nuaa", 0.1) == pytest.approx({0: 50.0, 1: 50.0})  # the plain budget
    assert machines.seed_leads(tmp_path, "nuaa", 0.1, epochs=10) == pytest.approx({5: 0.0, 6: 25.0, 7: 25.0})
    assert machines.seed_leads(tmp_path, "nuaa", 0.1, (6, 7), epochs=10) == pytest.approx({6: 25.0, 7: 25.0})
    assert machines.main([str(tmp_path), "--variant", "epochs=10", "--seeds", "5,6,7"]) == 0
    out = capsys.readouterr().out
    assert "cross-validated, epochs=10, seeds [5, 6, 7]" in out
    assert "| +0.0, +25.0, +25.0 | +16.7 ± 14.4 |" in out
    with pytest.raises(SystemExit):
        machines.main([str(tmp_path), "--variant", "epoch=10"])  # not an Arm field
    assert "FIELD one of" in capsys.readouterr().err
    assert machines.arm_field("augment=true") == ("augment", True)
    assert machines.arm_field("labels=per_class") == ("labels", "per_class")


def test_label_tests_one_label_instead_of_the_mean(tmp_path, capsys):
    right = {0: (2, 1), 1: (2, 2)}  # S4L on label x; on label y both arms get 1 of 2 per class right
    runs = [_summary(r, f, s, k, (1, 1) if r == "supervised" else right[s]) for r in ("supervised", "s4l")
            for f in (0.1, 0.3) for s in (0, 1) for k in range(5)]
    for run in runs:
        labels = run["test"]["metrics"]["labels"]
        labels["y"] = {**labels["x"], "confusion": [[1, 1], [1, 1]]}
    _write(tmp_path, runs)
    assert machines.seed_leads(tmp_path, "nuaa", 0.1) == pytest.approx({0: 12.5, 1: 25.0})  # the mean of x and y
    assert machines.seed_leads(tmp_path, "nuaa", 0.1, label="x") == pytest.approx({0: 25.0, 1: 50.0})
    assert machines.seed_leads(tmp_path, "nuaa", 0.1, label="y") == pytest.approx({0: 0.0, 1: 0.0})
    assert machines.main([str(tmp_path), "--label", "x"]) == 0
    out = capsys.readouterr().out
    assert "cross-validated, x only" in out and "| +25.0, +50.0 | +37.5 ± 17.7 |" in out


def test_a_budget_the_seeds_did_not_run_is_left_out(tmp_path, capsys):
    _write(tmp_path, [_summary(r, 0.3, s, k, (1, 1) if r == "supervised" else ((2, 1), (2, 2))[s])
                      for r in ("supervised", "s4l") for s in (0, 1) for k in range(5)])  # 30 % only
    assert machines.main([str(tmp_path)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 10 %") or line.startswith("| 30 %")]
    assert len(rows) == 1 and rows[0].startswith("| 30 %") and "| +25.0, +50.0 |" in rows[0]


def test_inputs_compare_subtracts_the_old_input_per_arm_seed_and_label(tmp_path, capsys):
    new_right = {("supervised", 0): (2, 1), ("supervised", 1): (2, 2), ("s4l", 0): (2, 1), ("s4l", 1): (1, 1)}
    _write(tmp_path / "old", [_summary(r, f, s, k, (1, 1)) for r in ("supervised", "s4l") for f in (0.1, 0.3)
                              for s in (0, 1, 2) for k in range(5)])
    _write(tmp_path / "new", [_summary(r, f, s, k, new_right[r, s]) for r in ("supervised", "s4l") for f in (0.1, 0.3)
                              for s in (0, 1) for k in range(5)])  # seed 2 not run on the new input
    before, after = inputs_compare.seed_scores(
        *(load_summaries(tmp_path / d, "nuaa") for d in ("old", "new")), "nuaa", "supervised", 0.1)["x"]
    assert before == pytest.approx({0: 50.0, 1: 50.0}) and after == pytest.approx({0: 75.0, 1: 100.0})
    assert inputs_compare.main([str(tmp_path / "old"), str(tmp_path / "new")]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| s")]
    assert len(rows) == 8  # 2 arms x 2 budgets x (mean, x); no run at 100 %
    assert rows[0].startswith("| supervised | 10 % | mean | 50.0 ± 0.0 | 87.5 ± 17.7 | +25.0, +50.0 | +37.5 ± 17.7 |")
    assert rows[4].startswith("| s4l | 10 % | mean | 50.0 ± 0.0 | 62.5 ± 17.7 | +25.0, +0.0 | +12.5 ± 17.7 |")
    _write(tmp_path / "one", [_summary("supervised", 1.0, 0, k, (2, 2)) for k in range(5)])
    _write(tmp_path / "one-old", [_summary("supervised", 1.0, 0, k, (1, 1)) for k in range(5)])
    assert inputs_compare.main([str(tmp_path / "one-old"), str(tmp_path / "one")]) == 0
    assert "| supervised | 100 % | x | 50.0 | 100.0 | +50.0 | +50.0 | - | - |" in capsys.readouterr().out  # no test
    with pytest.raises(SystemExit):
        inputs_compare.main([str(tmp_path / "old"), str(tmp_path / "new"), "--variant", "image_size=128"])
    assert "no arm has a seed" in capsys.readouterr().err
