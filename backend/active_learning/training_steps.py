"""The default train/evaluate steps of a job: the training CLIs, each in its own process.

A steps module (AL_STEPS_MODULE) provides `train(request: TrainRequest) -> Path` (a run folder
holding model.onnx, metrics.json, split.json) and `evaluate(model, export, data_root, split, out)
-> float | None` (validation mean balanced accuracy). Tests inject fast fakes the same way.
Running the CLIs as subprocesses keeps torch out of the worker and lets a crash be reported.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TrainRequest:
    export: Path
    label_config: Path
    data_root: Path | None
    out: Path  # run folder to create
    split: Path | None  # keep these validation subjects (the current model's split.json)
    init_from: Path | None  # warm start from this checkpoint (None: train from scratch)
    epochs_per_step: int | None  # shorter schedule for warm starts; None = the recipe's default


class StepError(RuntimeError):
    """A training or evaluation step failed."""


def _run(args: list[str], log: Path) -> None:
    with open(log, "ab") as f:
        done = subprocess.run([sys.executable, "-m", *args], stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-800:]
        raise StepError(f"`python -m {args[0]}` exited with {done.returncode}; log tail:\n{tail}")


def train(req: TrainRequest) -> Path:
    args = ["training.fit", "--export", str(req.export), "--label-config", str(req.label_config), "--out", str(req.out)]
    if req.data_root is not None:
        args += ["--data-root", str(req.data_root)]
    if req.split is not None:
        args += ["--split", str(req.split)]
    if req.init_from is not None:
        args += ["--init-from", str(req.init_from)]
    if req.epochs_per_step is not None:
        args += ["--epochs-per-step", str(req.epochs_per_step)]
    _run(args, req.out.parent / "train.log")
    return req.out


def validation_score(metrics: dict) -> float | None:
    """mean_balanced_accuracy of a metrics.json: under "val" (fit) or at the top (evaluate --subset val)."""
    section = metrics.get("val", metrics)
    return section.get("mean_balanced_accuracy")


def evaluate(model: Path, export: Path, data_root: Path | None, split: Path, out: Path) -> float | None:
    args = ["training.evaluate", "--model", str(model), "--export", str(export), "--split", str(split),
            "--subset", "val", "--out", str(out)]
    if data_root is not None:
        args += ["--data-root", str(data_root)]
    _run(args, out.parent / "evaluate.log")
    return validation_score(json.loads(out.read_text(encoding="utf-8")))
