"""Promotion: compare the new model with the current one on the same validation subjects (the
job's extended split) and, when the per-label gate (decide) passes, add it to the registry and
switch `current`.

A promoted version carries its split.json and model.pt (warm-start checkpoint) in its registry
folder (backend.registry copies them with the model), so the next job keeps the same validation
subjects and warm-starts; a version added by hand with `python -m backend.models add` does too.
"""
from __future__ import annotations

import json
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
class GateConfig:
    tolerance: float = 0.02  # PROMOTE_TOLERANCE: the new mean balanced accuracy may be this much lower
    label_tolerance: float = 0.10  # PROMOTE_LABEL_TOLERANCE: ... and each gated label this much lower
    min_label_count: int = 5  # PROMOTE_MIN_LABELS: labels with fewer labelled val recordings are shown, not gated


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    labels: tuple[dict, ...] = ()  # per label: n, new, current, delta, gated, regressed


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


def architecture_args(onnx_path: Path) -> tuple[str, ...]:
    """`training.fit` flags that rebuild the served model's shape (input size, frames, kind, mode,
    fusion, encoder size), from the recmeta.json the registry keeps beside it: a job warm-starts the same
    architecture unless AL_FIT_ARGS says otherwise."""
    try:
        meta = json.loads((Path(onnx_path).parent / "recmeta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()
    flags = {"--image-size": meta.get("image_size"), "--frames": meta.get("frames"), "--model": meta.get("kind"),
             "--mode": meta.get("mode"), "--fusion": meta.get("fusion"), "--width": meta.get("width"),
             "--stages": meta.get("stages"), "--embed-dim": meta.get("embed_dim")}
    return tuple(x for flag, value in flags.items() if value is not None for x in (flag, str(value)))


def _mean(doc: dict | None) -> float | None:
    return doc.get("mean_balanced_accuracy") if isinstance(doc, dict) else None


def compare_labels(new: dict, current: dict, gate: GateConfig) -> tuple[dict, ...]:
    """Per label of the validation set: both balanced accuracies, and whether the gate looks at it."""
    rows = []
    for name, m in (new.get("labels") or {}).items():
        old = (current.get("labels") or {}).get(name) or {}
        a, b = m.get("balanced_accuracy"), old.get("balanced_accuracy")
        delta = None if a is None or b is None else round(a - b, 4)
        gated = delta is not None and int(m.get("n") or 0) >= gate.min_label_count
        rows.append({"label": name, "n": int(m.get("n") or 0), "new": a, "current": b, "delta": delta,
                     "gated": gated, "regressed": gated and delta < -gate.label_tolerance})
    return tuple(rows)


def decide(new: dict | None, current: dict | None, gate: GateConfig, current_version: str | None) -> Decision:
    """Promote when the new model's mean balanced accuracy on the validation set is at most
    `tolerance` below the current model's on the SAME set, and no label with at least
    `min_label_count` validation labels lost more than `label_tolerance`."""
    new_score, current_score = _mean(new), _mean(current)
    if new_score is None:
        return Decision(False, "the new model has no validation score (no labelled validation recordings)")
    if current_version is None:
        return Decision(True, "there was no current model")
    if current_score is None:
        return Decision(True, f"the current model {current_version} has no validation score on this export")
    labels = compare_labels(new, current, gate)
    delta = new_score - current_score
    verdict = (f"new val mean balanced accuracy {new_score:.4f} vs {current_score:.4f} of {current_version} "
               f"on the same subjects (delta {delta:+.4f}, tolerance {gate.tolerance})")
    if delta < -gate.tolerance:
        return Decision(False, verdict + ": worse by more than the tolerance", labels)
    regressed = [r for r in labels if r["regressed"]]
    if regressed:
        names = ", ".join(f"{r['label']} {r['delta']:+.4f} (n={r['n']})" for r in regressed)
        return Decision(False, f"{verdict}; but {names} lost more than the per-label tolerance "
                               f"{gate.label_tolerance}", labels)
    gated = sum(r["gated"] for r in labels)
    return Decision(True, f"{verdict}; no label with >= {gate.min_label_count} val labels ({gated} of "
                          f"{len(labels)}) lost more than {gate.label_tolerance}", labels)


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
