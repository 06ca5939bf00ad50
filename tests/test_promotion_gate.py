"""The per-label promotion gate (backend/active_learning/promotion.decide)."""
import json

from backend.active_learning.promotion import GateConfig, decide

GATE = GateConfig(tolerance=0.02, label_tolerance=0.10, min_label_count=5)


def doc(**labels) -> dict:
    """An evaluate metrics.json: label=(balanced accuracy, validation labels)."""
    scored = [ba for ba, n in labels.values() if n]
    return {"mean_balanced_accuracy": sum(scored) / len(scored) if scored else None,
            "labels": {name: {"balanced_accuracy": ba if n else None, "n": n} for name, (ba, n) in labels.items()}}


def test_promotes_when_the_mean_holds_and_no_gated_label_regresses():
    d = decide(doc(a=(0.80, 10), b=(0.70, 6)), doc(a=(0.75, 10), b=(0.72, 6)), GATE, "v1")
    assert d.promote and "no label with >= 5 val labels (2 of 2)" in d.reason
    assert [(r["label"], r["delta"], r["gated"], r["regressed"]) for r in d.labels] == \
        [("a", 0.05, True, False), ("b", -0.02, True, False)]


def test_a_label_that_loses_more_than_its_tolerance_blocks_promotion_even_if_the_mean_rises():
    d = decide(doc(a=(0.95, 10), b=(0.60, 8)), doc(a=(0.60, 10), b=(0.75, 8)), GATE, "v1")
    assert not d.promote and "b -0.1500 (n=8) lost more than the per-label tolerance" in d.reason


def test_labels_with_few_validation_labels_are_shown_but_not_gated():
    d = decide(doc(a=(0.99, 10), b=(0.70, 3)), doc(a=(0.60, 10), b=(0.90, 3)), GATE, "v1")
    assert d.promote and d.labels[1]["gated"] is False and d.labels[1]["delta"] == -0.2


def test_mean_worse_than_the_tolerance_or_missing_scores():
    assert "worse by more than the tolerance" in decide(doc(a=(0.70, 9)), doc(a=(0.80, 9)), GATE, "v1").reason
    assert not decide(doc(a=(0.5, 0)), doc(a=(0.8, 9)), GATE, "v1").promote  # no val labels: no score
    assert decide(doc(a=(0.5, 9)), None, GATE, None).reason == "there was no current model"
    assert decide(doc(a=(0.5, 9)), doc(a=(0.5, 0)), GATE, "v1").promote  # the current one has no score


def test_architecture_args_rebuild_the_served_encoder(tmp_path):
    from backend.active_learning.promotion import architecture_args
    from training.fit_cli import parse_args

    (tmp_path / "recmeta.json").write_text(json.dumps({"image_size": 64, "frames": 10, "kind": "multi", "mode": "mtl",
                                                       "fusion": "mean", "width": 0.5, "stages": 7, "embed_dim": 0}))
    args = architecture_args(tmp_path / "model.onnx")
    assert args[-6:] == ("--width", "0.5", "--stages", "7", "--embed-dim", "0")
    model = parse_args(["--export", "e.json", "--out", "o", *args])[0].model  # what the warm-started job builds
    assert (model.width, model.stages, model.embed_dim) == (0.5, 7, 0)
    assert architecture_args(tmp_path / "missing" / "model.onnx") == ()
