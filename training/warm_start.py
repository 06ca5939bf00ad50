"""`--init-from`: start a training from a previous model.pt, matching heads by label name.

Heads are matched by label NAME, never by position, so a changed labeling config (labels added,
removed or reordered) cannot hand one label's head to another; tensors whose shapes changed
(other frame count, width) are left fresh.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from training.models.recording_model import RecordingModel


def read_warm_start(path: str | Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """A previous model.pt as (backbones {label: state}, heads {label: state}), keyed by label name
    (an STL ensemble gives each label its own backbone)."""
    blob = torch.load(path, map_location="cpu", weights_only=False)
    names = [spec["name"] for spec in blob["schema"]["labels"]]
    state = blob["state_dict"]
    if blob["config"]["model"]["mode"] == "stl":
        parts = {n: _strip(state, f"models.{i}.") for i, n in enumerate(names)}
        return ({n: _without_heads(p) for n, p in parts.items()},
                {n: _strip(p, "heads.0.") for n, p in parts.items()})
    shared = _without_heads(state)
    return {n: shared for n in names}, {n: _strip(state, f"heads.{i}.") for i, n in enumerate(names)}


def seen_label_counts(run_counts: dict[str, dict[str, int]], init_from: str | Path | None) -> dict[str, dict[str, int]]:
    """Training annotations the weights have learnt from: this run's counts plus, for a warm start, those of the
    model it starts from (its metrics.json beside model.pt: "seen_labels", else "training_labels"). A retrain on a
    few new annotations keeps the classes its starting model was trained on."""
    prior_file = Path(init_from).parent / "metrics.json" if init_from else None
    if prior_file is None or not prior_file.is_file():
        return run_counts
    prior_doc = json.loads(prior_file.read_text(encoding="utf-8"))
    prior = prior_doc.get("seen_labels") or prior_doc.get("training_labels") or {}
    return {name: {c: n + int((prior.get(name) or {}).get(c, 0)) for c, n in counts.items()}
            for name, counts in run_counts.items()}


def _strip(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _without_heads(state: dict) -> dict:
    return {k: v for k, v in state.items() if not k.startswith("heads.")}


def init_weights(model: RecordingModel, warm: tuple[dict[str, dict], dict[str, dict]], say) -> None:
    """Copy the warm-start tensors whose names and shapes fit `model`; say what was left out."""
    backbones, heads = warm
    source = next((backbones[n] for n in model.head_names if n in backbones), next(iter(backbones.values())))
    wanted = dict(source)
    for i, name in enumerate(model.head_names):
        wanted.update({f"heads.{i}.{k}": v for k, v in heads.get(name, {}).items()})
    own = model.state_dict()
    usable = {k: v for k, v in wanted.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(usable, strict=False)
    new_heads = [n for n in model.head_names if n not in heads]
    say(f"init-from: {len(usable)} of {len(own)} tensors copied"
        + (f"; new heads {new_heads} start fresh" if new_heads else ""))
