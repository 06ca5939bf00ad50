import itertools
import json

import numpy as np
import pytest

from training.propagation import RulesError, load_rules
from training.schema import LabelSchema, LabelSpec, load_label_config

MASK, NO_MASK = "Wears Face Mask", "Wears No Face Mask"
GLASSES, NO_GLASSES = "Wears Glasses", "Wears No Glasses"


def thesis_consistent(a: dict) -> bool:
    """Plain reference for the thesis rules over a FULL assignment of the linked labels."""
    mask = a["wearing_face_mask"] == MASK
    return (
        (not mask or (a["mouth_visibility"] == "Mouth Fully Occluded" and a["chin_visibility"] == "Chin Fully Occluded"))
        and ((a["glasses_kind"] == "Glasses Kind None") == (a["wearing_glasses"] == NO_GLASSES))
        and ((a["face_mask_kind"] == "Face Mask Kind None") == (a["wearing_face_mask"] == NO_MASK))
    )


LINKED = ["wearing_face_mask", "face_mask_kind", "mouth_visibility", "chin_visibility", "glasses_kind", "wearing_glasses"]


def test_mask_implies_occluded_mouth_and_chin(schema):
    filled, contradictions = load_rules(schema).propagate({"wearing_face_mask": MASK, "gender": "Male"})
    assert contradictions == []
    assert filled["mouth_visibility"] == "Mouth Fully Occluded"
    assert filled["chin_visibility"] == "Chin Fully Occluded"
    assert filled["gender"] == "Male"
    assert "face_mask_kind" not in filled  # a mask of unknown kind stays unknown


def test_kind_and_wearing_propagate_both_ways(schema):
    rules = load_rules(schema)
    assert rules.propagate({"glasses_kind": "Glasses Kind None"})[0]["wearing_glasses"] == NO_GLASSES
    assert rules.propagate({"wearing_glasses": NO_GLASSES})[0]["glasses_kind"] == "Glasses Kind None"
    assert rules.propagate({"glasses_kind": "Glasses Kind Blocking"})[0]["wearing_glasses"] == GLASSES
    assert rules.propagate({"face_mask_kind": "Face Mask Kind None"})[0]["wearing_face_mask"] == NO_MASK
    # chain: a mask kind implies wearing a mask, which implies occluded mouth and chin
    chained = rules.propagate({"face_mask_kind": "Face Mask Kind RGB"})[0]
    assert chained["wearing_face_mask"] == MASK and chained["mouth_visibility"] == "Mouth Fully Occluded"


def test_never_overwrites_and_reports_contradiction(schema):
    given = {"wearing_face_mask": MASK, "mouth_visibility": "Mouth Fully Visible"}
    filled, contradictions = load_rules(schema).propagate(given)
    assert filled["mouth_visibility"] == "Mouth Fully Visible"
    assert filled["chin_visibility"] == "Chin Fully Occluded"
    assert len(contradictions) == 1 and "mouth_visibility=Mouth Fully Visible" in contradictions[0]
    assert given == {"wearing_face_mask": MASK, "mouth_visibility": "Mouth Fully Visible"}  # input untouched


def test_is_consistent_matches_reference_on_all_full_assignments(schema):
    rules = load_rules(schema)
    classes = [schema[n].classes for n in LINKED]
    n_ok = 0
    for combo in itertools.product(*classes):
        a = dict(zip(LINKED, combo))
        assert rules.is_consistent(a) == thesis_consistent(a), a
        n_ok += thesis_consistent(a)
    assert 0 < n_ok < np.prod([len(c) for c in classes])


def test_is_consistent_follows_chains_over_missing_labels(schema):
    rules = load_rules(schema)
    assert not rules.is_consistent({"face_mask_kind": "Face Mask Kind Black", "chin_visibility": "Chin Fully Visible"})
    assert rules.is_consistent({"face_mask_kind": "Face Mask Kind None", "chin_visibility": "Chin Fully Visible"})


def brute_force(schema, probs):
    names = list(probs)
    best, best_p = None, -1.0
    for idx in itertools.product(*(range(len(schema[n].classes)) for n in names)):
        a = {n: schema[n].classes[k] for n, k in zip(names, idx)}
        # consistent if some completion of the unscored linked labels satisfies the reference
        free = [n for n in LINKED if n not in a]
        ok = any(
            thesis_consistent({**a, **dict(zip(free, rest))})
            for rest in itertools.product(*(schema[n].classes for n in free))
        )
        p = float(np.prod([probs[n][k] for n, k in zip(names, idx)]))
        if ok and p > best_p:
            best, best_p = dict(zip(names, idx)), p
    return best


@pytest.mark.parametrize("seed", range(25))
def test_joint_decode_equals_brute_force(schema, seed):
    rng = np.random.default_rng(seed)
    names = LINKED + ["gender", "eye_color"]
    if seed % 3 == 0:  # also with some linked labels unscored
        names = [n for n in names if n not in ("face_mask_kind", "glasses_kind")]
    probs = {n: rng.dirichlet(np.ones(len(schema[n].classes)) * 0.7) for n in names}
    decoded = load_rules(schema).joint_decode(probs)
    expected = brute_force(schema, probs)
    assert {n: k for n, (k, _) in decoded.items()} == expected
    for n, (k, p) in decoded.items():
        assert p == pytest.approx(probs[n][k])


def test_joint_decode_overrides_inconsistent_argmax(schema):
    probs = {
        "wearing_face_mask": np.array([0.9, 0.1]),
        "mouth_visibility": np.array([0.6, 0.4]),  # argmax says visible: inconsistent with a mask
        "chin_visibility": np.array([0.2, 0.8]),
    }
    decoded = load_rules(schema).joint_decode(probs)
    assert decoded["wearing_face_mask"][0] == 0 and decoded["mouth_visibility"][0] == 1


def test_joint_decode_rejects_bad_input(schema):
    rules = load_rules(schema)
    with pytest.raises(ValueError, match="not in the schema"):
        rules.joint_decode({"nope": np.array([0.5, 0.5])})
    with pytest.raises(ValueError, match="gender"):
        rules.joint_decode({"gender": np.array([0.2, 0.3, 0.5])})


def test_rules_filtered_to_schema(benchmarks_dir):
    facemask = load_label_config(benchmarks_dir / "facemask" / "label_config.xml")
    rules = load_rules(facemask)
    assert rules.rules == ()
    assert rules.propagate({"wearing_face_mask": "Yes"}) == ({"wearing_face_mask": "Yes"}, [])
    assert rules.joint_decode({"wearing_face_mask": np.array([0.3, 0.7])}) == {"wearing_face_mask": (1, 0.7)}


def test_partial_schema_keeps_only_supported_rules():
    schema = LabelSchema((
        LabelSpec("wearing_face_mask", (MASK, NO_MASK)),
        LabelSpec("mouth_visibility", ("Mouth Fully Visible", "Mouth Fully Occluded")),
    ))
    rules = load_rules(schema)
    assert rules.propagate({"wearing_face_mask": MASK})[0]["mouth_visibility"] == "Mouth Fully Occluded"
    assert all(r.names <= {"wearing_face_mask", "mouth_visibility"} for r in rules.rules)


def test_malformed_and_self_contradicting_rules(tmp_path, schema):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"rules": [{"if": {"gender": "Male"}}]}))
    with pytest.raises(RulesError, match="'if' and 'then'"):
        load_rules(schema, bad)
    loop = tmp_path / "loop.json"
    loop.write_text(json.dumps({"rules": [
        {"if": {"gender": ["Male", "Female"]}, "then": {"car_recording": "In Car"}},
        {"if": {"car_recording": "In Car"}, "then": {"gender": "Male"}},
        {"if": {"gender": "Male"}, "then": {"car_recording": "In Lab"}},
    ]}))
    with pytest.raises(RulesError, match="no consistent assignment"):
        load_rules(schema, loop)
