"""The subject split a `training.fit` run trains on: given (--split), extended from an earlier one
(--extend-split, training/split_extend.py) or computed (training.split). A computed or extended split
merges subjects whose frames are near duplicates (training/near_duplicates.py) unless
--dup-threshold is negative, and is written to RUN/split.json (a resumed run keeps that file)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from training.config import FitConfig
from training.split_problem import SPLITS


def read_split(path: str | Path) -> dict:
    split = json.loads(Path(path).read_text(encoding="utf-8"))
    parts = split.get("recordings") if isinstance(split, dict) else None
    if not isinstance(parts, dict) or any(not isinstance(parts.get(s), list) for s in SPLITS):
        raise ValueError(f"{path}: a split needs \"recordings\": {{\"train\": [...], \"val\": [...], "
                         f"\"test\": [...]}} (training.split writes it)")
    return split


def compute_split(cfg: FitConfig, recordings, schema, read: Callable[[str], bytes], say=print) -> dict:
    """A new split of `recordings` (extended from cfg.extend_split when set)."""
    groups = ()
    if cfg.dup_threshold >= 0:
        from training.near_duplicates import duplicate_subject_groups

        groups = duplicate_subject_groups(recordings, read, cfg.dup_threshold)
        if groups:
            say(f"split: {len(groups)} groups of subjects share near-duplicate frames; each stays in one part")
    if cfg.extend_split:
        from training.split_extend import extend_split

        split = extend_split(read_split(cfg.extend_split), recordings, schema, groups)
        new = split["new_subjects"]
        in_new = {s for part in SPLITS for s in new[part]}
        n_rec = sum(1 for r in recordings if (r.subject_id or f"recording:{r.recording_id}") in in_new)
        say(f"split: extended {cfg.extend_split}: {n_rec} recordings of {len(in_new)} new labelled subjects "
            f"(train {len(new['train'])} / val {len(new['val'])} / test {len(new['test'])} subjects), "
            f"{len(split['provisional'])} unlabelled new subjects train provisionally")
        return split
    from training.split import split_subjects

    return split_subjects(recordings, schema, ratios=cfg.split_ratios, seed=cfg.recipe.seed, duplicate_groups=groups)
