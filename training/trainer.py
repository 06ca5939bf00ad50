"""One S4L training epoch, evaluation passes and epoch checkpoints.

`S4LObjective` runs every forward pass of a batch inside one `forward()`, so DistributedDataParallel
sees one call per step. Which passes may update BatchNorm running statistics: the clean supervised
forward and the rotation forward (train mode) yes; VAT's perturbed forwards no (vat_loss freezes
them); evaluation and pseudo-labelling run in eval mode. Image augmentation (when enabled) applies to
the training batch before all of its passes, never to precise BatchNorm, evaluation or pseudo-labels.
"""
from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from training.atomic_write import atomic_path
from training.augment import augment_batch
from training.batch_feed import feed, make_loader, to_device
from training.config import AugmentConfig, LossConfig
from training.dataset import RecordingDataset
from training.distributed import DistContext, gather, mean_over_ranks, shard, sum_over_ranks
from training.labelled_batches import LabelledBatchSampler
from training.losses import (
    VatConfig, entropy_minimisation, masked_cross_entropy, rotate_batch, rotation_loss,
    select_rotation_frames, vat_loss,
)
from training.precision import FP32, Precision


class S4LObjective(nn.Module):
    """Loss of one batch: w_sup * CE (+ ramp * (w_ent * EntMin + w_vat * VAT) + w_rot * rotation when `semi`).

    `ramp` (training/rampup.py) scales only the two losses that act on the model's own predictions.

    Heads in `trained` (labels with training annotations) take part in the unsupervised losses;
    the others get no gradient at all (they have no targets either).
    """

    def __init__(self, model: nn.Module, cfg: LossConfig, trained: Sequence[str], rotation_frames: int,
                 class_weights: dict[str, torch.Tensor] | None, label_weights: torch.Tensor | None):
        super().__init__()
        self.model, self.cfg, self.trained = model, cfg, tuple(trained)
        self.rotation_frames = rotation_frames
        self.class_weights, self.label_weights = class_weights, label_weights
        self.vat = VatConfig(xi=cfg.vat_xi, eps_ref=cfg.vat_eps_ref, eps=cfg.vat_eps, n_power=cfg.vat_power_iterations)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, targets: torch.Tensor, semi: bool,
                ramp: float = 1.0):
        model = self.model

        def logits_fn(z: torch.Tensor) -> dict[str, torch.Tensor]:
            return head_logits(model, z, mask)

        logits = logits_fn(x)
        sup, _ = masked_cross_entropy(logits, targets, self.class_weights, self.label_weights)
        parts = {"sup": sup}
        total = self.cfg.supervised_weight * sup
        if semi:
            # A zero-weighted part is not computed: it would cost a pass and (rotation) move BN statistics.
            trained = _pick(logits, self.trained)
            if self.cfg.entmin_weight:
                parts["entmin"] = entropy_minimisation(trained)
                total = total + ramp * self.cfg.entmin_weight * parts["entmin"]
            if self.cfg.vat_weight:
                parts["vat"] = vat_loss(lambda z: _pick(logits_fn(z), self.trained), x, trained,
                                        model=model, cfg=self.vat)
                total = total + ramp * self.cfg.vat_weight * parts["vat"]
            if self.cfg.rotation_weight:
                images = select_rotation_frames(x, mask, self.rotation_frames) if mask is not None else x
                rotated, rot_targets = rotate_batch(images)
                parts["rotation"] = rotation_loss(model.rotation_logits(rotated), rot_targets)
                total = total + self.cfg.rotation_weight * parts["rotation"]
        return total, {k: v.detach() for k, v in parts.items()}


def head_logits(model: nn.Module, x: torch.Tensor, mask: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Per-label logits of a batch: recordings [B, T, ...] with their frame mask, or single frames (mask None)."""
    return model(x, mask) if mask is not None else model.frame_logits(x)


def _pick(logits: dict[str, torch.Tensor], names: Sequence[str]) -> dict[str, torch.Tensor]:
    return {k: logits[k] for k in names}


def seed_everything(*key: int) -> None:
    """Seed python, numpy and torch from a tuple key, e.g. (seed, step, epoch): each epoch starts from
    a state that depends only on the key, so a resumed run repeats the uninterrupted one."""
    value = int(np.random.SeedSequence(list(key)).generate_state(1)[0])
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def train_loader(dataset, batch_size: int, ctx: DistContext, seed: int, *, labelled: Sequence[int] = (),
                 labelled_per_batch: int = 0, workers: int = 0) -> tuple[DataLoader, object]:
    """Shuffled loader over this rank's share; the sampler's set_epoch reshuffles reproducibly.

    With `labelled_per_batch` > 0, every batch holds that many items drawn from the indices in
    `labelled` (oversampled) and the rest from all items (training/labelled_batches.py). `workers`:
    DataLoader worker processes (training/batch_feed.py)."""
    per_rank = len(dataset) // ctx.world_size
    if per_rank < 2:
        raise ValueError(f"training needs >= 2 items per process (BatchNorm); this process has {per_rank}")
    batch_size = min(batch_size, per_rank)
    if labelled_per_batch > 0 and len(labelled):
        sampler = LabelledBatchSampler(labelled, len(dataset), batch_size, min(labelled_per_batch, batch_size),
                                       seed=seed, rank=ctx.rank, world_size=ctx.world_size)
        return make_loader(dataset, device=ctx.device, workers=workers, batch_sampler=sampler), sampler
    sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed)
    # Drop the last partial batch: a batch of 1 breaks BatchNorm; keep it when it is the only batch.
    return make_loader(dataset, device=ctx.device, workers=workers, batch_size=batch_size, sampler=sampler,
                       drop_last=per_rank > batch_size), sampler


def stats_loader(dataset, batch_size: int, ctx: DistContext, workers: int = 0) -> DataLoader:
    """This rank's shard once, in order, for the clean pass of precise BatchNorm; a last partial batch is left
    out when there is more than one batch (train-mode BatchNorm fails on a batch of 1)."""
    sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=False)
    return make_loader(dataset, device=ctx.device, workers=workers, batch_size=batch_size, sampler=sampler,
                       drop_last=len(sampler) > batch_size)


def train_epoch(objective: nn.Module, loader: DataLoader, optimizer, scheduler, *, semi: bool,
                ctx: DistContext, progress: bool, desc: str, augment: AugmentConfig | None = None,
                ramp: Sequence[float] | None = None, precision: Precision = FP32,
                scaler: torch.amp.GradScaler | None = None) -> dict:
    """One pass over `loader`; returns the mean loss, loss parts, throughput and last lr.

    With `augment` enabled, every forward pass of a batch sees the same augmented copy of it. `ramp[i]`
    scales EntMin and VAT in batch i (training/rampup.py; None = 1 throughout). `precision`: autocast
    of the forward passes and, for fp16, loss scaling (training/precision.py) with `scaler`, which a
    training step keeps across its epochs (a fresh one would re-learn its scale every epoch)."""
    objective.train()
    scaler = scaler or precision.scaler()
    sums: dict[str, float] = {}
    n_batches, n_items, lr, started = 0, 0, None, time.perf_counter()
    bar = tqdm(feed(loader, ctx.device), total=len(loader), desc=desc, unit="batch",
               disable=None if progress and ctx.is_main else True, leave=False)
    for i, batch in enumerate(bar):
        x, mask, targets = _unpack(batch, ctx.device)
        if augment is not None and augment.enabled:
            x = augment_batch(x, augment)
        optimizer.zero_grad(set_to_none=True)
        with precision.autocast():
            loss, parts = objective(x, mask, targets, semi, 1.0 if ramp is None else ramp[i])
        scaler.scale(loss).backward()
        scaler.step(optimizer)  # a plain optimizer.step() unless fp16 scaling is on
        scaler.update()
        lr = optimizer.param_groups[0]["lr"]  # the rate this batch used (a restart may follow)
        scheduler.step()
        n_batches += 1
        n_items += x.shape[0]
        for k, v in {"loss": loss.detach(), **parts}.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        rate = n_items / max(time.perf_counter() - started, 1e-9)
        bar.set_postfix({k: f"{v / n_batches:.3f}" for k, v in sums.items()} | {"items/s": f"{rate:.1f}"})
    means = mean_over_ranks({k: v / max(n_batches, 1) for k, v in sums.items()}, ctx)
    seconds = time.perf_counter() - started
    total_items = sum_over_ranks(n_items, ctx)
    return {"loss": means.pop("loss", 0.0), "loss_parts": means, "items": int(total_items),
            "items_per_s": total_items / max(seconds, 1e-9), "lr": lr}


def _unpack(batch, device: str):
    """Inputs need no channels_last conversion: with one channel both layouts are the same; the
    model's channels_last weights make the convolutions pick that layout."""
    if len(batch) == 4:  # RecordingDataset: frames [B,N,1,S,S], mask [B,N], targets, rows
        frames, mask, targets, _ = batch
        return to_device(frames, device), to_device(mask, device), to_device(targets, device)
    images, targets, _ = batch  # FrameDataset: images [B,1,S,S]
    return to_device(images, device), None, to_device(targets, device)


def clean_forward(device: str, precision: Precision = FP32):
    """forward(model, batch) on a training loader's batch without perturbation (precise BatchNorm)."""
    def forward(model: nn.Module, batch) -> dict:
        x, mask, _ = _unpack(batch, device)
        with precision.autocast():
            return head_logits(model, x, mask)
    return forward


@torch.no_grad()
def predict_logits(model: nn.Module, dataset: RecordingDataset, batch_size: int, ctx: DistContext, *,
                   precision: Precision = FP32, workers: int = 0) -> dict:
    """Eval-mode logits {name: [len(dataset), C]} in dataset order; rows sharded over ranks, gathered."""
    was_training = model.training
    model.eval()
    mine = shard(len(dataset), ctx)
    parts: dict[str, list[np.ndarray]] = {}
    # A private generator: the loader's base seed must not draw from torch's global one (training's stream).
    loader = make_loader(Subset(dataset, mine), device=ctx.device, workers=workers, batch_size=batch_size,
                         generator=torch.Generator())
    for frames, mask, _, _ in feed(loader, ctx.device):
        with precision.autocast():
            logits = model(to_device(frames, ctx.device), to_device(mask, ctx.device))
        for k, v in logits.items():
            parts.setdefault(k, []).append(v.float().cpu().numpy())
    model.train(was_training)
    local = (mine, {k: np.concatenate(v) for k, v in parts.items()})
    out: dict[str, np.ndarray] = {}
    for positions, logits in gather(local, ctx):
        for k, v in logits.items():
            out.setdefault(k, np.zeros((len(dataset), v.shape[1]), dtype=np.float32))[positions] = v
    return out


def softmax(logits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for k, z in logits.items():
        e = np.exp(z - z.max(axis=1, keepdims=True))
        out[k] = e / e.sum(axis=1, keepdims=True)
    return out


def checkpoint_path(ckpt_dir: Path, step: int, epoch: int) -> Path:
    return Path(ckpt_dir) / f"step{step}_epoch{epoch}.pt"


def save_checkpoint(path: Path, *, model, optimizer, scheduler, step: int, epoch: int, state: dict) -> None:
    """Weights + optimizer + scheduler + RNG state + the recipe's bookkeeping; written atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "step": step, "epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(), "recipe_state": state,
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
    }
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load_checkpoint(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=False)  # our own files: optimizer state, RNG


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The checkpoint with the highest (step, epoch) in `ckpt_dir`, or None."""
    found = []
    for p in Path(ckpt_dir).glob("step*_epoch*.pt"):
        step, _, epoch = p.stem[len("step"):].partition("_epoch")
        if step.isdigit() and epoch.isdigit():
            found.append((int(step), int(epoch), p))
    return max(found)[2] if found else None
