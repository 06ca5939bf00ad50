"""The REST calls the end-to-end tests and the demo make to Label Studio (ls_server.py runs it).

Facts behind them: tests/fixtures/label_studio/PROTOCOL.md.
"""
from __future__ import annotations

import json
from pathlib import Path

import requests


class LabelStudioError(RuntimeError):
    """Label Studio did not start, or an API call failed (the message names the call and the answer)."""


class LabelStudioApi:
    """Thin API helpers, authenticated with the admin's legacy token. The class that mixes them in
    says where and who: ``url`` and ``legacy_token``."""

    url: str
    legacy_token: str
    _pat: str | None = None  # the personal access token, once created

    def personal_access_token(self) -> str:
        """The admin's personal access token (a JWT refresh token), created once via POST /api/token/.

        LS keeps one valid PAT per user (a second POST answers 409) and lists only truncated tokens,
        so the full one is remembered here.
        """
        if self._pat is None:
            self._pat = self.request("POST", "/api/token/", expect=201).json()["token"]
        return self._pat

    def access_token(self, refresh: str) -> str:
        """A short-lived (5 min) access token for `Authorization: Bearer`, from a PAT."""
        r = requests.post(f"{self.url}/api/token/refresh/", json={"refresh": refresh}, timeout=30)
        _check(r, "POST /api/token/refresh/", 200)
        return r.json()["access"]

    # ----- API helpers ----------------------------------------------------------------------------
    def request(self, method: str, path: str, *, expect: int | tuple[int, ...] = (200, 201),
                timeout: float = 120, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Token {self.legacy_token}", **kwargs.pop("headers", {})}
        r = requests.request(method, f"{self.url}{path}", headers=headers, timeout=timeout, **kwargs)
        _check(r, f"{method} {path}", expect)
        return r

    def create_project(self, title: str, label_config: str) -> dict:
        return self.request("POST", "/api/projects", json={"title": title, "label_config": label_config}).json()

    def add_local_storage(self, project_id: int, path: Path, title: str = "frames") -> dict:
        """Local-files storage; without one, /data/local-files/ URLs of the project answer 404."""
        body = {"project": project_id, "path": str(path), "title": title, "use_blob_urls": True}
        return self.request("POST", "/api/storages/localfiles", json=body).json()

    def import_tasks(self, project_id: int, tasks: list[dict]) -> dict:
        return self.request("POST", f"/api/projects/{project_id}/import", json=tasks).json()

    def create_recordings_project(self, title: str, label_config: str, recordings: Path) -> dict:
        """A project with `label_config`, a local-files storage on `recordings` and its tasks.json imported
        (the layout of training.synthetic: frame URLs relative to the document root)."""
        project = self.create_project(title[:50], label_config)  # LS refuses titles over 50 characters
        self.add_local_storage(project["id"], recordings)
        self.import_tasks(project["id"], json.loads((recordings / "tasks.json").read_text(encoding="utf-8")))
        return project

    def connect_ml_backend(self, project_id: int, url: str, title: str = "recmeta") -> dict:
        """POST /api/ml: LS checks /health and /setup of the backend and adds it to the project."""
        return self.request("POST", "/api/ml", json={"url": url, "project": project_id, "title": title}).json()

    def retrieve_predictions(self, project_id: int, task_ids: list[int] | None = None) -> dict:
        """The Data Manager action "Retrieve Predictions": one /predict call with all selected tasks."""
        selected = {"all": False, "included": task_ids} if task_ids else {"all": True, "excluded": []}
        return self.request(
            "POST", f"/api/dm/actions?id=retrieve_tasks_predictions&project={project_id}",
            json={"project": project_id, "selectedItems": selected}, timeout=300,
        ).json()

    def tasks(self, project_id: int) -> list[dict]:
        """All tasks of a project with their predictions and annotations."""
        r = self.request("GET", f"/api/tasks?project={project_id}&fields=all&page_size=100000")
        return r.json()["tasks"]

    def project(self, project_id: int) -> dict:
        return self.request("GET", f"/api/projects/{project_id}").json()

    def create_view(self, project_id: int, title: str, ordering: list[str]) -> dict:
        """A Data Manager tab (what the UI's "Order by" saves): ordering like ["tasks:predictions_score"]."""
        body = {"project": project_id, "data": {"title": title, "ordering": ordering}}
        return self.request("POST", "/api/dm/views", json=body).json()

    def view_tasks(self, project_id: int, view_id: int) -> list[dict]:
        """The tasks of a Data Manager tab in its order, with the computed columns (predictions_score)."""
        r = self.request("GET", f"/api/tasks?project={project_id}&view={view_id}&fields=all&page_size=100000")
        return r.json()["tasks"]

    def annotate(self, task_id: int, result: list[dict]) -> dict:
        return self.request("POST", f"/api/tasks/{task_id}/annotations", json={"result": result}).json()

    def export(self, project_id: int, export_type: str = "JSON") -> list[dict] | bytes:
        r = self.request("GET", f"/api/projects/{project_id}/export?exportType={export_type}"
                                "&download_all_tasks=true")
        return r.json() if export_type.startswith("JSON") else r.content


def _check(r: requests.Response, call: str, expect: int | tuple[int, ...]) -> None:
    expected = (expect,) if isinstance(expect, int) else expect
    if r.status_code not in expected:
        raise LabelStudioError(f"{call} answered {r.status_code} (expected {expected}): {r.text[:1000]}")
