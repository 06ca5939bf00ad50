"""Which head serves each label: fit the linear baseline beside the trained network, score both on
validation and test, and serve per label the baseline only where it validated strictly better (training/baseline.py).

`metrics.json` then holds the served model under "val"/"test" (what the exported file does), and the
two candidates under "network" and "baseline", so a reader sees how far the network is from the baseline.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn
from torch.utils.data import DataLoader

from training.baseline import ServedModel, choose_heads, fit_baseline
from training.config import FitConfig
from training.dataset import RecordingDataset
from training.distributed import DistContext
from training.metrics import evaluate
from training.recipe import predict
from training.trainer import softmax

FEATURE_BATCH = 64  # recordings per thumbnail batch


@dataclass
class Served:
    model: nn.Module  # what is exported: the network, or a ServedModel mixing in baseline heads
    logits: dict[str, dict[str, np.ndarray]]  # split -> label -> served logits
    serving: dict[str, str]  # label -> "network" | "baseline"
    metrics: dict  # {"network": {"val", "test"}, "baseline": {"val", "test", "strengths"}}


def serve_better_heads(cfg: FitConfig, data, rows: dict, network: nn.Module, network_logits: dict, truth: dict,
                       ctx: DistContext) -> Served:
    """`network_logits` and `truth` = {"val": {label: ...}, "test": {...}}: the trained network's logits and
    the classes they are scored against (the head is chosen on "val")."""
    schema, store = data.schema, data.store
    net_metrics = {s: evaluate_logits(schema, truth[s], network_logits[s]) for s in ("val", "test")}
    if not cfg.baseline.enabled:
        serving = {n: "network" for n in schema.names}
        return Served(network, network_logits, serving, {"network": net_metrics})
    heads = {spec.name: len(spec.classes) for spec in schema.labels}
    fitted = fit_baseline(heads, cfg.data.image_size, cfg.baseline.grid, cfg.baseline.c_values,
                          _batches(store, rows["train"], data.train_targets, cfg), data.train_targets[rows["train"]],
                          _batches(store, rows["val"], store.labels, cfg) if rows["val"] else None,
                          store.labels[rows["val"]] if rows["val"] else None)
    base_logits = {s: predict(fitted.model, RecordingDataset(store, rows[s], store.labels, cfg.data.frames), cfg, ctx)
                   for s in ("val", "test")}
    base_metrics = {s: evaluate_logits(schema, truth[s], base_logits[s]) for s in ("val", "test")}
    untrained = {n for n, c in fitted.strengths.items() if c is None}
    serving = choose_heads(_per_label(net_metrics["val"], schema.names), _per_label(base_metrics["val"], schema.names),
                           untrained)
    empty = {spec.name: np.zeros((0, len(spec.classes)), dtype=np.float32) for spec in schema.labels}
    logits = {s: {n: (base_logits if serving[n] == "baseline" else network_logits)[s][n] for n in schema.names}
              if rows[s] else empty for s in ("val", "test")}
    model = ServedModel(network, fitted.model, serving) if "baseline" in serving.values() else network
    return Served(model, logits, serving, {"network": net_metrics,
                                           "baseline": {**base_metrics, "strengths": fitted.strengths}})


def _batches(store, rows, targets, cfg: FitConfig):
    """(frames, mask) batches of the recordings' evaluation frames (no jitter), in row order."""
    ds = RecordingDataset(store, rows, targets, cfg.data.frames)
    return ((frames, mask) for frames, mask, _, _ in DataLoader(ds, batch_size=FEATURE_BATCH))


def _per_label(metrics: dict | None, names) -> dict[str, float | None]:
    labels = (metrics or {}).get("labels", {})
    return {n: labels.get(n, {}).get("balanced_accuracy") for n in names}


def evaluate_logits(schema, truth, logits) -> dict | None:
    if not logits or not len(next(iter(logits.values()))):
        return None  # an empty split has nothing to score
    return evaluate(schema, truth, softmax(logits))
