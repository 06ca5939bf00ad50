"""The sceptic's check of the encoder: a plain 4-layer CNN against the product's MobileNetV2, both trained from
scratch by the same minimal loop on the same training annotations, scored on the benchmark's truth.csv over the
test subjects. If the plain CNN learns a label that the MobileNetV2 does not, the encoder (not the recipe) is what
keeps the product's network from learning it.

    python -m research.encoder_check BENCHMARK_DIR SPLIT.json [--encoder plain|mobilenet] [--epochs 30] \\
        [--image-size 64] [--frames 10] [--seed 0] [--work DIR]

The loop is deliberately plain: every step draws labelled training recordings and one random frame of each,
class-balanced cross-entropy summed over the labels a recording carries, Adam, then BatchNorm statistics
re-estimated over the training recordings; a recording's prediction is the mean of its frames' softmaxes.
Prints one JSON line with the test balanced accuracy per label and the wall time.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from research.recipe_diagnosis import load_benchmark
from training.config import DataConfig
from training.fit import truth_csv_labels
from training.losses.class_weights import imbalance_weights
from training.metrics import evaluate
from training.models.mobilenet_v2 import MobileNetV2
from training.precise_bn import recompute_bn_stats
from training.preprocess import pick_frame_indices


def plain_cnn() -> tuple[nn.Module, int]:
    """Four conv-BN-ReLU-maxpool blocks (32, 64, 128, 256 channels), global average pool."""
    layers, c_in = [], 1
    for c_out in (32, 64, 128, 256):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
        c_in = c_out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten()), c_in


class MobileNetEncoder(nn.Module):
    def __init__(self, width: float, stages: int, last_channel: int | None):
        super().__init__()
        self.net = MobileNetV2(num_classes=None, width_mult=width, in_channels=1, stages=stages,
                               last_channel=last_channel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.embed(x)


class FrameClassifier(nn.Module):
    def __init__(self, encoder: nn.Module, dim: int, heads: dict[str, int]):
        super().__init__()
        self.encoder, self.drop = encoder, nn.Dropout(0.2)
        self.heads = nn.ModuleList(nn.Linear(dim, n) for n in heads.values())

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        z = self.drop(self.encoder(x))
        return [h(z) for h in self.heads]


def build(encoder: str, heads: dict[str, int], width: float, stages: int, last_channel: int | None) -> FrameClassifier:
    if encoder == "plain":
        enc, dim = plain_cnn()
    else:
        enc = MobileNetEncoder(width, stages, last_channel)
        dim = enc.net.last_channel
    return FrameClassifier(enc, dim, heads)


def random_frames(store, rows, rng: np.random.Generator) -> torch.Tensor:
    """One randomly chosen frame of each recording, ``[len(rows), 1, S, S]``."""
    return torch.from_numpy(np.concatenate([store.images(r, [rng.integers(store.frame_count(r))]) for r in rows]))


def train(model: FrameClassifier, store, rows: list[int], epochs: int, batch: int, lr: float, seed: int) -> None:
    labels = store.labels
    labelled = [r for r in rows if (labels[r] >= 0).any()]
    heads = {str(k): h.out_features for k, h in enumerate(model.heads)}
    weights = imbalance_weights(labels[labelled], heads, power=0.0)
    class_w = [torch.as_tensor(w, dtype=torch.float32) for w in weights.class_weights.values()]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(epochs):
        order = rng.permutation(labelled)
        for i in range(0, len(order), batch):
            part = order[i:i + batch]
            y = torch.from_numpy(labels[part])
            loss = sum(nn.functional.cross_entropy(out[y[:, k] >= 0], y[y[:, k] >= 0, k], weight=class_w[k])
                       for k, out in enumerate(model(random_frames(store, part, rng))) if (y[:, k] >= 0).any())
            opt.zero_grad()
            loss.backward()
            opt.step()
    # as training.recipe does after every epoch: BatchNorm statistics re-estimated at the final weights (with
    # few steps, the running averages still carry their initial values, and eval-mode outputs of a deep network
    # become constant)
    batches = (random_frames(store, rows[i:i + batch], rng) for i in range(0, len(rows), batch))
    recompute_bn_stats(model, batches, lambda m, x: m(x))


@torch.no_grad()
def predict(model: FrameClassifier, store, rows: list[int], frames: int, names: list[str]) -> dict[str, np.ndarray]:
    model.eval()
    out = {n: [] for n in names}
    for r in rows:
        x = torch.from_numpy(store.images(r, pick_frame_indices(store.frame_count(r), frames)))
        for n, logits in zip(names, model(x)):
            out[n].append(logits.softmax(-1).mean(0).numpy())
    return {n: np.stack(v) for n, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("benchmark", type=Path)
    ap.add_argument("split", type=Path)
    ap.add_argument("--encoder", choices=("plain", "mobilenet"), default="plain")
    ap.add_argument("--width", type=float, default=0.5)
    ap.add_argument("--stages", type=int, default=7, help="MobileNetV2: inverted-residual stages kept (of 7)")
    ap.add_argument("--last-channel", type=int, default=None, help="MobileNetV2: embedding width (default 1280)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "recmeta" / "research" / "diagnosis")
    a = ap.parse_args(argv)
    torch.manual_seed(a.seed)
    started = time.perf_counter()
    data = DataConfig(frames=a.frames, image_size=a.image_size, max_preload_frames=max(a.frames, 1),
                      cache_dir=str(a.work / "cache"))
    schema, store, rows = load_benchmark(a.benchmark.resolve(), a.split, data)
    names = [s.name for s in schema.labels]
    model = build(a.encoder, {s.name: len(s.classes) for s in schema.labels}, a.width, a.stages, a.last_channel)
    train(model, store, rows["train"], a.epochs, a.batch, a.lr, a.seed)
    truth = truth_csv_labels(str(a.benchmark / "truth.csv"), schema, store, rows["test"])
    labels = evaluate(schema, truth, predict(model, store, rows["test"], a.frames, names))["labels"]
    test = {n: None if m.get("balanced_accuracy") is None else round(m["balanced_accuracy"], 3) for n, m in labels.items()}
    print(json.dumps({"encoder": a.encoder, "width": a.width, "stages": a.stages, "last_channel": a.last_channel,
                      "lr": a.lr, "epochs": a.epochs, "split": a.split.name, "seed": a.seed, "test": test,
                      "wall_s": round(time.perf_counter() - started)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
