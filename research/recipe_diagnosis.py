"""One in-process training of the network with recipe overrides, scored on the benchmark's truth.csv on the training
and the test recordings: the diagnosis behind the recipe's defaults (docs/training.md, "Why these defaults").

    python -m research.recipe_diagnosis BENCHMARK_DIR SPLIT.json '{"recipe": {"epochs_per_step": 10}}' \\
        [--image-size 64] [--frames 1] [--work DIR]

The overrides are a partial FitConfig dict (loss / recipe / data / model sections). It runs training.recipe on the
export's training annotations exactly as training.fit does (no baseline, no ONNX) and prints one JSON line: balanced
accuracy per label on the training recordings (every known label, so how well the network fits its own subjects)
and on the test recordings, the validation score and best epoch of every step, and the wall time.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from training.config import FitConfig
from training.dataset import RecordingDataset, load_recordings
from training.distributed import init_distributed
from training.export_reader import read_export
from training.fit import build_model, truth_csv_labels
from training.frame_source import FrameFetcher, FrameSourceConfig
from training.metrics import evaluate
from training.recipe import RecipeData, RunLog, predict, run_recipe
from training.schema import load_label_config
from training.trainer import softmax


def load_benchmark(bench: Path, split_path: Path, data_cfg):
    """(schema, store, {train/val/test: store rows}) of a benchmark folder under one split, as training.fit loads it."""
    schema = load_label_config(bench / "label_config.xml")
    fetch = FrameFetcher(FrameSourceConfig(document_root=str(bench.parent))).fetch
    store = load_recordings(read_export(bench / "export.json", schema).recordings, schema, data_cfg, fetch,
                            Path(data_cfg.cache_dir), source=str(bench.parent), progress=False)
    split = json.loads(split_path.read_text())["recordings"]
    return schema, store, {k: store.rows(split[k]) for k in ("train", "val", "test")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("benchmark", type=Path)
    ap.add_argument("split", type=Path)
    ap.add_argument("overrides", nargs="?", default="{}")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--frames", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "recmeta" / "research" / "diagnosis")
    a = ap.parse_args(argv)
    bench = a.benchmark.resolve()
    over = json.loads(a.overrides)
    data = {"frames": a.frames, "image_size": a.image_size, "max_preload_frames": max(a.frames, 1),
            "cache_dir": str(a.work / "cache"), **over.pop("data", {})}
    out = a.work / f"{bench.name}-{abs(hash(a.overrides)) % 10**8}"
    cfg = FitConfig.from_dict({"export": str(bench / "export.json"), "out": str(out), "data": data,
                               "recipe": {"progress": False, **over.pop("recipe", {})}, **over})
    started = time.perf_counter()
    schema, store, rows = load_benchmark(bench, a.split, cfg.data)
    ctx = init_distributed()
    torch.manual_seed(cfg.recipe.seed)
    np.random.seed(cfg.recipe.seed)
    out.mkdir(parents=True, exist_ok=True)
    recipe_data = RecipeData(store, schema, rows["train"], rows["val"], rows["test"], store.labels, store.labels)
    result = run_recipe(build_model(schema, cfg.model, cfg.data.frames), recipe_data, cfg, out / "checkpoints",
                        RunLog(out / "log.jsonl", ctx), ctx)
    scores = {}
    for part in ("train", "test"):
        logits = predict(result.model.eval(), RecordingDataset(store, rows[part], store.labels, cfg.data.frames), cfg, ctx)
        truth = truth_csv_labels(str(bench / "truth.csv"), schema, store, rows[part])
        labels = evaluate(schema, truth, softmax(logits))["labels"]
        scores[part] = {n: None if m.get("balanced_accuracy") is None else round(m["balanced_accuracy"], 3)
                        for n, m in labels.items()}
    print(json.dumps({"overrides": json.loads(a.overrides), **scores,
                      "val": {s: r["val_score"] for s, r in result.steps.items()},
                      "best_epoch": {s: r["best_epoch"] for s, r in result.steps.items()},
                      "wall_s": round(time.perf_counter() - started)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
