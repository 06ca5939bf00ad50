"""What the backend predicts: reference decoding, project/model intersection, thresholds, scores."""
from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest

from backend.recording_model import RecordingBackend
from backend.registry import INT8_FILE, ModelRegistry
from backend_fixtures import (add_tiny_version, backend_settings, grey_image_bytes, recorded_schema,
                              reference_probs, task, tiny_weights, write_recording)
from training.preprocess import PreprocessConfig, load_frame
from training.propagation import load_rules
from training.schema import LabelSchema, LabelSpec, load_label_config

GREYS = (0, 60, 128, 190, 255)


def recording_arrays(values, frames=4, size=16):
    cfg = PreprocessConfig(image_size=size)
    x = np.zeros((frames, 1, size, size), np.float32)
    m = np.zeros(frames, np.float32)
    for i, v in enumerate(values[:frames]):
        x[i, 0] = load_frame(grey_image_bytes(v), cfg)
        m[i] = 1
    return x, m


def config_xml(schema: LabelSchema) -> str:
    choices = "".join(
        f'<Choices name="{s.name}" toName="frames" choice="single">'
        + "".join(f'<Choice value="{c}"/>' for c in s.classes) + "</Choices>" for s in schema.labels)
    return f'<View><Image name="frames" valueList="$frames"/>{choices}</View>'


@pytest.fixture
def backend_for(tmp_path):
    """backend_for(**build_kwargs, settings=...) -> (RecordingBackend, weights, docroot)."""
    def make(settings_overrides=None, **build):
        settings = backend_settings(tmp_path, **(settings_overrides or {}))
        weights = add_tiny_version(settings.model_dir, tmp_path, build.pop("version", "v1"), **build)
        return RecordingBackend(settings), weights, settings.local_files_document_root
    return make


def test_predictions_match_the_numpy_reference_with_joint_decoding(backend_for):
    backend, weights, root = backend_for()
    schema = load_label_config()
    rules = load_rules(schema)
    tasks = [task(i, write_recording(root, f"r{i}", [g, g, 255 - g, g])) for i, g in enumerate(GREYS)]
    results = backend.predict(tasks, label_config=config_xml(schema))
    for g, entry in zip(GREYS, results):
        expected = rules.joint_decode(reference_probs(weights, *recording_arrays([g, g, 255 - g, g])))
        got = {item["from_name"]: item for item in entry["result"]}
        assert list(got) == list(schema.names)
        for name, (index, prob) in expected.items():
            assert got[name]["value"]["choices"] == [schema[name].classes[index]]
            assert got[name]["score"] == pytest.approx(prob, abs=1e-5)
        assert rules.is_consistent({n: it["value"]["choices"][0] for n, it in got.items()})
        assert entry["score"] == pytest.approx(min(certainty_of(it["score"], len(schema[n].classes))
                                                   for n, it in got.items()), abs=1e-5)


def test_classes_the_project_lacks_are_never_emitted(backend_for):
    """The recorded project names most classes differently from the repo config the model learned."""
    backend, weights, root = backend_for()
    model_schema, project = load_label_config(), recorded_schema()
    results = backend.predict([task(1, write_recording(root, "r", [40] * 4))], label_config=config_xml(project))
    emitted = {item["from_name"]: item["value"]["choices"][0] for item in results[0]["result"]}
    shared = {s.name for s in project.labels if set(s.classes) & set(model_schema[s.name].classes)}
    assert set(emitted) == shared == {"gender", "car_recording", "eye_color"}
    assert all(project.has_class(n, c) for n, c in emitted.items())


def test_a_class_removed_from_the_project_is_replaced_by_the_best_allowed_one(backend_for):
    backend, weights, root = backend_for()
    schema = load_label_config()
    refs = write_recording(root, "r", [90] * 4)
    probs = reference_probs(weights, *recording_arrays([90] * 4))
    top = int(np.argmax(probs["eye_color"]))
    kept = tuple(c for i, c in enumerate(schema["eye_color"].classes) if i != top)
    project = LabelSchema(tuple(s if s.name != "eye_color" else LabelSpec("eye_color", kept) for s in schema.labels))
    item = next(i for i in backend.predict([task(1, refs)], label_config=config_xml(project))[0]["result"]
                if i["from_name"] == "eye_color")
    second = int(np.argsort(probs["eye_color"])[-2])
    assert item["value"]["choices"] == [schema["eye_color"].classes[second]]
    assert item["score"] == pytest.approx(probs["eye_color"][second], abs=1e-5)


def test_missing_and_untrained_heads_are_left_unpredicted_and_logged_once(backend_for, caplog):
    backend, _, root = backend_for(drop_outputs=("gender",), untrained=("eye_color",))
    refs = write_recording(root, "r", [100] * 4)
    config = config_xml(load_label_config())
    with caplog.at_level(logging.INFO, logger="backend.recording_model"):
        for _ in range(3):
            names = {i["from_name"] for i in backend.predict([task(1, refs)], label_config=config)[0]["result"]}
            assert "gender" not in names and "eye_color" not in names and len(names) == 9
    logged = [r.getMessage() for r in caplog.records if "cannot predict" in r.getMessage()]
    assert len(logged) == 2 and any("'gender'" in m for m in logged) and any("'eye_color'" in m for m in logged)


def test_min_score_leaves_uncertain_labels_to_the_annotator(backend_for):
    probe, weights, root = backend_for()
    refs = write_recording(root, "r", [150] * 4)
    full = {i["from_name"]: i["score"] for i in probe.predict([task(1, refs)])[0]["result"]}
    threshold = float(np.median(list(full.values())))
    backend = RecordingBackend(replace(probe.settings, min_score=threshold, min_score_by_label={"GENDER": 0.0}))
    entry = backend.predict([task(1, refs)])[0]
    kept = {i["from_name"]: i["score"] for i in entry["result"]}
    assert kept == {n: s for n, s in full.items() if s >= threshold or n == "gender"}
    assert entry["score"] == probe.predict([task(1, refs)])[0]["score"]  # held-back labels still count


def test_nothing_above_threshold_gives_empty_result_with_the_same_task_score(backend_for):
    probe, _, root = backend_for()
    refs = write_recording(root, "r", [150] * 4)
    full = probe.predict([task(1, refs)])[0]
    strict = RecordingBackend(replace(probe.settings, min_score=1.0))
    entry = strict.predict([task(1, refs)])[0]
    assert entry["result"] == [] and entry["score"] == pytest.approx(full["score"])


def certainty_of(prob: float, n_classes: int) -> float:
    """(p - 1/K) / (1 - 1/K), clipped: the task score's per-label term when the project allows every class."""
    return min(1.0, max(0.0, (prob - 1 / n_classes) / (1 - 1 / n_classes)))


def test_fewer_frames_than_the_model_takes_are_padded_and_masked(backend_for):
    backend, weights, root = backend_for(frames=4)
    refs = write_recording(root, "short", [250, 10])
    entry = backend.predict([task(1, refs)])[0]
    expected = load_rules(load_label_config()).joint_decode(reference_probs(weights, *recording_arrays([250, 10])))
    got = {i["from_name"]: i["value"]["choices"][0] for i in entry["result"]}
    assert got == {n: load_label_config()[n].classes[k] for n, (k, _) in expected.items()}


def test_many_tasks_are_batched_and_keep_their_order(backend_for, monkeypatch):
    import backend.recording_model as rm
    monkeypatch.setattr(rm, "MAX_BATCH", 3)
    backend, _, root = backend_for()
    tasks = [task(i, write_recording(root, f"r{i}", [i * 30] * 4)) for i in range(8)]
    together = backend.predict(tasks)
    alone = [backend.predict([t])[0] for t in tasks]
    assert together == alone


def test_int8_model_is_served_when_present_unless_disabled(backend_for, tmp_path):
    registry_of = lambda b: ModelRegistry(b.settings.model_dir)

    def with_int8(backend, version):
        registry_of(backend).use(version)
        folder = registry_of(backend).version_dir(version)
        (folder / INT8_FILE).write_bytes((folder / "model.onnx").read_bytes())
        backend.predict([task(1, write_recording(root, "r", [100] * 4))])
        return backend.live.get().int8

    backend, _, root = backend_for()  # USE_INT8 defaults to true
    assert with_int8(backend, "v1") is True
    disabled, _, _ = backend_for(version="v2", settings_overrides={"use_int8": False})
    assert with_int8(disabled, "v2") is False
    fp32_only, _, _ = backend_for(version="v3")
    registry_of(fp32_only).use("v3")
    assert fp32_only.live.get().int8 is False


def test_switching_current_changes_every_prediction_version(backend_for, tmp_path):
    backend, _, root = backend_for(version="v1")
    backend.live.check_interval_s = 0.0
    add_tiny_version(backend.settings.model_dir, tmp_path, "v2", weights=tiny_weights(load_label_config(), seed=5))
    refs = write_recording(root, "r", [100] * 4)
    assert backend.predict([task(1, refs)])[0]["model_version"] == "v1"
    ModelRegistry(backend.settings.model_dir).use("v2")
    assert backend.predict([task(1, refs)])[0]["model_version"] == "v2" == backend.model_version


def test_a_changed_labeling_config_takes_effect_on_the_next_request(backend_for):
    """Parsed configs are cached by their text: an edited config must never be served from the cache."""
    backend, weights, root = backend_for()
    schema = load_label_config()
    refs = write_recording(root, "r", [90] * 4)
    top = schema["eye_color"].classes[int(np.argmax(reference_probs(weights, *recording_arrays([90] * 4))["eye_color"]))]

    def eye_color(project: LabelSchema):
        items = backend.predict([task(1, refs)], label_config=config_xml(project))[0]["result"]
        return next((i["value"]["choices"][0] for i in items if i["from_name"] == "eye_color"), None)

    without_top = LabelSchema(tuple(
        s if s.name != "eye_color" else LabelSpec("eye_color", tuple(c for c in s.classes if c != top))
        for s in schema.labels))
    without_label = LabelSchema(tuple(s for s in schema.labels if s.name != "eye_color"))
    assert eye_color(schema) == top
    assert eye_color(without_top) not in (top, None)
    assert eye_color(without_label) is None
    assert eye_color(schema) == top
