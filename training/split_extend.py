"""Extend an earlier split.json to the recordings of a newer export (active learning).

A subject never moves once placed: every subject of the earlier split keeps its part, and so do new
recordings of those subjects. Subjects seen for the first time are assigned by the same integer
program as training.split (split.solve), run on the new units only with ratios corrected for what
the earlier split already holds (each part gets its share of the whole, not of the newcomers alone),
so validation keeps growing with the project at its ratio.

Which newcomers are placed:
- a unit (subjects merged by near-duplicate frames) that holds an earlier subject goes where that
  subject is; if it links earlier subjects of different parts, they stay put, its new subjects join
  the first one's part and the conflict is listed under "duplicate_conflicts";
- a new unit with at least one label is placed by the integer program; when the export's earlier
  subjects give val no labelled recording (e.g. a new project on a model trained offline), val gets
  one labelled newcomer (its share is raised so that the program's subject bound asks for one; a lone
  newcomer, or one a fallback left out, is moved there): the promotion gate needs a validation score;
- a new unit without any label yet is "provisional": it trains (unlabelled: S4L's semi-supervised
  steps use it) but is not fixed, so that once annotated it can still land in val or test.
"""
from __future__ import annotations

from dataclasses import replace

from training.schema import LabelSchema
from training.split import solve, split_document, train_val_test
from training.split_problem import SPLITS, SplitConfig, build_units

MIN_SHARE = 0.01  # a part already above its share still gets this much weight (ratios must stay positive)
VAL = SPLITS.index("val")


def earlier_placements(previous: dict) -> dict[str, str]:
    """subject -> part of an earlier split.json; provisional subjects are not placements."""
    subjects = previous.get("subjects") if isinstance(previous, dict) else None
    if not isinstance(subjects, dict) or any(not isinstance(subjects.get(s), list) for s in SPLITS):
        raise ValueError('an earlier split needs "subjects": {"train": [...], "val": [...], "test": [...]} '
                         "(training.split and training.fit write it)")
    provisional = set(previous.get("provisional") or ())
    return {subject: part for part in SPLITS for subject in subjects[part] if subject not in provisional}


def catch_up_ratios(ratios: tuple[float, ...], placed: list[int], new: int) -> tuple[float, ...]:
    """Shares of `new` units per part so that placed + new approaches `ratios` of the total."""
    total = sum(placed) + new
    want = [max(r * total - have, 0.0) for r, have in zip(ratios, placed)]
    if sum(want) <= 0:
        return tuple(ratios)
    shares = [max(w / sum(want), MIN_SHARE) for w in want]
    return tuple(s / sum(shares) for s in shares)


def with_share(ratios: tuple[float, ...], part: int, share: float) -> tuple[float, ...]:
    """`ratios` with `part` raised to at least `share`, the others scaled down to keep the sum 1."""
    if ratios[part] >= share:
        return ratios
    rest = sum(r for k, r in enumerate(ratios) if k != part)
    return tuple(share if k == part else r * (1 - share) / rest for k, r in enumerate(ratios))


def extend_split(previous: dict, recordings, schema: LabelSchema, duplicate_groups=(),
                 config: SplitConfig | None = None) -> dict:
    """The split.json dict of `recordings`, keeping every placement of `previous` (see module doc)."""
    cfg = train_val_test(config or SplitConfig(tuple(previous.get("ratios") or (0.7, 0.1, 0.2)),
                                               int(previous.get("seed") or 0)))
    placed = earlier_placements(previous)
    units, merges = build_units(sorted(recordings, key=lambda r: r.recording_id), schema, duplicate_groups)
    assign: list[int | None] = [None] * len(units)
    conflicts, fresh, provisional = [], [], []
    for i, unit in enumerate(units):
        parts = [SPLITS.index(placed[s]) for s in unit.subjects if s in placed]
        if parts:
            assign[i] = parts[0]
            if len(set(parts)) > 1:
                conflicts.append({s: placed[s] for s in unit.subjects if s in placed})
        elif sum(unit.counts):
            fresh.append(i)
        else:
            assign[i] = 0  # provisional: trains, not fixed
            provisional += unit.subjects
    solver = {"status": "no new labelled subjects", "fallback": None, "attempts": []}
    if fresh:
        held = [0] * len(SPLITS)  # what this export's earlier subjects already give each part
        for i, unit in enumerate(units):
            if assign[i] is not None and unit.subjects[0] not in provisional:
                held[assign[i]] += len(unit.subjects)
        new_subjects = sum(len(units[i].subjects) for i in fresh)
        ratios = catch_up_ratios(cfg.ratios, held, new_subjects)
        val_labelled = any(assign[i] == VAL and sum(u.counts) for i, u in enumerate(units))
        if not val_labelled and new_subjects > 1:
            ratios = with_share(ratios, VAL, (1 + 1e-3) / new_subjects)  # the subject bound then gives val one
        sub_assign, solver = solve([units[i] for i in fresh], replace(cfg, ratios=ratios))
        solver = {**solver, "ratios": [round(r, 4) for r in ratios]}
        if not val_labelled and VAL not in sub_assign:  # a single newcomer, or a fallback ignored the bound
            smallest = min(range(len(fresh)), key=lambda k: (len(units[fresh[k]].recordings), k))
            sub_assign[smallest] = VAL
            solver["moved_to_val"] = list(units[fresh[smallest]].subjects)
        for i, part in zip(fresh, sub_assign):
            assign[i] = part
    doc = split_document(units, assign, cfg, schema, solver, merges)
    present = {s for u in units for s in u.subjects}
    for subject, part in placed.items():  # placed earlier, no recording in this export: still placed
        if subject not in present:
            doc["subjects"][part] = sorted(doc["subjects"][part] + [subject])
    doc["provisional"] = sorted(provisional)
    doc["new_subjects"] = {part: sorted(s for i in fresh if SPLITS[assign[i]] == part for s in units[i].subjects)
                           for part in SPLITS}
    doc["extended_from"] = {"subjects": len(placed), "provisional": len(previous.get("provisional") or ())}
    doc["duplicate_conflicts"] = conflicts
    return doc

