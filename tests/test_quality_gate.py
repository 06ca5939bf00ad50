"""The backend's per-label quality gate: what it serves, the overrides, /labels, the log, the task score."""
from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.quality_gate import label_gate
from backend.recording_model import RecordingBackend
from backend.results import certainty
from backend.settings import Settings, SettingsError
from backend_fixtures import add_tiny_version, backend_settings, task, write_recording
from training.schema import load_label_config

SCHEMA = load_label_config()
WEAK, SINGLE = "gender", "eye_color"  # the label whose interval reaches chance; the one-class label


def figures(low: float, name: str) -> dict:
    classes = SCHEMA[name].classes
    return {"balanced_accuracy": low + 0.1, "interval": [low, min(1.0, low + 0.2)], "level": 0.95,
            "val_counts": {c: 20 for c in classes}, "val_subjects": 30, "train_classes": len(classes)}


def quality_meta() -> dict:
    quality = {s.name: figures(0.9, s.name) for s in SCHEMA.labels}
    quality[WEAK] = figures(0.45, WEAK)
    return {"quality": quality, "single_class": [SINGLE]}


@pytest.fixture
def gated(tmp_path):
    """gated(**settings) -> (backend, task) with a model whose WEAK label is at chance and SINGLE one-class."""
    def make(**overrides):
        settings = backend_settings(tmp_path, **overrides)
        if not (settings.model_dir / "current").exists():
            add_tiny_version(settings.model_dir, tmp_path, "v1", extra_meta=quality_meta())
        refs = write_recording(settings.local_files_document_root, "r", [120] * 4)
        return RecordingBackend(settings), task(1, refs)
    return make


def served(backend, one_task) -> set[str]:
    return {i["from_name"] for i in backend.predict([one_task])[0]["result"]}


def test_default_gate_withholds_the_weak_and_the_single_class_label(gated):
    backend, one = gated()
    assert served(backend, one) == set(SCHEMA.names) - {WEAK, SINGLE}


def test_gate_off_serves_all_but_the_single_class_label(gated):
    backend, one = gated(quality_gate=False)
    assert served(backend, one) == set(SCHEMA.names) - {SINGLE}


def test_per_label_overrides(gated):
    backend, one = gated(quality_gate_serve=(WEAK, SINGLE), quality_gate_withhold=("car_recording",))
    assert served(backend, one) == set(SCHEMA.names) - {SINGLE, "car_recording"}


def test_old_model_files_without_figures_are_served_and_say_so(tmp_path):
    settings = backend_settings(tmp_path)
    add_tiny_version(settings.model_dir, tmp_path, "old")
    gate = RecordingBackend(settings).label_gate()
    assert all(v["served"] and "no validation figures" in v["reason"] for v in gate["labels"].values())


def test_task_score_runs_over_served_labels_only(gated):
    gate_on, one = gated()
    gate_off = RecordingBackend(replace(gate_on.settings, quality_gate=False, quality_gate_serve=()))
    on, off = gate_on.predict([one])[0], gate_off.predict([one])[0]
    terms = {i["from_name"]: certainty_term(i) for i in off["result"]}
    assert on["score"] == pytest.approx(min(v for n, v in terms.items() if n != WEAK), abs=1e-5)
    assert off["score"] == pytest.approx(min(terms.values()), abs=1e-5)


def certainty_term(item: dict) -> float:
    k = len(SCHEMA[item["from_name"]].classes)
    return min(1.0, max(0.0, (item["score"] - 1 / k) / (1 - 1 / k)))


def test_certainty_is_chance_zero_and_sure_one_for_any_class_count():
    import numpy as np

    assert certainty(np.array([0.5, 0.5]), 0, 2) == 0.0
    assert certainty(np.array([0.25] * 4), 1, 4) == 0.0
    assert certainty(np.array([0.75, 0.25]), 0, 2) == pytest.approx(0.5)
    assert certainty(np.array([0.625, 0.125, 0.125, 0.125]), 0, 4) == pytest.approx(0.5)
    assert certainty(np.array([0.3, 0.0, 0.0]), 0, 1) == 1.0
    assert certainty(np.array([0.3, 0.0, 0.1]), 0, 3) == pytest.approx((0.75 - 1 / 3) / (2 / 3))  # renormalised


def test_labels_endpoint_and_startup_log(gated, caplog):
    backend, _ = gated()
    client = TestClient(create_app(backend.settings, backend))
    with caplog.at_level(logging.INFO, logger="backend.recording_model"):
        body = client.get("/labels").json()
    assert body["model_version"] == "v1"
    assert body["labels"][WEAK]["served"] is False and "<= chance 0.500" in body["labels"][WEAK]["reason"]
    assert body["labels"][SINGLE] == {**body["labels"][SINGLE], "served": False,
                                      "reason": "training annotations hold one class only"}
    assert body["labels"]["car_recording"]["served"] and body["labels"]["car_recording"]["interval"] == [0.9, 1.0]
    log = [r.getMessage() for r in caplog.records]
    assert f"model v1: quality gate serves {len(SCHEMA.names) - 2} of {len(SCHEMA.names)} labels" in log
    assert any(m.startswith(f"  {WEAK}: withheld (interval lower bound 0.450") for m in log)


def test_all_labels_withheld_is_a_quality_gate_error(gated):
    backend, one = gated(quality_gate_withhold=tuple(n for n in SCHEMA.names if n != SINGLE))
    entry = backend.predict([one])[0]
    assert "result" not in entry and entry["error"].startswith("quality_gate:")


def test_label_gate_precedence():
    meta = {**quality_meta(), "untrained": ["car_recording"]}
    gate = label_gate(meta, SCHEMA, Settings(quality_gate=False, quality_gate_serve=("car_recording", SINGLE)))
    assert not gate["car_recording"].served and "untrained" in gate["car_recording"].reason
    assert not gate[SINGLE].served
    assert gate[WEAK].served and gate[WEAK].reason == "QUALITY_GATE=off"


def test_gate_settings_from_env():
    s = Settings.from_env({"QUALITY_GATE": "off", "QUALITY_GATE_SERVE": " a, b ", "QUALITY_GATE_WITHHOLD": "c",
                           "QUALITY_GATE_MIN_VAL": "25"})
    assert (s.quality_gate, s.quality_gate_serve, s.quality_gate_withhold, s.quality_gate_min_val) == (
        False, ("a", "b"), ("c",), 25)
    assert Settings.from_env({}).quality_gate is True
    with pytest.raises(SettingsError, match="both name \\['a'\\]"):
        Settings.from_env({"QUALITY_GATE_SERVE": "a", "QUALITY_GATE_WITHHOLD": "a"})
