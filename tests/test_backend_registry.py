"""Model directory: versions, atomic `current` switch, CLI, and workers noticing a switch."""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from backend import models as cli
from backend.live_model import LiveModel
from backend.registry import INT8_FILE, METRICS_FILE, MODEL_FILE, ModelRegistry, RegistryError
from backend_fixtures import build_tiny_model
from training.onnx_runner import ModelFileError


@pytest.fixture
def built(tmp_path):
    """Two tiny model runs: run1 (with int8 + metrics beside it) and run2."""
    paths = {}
    for version in ("run1", "run2"):
        run = tmp_path / version
        run.mkdir()
        build_tiny_model(run / MODEL_FILE, model_version=f"{version}-meta")
        paths[version] = run / MODEL_FILE
    (tmp_path / "run1" / INT8_FILE).write_bytes(paths["run1"].read_bytes())
    (tmp_path / "run1" / METRICS_FILE).write_text(json.dumps({"accuracy": 0.5}))
    (tmp_path / "run1" / "split.json").write_text(json.dumps({"recordings": {"val": ["r1"]}}))
    (tmp_path / "run1" / "model.pt").write_bytes(b"warm-start weights")
    return paths


def test_add_takes_version_from_recmeta_and_becomes_current_when_first(tmp_path, built):
    reg = ModelRegistry(tmp_path / "models")
    assert reg.current() is None and reg.versions() == []
    assert reg.add(built["run1"]) == "run1-meta"
    assert reg.current() == "run1-meta"
    folder = reg.version_dir("run1-meta")
    # split.json and model.pt travel too: retraining keeps the val subjects and warm-starts
    assert {p.name for p in folder.iterdir()} >= {MODEL_FILE, INT8_FILE, METRICS_FILE, "split.json", "model.pt"}
    assert (folder / "model.pt").read_bytes() == b"warm-start weights"
    assert (folder / MODEL_FILE).read_bytes() == built["run1"].read_bytes()
    # a second add does not switch unless asked
    assert reg.add(built["run2"], "second") == "second"
    assert reg.current() == "run1-meta"
    assert [v.version for v in reg.versions()] == ["run1-meta", "second"]
    assert reg.add(built["run2"], "third", make_current=True) == "third"
    assert reg.current() == "third"


def test_int8_file_is_chosen_only_when_present_and_asked(tmp_path, built):
    reg = ModelRegistry(tmp_path / "models")
    reg.add(built["run1"], "a")
    reg.add(built["run2"], "b")
    assert reg.model_path("a", int8=True).name == INT8_FILE
    assert reg.model_path("a", int8=False).name == MODEL_FILE
    assert reg.model_path("b", int8=True).name == MODEL_FILE


def test_bad_ids_duplicates_and_unknown_versions_are_refused(tmp_path, built):
    reg = ModelRegistry(tmp_path / "models")
    reg.add(built["run1"], "v1")
    with pytest.raises(RegistryError, match="already exists"):
        reg.add(built["run2"], "v1")
    for bad in ("../escape", "a/b", ".hidden", "current/x", "x" * 200):
        with pytest.raises(RegistryError, match="version id"):
            reg.add(built["run2"], bad)
    with pytest.raises(RegistryError, match="unknown model version"):
        reg.use("nope")
    assert reg.current() == "v1"


def test_broken_model_file_is_never_added(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not an onnx model")
    reg = ModelRegistry(tmp_path / "models")
    with pytest.raises(ModelFileError):
        reg.add(bad, "broken")
    assert reg.versions() == [] and reg.current() is None


def test_use_replaces_pointer_atomically_and_leaves_no_temp_files(tmp_path, built):
    reg = ModelRegistry(tmp_path / "models")
    reg.add(built["run1"], "v1")
    reg.add(built["run2"], "v2")
    stamp = reg.pointer_stamp()
    reg.use("v2")
    assert reg.current() == "v2" and reg.pointer_stamp() != stamp
    assert sorted(p.name for p in reg.root.iterdir()) == ["current", "versions"]
    assert all(not p.name.startswith(".") for p in reg.versions_dir.iterdir())


def test_half_copied_temp_folder_is_not_a_version(tmp_path, built):
    reg = ModelRegistry(tmp_path / "models")
    reg.add(built["run1"], "v1")
    partial = reg.versions_dir / ".tmp-abc"
    partial.mkdir()
    (partial / MODEL_FILE).write_bytes(b"half")
    assert [v.version for v in reg.versions()] == ["v1"]


def test_cli_add_list_use(tmp_path, built, capsys):
    model_dir = str(tmp_path / "models")
    assert cli.main(["--model-dir", model_dir, "add", str(built["run1"])]) == 0
    assert cli.main(["--model-dir", model_dir, "add", str(built["run2"]), "--version", "v2"]) == 0
    assert cli.main(["--model-dir", model_dir, "use", "v2"]) == 0
    capsys.readouterr()
    assert cli.main(["--model-dir", model_dir, "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["  run1-meta  [int8]", "* v2"]
    assert cli.main(["--model-dir", model_dir, "use", "missing"]) == 2
    assert "unknown model version" in capsys.readouterr().err


def test_live_model_follows_the_pointer_without_restart(tmp_path, built):
    reg = ModelRegistry(tmp_path / "models")
    live = LiveModel(reg, check_interval_s=0.0)
    assert live.get() is None
    reg.add(built["run1"], "v1")
    first = live.get()
    assert first.version == "v1" and live.get() is first  # unchanged pointer: no reload
    reg.add(built["run2"], "v2", make_current=True)
    assert live.get().version == "v2"


def test_live_model_checks_the_pointer_at_most_once_per_interval(tmp_path, built):
    reg = ModelRegistry(tmp_path / "models")
    reg.add(built["run1"], "v1")
    reg.add(built["run2"], "v2")
    live = LiveModel(reg, check_interval_s=3600)
    assert live.get().version == "v1"
    reg.use("v2")
    assert live.get().version == "v1"  # within the interval: the cached model
    live._checked_at = float("-inf")  # the interval passed
    assert live.get().version == "v2"


def test_requests_arriving_during_the_first_load_wait_for_it(tmp_path, built, monkeypatch):
    """Concurrent requests right after a start (several Label Studio users) all get the model."""
    reg = ModelRegistry(tmp_path / "models")
    reg.add(built["run1"], "v1")
    live = LiveModel(reg, check_interval_s=3600)
    slow_load = live._load

    def load(version):
        time.sleep(0.3)  # a real model takes seconds to load
        return slow_load(version)

    monkeypatch.setattr(live, "_load", load)
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda _: live.get(), range(4)))
    assert [m.version if m else None for m in got] == ["v1"] * 4
