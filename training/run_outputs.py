"""The files a finished `training.fit` run leaves in its run directory, and its console summary.

model.pt (final weights + config + schema), model.onnx (recmeta with temperatures), optionally
model.int8.onnx, metrics.json and report.html.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from training.config import FitConfig
from training.dataset import RecordingDataset
from training.label_quality import gate_verdict


def write_outputs(run: Path, cfg: FitConfig, schema, model, served, metrics, untrained, temperatures, store,
                  rows) -> None:
    """`model` is the trained network (model.pt, the warm start of a later run); `served` the exported model
    (the network, or the network with baseline heads for the labels where the network did not validate better)."""
    from training.onnx_export import export_onnx
    from training.report import write_report

    model = model.cpu().to(memory_format=torch.contiguous_format).eval()
    served = served.cpu().to(memory_format=torch.contiguous_format).eval()
    torch.save({"format": 1, "state_dict": model.state_dict(), "config": cfg.to_dict(), "schema": schema.to_dict(),
                "untrained": untrained, "temperatures": temperatures}, run / "model.pt")
    example_rows = (rows["val"] or rows["train"])[:2]
    example = RecordingDataset(store, example_rows, store.labels, cfg.data.frames)
    frames = torch.stack([example[i][0] for i in range(len(example))])
    mask = torch.stack([example[i][1] for i in range(len(example))])
    meta = {"model_version": run.name, "kind": cfg.model.kind, "mode": cfg.model.mode, "fusion": cfg.model.fusion,
            "width": cfg.model.width, "stages": cfg.model.stages, "embed_dim": cfg.model.embed_dim,
            "schema": schema.to_dict(), "untrained": untrained, "temperatures": temperatures,
            "frames": cfg.data.frames, "image_size": cfg.data.image_size,
            "preprocess": store.preprocess.to_dict(), "serving": metrics["serving"],
            "quality": metrics["quality"], "single_class": metrics["single_class"],
            "metrics": {s: (metrics[s] or {}).get("mean_balanced_accuracy") for s in ("val", "test")}}
    export_onnx(served, run / "model.onnx", meta, frames, mask)
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


def summary_text(metrics: dict) -> str:
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
    lines.append("quality gate (backend default, docs/backend.md):")
    for name, q in metrics.get("quality", {}).items():
        verdict = gate_verdict(q, len(q["val_counts"]))
        lines.append(f"  {name}: {'served' if verdict.served else 'withheld'} ({verdict.reason})")
    return "\n".join(lines)
