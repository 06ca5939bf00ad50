"""What the subject split (split.py) works on: its configuration, the units it assigns (subjects
merged by near-duplicate frames) and the per-split targets with their tolerances."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from training.schema import LabelSchema

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitConfig:
    ratios: tuple[float, ...] = (0.7, 0.1, 0.2)  # train, val, test (folds.py: k equal parts)
    seed: int = 0
    time_limit_s: float = 20.0  # for all solver attempts together
    subject_tolerance: float = 0.02  # share of subjects (at least one subject)
    recording_tolerance: float = 0.03  # share of recordings
    relax_factors: tuple[float, ...] = (1.0, 2.0, 4.0)  # tolerance multipliers tried before greedy
    gap_recordings: float = 1.0  # CBC stops within this many recordings per (split, class) of the bound
    # More unit signatures than this (thousands of subjects): this many stay free in the integer program,
    # the others are dealt first at random in proportion (split.py); 2,000 free ones solve in ~8 s.
    max_free_groups: int = 2000

    def __post_init__(self):
        if len(self.ratios) < 2 or any(r <= 0 for r in self.ratios) or abs(sum(self.ratios) - 1) > 1e-6:
            raise ValueError(f"ratios must be two or more positive numbers summing to 1 (train,val,test), "
                             f"got {self.ratios}")


@dataclass(frozen=True)
class Unit:
    """Subjects that must share a split, with their recordings and labelled class counts."""

    subjects: tuple[str, ...]
    recordings: tuple[str, ...]
    counts: tuple[int, ...]  # per (label, class) column, see class_columns()


def class_columns(schema: LabelSchema) -> list[tuple[str, str]]:
    return [(spec.name, cls) for spec in schema.labels for cls in spec.classes]


def subject_of(recording) -> str:
    return recording.subject_id or f"recording:{recording.recording_id}"


def build_units(recordings, schema: LabelSchema, duplicate_groups=()) -> tuple[list[Unit], list[list[str]]]:
    """Group recordings by subject, merge subjects linked by duplicate groups (union-find).
    Returns units sorted by their subjects and the merged subject groups."""
    parent: dict[str, str] = {}

    def find(a: str) -> str:
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]  # path halving
            a = parent[a]
        return a

    per_subject: dict[str, list] = defaultdict(list)
    for rec in recordings:
        per_subject[subject_of(rec)].append(rec)
    for group in duplicate_groups:
        group = [s for s in group if s in per_subject]
        for other in group[1:]:
            ra, rb = sorted((find(group[0]), find(other)))
            parent[rb] = ra
    members: dict[str, list[str]] = defaultdict(list)
    for subject in sorted(per_subject):
        members[find(subject)].append(subject)
    column = {key: i for i, key in enumerate(class_columns(schema))}
    units = []
    for subjects in sorted(members.values()):
        counts = [0] * len(column)
        recs = [r for s in subjects for r in per_subject[s]]
        for rec in recs:
            for name, cls in rec.labels.items():
                if (name, cls) in column:
                    counts[column[(name, cls)]] += 1
        units.append(Unit(tuple(subjects), tuple(sorted(r.recording_id for r in recs)), tuple(counts)))
    return units, [list(u.subjects) for u in units if len(u.subjects) > 1]


def targets(units: list[Unit], cfg: SplitConfig, factor: float = 1.0) -> dict:
    """Subjects and recordings each split should hold, and the tolerances (times `factor`) around them."""
    n_sub = sum(len(u.subjects) for u in units)
    n_rec = sum(len(u.recordings) for u in units)
    return {
        "subjects": [r * n_sub for r in cfg.ratios],
        "recordings": [r * n_rec for r in cfg.ratios],
        "subject_tol": factor * max(cfg.subject_tolerance * n_sub, 1.0),
        "recording_tol": factor * cfg.recording_tolerance * n_rec,
    }
