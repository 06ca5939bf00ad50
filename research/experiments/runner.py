"""Running the grid: the shared split, one FitConfig per arm, training, and truth.csv scoring of the test split."""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from training.atomic_write import write_text_atomic
from training.config import AugmentConfig, BaselineConfig, DataConfig, FitConfig, LossConfig, ModelConfig, RecipeConfig
from training.evaluate import load_recording, read_truth_csv
from training.export_reader import read_export, recording_id_of
from training.frame_source import FrameFetcher, FrameSourceConfig
from training.metrics import evaluate, expected_calibration_error, reliability_bins
from training.schema import load_label_config

from .arms import CV_FOLDS, DATA_ROOT, QUICK, S4L_ARMS, Arm, BenchSettings, bench_paths, plan, settings_for
from .run_inputs import truth_matrix


def make_split(bench: str, paths: dict, settings: BenchSettings) -> dict:
    """training.split (seed 0) over the whole export; optionally keep a seeded subsample of training subjects."""
    from training.split import split_subjects

    schema = load_label_config(paths["label_config"])
    recordings = read_export(paths["export"], schema).recordings
    split = split_subjects(recordings, schema, seed=0)
    if settings.max_train_recordings and len(split["recordings"]["train"]) > settings.max_train_recordings:
        subject_of = {r.recording_id: r.subject_id for r in recordings}
        rng = np.random.default_rng(0)
        kept, subjects = [], []
        for subject in rng.permutation(split["subjects"]["train"]):
            if len(kept) >= settings.max_train_recordings:
                break
            subjects.append(str(subject))
            kept += [r for r in split["recordings"]["train"] if subject_of[r] == subject]
        split["note"] = (f"training subsample: {len(subjects)} of {len(split['subjects']['train'])} training "
                         f"subjects ({len(kept)} recordings), seed 0")
        split["subjects"]["train"], split["recordings"]["train"] = sorted(subjects), sorted(kept)
    return split


def cv_split(bench: str, paths: dict, fold: int, out: Path) -> tuple[dict, Path]:
    """(split dict, its path) of cross-validation split `fold`; all k are written on first use."""
    path = out / bench / f"split_cv{fold}.json"
    if not path.exists():
        from training.folds import cross_validation_splits

        schema = load_label_config(paths["label_config"])
        recordings = read_export(paths["export"], schema).recordings
        for f, doc in enumerate(cross_validation_splits(recordings, schema, k=CV_FOLDS[bench])):
            # parallel grid workers: whole files only
            write_text_atomic(out / bench / f"split_cv{f}.json", json.dumps(doc, indent=1), fsync=False)
    return json.loads(path.read_text(encoding="utf-8")), path


def pool_inputs(bench: str, paths: dict, settings: BenchSettings, split: dict, out: Path, work: Path
                ) -> tuple[dict, Path]:
    """(paths with a derived export, split path) for Arm.pool "all": every training subject of the full split
    trains, but only the subsample's recordings keep their annotations (the others' are removed)."""
    split_path = out / bench / "split_allpool.json"
    export_path = work / bench / "export_allpool.json"
    if not split_path.exists():
        full = make_split(bench, paths, replace(settings, max_train_recordings=0))
        full["note"] = (f"every training subject; only the {len(split['recordings']['train'])} recordings of "
                        f"split.json's training subsample keep their annotations (Arm.pool 'all')")
        split_path.write_text(json.dumps(full, indent=1), encoding="utf-8")
    if not export_path.exists():
        labelled = set(split["recordings"]["train"]) | set(split["recordings"]["val"]) | set(split["recordings"]["test"])
        tasks = json.loads(Path(paths["export"]).read_text(encoding="utf-8"))
        for pos, task in enumerate(tasks):  # read_export's id rule: unreadable tasks it skips anyway
            if recording_id_of(task.get("id", pos), task.get("data") or {}) not in labelled:
                task["annotations"], task["drafts"], task["predictions"] = [], [], []
        export_path.parent.mkdir(parents=True, exist_ok=True)
        export_path.write_text(json.dumps(tasks), encoding="utf-8")
    return {**paths, "export": export_path}, split_path


def fit_config(arm: Arm, settings: BenchSettings, paths: dict, split_path: Path, run_dir: Path,
               threads: int) -> FitConfig:
    k = arm.epochs or settings.epochs_per_step
    loss_changes, recipe_changes = S4L_ARMS.get(arm.recipe, ({}, {}))
    # the grid measures the recipe as its tables were run: thesis label weights, plain Adam, the network alone
    loss = replace(LossConfig(label_weight_power=1.0), **loss_changes)
    # the thesis's final model unless the arm changes it (the arms' summaries stay valid whatever the default)
    recipe_changes = {"steps": (1, 2, 3), "final_model": "last_step", **recipe_changes}
    recipe = RecipeConfig(epochs_per_step=k, seed=arm.seed, batch_size=settings.batch_size, weight_decay=0.0,
                          num_threads=threads, progress=False, **recipe_changes)
    if arm.recipe == "supervised":  # step 3 alone = supervised CE without the unsupervised passes
        recipe = replace(recipe, steps=(3,), epochs_per_step=3 * k, finetune_lr=recipe.lr,
                         finetune_min_lr_fraction=recipe.min_lr_fraction)
    data = DataConfig(frames=settings.frames, image_size=arm.image_size or settings.image_size, label_fraction=arm.fraction,
                      label_fraction_seed=arm.seed, label_fraction_per_class=arm.labels == "per_class",
                      max_preload_frames=arm.frame_pool or max(settings.frames, 1), augment=AugmentConfig(enabled=arm.augment),
                      cache_dir=str(run_dir.parent.parent / "cache"))
    # the encoder these tables were measured with: all 7 MobileNetV2 stages, its 1280-wide embedding
    model = ModelConfig(kind=arm.kind, mode=arm.mode, width=settings.width, stages=7, embed_dim=0, fusion=arm.fusion)
    return FitConfig(export=str(paths["export"]), out=str(run_dir), label_config=str(paths["label_config"]),
                     data_root=str(paths["data_root"]), split=str(split_path), data=data,
                     model=model, loss=loss, recipe=recipe, baseline=BaselineConfig(enabled=False))


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def score_test(model_path: Path, paths: dict, split: dict) -> dict:
    """truth.csv metrics of the test recordings at the fitted temperatures; ECE and reliability at T and T=1."""
    from training.onnx_runner import OnnxRecordingModel

    model = OnnxRecordingModel(model_path)
    schema = model.schema
    wanted = set(split["recordings"]["test"])
    recordings = [r for r in read_export(paths["export"], schema, propagate=False).recordings if r.recording_id in wanted]
    truth = read_truth_csv(paths["truth"], schema)
    fetch = FrameFetcher(FrameSourceConfig(document_root=str(paths["data_root"]))).fetch
    logits: dict[str, list] = {n: [] for n in schema.names}
    for rec in recordings:
        frames, mask = load_recording(rec.frames, model, fetch)
        for n, z in model.predict_logits(frames[None], mask[None]).items():
            logits[n].append(z[0])
    known = truth_matrix(truth, schema, [r.recording_id for r in recordings])
    y = {n: known[:, i] for i, n in enumerate(schema.names)}
    temps = model.temperatures
    out = {"n_recordings": len(recordings), "temperatures": temps, "calibration": {}}
    for name, t_of in (("fitted", temps), ("t1", {n: 1.0 for n in schema.names})):
        probs = {n: softmax(np.stack(z) / t_of[n]) for n, z in logits.items()}
        out["metrics" if name == "fitted" else "metrics_t1"] = evaluate(schema, y, probs)
        out["calibration"][name] = {n: {"ece": expected_calibration_error(probs[n], y[n]),
                                        "bins": reliability_bins(probs[n], y[n], bins=10)} for n in schema.names}
    return out


def run_arm(arm: Arm, bench: str, settings: BenchSettings, paths: dict, split: dict, out: Path, work: Path,
            threads: int) -> dict:
    """Train + score one arm unless its summary exists; return the summary."""
    from training.fit import fit

    summary_path = out / bench / "runs" / f"{arm.run_id}.json"
    if summary_path.exists():
        return json.loads(summary_path.read_text(encoding="utf-8"))
    run_dir = work / bench / "runs" / arm.run_id
    fit_paths, split_path = paths, out / bench / "split.json"
    if arm.pool == "all":
        fit_paths, split_path = pool_inputs(bench, paths, settings, split, out, work)
    if arm.fold >= 0:
        split, split_path = cv_split(bench, paths, arm.fold, out)
    cfg = fit_config(arm, settings, fit_paths, split_path, run_dir, threads)
    started = time.perf_counter()
    if not (run_dir / "metrics.json").exists():
        fit(cfg, resume=(run_dir / "checkpoints").exists())
    train_s = time.perf_counter() - started
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    summary = {"bench": bench, "arm": asdict(arm), "run_id": arm.run_id, "config": cfg.to_dict(),
               "wall_s": round(metrics["wall_s"]["total"], 1), "steps": metrics["steps"],
               "final_step": metrics.get("final_step"),
               "untrained": metrics["untrained"], "test": score_test(run_dir / "model.onnx", paths, split),
               "command": command_for(bench, arm, out, paths["data_root"]), "fit_s_this_call": round(train_s, 1),
               "machine": machine_facts()}
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summary, indent=1)
    summary_path.write_text(text, encoding="utf-8")
    return json.loads(text)  # the same document a later, skipping call returns


def machine_facts() -> dict:
    """What the run's figures depend on besides its config: the same seeds gave different runs on another CPU
    (float rounding of the kernels torch picks for it)."""
    import platform

    import torch

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cpus": os.cpu_count(), "torch": torch.__version__,
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability()}


def command_for(bench: str, arm: Arm, out: Path, data_root: Path = DATA_ROOT) -> str:
    root = "" if data_root == DATA_ROOT else f" --data-root {data_root}"  # a derived benchmark (e.g. face crops)
    return f"python -m research.experiments --bench {bench} --out {out}{root} --only {arm.run_id}"


def run_bench(bench: str, out: Path, work: Path, seeds: tuple[int, ...], quick: bool, only: set[str] | None,
              threads: int, data_root: Path = DATA_ROOT, overrides: dict | None = None) -> list[dict]:
    try:
        settings = replace(settings_for(bench), **{**(overrides or {}), **(QUICK if quick else {})})
    except TypeError as exc:
        raise SystemExit(f"--settings: {exc} (fields: {', '.join(BenchSettings.__dataclass_fields__)})") from exc
    paths = bench_paths(bench, data_root)
    split_path = out / bench / "split.json"
    if split_path.exists():
        split = json.loads(split_path.read_text(encoding="utf-8"))
    else:
        split = make_split(bench, paths, settings)
        split_path.parent.mkdir(parents=True, exist_ok=True)
        split_path.write_text(json.dumps(split, indent=1), encoding="utf-8")
    (out / bench / "settings.json").write_text(json.dumps({"settings": asdict(settings), "quick": quick}, indent=1),
                                               encoding="utf-8")
    done = []
    for arm in plan(bench, seeds):
        if only and arm.run_id not in only:
            continue
        print(f"[{time.strftime('%H:%M:%S')}] {bench} {arm.run_id}", flush=True)
        done.append(run_arm(arm, bench, settings, paths, split, out, work, threads))
    return done
