"""Out-of-sample predictions for every recording: K subject-grouped cross-fitted training.fit runs.

The subjects are dealt into K folds (training/folds.py); run f trains on the other folds (with a
validation part of them for model selection) and predicts fold f's recordings, so no recording is
predicted by a model that saw it, or saw its person. Runs are cheap by default (CrossFitConfig) and
resumable: a fold whose model.onnx exists is not trained again.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.config import DataConfig, FitConfig, RecipeConfig


@dataclass(frozen=True)
class CrossFitConfig:
    folds: int = 5
    val_share: float = 0.1  # of ALL subjects, per run (model selection and the served head)
    image_size: int = 64  # the CPU-cheap setting of docs/results.md
    frames: int = 10
    epochs_per_step: int = 2
    steps: tuple[int, ...] = (1, 2, 3)  # the S4L recipe
    seed: int = 0
    threads: int = 0  # torch threads per run; 0 = torch's default

    def fit_config(self, export: str, label_config: str | None, data_root: str | None, split: Path,
                   out: Path) -> FitConfig:
        return FitConfig(export=export, out=str(out), label_config=label_config, data_root=data_root,
                         split=str(split), data=DataConfig(frames=self.frames, image_size=self.image_size),
                         recipe=RecipeConfig(steps=self.steps, epochs_per_step=self.epochs_per_step,
                                             seed=self.seed, num_threads=self.threads, progress=False))


def cross_fit(recordings, schema, export: str, label_config: str | None, data_root: str | None, out: Path,
              cfg: CrossFitConfig, say=print) -> tuple[list[str], dict[str, np.ndarray]]:
    """(recording ids, {label: [n, K] out-of-sample probabilities}) over every readable recording."""
    from training.evaluate import score_recordings
    from training.fit import fit
    from training.folds import cross_validation_splits
    from training.frame_source import FrameFetcher, FrameSourceConfig
    from training.onnx_runner import OnnxRecordingModel

    splits = cross_validation_splits(recordings, schema, k=cfg.folds, val_share=cfg.val_share, seed=cfg.seed)
    fetch = FrameFetcher(FrameSourceConfig(document_root=data_root)).fetch
    by_id = {r.recording_id: r for r in recordings}
    ids: list[str] = []
    probs: dict[str, list] = {n: [] for n in schema.names}
    for f, split in enumerate(splits):
        run = out / "folds" / f"fold{f}"
        split_path = out / "folds" / f"split{f}.json"
        split_path.parent.mkdir(parents=True, exist_ok=True)
        split_path.write_text(json.dumps(split, indent=1), encoding="utf-8")
        if not (run / "model.onnx").is_file():
            say(f"fold {f + 1}/{cfg.folds}: training on {len(split['recordings']['train'])} recordings")
            fit(cfg.fit_config(export, label_config, data_root, split_path, run))
        model = OnnxRecordingModel(run / "model.onnx")
        tested = [by_id[r] for r in split["recordings"]["test"] if r in by_id]
        scored = score_recordings(model, tested, {}, schema.names, fetch)
        for skip in scored.skipped_recordings:
            say(f"fold {f + 1}: recording {skip['recording_id']} not predicted: {skip['reason']}")
        ids += scored.recording_ids
        for n in schema.names:
            probs[n].append(scored.probs[n])
    return ids, {n: np.concatenate(p) for n, p in probs.items()}
