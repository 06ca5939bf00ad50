"""ProjectVersionSync against a fake Label Studio that behaves like 1.23.2's project API: a
model_version is accepted only once a prediction of it is stored (400 before)."""
from __future__ import annotations

import logging

import requests

from backend.project_version import ProjectVersionSync


class FakeProjects:
    """Answers GET/PATCH /api/projects/<id>; `stored_after` PATCHes are refused first."""

    def __init__(self, model_version: str = "recmeta", stored_after: int = 0, fail_with: int | None = None):
        self.model_version = model_version
        self.stored_after = stored_after
        self.fail_with = fail_with
        self.calls: list[tuple[str, str, dict]] = []

    def request(self, method, url, headers=None, timeout=None, json=None):
        self.calls.append((method, url, headers))
        response = requests.Response()
        response.url = url
        if self.fail_with:
            response.status_code = self.fail_with
        elif method == "GET":
            response.status_code = 200
            response._content = b'{"model_version": "%s"}' % self.model_version.encode()
        elif self.stored_after > 0:
            self.stored_after -= 1
            response.status_code = 400
        else:
            self.model_version = json["model_version"]
            response.status_code = 200
        return response


def make(fake: FakeProjects, url="http://ls:8080", key="legacy-key") -> ProjectVersionSync:
    return ProjectVersionSync(lambda _project: (url, key), attempts=5, retry_delay_s=0.0, http=fake)


def test_points_the_project_at_the_version_once_its_predictions_are_stored():
    fake = FakeProjects(stored_after=2)
    sync = make(fake)
    assert sync.after_predict("7.1712345678", "v2").result() is True
    assert fake.model_version == "v2"
    assert [m for m, _, _ in fake.calls] == ["GET", "PATCH"] * 3
    assert {url for _, url, _ in fake.calls} == {"http://ls:8080/api/projects/7"}
    assert fake.calls[0][2] == {"Authorization": "Token legacy-key"}
    # The same project and version again: nothing is asked (a person's later choice stays).
    assert sync.after_predict("7.1712349999", "v2") is None
    # A new version is pointed at again.
    assert sync.after_predict("7.1712350000", "v3").result() is True and fake.model_version == "v3"


def test_a_project_already_on_the_version_is_not_patched():
    fake = FakeProjects(model_version="v2")
    assert make(fake).after_predict("3", "v2").result() is True
    assert [m for m, _, _ in fake.calls] == ["GET"]


def test_gives_up_after_its_attempts_and_tries_again_on_the_next_batch(caplog):
    fake = FakeProjects(stored_after=100)
    sync = make(fake)
    with caplog.at_level(logging.WARNING, logger="backend.project_version"):
        assert sync.after_predict("4.1", "v2").result() is False
    assert "did not accept model version v2 after 5 tries" in caplog.text
    fake.stored_after = 0
    assert sync.after_predict("4.2", "v2").result() is True and fake.model_version == "v2"


def test_errors_are_logged_not_raised(caplog):
    with caplog.at_level(logging.WARNING, logger="backend.project_version"):
        assert make(FakeProjects(fail_with=403)).after_predict("5", "v2").result() is False
        assert make(FakeProjects(), url=None).after_predict("6", "v2").result() is False
    assert "403" in caplog.text and "set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY" in caplog.text


def test_a_request_without_a_project_is_ignored():
    fake = FakeProjects()
    assert make(fake).after_predict(None, "v2") is None and not fake.calls


def test_the_backend_syncs_after_a_batch_with_predictions_only(tmp_path):
    """RecordingBackend hands (project, version) over after a batch that stored something."""
    from backend.recording_model import RecordingBackend
    from backend_fixtures import add_tiny_version, backend_settings, write_recording

    settings = backend_settings(tmp_path, sync_project_model_version=True)
    add_tiny_version(settings.model_dir, tmp_path, "v1")
    write_recording(settings.local_files_document_root / "recs", "r1", [100] * 4)
    backend = RecordingBackend(settings)
    seen = []
    backend.project_version.after_predict = lambda project, version: seen.append((project, version))
    good = {"id": 1, "data": {"frames": [f"/data/local-files/?d=recs/r1/{i:02d}.png" for i in range(4)]}}
    bad = {"id": 2, "data": {"frames": "not a list"}}
    backend.predict([bad], project="9.1")
    backend.predict([good, bad], project="9.2")
    assert seen == [("9.2", "v1")]
    assert RecordingBackend(backend_settings(tmp_path)).project_version is None
