"""Train a recording model from a Label Studio export: `python -m training.fit ...` (flags: training/fit_cli.py)
or `fit(config)`.

A run directory holds: config.json, split.json, log.jsonl, checkpoints/, metrics.json, model.pt
(final weights + config), model.onnx (with recmeta incl. per-head temperatures fitted on validation)
and report.html. Works under `torchrun --nproc_per_node K` (rank 0 writes the files).
Allocator: on 2 CPU cores glibc malloc trained ~1.5x faster than jemalloc (docs/training.md,
benchmarks/train_speed.py), so training does not preload jemalloc.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from training.calibration import fit_temperatures
from training.config import FitConfig, ModelConfig
from training.dataset import RecordingDataset, label_counts, load_recordings, subsample_labels
from training.distributed import DistContext, barrier, gather, init_distributed, shutdown
from training.export_reader import problem_report, read_export
from training.fit_split import compute_split, read_split
from training.label_quality import quality_table, single_class_labels
from training.models.recording_model import RecordingModel, StlEnsemble
from training.recipe import RecipeData, RunLog, predict, run_recipe, trained_heads
from training.run_outputs import summary_text, write_outputs
from training.schema import LabelSchema, load_label_config
from training.served_heads import evaluate_logits, serve_better_heads
from training.warm_start import init_weights, read_warm_start, seen_label_counts


def build_model(schema: LabelSchema, model_cfg: ModelConfig, frames: int) -> RecordingModel:
    heads = {spec.name: len(spec.classes) for spec in schema.labels}
    return RecordingModel(heads, kind=model_cfg.kind, frames=frames, width=model_cfg.width,
                          fusion=model_cfg.fusion, shared_dim=model_cfg.hidden, dropout=model_cfg.dropout,
                          stages=model_cfg.stages, embed_dim=model_cfg.embed_dim)


def load_model(path: str | Path) -> torch.nn.Module:
    """Rebuild the final model written to RUN/model.pt (eval mode)."""
    blob = torch.load(path, map_location="cpu", weights_only=False)
    cfg = FitConfig.from_dict(blob["config"])
    schema = LabelSchema.from_dict(blob["schema"])
    model = _empty_model(schema, cfg)
    model.load_state_dict(blob["state_dict"])
    return model.eval()


def _empty_model(schema: LabelSchema, cfg: FitConfig) -> torch.nn.Module:
    if cfg.model.mode == "mtl":
        return build_model(schema, cfg.model, cfg.data.frames)
    return StlEnsemble({s.name: build_model(LabelSchema((s,)), cfg.model, cfg.data.frames) for s in schema.labels})


def fit(cfg: FitConfig, *, resume: bool = False) -> Path:
    """Run the whole training (S4L steps, calibration, ONNX export, report); return the run dir."""
    ctx = init_distributed()
    try:
        return _fit(cfg, resume, ctx)
    finally:
        shutdown(ctx)


def _fit(cfg: FitConfig, resume: bool, ctx: DistContext) -> Path:
    started = time.perf_counter()
    run = Path(cfg.out)
    say = _say(ctx)
    if cfg.recipe.num_threads:
        torch.set_num_threads(cfg.recipe.num_threads)
    torch.backends.cudnn.benchmark = False  # deterministic where it is cheap (GPU runs)
    torch.backends.cudnn.deterministic = True
    _write_config(run, cfg, resume, ctx)
    schema = load_label_config(cfg.label_config)
    export = read_export(cfg.export, schema)
    if export.problems and ctx.is_main:
        lines = list(problem_report(export.problems))
        (run / "export_problems.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        say(f"export: {lines[-1]} (all in {run / 'export_problems.txt'})", file=sys.stderr)
    split = _split(cfg, run, export.recordings, schema, ctx)
    source = json.dumps([str(Path(cfg.data_root).resolve()) if cfg.data_root else None, cfg.label_studio_url])
    store = load_recordings(export.recordings, schema, cfg.data, _fetcher(cfg), _cache_dir(cfg),
                            source=source, progress=cfg.recipe.progress and ctx.is_main)
    for b in store.broken:
        say(f"left out recording {b.recording_id}: {b.reason}", file=sys.stderr)
    rows = {name: store.rows(split["recordings"][name]) for name in ("train", "val", "test")}
    unsplit = len(store.recording_ids) - sum(len(r) for r in rows.values())
    say(f"recordings: {len(store.recording_ids)} usable, {len(store.broken)} left out; "
        f"train {len(rows['train'])} / val {len(rows['val'])} / test {len(rows['test'])}"
        + (f"; {unsplit} in no split (unused)" if unsplit else ""))
    fraction_seed = cfg.recipe.seed if cfg.data.label_fraction_seed is None else cfg.data.label_fraction_seed
    train_targets = subsample_labels(store.labels, rows["train"], cfg.data.label_fraction, fraction_seed,
                                     cfg.data.label_fraction_per_class)
    training_labels = label_counts(schema, train_targets, rows["train"])
    for name, counts in training_labels.items():
        say(f"training labels of {name}: " + ", ".join(f"{c} {n}" for c, n in counts.items()))
    data = RecipeData(store, schema, rows["train"], rows["val"], rows["test"], train_targets, store.labels)
    ckpt_dir = run / "checkpoints"
    log = RunLog(run / "log.jsonl", ctx)
    if cfg.model.mode == "mtl":
        model, step_logits, final, untrained = _fit_mtl(cfg, data, ckpt_dir, log, ctx, resume)
    else:
        model, step_logits, final, untrained = _fit_stl(cfg, data, ckpt_dir, log, ctx, resume)
    model.eval()
    truth = {s: {n: store.labels[rows[s], i] for i, n in enumerate(schema.names)} for s in ("val", "test")}
    if cfg.test_truth:  # scoring only: training, model selection and head choice never see it
        truth["test"] = truth_csv_labels(cfg.test_truth, schema, store, rows["test"])
    steps = {str(step): {s: evaluate_logits(schema, truth[s], out[s]) for s in ("val", "test")}
             | {"best_epoch": out["best_epoch"], "wall_s": out["wall_s"]} for step, out in step_logits.items()}
    served = serve_better_heads(cfg, data, rows, model, final, truth, ctx)
    seen = seen_label_counts(training_labels, cfg.init_from)  # a warm start keeps what it was trained on
    untrained = [n for n in untrained if served.serving[n] == "network" and not sum(seen[n].values())]
    temperatures = {n: 1.0 for n in schema.names}
    if rows["val"]:
        fitted = fit_temperatures(served.logits["val"], truth["val"])
        temperatures.update({n: t for n, t in fitted.items() if n not in untrained})
    single_class = single_class_labels(seen)
    if single_class:
        say(f"never served (training annotations hold one class only): {', '.join(single_class)}", file=sys.stderr)
    quality = quality_table(schema, truth["val"], served.logits["val"],
                            [store.subject_ids[r] for r in rows["val"]], seen, seed=cfg.recipe.seed)
    metrics = {"val": evaluate_logits(schema, truth["val"], served.logits["val"]),
               "test": evaluate_logits(schema, truth["test"], served.logits["test"]), "serving": served.serving,
               **served.metrics, "training_labels": training_labels, "seen_labels": seen, "quality": quality,
               "single_class": single_class,
               "final_step": final["step"], "steps": steps, "untrained": untrained, "temperatures": temperatures,
               "broken_recordings": [{"recording_id": b.recording_id, "reason": b.reason} for b in store.broken],
               "wall_s": {"total": time.perf_counter() - started}}
    if ctx.is_main:
        write_outputs(run, cfg, schema, model, served.model, metrics, untrained, temperatures, store, rows)
    barrier(ctx)
    say(summary_text(metrics))
    return run


def truth_csv_labels(path: str, schema: LabelSchema, store, rows: list[int]) -> dict[str, np.ndarray]:
    """{label: class indices of the test rows} from a truth CSV (training.evaluate's format); -1 = unknown."""
    from training.evaluate import read_truth_csv

    known = read_truth_csv(path, schema)
    ids = [store.recording_ids[r] for r in rows]
    return {spec.name: np.array([spec.classes.index(known[i][spec.name]) if spec.name in known.get(i, {}) else -1
                                 for i in ids], dtype=np.int64) for spec in schema.labels}


def _say(ctx: DistContext):
    return print if ctx.is_main else (lambda *a, **k: None)


def _fit_mtl(cfg, data: RecipeData, ckpt_dir, log, ctx, resume):
    model = build_model(data.schema, cfg.model, cfg.data.frames)
    if cfg.init_from:
        init_weights(model, read_warm_start(cfg.init_from), _say(ctx))
    result = run_recipe(model, data, cfg, ckpt_dir, log, ctx, resume=resume)
    step_logits = {s: {"val": r["val_logits"], "test": r["test_logits"], "best_epoch": r["best_epoch"],
                       "wall_s": r["wall_s"]} for s, r in result.steps.items()}
    final = {**step_logits[result.final_step], "step": result.final_step}
    return result.model, step_logits, final, result.untrained


def _fit_stl(cfg, data: RecipeData, ckpt_dir, log, ctx, resume):
    """One model per label (thesis' single-task models), each through the whole recipe."""
    models, step_logits, untrained = {}, {}, []
    final = {"val": {}, "test": {}, "step": {}}  # each label's model ends at its own final step
    warm = read_warm_start(cfg.init_from) if cfg.init_from else None
    for col, spec in enumerate(data.schema.labels):
        sub = LabelSchema((spec,), data.schema.object_name, data.schema.value_key)
        sub_data = replace(data, schema=sub, train_targets=data.train_targets[:, [col]], truth=data.truth[:, [col]])
        torch.manual_seed(cfg.recipe.seed + col)
        model = build_model(sub, cfg.model, cfg.data.frames)
        if warm is not None:
            init_weights(model, warm, _say(ctx))
        if not trained_heads(sub_data):
            untrained.append(spec.name)  # nothing to learn from: an untrained model, marked as such
            results = {s: {"val_logits": _logits(model, data, "val_rows", cfg, ctx),
                           "test_logits": _logits(model, data, "test_rows", cfg, ctx), "best_epoch": None,
                           "wall_s": 0.0} for s in cfg.recipe.steps}
            last = cfg.recipe.steps[-1]
        else:
            sub_log = RunLog(log.path, ctx, label=spec.name)
            result = run_recipe(model, sub_data, cfg, Path(ckpt_dir) / f"{col:02d}", sub_log, ctx, resume=resume)
            model, results, last = result.model, result.steps, result.final_step
        models[spec.name] = model.cpu()
        final["val"].update(results[last]["val_logits"])
        final["test"].update(results[last]["test_logits"])
        final["step"][spec.name] = last
        for s, r in results.items():
            merged = step_logits.setdefault(s, {"val": {}, "test": {}, "best_epoch": {}, "wall_s": 0.0})
            merged["val"].update(r["val_logits"])
            merged["test"].update(r["test_logits"])
            merged["best_epoch"][spec.name] = r["best_epoch"]
            merged["wall_s"] += r["wall_s"]
    return StlEnsemble(models), step_logits, final, untrained


def _logits(model, data: RecipeData, which: str, cfg: FitConfig, ctx) -> dict:
    ds = RecordingDataset(data.store, getattr(data, which), data.truth, cfg.data.frames)
    return predict(model.to(ctx.device), ds, cfg, ctx)


def _write_config(run: Path, cfg: FitConfig, resume: bool, ctx: DistContext) -> None:
    path = run / "config.json"
    if resume and path.exists():
        saved = FitConfig.from_json(path.read_text(encoding="utf-8"))
        if saved.to_dict() != cfg.to_dict():
            diff = sorted(k for k in cfg.to_dict() if cfg.to_dict()[k] != saved.to_dict()[k])
            raise ValueError(f"--resume: {path} differs from this run's configuration in {diff}")
    elif not resume and (run / "checkpoints").exists() and any((run / "checkpoints").iterdir()):
        raise ValueError(f"{run} already holds checkpoints; pass --resume to continue, or use a new --out")
    if ctx.is_main:
        run.mkdir(parents=True, exist_ok=True)
        path.write_text(cfg.to_json() + "\n", encoding="utf-8")
    barrier(ctx)
    torch.manual_seed(cfg.recipe.seed)
    np.random.seed(cfg.recipe.seed)


def _split(cfg: FitConfig, run: Path, recordings, schema, ctx: DistContext) -> dict:
    if cfg.split:
        return read_split(cfg.split)
    path = run / "split.json"
    split = None
    if ctx.is_main:
        if path.exists():  # a resumed run keeps its split
            split = json.loads(path.read_text(encoding="utf-8"))
        else:
            split = compute_split(cfg, recordings, schema, _fetcher(cfg))
            path.write_text(json.dumps(split, indent=1), encoding="utf-8")
    return gather(split, ctx)[0]  # rank 0's split on every rank


def _fetcher(cfg: FitConfig):
    from training.frame_source import FrameFetcher, FrameSourceConfig, allowed_hosts_from_env

    return FrameFetcher(FrameSourceConfig(label_studio_url=cfg.label_studio_url, api_key=cfg.label_studio_api_key,
                                          document_root=cfg.data_root, allowed_hosts=allowed_hosts_from_env())).fetch


def _cache_dir(cfg: FitConfig) -> Path | None:
    if not cfg.data.cache_dir:
        return None
    path = Path(cfg.data.cache_dir)
    return path if path.is_absolute() else Path(cfg.out).resolve().parent / path


def main(argv: list[str] | None = None) -> None:
    from training.fit_cli import parse_args

    cfg, resume = parse_args(argv)
    fit(cfg, resume=resume)


if __name__ == "__main__":
    main()
