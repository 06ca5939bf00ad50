"""Every kind of broken task: the batch still answers every other task; the broken one gets an
entry without "result" (Label Studio skips it), is logged with task id + reason and counted."""
from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY

from backend.recording_model import RecordingBackend
from backend_fixtures import (FakeLabelStudio, add_tiny_version, backend_settings, grey_image_bytes,
                              png_claiming_size, task, truncated, write_recording)

TOKEN = "right-token-456"
BROKEN_ID = 99


@pytest.fixture
def fake_ls():
    fake = FakeLabelStudio({
        "1/ok.png": grey_image_bytes(120),
        "1/text.png": b"this is not an image at all",
        "1/truncated.jpg": truncated(grey_image_bytes(120, (64, 64), "JPEG")),
        "1/bomb.png": png_claiming_size(20000, 20000),
    }, TOKEN)
    yield fake
    fake.close()


def run_batch(tmp_path, fake, broken_frames, *, api_key=TOKEN, broken_task=None):
    settings = backend_settings(tmp_path, label_studio_url=fake.url, label_studio_api_key=api_key)
    add_tiny_version(settings.model_dir, tmp_path, "v1")
    good = write_recording(settings.local_files_document_root, "good", [80] * 4)
    bad = broken_task or task(BROKEN_ID, broken_frames)
    return RecordingBackend(settings).predict([task(1, good), bad, task(2, good)])


def failures(reason: str) -> float:
    return REGISTRY.get_sample_value("recmeta_tasks_failed_total", {"reason": reason}) or 0.0


def check_only_the_broken_task_failed(results, reason, caplog, before):
    assert [("result" in r) for r in results] == [True, False, True]
    assert results[0]["result"] and results[0] == results[2]
    assert results[1]["model_version"] == "v1" and results[1]["error"].startswith(reason)
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"task {BROKEN_ID} " in m and reason in m for m in logged), logged
    assert failures(reason) == before + 1


CASES = {
    "no_frames_key": ("no_frames", {"id": BROKEN_ID, "data": {"recording_id": "x"}}, None),
    "frames_is_a_string": ("bad_frames", None, "/data/upload/1/ok.png"),
    "frames_empty_list": ("bad_frames", None, []),
    "frame_entry_not_a_string": ("bad_frames", None, ["/data/upload/1/ok.png", 7]),
    "frame_404": ("frame_unavailable", None, ["/data/upload/1/ok.png", "/data/upload/1/missing.png"]),
    "not_an_image": ("bad_image", None, ["/data/upload/1/text.png"]),
    "truncated_jpeg": ("bad_image", None, ["/data/upload/1/truncated.jpg"]),
    "decompression_bomb_20000x20000": ("bad_image", None, ["/data/upload/1/bomb.png"]),
    "local_path_escaping_document_root": ("frame_unavailable", None, ["/data/local-files/?d=../secret.png"]),
}


@pytest.mark.parametrize("case", CASES)
def test_broken_task_is_skipped_and_the_rest_predicted(tmp_path, fake_ls, caplog, case):
    reason, broken_task, frames = CASES[case]
    (tmp_path / "secret.png").write_bytes(grey_image_bytes(10))  # exists, but outside the root
    before = failures(reason)
    with caplog.at_level(logging.WARNING):
        results = run_batch(tmp_path, fake_ls, frames, broken_task=broken_task)
    check_only_the_broken_task_failed(results, reason, caplog, before)


def test_frame_refused_with_401_by_label_studio(tmp_path, fake_ls, caplog):
    before = failures("frame_unavailable")
    with caplog.at_level(logging.WARNING):
        results = run_batch(tmp_path, fake_ls, ["/data/upload/1/ok.png"], api_key="wrong-token-789")
    check_only_the_broken_task_failed(results, "frame_unavailable", caplog, before)
    assert "wrong-token-789" not in results[1]["error"]


def test_url_to_a_host_that_is_neither_label_studio_nor_allowed(tmp_path, fake_ls, caplog):
    port = fake_ls.url.rsplit(":", 1)[1]
    other_host = f"http://localhost:{port}/data/upload/1/ok.png"  # same server, under a name not allowed
    before, requests = failures("frame_unavailable"), fake_ls.requests
    with caplog.at_level(logging.WARNING):
        results = run_batch(tmp_path, fake_ls, [other_host])
    check_only_the_broken_task_failed(results, "frame_unavailable", caplog, before)
    assert fake_ls.requests == requests  # refused before any connection


def test_broken_tasks_across_chunks_keep_their_places(tmp_path, monkeypatch):
    import backend.recording_model as rm
    monkeypatch.setattr(rm, "MAX_BATCH", 2)
    settings = backend_settings(tmp_path)
    add_tiny_version(settings.model_dir, tmp_path, "v1")
    refs = [write_recording(settings.local_files_document_root, f"r{i}", [i * 40] * 4) for i in range(3)]
    tasks = [task(0, refs[0]), task(1, "not-a-list"), task(2, refs[1]), task(3, refs[2]), task(4, [])]
    backend = RecordingBackend(settings)
    results = backend.predict(tasks)
    assert ["result" in r for r in results] == [True, False, True, True, False]
    assert [results[i] for i in (0, 2, 3)] == [backend.predict([tasks[i]])[0] for i in (0, 2, 3)]


def test_a_current_model_that_cannot_load_fails_tasks_not_the_request(tmp_path, caplog):
    settings = backend_settings(tmp_path)
    broken = settings.model_dir / "versions" / "broken"
    broken.mkdir(parents=True)
    (broken / "model.onnx").write_bytes(b"garbage")
    (settings.model_dir / "current").write_text("broken\n")
    before = failures("model_unavailable")
    with caplog.at_level(logging.WARNING):
        results = RecordingBackend(settings).predict([task(1, ["/data/local-files/?d=x.png"])])
    assert "result" not in results[0] and results[0]["error"].startswith("model_unavailable")
    assert failures("model_unavailable") == before + 1
