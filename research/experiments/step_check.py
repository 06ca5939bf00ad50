"""Where S4L's lead comes from, step by step and label by label (`--step-check GLOB`).

The summaries score only a run's final model, and per step only on the export's sparse annotations. This check
reloads the best checkpoint of every step of finished cross-validated S4L runs and scores it on truth.csv (test),
and scores the step-1 model's pseudo-labels (what step 2 trains on) against truth.csv on the training slots they
fill. The doc section pools the folds of a seed the way the bar does (confusions added up).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from training.metrics import balanced_accuracy, confusion_matrix, roc_auc
from training.pseudo_labels import make_pseudo_labels

from .arms import CV_FOLDS, DATA_ROOT, bench_paths
from .cv_tables import PLAIN, VARIANTS, pooled, seed_groups, summed_confusions
from .run_inputs import run_inputs
from .runner import softmax
from .summaries import fmt, load_summaries


def step_check(bench: str, pattern: str, out: Path, work: Path, data_root: Path = DATA_ROOT) -> list[str]:
    """Write out/BENCH/step_check/RUN.json for every cross-validated S4L run matching `pattern` (a glob of run
    ids) that has a summary under `out` and its checkpoints under `work`; returns the run ids checked."""
    import torch

    from training.fit import build_model

    summaries, stores, done = load_summaries(out, bench), {}, []
    truth_csv = bench_paths(bench, data_root)["truth"]
    for run in sorted((work / bench / "runs").glob(pattern)):
        arm = summaries.get(run.name, {}).get("arm", {})
        if arm.get("recipe") != "s4l" or arm.get("fold", -1) < 0:
            continue
        inputs = run_inputs(run, truth_csv, stores)
        cfg, schema, test_rows = inputs.cfg, inputs.schema, inputs.rows("test")
        kept = sorted((run / "checkpoints").glob("step*_epoch*.pt"))
        best = torch.load(kept[-1], map_location="cpu", weights_only=False)["recipe_state"]["best"]
        result = {"arm": arm, "steps": {}}
        for step, b in sorted(best.items()):
            model = build_model(schema, cfg.model, cfg.data.frames)
            model.load_state_dict(torch.load(run / "checkpoints" / f"step{step}_epoch{b['epoch']}.pt",
                                             map_location="cpu", weights_only=False)["model"])
            test = _probs(model, inputs, test_rows)
            result["steps"][step] = {n: confusion_matrix(inputs.truth[test_rows, i], test[n].argmax(1),
                                                         len(schema[n].classes)).tolist()
                                     for i, n in enumerate(schema.names)}
            if step == "1":
                result["pseudo_labels"] = _pseudo_label_quality(inputs, _probs(model, inputs, inputs.rows("train")))
        # a run directory rerun after its summary was written would describe another model: say so
        final = summaries[run.name]
        result["matches_summary"] = all(result["steps"][str(final["final_step"])][n] == m["confusion"]
                                        for n, m in final["test"]["metrics"]["labels"].items())
        path = out / bench / "step_check" / f"{run.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result), encoding="utf-8")
        done.append(run.name)
    return done


def _probs(model, inputs, rows: list[int]) -> dict[str, np.ndarray]:
    """Eval-mode class probabilities of `rows` (the bins' middle frames, as validation and step 2 see them)."""
    from training.dataset import RecordingDataset
    from training.distributed import DistContext
    from training.trainer import predict_logits

    ds = RecordingDataset(inputs.store, rows, inputs.store.labels, inputs.cfg.data.frames)
    return {n: softmax(z) for n, z in predict_logits(model, ds, 32, DistContext()).items()}


def _pseudo_label_quality(inputs, probs: dict[str, np.ndarray]) -> dict:
    """Per label: the confusion of step 2's pseudo-labels (from the training rows' `probs`) against truth.csv, and
    how well their confidence ranks the right ones first (ROC AUC; 0.5 = a confidence threshold cannot pick them)."""
    cfg, schema, rows, targets = inputs.cfg, inputs.schema, inputs.rows("train"), inputs.train_targets()
    trained = {n for i, n in enumerate(schema.names) if (targets[rows, i] >= 0).any()}
    pseudo = make_pseudo_labels(targets[rows], probs, schema.names, threshold=cfg.recipe.pseudo_label_threshold,
                                trained=trained)
    out = {}
    for i, n in enumerate(schema.names):
        filled = pseudo.filled[:, i] & (inputs.truth[rows, i] >= 0)
        if not filled.any():
            continue
        truth, guess = inputs.truth[rows, i][filled], pseudo.targets[filled, i]
        out[n] = {"confusion": confusion_matrix(truth, guess, len(schema[n].classes)).tolist(),
                  "auroc": roc_auc(pseudo.confidence[filled, i], guess == truth)}
    return out


def step_check_section(bench: str, out: Path) -> list[str]:
    """Tables of out/BENCH/step_check/*.json beside the supervised arm of the same variant and seeds."""
    files = sorted((out / bench / "step_check").glob("*.json"))
    if not files or bench not in CV_FOLDS:
        return []
    k, summaries = CV_FOLDS[bench], load_summaries(out, bench)
    checks = [json.loads(f.read_text(encoding="utf-8")) for f in files]
    kinds = sorted({(c["arm"]["fraction"], _variant(c["arm"])) for c in checks}, key=lambda v: (v[1], v[0]))
    means, per_label, pseudo = [], [], []
    for fraction, variant in kinds:
        mine = [c for c in checks if c["arm"]["fraction"] == fraction and _variant(c["arm"]) == variant]
        steps = {step: _pooled_steps(mine, step, k) for step in ("1", "2", "3")}
        sup = {s: v for s, v in pooled(summaries, "supervised", fraction, k, **dict(variant)).items() if s in steps["3"]}
        for seeds, (sup_g, *step_g) in seed_groups(sup, *steps.values()):
            what = f"{round(fraction * 100)} %{_variant_name(fraction, variant)}{seeds}"
            arms = (sup_g, *step_g)
            means.append(f"| {what} | " + " | ".join(fmt([v["mean"] for v in a.values()]) for a in arms) + " |")
            for label in next(iter(step_g[-1].values()), {"labels": {}})["labels"]:
                per_label.append(f"| {what} | {label} | "
                                 + " | ".join(fmt([v["labels"][label] for v in a.values()]) for a in arms) + " |")
            pseudo += _pseudo_rows(what, [c for c in mine if c["arm"]["seed"] in step_g[0]])
    matched = sum(c["matches_summary"] for c in checks)
    return [f"### Each step on truth.csv ({bench}, cross-validated S4L runs)", "",
            "The best checkpoint of each S4L step, scored on truth.csv and pooled over a seed's folds like the bar "
            "(mean ± std over seeds), beside the supervised arm of the same labels; step 3 is the run's model "
            f"(its scores equal the summary's in {matched} of {len(checks)} runs"
            + ("" if matched == len(checks) else "; the others' run directories were rerun since")
            + "). Command: `python -m research.experiments --bench "
            f"{bench} --out OUT --work WORK --step-check 'RUN_ID_GLOB'`.", "",
            "| labels kept, variant, seeds | supervised only | S4L after step 1 | after step 2 | after step 3 |",
            "|---|---|---|---|---|", *means, "", "Per label:", "",
            "| labels kept, variant, seeds | label | supervised only | S4L after step 1 | after step 2 | after step 3 |",
            "|---|---|---|---|---|---|", *per_label, "",
            "Step 2's pseudo-labels (the step-1 model's guesses for the missing training labels) against truth.csv: "
            "balanced accuracy % (pooled over a seed's folds, mean ± std over seeds), the ROC AUC of their "
            "confidence for being right (mean over runs; 0.5: no confidence threshold can pick the right ones), "
            "and the classes guessed against the true ones (all runs added up):", "",
            "| labels kept, variant, seeds | label | pseudo-labels right (balanced) | confidence AUC | guessed | true |",
            "|---|---|---|---|---|---|", *pseudo, ""]


def _variant(arm: dict) -> tuple:
    return tuple((f, arm.get(f, v)) for f, v in PLAIN.items() if arm.get(f, v) != v)


def _variant_name(fraction: float, variant: tuple) -> str:
    return next((what for f, fields, what in VARIANTS if f == fraction and tuple(fields.items()) == variant), "") \
        if variant else ""


def _pooled_steps(checks: list[dict], step: str, k: int) -> dict[int, dict]:
    """seed -> {"mean", "labels"} of one step, the k folds' confusions added up (seeds with every fold only)."""
    by_seed: dict[int, list[dict]] = {}
    for c in checks:
        if step in c["steps"]:
            by_seed.setdefault(c["arm"]["seed"], []).append(c["steps"][step])
    out = {}
    for seed, folds in sorted(by_seed.items()):
        if len(folds) == k:
            labels = {n: balanced_accuracy(c) for n, c in summed_confusions(folds).items()}
            out[seed] = {"mean": float(np.mean(list(labels.values()))), "labels": labels}
    return out


def _pseudo_rows(what: str, checks: list[dict]) -> list[str]:
    rows = []
    for label in dict.fromkeys(n for c in checks for n in c.get("pseudo_labels", {})):  # label order of the schema
        per_seed: dict[int, list] = {}
        for c in checks:
            if label in c.get("pseudo_labels", {}):
                per_seed.setdefault(c["arm"]["seed"], []).append(c["pseudo_labels"][label]["confusion"])
        right = [balanced_accuracy(np.sum(v, axis=0)) for v in per_seed.values()]
        aucs = [c["pseudo_labels"][label]["auroc"] for c in checks
                if label in c.get("pseudo_labels", {}) and c["pseudo_labels"][label]["auroc"] is not None]
        total = np.sum([m for v in per_seed.values() for m in v], axis=0)
        rows.append(f"| {what} | {label} | {fmt([r for r in right if r is not None])} | "
                    f"{f'{np.mean(aucs):.2f} (n={len(aucs)})' if aucs else '-'} | {'/'.join(map(str, total.sum(axis=0)))} | "
                    f"{'/'.join(map(str, total.sum(axis=1)))} |")
    return rows
