"""Promotion: compare the new model with the current one on the same validation subjects and,
when it is not worse by more than PROMOTE_TOLERANCE, add it to the registry and switch `current`.

Besides model.onnx (+ metrics.json) in the registry, a promoted version keeps its split.json and
model.pt (warm-start checkpoint) under MODEL_DIR/active_learning/artifacts/<version>/, written
before the version exists, so the next job can keep the same validation subjects and warm-start.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from backend.registry import ModelRegistry, RegistryError

SPLIT_FILE = "split.json"
CHECKPOINT_FILE = "model.pt"
ARTIFACT_FILES = (SPLIT_FILE, CHECKPOINT_FILE)


@dataclass(frozen=True)
class CurrentModel:
    version: str
    onnx: Path
    split: Path | None
    checkpoint: Path | None


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def artifacts_dir(model_dir: Path, version: str) -> Path:
    return Path(model_dir) / "active_learning" / "artifacts" / version


def current_model(model_dir: Path) -> CurrentModel | None:
    registry = ModelRegistry(model_dir)
    version = registry.current()
    if version is None:
        return None
    try:
        onnx = registry.model_path(version)
    except RegistryError:
        return None  # a pointer to a missing version: treat as no model, the job trains from scratch

    def find(name: str) -> Path | None:  # beside the model first (a hand-added version), else our artifacts
        for folder in (onnx.parent, artifacts_dir(model_dir, version)):
            if (folder / name).is_file():
                return folder / name
        return None

    return CurrentModel(version, onnx, find(SPLIT_FILE), find(CHECKPOINT_FILE))


def decide(new_score: float | None, current_score: float | None, tolerance: float, current_version: str | None) -> Decision:
    if new_score is None:
        return Decision(False, "the new model has no validation score (no labelled validation recordings)")
    if current_version is None:
        return Decision(True, "there was no current model")
    if current_score is None:
        return Decision(True, f"the current model {current_version} has no validation score on this export")
    delta = new_score - current_score
    verdict = (f"new val mean balanced accuracy {new_score:.4f} vs {current_score:.4f} of {current_version} "
               f"on the same subjects (delta {delta:+.4f}, tolerance {tolerance})")
    if delta >= -tolerance:
        return Decision(True, verdict)
    return Decision(False, verdict + ": worse by more than the tolerance")


def promote(model_dir: Path, run_dir: Path, version: str, split: Path) -> str:
    """Store artifacts, add the version, switch `current`; the previous version stays listed."""
    target = artifacts_dir(model_dir, version)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        shutil.copyfile(split, tmp / SPLIT_FILE)
        if (run_dir / CHECKPOINT_FILE).is_file():
            shutil.copyfile(run_dir / CHECKPOINT_FILE, tmp / CHECKPOINT_FILE)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    registry = ModelRegistry(model_dir)
    try:
        registry.add(run_dir / "model.onnx", version)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    registry.use(version)
    return version
