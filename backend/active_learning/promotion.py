"""Promotion: compare the new model with the current one on the same validation subjects and,
when it is not worse by more than PROMOTE_TOLERANCE, add it to the registry and switch `current`.

A promoted version carries its split.json and model.pt (warm-start checkpoint) in its registry
folder (backend.registry copies them with the model), so the next job keeps the same validation
subjects and warm-starts; a version added by hand with `python -m backend.models add` does too.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from backend.registry import ModelRegistry, RegistryError

SPLIT_FILE = "split.json"
CHECKPOINT_FILE = "model.pt"


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


def current_model(model_dir: Path) -> CurrentModel | None:
    registry = ModelRegistry(model_dir)
    version = registry.current()
    if version is None:
        return None
    try:
        onnx = registry.model_path(version)
    except RegistryError:
        return None  # a pointer to a missing version: treat as no model, the job trains from scratch

    def find(name: str) -> Path | None:
        return onnx.parent / name if (onnx.parent / name).is_file() else None

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
    """Add the run's model (with its split.json and model.pt) as a version and switch `current`;
    the previous version stays listed. The registry copies into a temp folder and renames it, so
    nothing half-written is ever a version."""
    if (run_dir / SPLIT_FILE).resolve() != Path(split).resolve():
        shutil.copyfile(split, run_dir / SPLIT_FILE)  # the split this model was trained and scored on
    registry = ModelRegistry(model_dir)
    registry.add(run_dir / "model.onnx", version)
    registry.use(version)
    return version
