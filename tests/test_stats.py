import argparse
import json

import pytest

from training.export_reader import Recording
from training.stats import compute_stats, default_crosstabs, main, parse_crosstab
from training.synthetic import generate, random_recordings


def _rec(rid, subject, sources=None, **labels):
    return Recording(0, rid, subject, (), labels, sources or dict.fromkeys(labels, "annotation"), {})


def test_counts_coverage_and_crosstab(schema):
    recs = [
        _rec("r1", "s1", gender="Male", eye_color="Blue"),
        _rec("r2", "s1", gender="Male"),
        _rec("r3", "s2", {"gender": "annotation", "wearing_glasses": "propagated"},
             gender="Female", wearing_glasses="Wears No Glasses"),
        _rec("r4", "s3"),
    ]
    split = {"recordings": {"train": ["r1", "r2"], "test": ["r3"]}}
    stats = compute_stats(recs, schema, split)
    assert stats["coverage"]["gender"] == {"labelled": 3, "total": 4, "fraction": 0.75, "annotated": 3, "propagated": 0}
    assert stats["coverage"]["wearing_glasses"]["propagated"] == 1
    assert stats["per_split"]["train"] == {"subjects": 1, "recordings": 2}
    assert stats["per_split"]["val"] == {"subjects": 0, "recordings": 0}
    assert stats["per_split"]["unassigned"] == {"subjects": 1, "recordings": 1}
    assert stats["class_counts"]["train"]["gender"] == {"Female": 0, "Male": 2}
    assert stats["class_counts"]["test"]["gender"] == {"Female": 1, "Male": 0}
    tab = stats["crosstabs"]["eye_color x gender"]
    assert tab["cols"] == ["Female", "Male"]
    assert tab["counts"][tab["rows"].index("Blue")] == [0, 1]
    assert sum(map(sum, tab["counts"])) == 1


def test_matches_plain_count(schema):
    recs = random_recordings(schema, subjects=30, seed=4)
    stats = compute_stats(recs, schema)
    for spec in schema.labels:
        labelled = [r for r in recs if spec.name in r.labels]
        assert stats["coverage"][spec.name]["labelled"] == len(labelled)
        for cls in spec.classes:
            assert stats["class_counts"]["all"][spec.name][cls] == sum(r.labels[spec.name] == cls for r in labelled)
    assert len(stats["crosstabs"]) == len(schema.names) - 1  # every label x gender


def test_default_crosstab_without_gender():
    from training.schema import LabelSchema, LabelSpec

    schema = LabelSchema((LabelSpec("a", ("x", "y")), LabelSpec("b", ("p", "q")), LabelSpec("c", ("u", "v"))))
    assert default_crosstabs(schema) == [("b", "a"), ("c", "a")]


def test_bad_crosstab(schema):
    with pytest.raises(ValueError, match="nope"):
        compute_stats([], schema, crosstabs=[("gender", "nope")])
    with pytest.raises(argparse.ArgumentTypeError):
        parse_crosstab("gender")


def test_cli_on_synthetic_export(tmp_path, capsys):
    paths = generate(tmp_path / "s", recordings=10, subjects=4, frames=1, size=32, label_fraction=0.4)
    main(["--export", str(paths.export), "--out", str(tmp_path / "out"), "--crosstab", "glasses_kind,eye_color"])
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert (tmp_path / "out" / "stats.png").stat().st_size > 1000
    assert list(stats["crosstabs"]) == ["glasses_kind x eye_color"]
    # answered 4 of 10 per question; propagation may fill in more, never fewer
    assert all(4 <= c["labelled"] <= 10 and c["annotated"] == 4 for c in stats["coverage"].values())
    assert "coverage" in capsys.readouterr().out


def test_cli_missing_split_is_a_clear_error(tmp_path):
    paths = generate(tmp_path / "s", recordings=2, subjects=1, frames=1, size=32)
    with pytest.raises(SystemExit, match="nosplit.json"):
        main(["--export", str(paths.export), "--split", str(tmp_path / "nosplit.json"), "--out", str(tmp_path / "o")])
