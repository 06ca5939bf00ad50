import json

import pytest

from training.folds import cross_validation_splits
from training.split_problem import SPLITS
from training.synthetic import random_recordings


def test_every_subject_is_tested_exactly_once_and_splits_are_subject_disjoint(schema):
    recordings = random_recordings(schema, subjects=20, seed=5, max_recordings=3, label_probability=0.6)
    splits = cross_validation_splits(recordings, schema, k=4, val_share=0.1, seed=0)
    assert len(splits) == 4
    tested = [s for doc in splits for s in doc["subjects"]["test"]]
    assert sorted(tested) == sorted({r.subject_id for r in recordings})  # once each
    for f, doc in enumerate(splits):
        assert doc["fold"]["index"] == f and doc["subjects"]["test"] == doc["fold"]["folds"][f]
        parts = [set(doc["subjects"][name]) for name in SPLITS]
        assert set().union(*parts) == {r.subject_id for r in recordings}
        assert sum(len(p) for p in parts) == len(set().union(*parts))  # disjoint
        where = {rid: name for name in SPLITS for rid in doc["recordings"][name]}
        assert all(doc["subjects"][where[r.recording_id]].count(r.subject_id) == 1 for r in recordings)
        assert 1 <= len(doc["subjects"]["val"]) <= 4  # ~10 % of 20 subjects, within the tolerance


def test_folds_balance_the_classes_better_than_chance(benchmarks_dir):
    from training.export_reader import read_export
    from training.schema import load_label_config

    schema = load_label_config(benchmarks_dir / "nuaa/label_config.xml")
    recordings = read_export(benchmarks_dir / "nuaa/export.json", schema).recordings
    splits = cross_validation_splits(recordings, schema, k=5)
    sizes = [len(doc["recordings"]["test"]) for doc in splits]
    assert sum(sizes) == 143 and max(sizes) - min(sizes) <= 10
    photo = [doc["counts"]["test"]["classes"]["face_source"]["Photo"] for doc in splits]
    assert all(n > 0 for n in photo)  # every fold tests annotated photos


def test_bad_arguments_name_the_problem(schema):
    recordings = random_recordings(schema, subjects=3, seed=1)
    with pytest.raises(ValueError, match="k >= 2"):
        cross_validation_splits(recordings, schema, k=1)
    with pytest.raises(ValueError, match="val_share"):
        cross_validation_splits(recordings, schema, k=5, val_share=0.85)
    with pytest.raises(ValueError, match="cannot fill 5 folds"):
        cross_validation_splits(recordings, schema, k=5)


def test_cli_writes_one_split_per_fold(benchmarks_dir, tmp_path, capsys):
    from training.split import main

    main(["--export", str(benchmarks_dir / "nuaa/export.json"), "--label-config",
          str(benchmarks_dir / "nuaa/label_config.xml"), "--out", str(tmp_path / "cv"), "--folds", "4"])
    docs = [json.loads((tmp_path / "cv" / f"split_cv{f}.json").read_text()) for f in range(4)]
    assert sum(len(d["recordings"]["test"]) for d in docs) == 143
    assert all(d["solver"]["fallback"] is None and "folds" in d["solver"] for d in docs)
    printed = capsys.readouterr().out
    assert printed.count("fold ") == 4 and "ILP" in printed
    with pytest.raises(SystemExit, match="k >= 2"):
        main(["--export", str(benchmarks_dir / "nuaa/export.json"), "--out", str(tmp_path / "x"), "--folds", "1"])
