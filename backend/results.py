"""Model probabilities -> Label Studio results, restricted to what the project config asks.

Only labels both the project and the model know, and the quality gate serves, are decoded; classes
the project lacks get probability 0 before joint decoding, so they are never emitted. Labels below
their minimum score are left out for the annotator. The task score is the lowest CERTAINTY over the
decoded labels (emitted or held back by their minimum score), where a label's certainty is
(q - 1/K) / (1 - 1/K), clipped to [0, 1]: q the decoded class's probability renormalised over the
K classes the project allows. 0 = no better than chance, 1 = certain, whatever K, so a 2-class and
a 9-class label compare fairly. An ascending sort on "prediction score" in the Data Manager lists
the most uncertain recordings first (active learning).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable, Mapping

import numpy as np

from training.propagation import Rules
from training.schema import LabelSchema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProjectView:
    """The part of a model's schema a project can receive."""

    to_name: str  # the project's <Image name=...>
    value_key: str  # the project's task data key holding the frame list (valueList="$frames")
    allowed: dict[str, np.ndarray]  # label -> bool mask over the MODEL's classes that the project has
    missing: tuple[str, ...]  # project labels the model cannot predict (absent or untrained head)
    why_missing: tuple[str, ...] = ()  # per missing label, what the model lacks (for error messages)


def project_view(model_schema: LabelSchema, predictable: set[str], project: LabelSchema,
                 withheld: Mapping[str, str] = MappingProxyType({})) -> ProjectView:
    """`predictable`: the model's labels with an output head that is trained and served; `withheld`:
    label -> why the quality gate withholds it."""
    allowed: dict[str, np.ndarray] = {}
    missing: list[str] = []
    why: list[str] = []
    for spec in project.labels:
        if spec.name in withheld:
            missing.append(spec.name)
            why.append(f"{spec.name!r} (withheld by the quality gate: {withheld[spec.name]})")
            continue
        if spec.name not in predictable:
            missing.append(spec.name)
            known = spec.name in model_schema.names
            why.append(f"{spec.name!r} ({'its head is untrained' if known else 'not a question of the model'})")
            continue
        model_classes = model_schema[spec.name].classes
        mask = np.array([c in spec.classes for c in model_classes])
        if mask.any():
            allowed[spec.name] = mask
        else:
            missing.append(spec.name)
            why.append(f"{spec.name!r} (classes {_some(spec.classes)}, the model's are {_some(model_classes)})")
    return ProjectView(project.object_name, project.value_key, allowed, tuple(missing), tuple(why))


def _some(classes: tuple[str, ...], shown: int = 8) -> str:
    more = f", ... {len(classes) - shown} more" if len(classes) > shown else ""
    return ", ".join(map(repr, classes[:shown])) + more


def task_results(
    probs: dict[str, np.ndarray],
    model_schema: LabelSchema,
    rules: Rules,
    view: ProjectView,
    min_score_for: Callable[[str], float],
) -> tuple[list[dict], float | None, int]:
    """One task's (result items, task score, labels held back for being below their minimum).

    `probs` holds the model's calibrated probabilities per label for this one task. The task
    score is the lowest certainty() over the decoded labels; None when nothing was decoded.
    """
    masked = {name: np.where(mask, probs[name], 0.0) for name, mask in view.allowed.items()}
    decoded = rules.joint_decode(masked) if masked else {}
    items: list[dict] = []
    held_back = 0
    certainties = []
    for name in view.allowed:  # project order
        index, prob = decoded[name]
        if not view.allowed[name][index] or prob <= 0.0:
            continue  # nothing the project allows was possible
        certainties.append(certainty(masked[name], index, int(view.allowed[name].sum())))
        if prob < min_score_for(name):
            held_back += 1
            continue
        items.append({
            "from_name": name,
            "to_name": view.to_name,
            "type": "choices",
            "value": {"choices": [model_schema[name].classes[index]]},
            "score": float(prob),
        })
    return items, (min(certainties) if certainties else None), held_back


def certainty(masked: np.ndarray, index: int, n_allowed: int) -> float:
    """(q - 1/K) / (1 - 1/K) clipped to [0, 1]; q = masked[index] / masked.sum(), K = n_allowed classes."""
    if n_allowed < 2:
        return 1.0  # one possible answer: nothing to be unsure about
    q = float(masked[index] / masked.sum())
    chance = 1.0 / n_allowed
    return min(1.0, max(0.0, (q - chance) / (1.0 - chance)))
