"""The default train/evaluate steps of a job: the training CLIs, each in its own process.

A steps module (AL_STEPS_MODULE) provides `train(req: TrainRequest, env) -> Path` (a run folder
holding model.onnx, metrics.json, split.json, model.pt) and `evaluate(req: EvalRequest, env) -> dict`
(training.evaluate's metrics.json on the validation subset: mean_balanced_accuracy and per label
balanced_accuracy and n). `env` holds extra environment variables for
the CLIs (LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY, for frames served by Label Studio). Tests
inject fast fakes the same way. Subprocesses keep torch out of the worker and contain crashes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping


@dataclass(frozen=True)
class TrainRequest:
    export: Path
    label_config: Path
    data_root: Path | None
    out: Path  # run folder to create
    split: Path | None  # the current model's split.json: extended (earlier subjects keep their part)
    init_from: Path | None  # warm start from this checkpoint (None: train from scratch)
    epochs_per_step: int | None  # shorter schedule for warm starts; None = the recipe's default
    extra_args: tuple[str, ...] = ()  # the current model's shape flags, then AL_FIT_ARGS (e.g. --threads 2)


@dataclass(frozen=True)
class EvalRequest:
    model: Path
    export: Path
    data_root: Path | None
    split: Path  # score the "val" subset of this split
    out: Path  # metrics.json to write


class StepError(RuntimeError):
    """A training or evaluation step failed."""


def _run(args: list[str], log: Path, env: Mapping[str, str]) -> None:
    with open(log, "ab") as f:
        done = subprocess.run([sys.executable, "-m", *args], stdout=f, stderr=subprocess.STDOUT,
                              env={**os.environ, **env})
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-800:]
        raise StepError(f"`python -m {args[0]}` exited with {done.returncode}; log tail:\n{tail}")


def train(req: TrainRequest, env: Mapping[str, str]) -> Path:
    args = ["training.fit", "--export", str(req.export), "--label-config", str(req.label_config),
            "--out", str(req.out), "--no-progress", *req.extra_args]
    if req.data_root is not None:
        args += ["--data-root", str(req.data_root)]
    if req.split is not None:
        args += ["--extend-split", str(req.split)]
    if req.init_from is not None:
        args += ["--init-from", str(req.init_from)]
    if req.epochs_per_step is not None:  # after extra_args: argparse keeps the last value
        args += ["--epochs-per-step", str(req.epochs_per_step)]
    _run(args, req.out.parent / "train.log", env)
    return req.out


def evaluate(req: EvalRequest, env: Mapping[str, str]) -> dict:
    # Without LOCAL_FILES_DOCUMENT_ROOT, evaluate fetches frames from Label Studio (as training does).
    args = ["training.evaluate", "--model", str(req.model), "--export", str(req.export),
            "--split", str(req.split), "--subset", "val", "--out", str(req.out)]
    if req.data_root is not None:
        args += ["--data-root", str(req.data_root)]
    _run(args, req.out.parent / "evaluate.log", env)
    return json.loads(req.out.read_text(encoding="utf-8"))
