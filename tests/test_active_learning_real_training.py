"""One real job through training.fit / training.evaluate on tiny synthetic data (32 px, 3 frames):
a full first model, then a warm-started second one scored on the same validation subjects."""
import importlib.util
import json
import time

import pytest

from backend.active_learning import handle_webhook, training_status
from backend.registry import ModelRegistry
from backend.settings import Settings
from test_active_learning_support import FakeLabelStudio, recorded

NEEDED = ("training.fit", "training.evaluate", "training.report", "training.synthetic")
pytestmark = pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in NEEDED),
                                reason=f"needs {NEEDED}")


def wait_done(settings, timeout=240.0):
    end = time.time() + timeout
    while time.time() < end:
        status = training_status(settings)["projects"]["1"]
        if status["state"] in ("succeeded", "failed"):
            return status["last_result"]
        time.sleep(0.5)
    raise AssertionError(f"job not done after {timeout} s: {training_status(settings)}")


def test_real_training_job_then_warm_start(tmp_path, monkeypatch):
    from training.schema import DEFAULT_LABEL_CONFIG
    from training.synthetic import generate

    data = generate(tmp_path / "syn", recordings=12, subjects=6, frames=3, size=32, seed=1)
    server = FakeLabelStudio(json.loads(data.export.read_text()))
    monkeypatch.delenv("AL_STEPS_MODULE", raising=False)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("AL_FIT_ARGS", "--image-size 32 --frames 3 --width 0.25 --epochs-per-step 1 "
                                      "--threads 1 --batch-size 4")
    monkeypatch.setenv("AL_WARM_EPOCHS_PER_STEP", "1")
    monkeypatch.setenv("PROMOTE_TOLERANCE", "1.0")  # tiny data: scores are noise; the gate is tested elsewhere
    settings = Settings(model_dir=tmp_path / "models", label_studio_url=server.url,
                        label_studio_api_key="fake-legacy-token", local_files_document_root=tmp_path)
    start = recorded("webhook_START_TRAINING.json")  # with the labeling config the synthetic data uses
    start["project"]["label_config"] = DEFAULT_LABEL_CONFIG.read_text(encoding="utf-8")
    try:
        handle_webhook(start, settings)
        first = wait_done(settings)
        assert first["status"] == "succeeded" and first["promoted"] and not first["warm_start"], first
        handle_webhook(start, settings)
        second = wait_done(settings)
    finally:
        server.close()
    assert second["job_id"] != first["job_id"]
    assert second["status"] == "succeeded" and second["warm_start"] and second["promoted"], second
    jobs = tmp_path / "models/active_learning/projects/1/jobs"
    fit_config = json.loads((jobs / second["job_id"] / "run/config.json").read_text())
    kept = tmp_path / "models/versions" / first["version"]  # split.json + model.pt travel with the model
    assert fit_config["extend_split"] == str(kept / "split.json") and fit_config["init_from"] == str(kept / "model.pt")
    first_split = json.loads((jobs / first["job_id"] / "run/split.json").read_text())
    assert json.loads((kept / "split.json").read_text()) == first_split  # same validation subjects
    # the current model's score is recomputed on this export; the new one comes from the same CLI
    assert second["metrics"]["current_version"] == first["version"]
    for key in ("new_val_mean_balanced_accuracy", "current_val_mean_balanced_accuracy"):
        assert 0.0 <= second["metrics"][key] <= 1.0
    registry = ModelRegistry(settings.model_dir)
    assert registry.current() == second["version"]
    assert [v.version for v in registry.versions()] == [first["version"], second["version"]]
