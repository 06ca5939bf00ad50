"""S4L MOAM recipe (thesis 3.2): the three training steps around the epoch loop.

Step 1: supervised masked CE (class + label weights) + EntMin + VAT + rotation, Adam with cosine
decay restarts (EntMin and VAT optionally ramped up: training/rampup.py). Step 2: the best step-1
epoch (validation mean balanced accuracy) pseudo-labels every missing label (pseudo_labels.py),
then step 1's training again on true + pseudo labels, continuing from the best step-1 weights.
Step 3: fine-tune on true labels only, supervised loss only, lr 5e-4 decaying to 1/10. Each step
starts a fresh Adam and cosine cycle from the best weights of the step before; the final model is
the best epoch of the last step run, or with `final_model="best_step"` the best validation epoch of
any step (ties: the later step). A run whose steps do not start with 1 (e.g. `--steps 2,3
--init-from model.pt`) pseudo-labels with the model it starts from.

Every epoch is checkpointed (RUN/checkpoints/step{s}_epoch{e}.pt); `resume=True` continues after
the newest one. Each epoch reseeds from (seed, step, epoch), so a resumed run repeats the
uninterrupted one. When a step ends, its checkpoints other than the best and the last are removed.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.batch_feed import feed
from training.config import FitConfig
from training.dataset import FrameDataset, RecordingDataset, RecordingStore
from training.distributed import DistContext, barrier, wrap
from training.losses import imbalance_weights
from training.metrics import evaluate
from training.precise_bn import recompute_bn_stats
from training.precision import resolve_precision
from training.pseudo_labels import make_pseudo_labels
from training.rampup import ramp_scales
from training.schema import LabelSchema
from training.trainer import (
    S4LObjective, checkpoint_path, clean_forward, latest_checkpoint, load_checkpoint, predict_logits,
    save_checkpoint, seed_everything, softmax, stats_loader, train_epoch, train_loader,
)


@dataclass
class RecipeData:
    """What one recipe run learns from; label columns follow `schema` (a sub-schema in STL mode)."""

    store: RecordingStore
    schema: LabelSchema
    train_rows: list[int]
    val_rows: list[int]
    test_rows: list[int]
    train_targets: np.ndarray  # [R, L] training labels (label fraction applied), -1 = missing
    truth: np.ndarray  # [R, L] every known label, for validation / test scoring


@dataclass
class RecipeResult:
    model: nn.Module  # weights of the best epoch of `final_step`
    final_step: int  # the step whose best epoch the model is (RecipeConfig.final_model)
    steps: dict[int, dict]  # step -> {"best_epoch", "val_score", "val_logits", "test_logits", "wall_s", ...}
    untrained: list[str]  # heads without any training label: they learned nothing


class RunLog:
    """Appends one JSON line per event to RUN/log.jsonl (rank 0 only)."""

    def __init__(self, path: Path, ctx: DistContext, **extra):
        self.path, self.ctx, self.extra = Path(path), ctx, extra

    def write(self, record: dict) -> None:
        if self.ctx.is_main:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({**record, **self.extra}) + "\n")


def trained_heads(data: RecipeData) -> list[str]:
    have = (data.train_targets[data.train_rows] >= 0).any(axis=0)
    return [name for name, ok in zip(data.schema.names, have) if ok]


def run_recipe(model: nn.Module, data: RecipeData, cfg: FitConfig, ckpt_dir: Path, log: RunLog,
               ctx: DistContext, *, resume: bool = False) -> RecipeResult:
    """Train `model` through cfg.recipe.steps; checkpoints go to `ckpt_dir`, epochs to `log`."""
    rc = cfg.recipe
    trained = trained_heads(data)
    if not trained:
        raise ValueError(f"no label of {list(data.schema.names)} has an annotation in the training split")
    model.to(ctx.device)
    if rc.channels_last:
        model.to(memory_format=torch.channels_last)
    latest = latest_checkpoint(ckpt_dir) if resume else None
    blob = load_checkpoint(latest) if latest else None
    state = blob["recipe_state"] if blob else {"best": {}}
    val = RecordingDataset(data.store, data.val_rows, data.truth, cfg.data.frames)
    test = RecordingDataset(data.store, data.test_rows, data.truth, cfg.data.frames)
    steps: dict[int, dict] = {}
    for step in rc.steps:
        started = time.perf_counter()
        done = blob is not None and (step < blob["step"] or (step == blob["step"] and blob["epoch"] >= rc.epochs_per_step))
        if not done:
            targets = data.train_targets
            extra = {}
            if step == 2:
                targets, extra = _pseudo_labelled(model, data, cfg, trained, ctx)
            own = blob if blob is not None and step == blob["step"] else None
            _train_step(model, data, val, cfg, step, targets, trained, state, own, ckpt_dir, log, ctx)
            log.write({"phase": "step", "step": step, **extra})
        best = state["best"][str(step)]
        _load_best(model, ckpt_dir, step, state)
        barrier(ctx)  # every rank has read the best weights before rank 0 prunes
        if ctx.is_main:
            _prune(ckpt_dir, step, keep={best["epoch"], rc.epochs_per_step})
        steps[step] = {
            "best_epoch": best["epoch"], "val_score": best["score"], "wall_s": time.perf_counter() - started,
            "val_logits": predict(model, val, cfg, ctx),
            "test_logits": predict(model, test, cfg, ctx),
        }
    final = final_step(state["best"], rc.steps, rc.final_model)
    if final != rc.steps[-1]:  # the loop ends holding the last step's best weights
        _load_best(model, ckpt_dir, final, state)
    log.write({"phase": "final", "step": final, "rule": rc.final_model})
    return RecipeResult(model=model, final_step=final, steps=steps,
                        untrained=[n for n in data.schema.names if n not in trained])


def predict(model: nn.Module, dataset: RecordingDataset, cfg: FitConfig, ctx: DistContext) -> dict:
    """Eval-mode logits of `dataset` at the run's precision, batches fed as in training."""
    return predict_logits(model, dataset, cfg.recipe.eval_batch_size, ctx,
                          precision=resolve_precision(cfg.recipe.precision, ctx.device),
                          workers=cfg.data.loader_workers)


def _load_best(model: nn.Module, ckpt_dir: Path, step: int, state: dict) -> None:
    """Load the weights of `step`'s best epoch (its checkpoint survives the pruning)."""
    epoch = state["best"][str(step)]["epoch"]
    model.load_state_dict(load_checkpoint(checkpoint_path(ckpt_dir, step, epoch))["model"])


def final_step(best: dict, steps: tuple[int, ...], rule: str) -> int:
    """The step whose best epoch ends the run: the last one, or ("best_step") the one with the best validation
    score (a step without a score ranks lowest; ties go to the later step)."""
    if rule == "last_step":
        return steps[-1]
    return max(reversed(steps), key=lambda s: _rank(best[str(s)]["score"]))


def _pseudo_labelled(model, data: RecipeData, cfg: FitConfig, trained, ctx) -> tuple[np.ndarray, dict]:
    """Training targets with the missing labels of the training rows filled by `model` (eval mode)."""
    rows = data.train_rows
    ds = RecordingDataset(data.store, rows, data.train_targets, cfg.data.frames)
    probs = softmax(predict(model, ds, cfg, ctx))
    pseudo = make_pseudo_labels(data.train_targets[rows], probs, data.schema.names,
                                threshold=cfg.recipe.pseudo_label_threshold, trained=set(trained))
    targets = data.train_targets.copy()
    targets[rows] = pseudo.targets
    return targets, {"pseudo_labels": pseudo.counts(data.schema.names)}


def _train_step(model, data: RecipeData, val: RecordingDataset, cfg: FitConfig, step: int, targets: np.ndarray,
                trained, state: dict, blob: dict | None, ckpt_dir: Path, log: RunLog, ctx: DistContext) -> None:
    """Epochs of one S4L step; `blob` is this step's checkpoint to continue from (resume), else None."""
    rc, kind = cfg.recipe, cfg.model.kind
    if kind == "multi":
        train_ds = RecordingDataset(data.store, data.train_rows, targets, cfg.data.frames,
                                    jitter=cfg.data.jitter, seed=rc.seed)
    else:
        train_ds = FrameDataset(data.store, data.train_rows, targets)
    frames_per_item = 1.0 if kind == "multi" else len(train_ds) / max(len(data.train_rows), 1)
    batch_size = rc.train_batch_size(kind)
    # True labels only (not step 2's pseudo-labels) make an item "labelled" for batch composition.
    has_label = (data.train_targets >= 0).any(axis=1)
    labelled = [i for i, row in enumerate(train_ds.item_rows) if has_label[row]]
    per_batch = max(round(rc.labelled_share * batch_size), 1) if rc.labelled_share else 0
    workers = cfg.data.loader_workers
    loader, sampler = train_loader(train_ds, batch_size, ctx, seed=rc.seed + step, labelled=labelled,
                                   labelled_per_batch=per_batch, workers=workers)
    bn_batches = stats_loader(train_ds, batch_size, ctx, workers)
    precision = resolve_precision(rc.precision, ctx.device)
    scaler = precision.scaler()
    weights = (None, None)
    if cfg.loss.class_weighting:
        heads = dict(zip(data.schema.names, (len(s.classes) for s in data.schema.labels)))
        weights = imbalance_weights(targets[data.train_rows], heads, cfg.loss.label_weight_power).as_tensors(ctx.device)
    objective = wrap(S4LObjective(model, cfg.loss, trained, rc.rotation_frames, *weights), ctx)
    lr, floor = (rc.finetune_lr, rc.finetune_min_lr_fraction) if step == 3 else (rc.lr, rc.min_lr_fraction)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=rc.weight_decay)
    period = (rc.restart_epochs or rc.epochs_per_step) * len(loader)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=max(period, 1), eta_min=lr * floor)
    start = 1
    if blob is not None:
        model.load_state_dict(blob["model"])
        optimizer.load_state_dict(blob["optimizer"])
        scheduler.load_state_dict(blob["scheduler"])
        start = blob["epoch"] + 1
    truth = {n: data.truth[data.val_rows, i] for i, n in enumerate(data.schema.names)}
    for epoch in range(start, rc.epochs_per_step + 1):
        seed_everything(rc.seed, step, epoch)
        train_ds.set_epoch(epoch)
        sampler.set_epoch(epoch)
        stats = train_epoch(objective, loader, optimizer, scheduler, semi=step != 3, ctx=ctx,
                            progress=rc.progress, desc=f"step {step} epoch {epoch}/{rc.epochs_per_step}",
                            augment=cfg.data.augment,
                            ramp=ramp_scales(step, epoch, len(loader), rc.epochs_per_step, cfg.loss.rampup),
                            precision=precision, scaler=scaler)
        if rc.precise_bn:  # every eval-mode use below (val, checkpoint -> best model, pseudo-labels, export)
            recompute_bn_stats(model, feed(bn_batches, ctx.device), clean_forward(ctx.device, precision), ctx)
        score = None
        if len(val):
            metrics = evaluate(data.schema, truth, softmax(predict(model, val, cfg, ctx)))
            score = metrics["mean_balanced_accuracy"]
        best = state["best"].get(str(step))
        if best is None or _rank(score) >= _rank(best["score"]):  # ties: the later (more trained) epoch
            state["best"][str(step)] = {"epoch": epoch, "score": score}
        if ctx.is_main:
            save_checkpoint(checkpoint_path(ckpt_dir, step, epoch), model=model, optimizer=optimizer,
                            scheduler=scheduler, step=step, epoch=epoch, state=state)
        barrier(ctx)
        recordings_per_s = stats["items_per_s"] / frames_per_item
        log.write({"phase": "train", "step": step, "epoch": epoch, "loss": stats["loss"],
                   "loss_parts": stats["loss_parts"], "lr": stats["lr"], "items_per_s": stats["items_per_s"],
                   "recordings_per_s": recordings_per_s})
        log.write({"phase": "val", "step": step, "epoch": epoch, "mean_balanced_accuracy": score})
        if ctx.is_main:
            print(f"step {step} epoch {epoch}: loss {stats['loss']:.4f} "
                  f"{' '.join(f'{k} {v:.3f}' for k, v in stats['loss_parts'].items())} "
                  f"| val mean balanced acc {score if score is None else round(score, 4)} "
                  f"| {stats['items_per_s']:.1f} items/s", flush=True)


def _rank(score: float | None) -> float:
    return -math.inf if score is None else score


def _prune(ckpt_dir: Path, step: int, keep: set[int]) -> None:
    for p in Path(ckpt_dir).glob(f"step{step}_epoch*.pt"):
        epoch = p.stem.partition("_epoch")[2]
        if epoch.isdigit() and int(epoch) not in keep:
            p.unlink()
