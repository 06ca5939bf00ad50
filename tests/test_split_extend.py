"""Extending an earlier split to the subjects of a newer export (training/split_extend.py)."""
from dataclasses import replace

import pytest

from training.export_reader import Recording
from training.split import split_subjects
from training.split_extend import catch_up_ratios, extend_split
from training.split_problem import SPLITS
from training.synthetic import random_recordings


def _where(split: dict) -> dict[str, str]:
    return {s: part for part in SPLITS for s in split["subjects"][part]}


def _unlabelled(rid, subject):
    return Recording(0, rid, subject, (), {}, {}, {})


def test_earlier_subjects_stay_and_new_labelled_subjects_fill_every_part(schema):
    old = random_recordings(schema, 20, seed=1, label_probability=0.8)
    first = split_subjects(old, schema, seed=0)
    more = random_recordings(schema, 40, seed=2, label_probability=0.8)[len(old):]  # subjects 20..39
    more = [replace(r, subject_id="new_" + r.subject_id) for r in more]
    more_of_old = [replace(old[0], recording_id="rec_extra", task_id=999)]  # a new recording of a placed subject
    extended = extend_split(first, old + more + more_of_old, schema)
    before, after = _where(first), _where(extended)
    assert all(after[s] == part for s, part in before.items())  # nobody moved
    assert "rec_extra" in extended["recordings"][before[old[0].subject_id]]
    new = {s for part in SPLITS for s in extended["new_subjects"][part]}
    assert new == {r.subject_id for r in more}
    assert extended["new_subjects"]["val"] and extended["new_subjects"]["test"]  # val grows with the project
    n = len(after)
    for part, ratio in zip(SPLITS, (0.7, 0.1, 0.2)):  # the whole, not just the newcomers, keeps the ratios
        assert abs(len(extended["subjects"][part]) - ratio * n) <= max(0.02 * n, 1) * 4
    assert extended["extended_from"]["subjects"] == len(before)


def test_unlabelled_newcomers_train_provisionally_and_are_placed_once_labelled(schema):
    old = random_recordings(schema, 10, seed=3, label_probability=0.9)
    first = split_subjects(old, schema, seed=0)
    waiting = [_unlabelled(f"w{i}", f"waiting{i}") for i in range(3)]
    second = extend_split(first, old + waiting, schema)
    assert second["provisional"] == ["waiting0", "waiting1", "waiting2"]
    assert set(second["provisional"]) <= set(second["subjects"]["train"])
    first_label = schema.labels[0]
    labelled = [replace(w, labels={first_label.name: first_label.classes[0]},
                        label_sources={first_label.name: "annotation"}) for w in waiting]
    third = extend_split(second, old + labelled, schema)
    assert third["provisional"] == []
    assert sorted(s for part in SPLITS for s in third["new_subjects"][part]) == ["waiting0", "waiting1", "waiting2"]


def test_a_near_duplicate_of_a_placed_subject_joins_its_part(schema):
    old = random_recordings(schema, 10, seed=4, label_probability=0.9)
    first = split_subjects(old, schema, seed=0)
    val_subject = first["subjects"]["val"][0]
    copy = replace(old[0], recording_id="copy", subject_id="copycat", task_id=77)
    extended = extend_split(first, old + [copy], schema, duplicate_groups=[[val_subject, "copycat"]])
    assert "copycat" in extended["subjects"]["val"] and "copy" in extended["recordings"]["val"]


def test_catch_up_ratios_favour_the_parts_below_their_share():
    assert catch_up_ratios((0.7, 0.1, 0.2), [7, 1, 2], 10) == pytest.approx((0.7, 0.1, 0.2))
    shares = catch_up_ratios((0.7, 0.1, 0.2), [9, 0, 1], 10)  # val and test are behind
    assert shares[1] > 0.1 and shares[2] > 0.2 and sum(shares) == pytest.approx(1.0)
    assert min(catch_up_ratios((0.7, 0.1, 0.2), [0, 10, 0], 2)) > 0  # ratios stay positive


def test_an_earlier_split_without_subjects_is_named(schema):
    with pytest.raises(ValueError, match="earlier split needs"):
        extend_split({"recordings": {}}, random_recordings(schema, 3), schema)


def test_a_new_project_on_an_offline_split_gets_a_labelled_validation_subject(schema):
    offline = split_subjects(random_recordings(schema, 6, seed=5, label_probability=0.9), schema, seed=0)
    fresh = [replace(r, subject_id="p2_" + r.subject_id) for r in random_recordings(schema, 3, seed=6,
                                                                                     max_recordings=1,
                                                                                     label_probability=1.0)]
    extended = extend_split(offline, fresh, schema)  # none of the offline subjects is in this export
    assert len(extended["new_subjects"]["val"]) >= 1 and extended["recordings"]["val"]


def test_a_lone_labelled_newcomer_validates_while_val_has_no_labels(schema):
    old = [_unlabelled(f"o{i}", f"old{i}") for i in range(10)]
    first = split_subjects(old, schema, seed=0)
    label = schema.labels[0]
    newcomer = replace(_unlabelled("n0", "new0"), labels={label.name: label.classes[0]},
                       label_sources={label.name: "annotation"})
    extended = extend_split(first, old + [newcomer], schema)
    assert extended["new_subjects"]["val"] == ["new0"] and extended["solver"]["moved_to_val"] == ["new0"]
    later = replace(newcomer, recording_id="n1", subject_id="new1")  # val has a label now: the ratios decide
    assert "moved_to_val" not in extend_split(extended, old + [newcomer, later], schema)["solver"]
