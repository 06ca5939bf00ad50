"""The network must be able to memorise a small real subset: if the recipe (losses, weights, BatchNorm,
evaluation path) cannot fit 16 real labelled images, it cannot learn anything from a real export."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from training.config import DataConfig, FitConfig, LossConfig, RecipeConfig
from training.dataset import RecordingDataset, load_recordings
from training.distributed import init_distributed
from training.export_reader import read_export
from training.fit import build_model
from training.frame_source import FrameFetcher, FrameSourceConfig
from training.metrics import label_metrics
from training.recipe import RecipeData, RunLog, run_recipe
from training.schema import load_label_config
from training.trainer import predict_logits

pytestmark = pytest.mark.slow
PER_CLASS = 8


def _labelled_subset(benchmarks_dir: Path, cfg: DataConfig):
    root = benchmarks_dir / "facemask"
    schema = load_label_config(root / "label_config.xml")
    labelled = [r for r in read_export(root / "export.json", schema).recordings if r.labels.get("wearing_face_mask")]
    picked = [r for cls in schema.labels[0].classes
              for r in [r for r in labelled if r.labels["wearing_face_mask"] == cls][:PER_CLASS]]
    fetch = FrameFetcher(FrameSourceConfig(document_root=str(benchmarks_dir))).fetch
    return schema, load_recordings(picked, schema, cfg, fetch, None, progress=False)


def test_network_memorises_sixteen_real_images(benchmarks_dir, tmp_path):
    torch.manual_seed(0)
    data_cfg = DataConfig(frames=1, image_size=32, max_preload_frames=1)
    cfg = FitConfig(export="-", out=str(tmp_path), data=data_cfg,
                    loss=LossConfig(entmin_weight=0, vat_weight=0, rotation_weight=0),
                    recipe=RecipeConfig(steps=(1,), epochs_per_step=60, batch_size=8, progress=False))
    schema, store = _labelled_subset(benchmarks_dir, data_cfg)
    rows = list(range(len(store.recording_ids)))
    assert sorted(np.bincount(store.labels[:, 0])) == [PER_CLASS, PER_CLASS]
    ctx = init_distributed()
    model = build_model(schema, cfg.model, data_cfg.frames)
    data = RecipeData(store, schema, rows, [], [], store.labels, store.labels)
    trained = run_recipe(model, data, cfg, tmp_path / "ck", RunLog(tmp_path / "log.jsonl", ctx), ctx).model
    logits = predict_logits(trained, RecordingDataset(store, rows, store.labels, 1), 16, ctx)["wearing_face_mask"]
    fit = label_metrics(store.labels[:, 0], logits, list(schema.labels[0].classes))["balanced_accuracy"]
    assert fit == 1.0, f"the network fits its own 16 training images only to balanced accuracy {fit:.2f}"
