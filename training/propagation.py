"""Label propagation and consistent joint decoding (thesis 3.1.1).

The rules live as data in propagation_rules.json: ``{"if": {label: class | [classes]}, "then":
{label: class}}``. A rule fires when every "if" label has (one of) its classes; it then asserts
every "then" label. Rules are filtered to the schema when loaded: each conclusion becomes its own
rule, and a rule naming a label or class the schema lacks is dropped, so a config without those
labels (e.g. the benchmarks) gets no rules.

- ``propagate`` fills MISSING labels only (to a fixpoint) and reports contradictions instead of
  overwriting an annotator's answer.
- ``joint_decode`` picks the most probable assignment (product of per-label probabilities) among
  the consistent ones. Labels linked by rules form small connected components whose consistent
  assignments are enumerated once at load time; unlinked labels are decoded by argmax.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.schema import LabelSchema

DEFAULT_RULES_PATH = Path(__file__).resolve().parent / "propagation_rules.json"


class RulesError(ValueError):
    """The rule table is malformed or contradicts itself."""


@dataclass(frozen=True)
class Rule:
    when: tuple[tuple[str, frozenset[str]], ...]  # (label, allowed classes) that must all hold
    then: tuple[str, str]  # (label, class) it asserts

    def fires(self, labels: dict) -> bool:
        return all(labels.get(name) in allowed for name, allowed in self.when)

    @property
    def names(self) -> set[str]:
        return {n for n, _ in self.when} | {self.then[0]}

    def __str__(self) -> str:
        cond = " and ".join(f"{n} in {sorted(a)}" if len(a) > 1 else f"{n}={next(iter(a))}" for n, a in self.when)
        return f"if {cond} then {self.then[0]}={self.then[1]}"


def _parse_rules(raw: object, where: str) -> list[Rule]:
    """One Rule per conclusion, so that a schema lacking one conclusion keeps the others."""
    if not isinstance(raw, dict) or not isinstance(raw.get("if"), dict) or not isinstance(raw.get("then"), dict):
        raise RulesError(f"{where}: a rule needs 'if' and 'then' objects, got {raw!r}")
    if not raw["if"] or not raw["then"]:
        raise RulesError(f"{where}: empty 'if' or 'then' in {raw!r}")
    when = []
    for name, classes in raw["if"].items():
        classes = [classes] if isinstance(classes, str) else classes
        if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
            raise RulesError(f"{where}: 'if' of {name!r} must be a class or a non-empty list of classes")
        when.append((name, frozenset(classes)))
    for name, cls in raw["then"].items():
        if not isinstance(cls, str):
            raise RulesError(f"{where}: 'then' of {name!r} must be one class, got {cls!r}")
    return [Rule(tuple(when), (name, cls)) for name, cls in raw["then"].items()]


def _in_schema(rule: Rule, schema: LabelSchema) -> bool:
    return all(schema.has_class(n, c) for n, allowed in rule.when for c in allowed) and schema.has_class(*rule.then)


class Rules:
    """Propagation rules bound to one schema."""

    def __init__(self, schema: LabelSchema, rules: tuple[Rule, ...]):
        self.schema = schema
        self.rules = rules
        self._components = self._enumerate_components()

    def __repr__(self) -> str:
        return f"Rules({len(self.rules)} rules over {sorted({n for r in self.rules for n in r.names})})"

    def propagate(self, labels: dict) -> tuple[dict, list[str]]:
        """Return (the labels plus every label the rules imply, contradictions).

        Only missing labels are filled; given labels are never changed. A rule whose conclusion
        disagrees with a given (or earlier propagated) label yields a contradiction message.
        """
        filled = dict(labels)
        contradictions: list[str] = []
        changed = True
        while changed:  # fixpoint: each pass can only add labels, so this ends
            changed = False
            for rule in self.rules:
                if not rule.fires(filled):
                    continue
                name, cls = rule.then
                if name not in filled:
                    filled[name] = cls
                    changed = True
                elif filled[name] != cls:
                    msg = f"rule '{rule}' contradicts {name}={filled[name]}"
                    if msg not in contradictions:
                        contradictions.append(msg)
        return filled, contradictions

    def is_consistent(self, assignment: dict) -> bool:
        """True if no rule (also through chains of rules over missing labels) is violated."""
        return not self.propagate(assignment)[1]

    def joint_decode(self, probs: dict[str, np.ndarray]) -> dict[str, tuple[int, float]]:
        """Most probable consistent assignment: {name: (class_index, that class's probability)}.

        Labels absent from ``probs`` are left free (any class that keeps the rest consistent).
        """
        out: dict[str, tuple[int, float]] = {}
        vectors = {}
        for name, p in probs.items():
            if name not in self.schema:
                raise ValueError(f"joint_decode: label {name!r} is not in the schema")
            p = np.asarray(p, dtype=np.float64).reshape(-1)
            if p.shape[0] != len(self.schema[name].classes):
                raise ValueError(
                    f"joint_decode: {name!r} has {p.shape[0]} probabilities, schema has "
                    f"{len(self.schema[name].classes)} classes"
                )
            vectors[name] = p
        linked = set()
        for names, assignments in self._components:
            linked.update(names)
            cols = [i for i, n in enumerate(names) if n in vectors]
            if not cols:
                continue
            # Project the consistent full assignments onto the labels we have probabilities for.
            options = np.unique(assignments[:, cols], axis=0)
            score = np.ones(len(options))
            for j, col in enumerate(cols):
                score *= vectors[names[col]][options[:, j]]
            best = options[int(np.argmax(score))]
            for j, col in enumerate(cols):
                name = names[col]
                out[name] = (int(best[j]), float(vectors[name][best[j]]))
        for name, p in vectors.items():
            if name not in linked:
                k = int(np.argmax(p))
                out[name] = (k, float(p[k]))
        return out

    def _enumerate_components(self) -> list[tuple[tuple[str, ...], np.ndarray]]:
        """Connected components of rule-linked labels with all their consistent assignments."""
        parent = {n: n for r in self.rules for n in r.names}

        def root(n: str) -> str:
            while parent[n] != n:
                n = parent[n]
            return n

        for rule in self.rules:
            first, *rest = sorted(rule.names)
            for n in rest:
                parent[root(n)] = root(first)
        groups: dict[str, list[str]] = {}
        for n in self.schema.names:  # schema order keeps the output deterministic
            if n in parent:
                groups.setdefault(root(n), []).append(n)
        components = []
        for names in groups.values():
            classes = [self.schema[n].classes for n in names]
            rows = [
                idx
                for idx in itertools.product(*(range(len(c)) for c in classes))
                if self.is_consistent({n: classes[i][k] for i, (n, k) in enumerate(zip(names, idx))})
            ]
            if not rows:
                raise RulesError(f"the rules admit no consistent assignment of {names}")
            components.append((tuple(names), np.array(rows, dtype=np.int64)))
        return components


def load_rules(schema: LabelSchema, path: str | Path | None = None) -> Rules:
    """Read the rule table (default: propagation_rules.json) and keep the rules the schema supports."""
    path = Path(path) if path is not None else DEFAULT_RULES_PATH
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RulesError(f"cannot read rules {path}: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("rules"), list):
        raise RulesError(f"{path}: expected an object with a 'rules' list")
    parsed = [rule for i, r in enumerate(raw["rules"]) for rule in _parse_rules(r, f"{path} rule {i}")]
    return Rules(schema, tuple(r for r in parsed if _in_schema(r, schema)))
