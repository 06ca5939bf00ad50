"""Train a recording model from a Label Studio export: `python -m training.fit ...` or `fit(config)`.

A run directory holds: config.json, split.json, log.jsonl, checkpoints/, metrics.json, model.pt
(final weights + config), model.onnx (with recmeta incl. per-head temperatures fitted on validation)
and report.html. Works under `torchrun --nproc_per_node K` (rank 0 writes the files).
Allocator: on our 2-core machines glibc malloc trained ~1.5x faster than jemalloc (docs/training.md,
benchmarks/train_speed.py), so training does not preload jemalloc.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from training.calibration import fit_temperatures
from training.config import DataConfig, FitConfig, ModelConfig, RecipeConfig
from training.dataset import RecordingDataset, load_recordings, subsample_labels
from training.distributed import DistContext, barrier, gather, init_distributed, shutdown
from training.export_reader import problem_report, read_export
from training.metrics import evaluate
from training.models.recording_model import RecordingModel, StlEnsemble
from training.recipe import RecipeData, RunLog, run_recipe, trained_heads
from training.schema import LabelSchema, load_label_config
from training.trainer import predict_logits, softmax


def build_model(schema: LabelSchema, model_cfg: ModelConfig, frames: int) -> RecordingModel:
    heads = {spec.name: len(spec.classes) for spec in schema.labels}
    return RecordingModel(heads, kind=model_cfg.kind, frames=frames, width=model_cfg.width,
                          fusion=model_cfg.fusion, shared_dim=model_cfg.hidden, dropout=model_cfg.dropout)


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


def _warm_start(path: str):
    """A previous model.pt as (backbones {label: state}, heads {label: state}), keyed by label name.

    Heads are matched by label NAME, never by position, so a changed labeling config (labels added,
    removed or reordered) cannot hand one label's head to another."""
    blob = torch.load(path, map_location="cpu", weights_only=False)
    names = [spec["name"] for spec in blob["schema"]["labels"]]
    state = blob["state_dict"]
    if blob["config"]["model"]["mode"] == "stl":
        parts = {n: _strip(state, f"models.{i}.") for i, n in enumerate(names)}
        return ({n: _without_heads(p) for n, p in parts.items()},
                {n: _strip(p, "heads.0.") for n, p in parts.items()})
    shared = _without_heads(state)
    return {n: shared for n in names}, {n: _strip(state, f"heads.{i}.") for i, n in enumerate(names)}


def _strip(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _without_heads(state: dict) -> dict:
    return {k: v for k, v in state.items() if not k.startswith("heads.")}


def _init_weights(model: RecordingModel, warm, say) -> None:
    """Copy the warm-start tensors whose names and shapes fit `model`; say what was left out."""
    backbones, heads = warm
    source = next((backbones[n] for n in model.head_names if n in backbones), next(iter(backbones.values())))
    wanted = dict(source)
    for i, name in enumerate(model.head_names):
        wanted.update({f"heads.{i}.{k}": v for k, v in heads.get(name, {}).items()})
    own = model.state_dict()
    usable = {k: v for k, v in wanted.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(usable, strict=False)
    new_heads = [n for n in model.head_names if n not in heads]
    say(f"init-from: {len(usable)} of {len(own)} tensors copied"
        + (f"; new heads {new_heads} start fresh" if new_heads else ""))


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
    train_targets = subsample_labels(store.labels, rows["train"], cfg.data.label_fraction, cfg.data.label_fraction_seed)
    data = RecipeData(store, schema, rows["train"], rows["val"], rows["test"], train_targets, store.labels)
    ckpt_dir = run / "checkpoints"
    log = RunLog(run / "log.jsonl", ctx)
    if cfg.model.mode == "mtl":
        model, step_logits, untrained = _fit_mtl(cfg, data, ckpt_dir, log, ctx, resume)
    else:
        model, step_logits, untrained = _fit_stl(cfg, data, ckpt_dir, log, ctx, resume)
    model.eval()
    truth = {s: {n: store.labels[rows[s], i] for i, n in enumerate(schema.names)} for s in ("val", "test")}
    steps = {str(step): {s: _evaluate(schema, truth[s], out[s]) for s in ("val", "test")}
             | {"best_epoch": out["best_epoch"], "wall_s": out["wall_s"]} for step, out in step_logits.items()}
    last = step_logits[max(step_logits)]
    temperatures = {n: 1.0 for n in schema.names}
    if rows["val"]:
        fitted = fit_temperatures(last["val"], truth["val"])
        temperatures.update({n: t for n, t in fitted.items() if n not in untrained})
    metrics = {"val": steps[str(max(step_logits))]["val"], "test": steps[str(max(step_logits))]["test"],
               "steps": steps, "untrained": untrained, "temperatures": temperatures,
               "broken_recordings": [{"recording_id": b.recording_id, "reason": b.reason} for b in store.broken],
               "wall_s": {"total": time.perf_counter() - started}}
    if ctx.is_main:
        _write_outputs(run, cfg, schema, model, metrics, untrained, temperatures, store, rows)
    barrier(ctx)
    say(_summary(metrics))
    return run


def _say(ctx: DistContext):
    return print if ctx.is_main else (lambda *a, **k: None)


def _fit_mtl(cfg, data: RecipeData, ckpt_dir, log, ctx, resume):
    model = build_model(data.schema, cfg.model, cfg.data.frames)
    if cfg.init_from:
        _init_weights(model, _warm_start(cfg.init_from), _say(ctx))
    result = run_recipe(model, data, cfg, ckpt_dir, log, ctx, resume=resume)
    step_logits = {s: {"val": r["val_logits"], "test": r["test_logits"], "best_epoch": r["best_epoch"],
                       "wall_s": r["wall_s"]} for s, r in result.steps.items()}
    return result.model, step_logits, result.untrained


def _fit_stl(cfg, data: RecipeData, ckpt_dir, log, ctx, resume):
    """One model per label (thesis' single-task models), each through the whole recipe."""
    models, step_logits, untrained = {}, {}, []
    warm = _warm_start(cfg.init_from) if cfg.init_from else None
    for col, spec in enumerate(data.schema.labels):
        sub = LabelSchema((spec,), data.schema.object_name, data.schema.value_key)
        sub_data = replace(data, schema=sub, train_targets=data.train_targets[:, [col]], truth=data.truth[:, [col]])
        torch.manual_seed(cfg.recipe.seed + col)
        model = build_model(sub, cfg.model, cfg.data.frames)
        if warm is not None:
            _init_weights(model, warm, _say(ctx))
        if not trained_heads(sub_data):
            untrained.append(spec.name)  # nothing to learn from: an untrained model, marked as such
            results = {s: {"val_logits": _logits(model, data, "val_rows", cfg, ctx),
                           "test_logits": _logits(model, data, "test_rows", cfg, ctx), "best_epoch": None,
                           "wall_s": 0.0} for s in cfg.recipe.steps}
        else:
            sub_log = RunLog(log.path, ctx, label=spec.name)
            result = run_recipe(model, sub_data, cfg, Path(ckpt_dir) / f"{col:02d}", sub_log, ctx, resume=resume)
            model, results = result.model, result.steps
        models[spec.name] = model.cpu()
        for s, r in results.items():
            merged = step_logits.setdefault(s, {"val": {}, "test": {}, "best_epoch": {}, "wall_s": 0.0})
            merged["val"].update(r["val_logits"])
            merged["test"].update(r["test_logits"])
            merged["best_epoch"][spec.name] = r["best_epoch"]
            merged["wall_s"] += r["wall_s"]
    return StlEnsemble(models), step_logits, untrained


def _logits(model, data: RecipeData, which: str, cfg: FitConfig, ctx) -> dict:
    ds = RecordingDataset(data.store, getattr(data, which), data.truth, cfg.data.frames)
    return predict_logits(model.to(ctx.device), ds, cfg.recipe.eval_batch_size, ctx)


def _evaluate(schema, truth, logits) -> dict | None:
    if not logits or not len(next(iter(logits.values()))):
        return None  # an empty split has nothing to score
    return evaluate(schema, truth, softmax(logits))


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
        split = json.loads(Path(cfg.split).read_text(encoding="utf-8"))
        parts = split.get("recordings") if isinstance(split, dict) else None
        if not isinstance(parts, dict) or any(not isinstance(parts.get(s), list) for s in ("train", "val", "test")):
            raise ValueError(f"{cfg.split}: a split needs \"recordings\": {{\"train\": [...], \"val\": [...], "
                             f"\"test\": [...]}} (training.split writes it)")
        return split
    path = run / "split.json"
    split = None
    if ctx.is_main:
        if path.exists():  # a resumed run keeps its split
            split = json.loads(path.read_text(encoding="utf-8"))
        else:
            from training.split import split_subjects

            split = split_subjects(recordings, schema, ratios=cfg.split_ratios, seed=cfg.recipe.seed)
            path.write_text(json.dumps(split, indent=1), encoding="utf-8")
    return gather(split, ctx)[0]  # rank 0's split on every rank


def _fetcher(cfg: FitConfig):
    from training.frame_source import FrameFetcher, FrameSourceConfig

    return FrameFetcher(FrameSourceConfig(label_studio_url=cfg.label_studio_url, api_key=cfg.label_studio_api_key,
                                          document_root=cfg.data_root)).fetch


def _cache_dir(cfg: FitConfig) -> Path | None:
    if not cfg.data.cache_dir:
        return None
    path = Path(cfg.data.cache_dir)
    return path if path.is_absolute() else Path(cfg.out).resolve().parent / path


def _write_outputs(run: Path, cfg: FitConfig, schema, model, metrics, untrained, temperatures, store, rows) -> None:
    from training.onnx_export import export_onnx
    from training.report import write_report

    model = model.cpu().to(memory_format=torch.contiguous_format).eval()
    torch.save({"format": 1, "state_dict": model.state_dict(), "config": cfg.to_dict(), "schema": schema.to_dict(),
                "untrained": untrained, "temperatures": temperatures}, run / "model.pt")
    example_rows = (rows["val"] or rows["train"])[:2]
    example = RecordingDataset(store, example_rows, store.labels, cfg.data.frames)
    frames = torch.stack([example[i][0] for i in range(len(example))])
    mask = torch.stack([example[i][1] for i in range(len(example))])
    meta = {"model_version": run.name, "kind": cfg.model.kind, "mode": cfg.model.mode, "fusion": cfg.model.fusion,
            "schema": schema.to_dict(), "untrained": untrained, "temperatures": temperatures,
            "frames": cfg.data.frames, "image_size": cfg.data.image_size,
            "preprocess": store.preprocess.to_dict(),
            "metrics": {s: (metrics[s] or {}).get("mean_balanced_accuracy") for s in ("val", "test")}}
    export_onnx(model, run / "model.onnx", meta, frames, mask)
    if cfg.int8:
        from training.int8 import quantize_run

        result = quantize_run(run, schema, store, rows, cfg.data.frames)
        metrics["int8"] = result.to_dict() if result else {"kept": False, "reason": "no validation recordings"}
        print(f"int8: {metrics['int8']}")
    (run / "metrics.json").write_text(json.dumps(metrics, indent=1, default=_json_default), encoding="utf-8")
    write_report(run)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _summary(metrics: dict) -> str:
    lines = []
    for split in ("val", "test"):
        m = metrics[split]
        if m is None:
            lines.append(f"{split}: no recordings")
            continue
        lines.append(f"{split}: mean balanced accuracy {m['mean_balanced_accuracy']}")
        for name, lm in m["labels"].items():
            if lm["n"]:
                lines.append(f"  {name}: balanced acc {lm['balanced_accuracy']:.3f} (n={lm['n']})")
    if metrics["untrained"]:
        lines.append(f"untrained (no training labels): {', '.join(metrics['untrained'])}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> tuple[FitConfig, bool]:
    ap = argparse.ArgumentParser(description="Train a recording model (S4L) from a Label Studio export.")
    ap.add_argument("--export", required=True, help="Label Studio export (JSON or JSON_MIN)")
    ap.add_argument("--label-config", help="labeling config XML (default: the repo's label_config.xml)")
    ap.add_argument("--data-root", help="LOCAL_FILES_DOCUMENT_ROOT for /data/local-files/ frame URLs")
    ap.add_argument("--out", required=True, help="run directory")
    ap.add_argument("--split", help="split.json to use (default: computed and written to RUN/split.json)")
    ap.add_argument("--mode", choices=("mtl", "stl"), default=ModelConfig.mode)
    ap.add_argument("--model", choices=("multi", "single"), default=ModelConfig.kind)
    ap.add_argument("--frames", type=int, default=DataConfig.frames)
    ap.add_argument("--image-size", type=int, default=DataConfig.image_size)
    ap.add_argument("--width", type=float, default=ModelConfig.width)
    ap.add_argument("--fusion", choices=("concat", "mean"), default=ModelConfig.fusion)
    ap.add_argument("--epochs-per-step", type=int, default=RecipeConfig.epochs_per_step)
    ap.add_argument("--steps", default="1,2,3", help="S4L steps to run, e.g. 1,2,3 or 3")
    ap.add_argument("--seed", type=int, default=RecipeConfig.seed)
    ap.add_argument("--batch-size", type=int, default=0, help="0 = multi 12 recordings / single 128 frames")
    ap.add_argument("--label-fraction", type=float, default=DataConfig.label_fraction,
                    help="keep this fraction of each label's training annotations (experiments)")
    ap.add_argument("--pseudo-label-threshold", type=float, default=RecipeConfig.pseudo_label_threshold,
                    help="step 2: min. confidence of a pseudo-label (0 = fill every gap)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    ap.add_argument("--resume", action="store_true", help="continue from RUN/checkpoints")
    ap.add_argument("--init-from", help="model.pt whose weights start the training")
    ap.add_argument("--int8", action="store_true",
                    help="also write model.int8.onnx (static QDQ), kept only within 0.5 points of fp32 on val")
    a = ap.parse_args(argv)
    try:
        steps = tuple(int(s) for s in a.steps.split(","))
    except ValueError:
        ap.error(f"--steps must be comma-separated integers, got {a.steps!r}")
    try:
        cfg = _config_from_args(a, steps)
    except ValueError as exc:
        ap.error(str(exc))
    return cfg, a.resume


def _config_from_args(a: argparse.Namespace, steps: tuple[int, ...]) -> FitConfig:
    return FitConfig(
        export=a.export, out=a.out, label_config=a.label_config, data_root=a.data_root, split=a.split,
        init_from=a.init_from, int8=a.int8, label_studio_url=os.environ.get("LABEL_STUDIO_URL"),
        label_studio_api_key=os.environ.get("LABEL_STUDIO_API_KEY"),
        data=DataConfig(frames=a.frames, image_size=a.image_size, label_fraction=a.label_fraction),
        model=ModelConfig(kind=a.model, mode=a.mode, width=a.width, fusion=a.fusion),
        recipe=RecipeConfig(steps=steps, epochs_per_step=a.epochs_per_step, seed=a.seed, batch_size=a.batch_size,
                            pseudo_label_threshold=a.pseudo_label_threshold, num_threads=a.threads,
                            progress=not a.no_progress),
    )


def main(argv: list[str] | None = None) -> None:
    cfg, resume = parse_args(argv)
    fit(cfg, resume=resume)


if __name__ == "__main__":
    main()
