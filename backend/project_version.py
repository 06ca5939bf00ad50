"""Point a Label Studio project at the model version that just predicted it.

Label Studio 1.23.2 fills the Data Manager's "Prediction score" column (and orders by it) with
the mean `score` of a task's predictions whose `model_version` equals the PROJECT's
`model_version` (data_manager/managers.py, annotate_predictions_score). Connecting a backend sets
that field to the backend's title (ml/api.py, MLBackendListAPI.perform_create), which no
prediction carries, so the column stays empty; nothing in Label Studio moves it to a new version
either. Label Studio accepts a new value only once predictions of that version exist in the
project (projects/serializers.py, validate_model_version), so after a /predict answer the backend
waits until Label Studio has stored them and then PATCHes /api/projects/<id> {"model_version"}.

Once per (project, version) and process: a version a person picks later under Settings >
Annotation stays until a newer model predicts the project. Runs on one background thread; a
failure is logged and never affects /predict.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

import requests

from backend.active_learning.store import ProjectIdError, project_id_of
from training.ls_auth import LabelStudioAuth, LabelStudioAuthError

log = logging.getLogger(__name__)
Credentials = Callable[[str], tuple[str | None, str | None]]  # project id -> (Label Studio URL, API key)


class ProjectVersionSync:
    """`credentials` says where Label Studio is and which key to use, asked at each sync."""

    def __init__(self, credentials: Credentials, *, attempts: int = 20, retry_delay_s: float = 0.5,
                 timeout_s: float = 10.0, http: requests.Session | None = None):
        self.credentials = credentials
        self.attempts = attempts  # Label Studio stores the predictions right after our answer: ~10 s at most
        self.retry_delay_s = retry_delay_s
        self.timeout_s = timeout_s
        self.http = http or requests.Session()
        self._done: dict[str, str] = {}  # project id -> version it was pointed at (or found on)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="project-version")

    def after_predict(self, project: Any, version: str) -> Future | None:
        """Schedule the sync after /predict answered `project` ('<id>.<timestamp>') with `version`."""
        try:
            project_id = project_id_of(project)
        except ProjectIdError:
            return None  # /predict without a usable project (e.g. a test request): nothing to point
        with self._lock:
            if self._done.get(project_id) == version:
                return None
            self._done[project_id] = version  # a second batch meanwhile must not queue another sync
        return self._pool.submit(self._sync, project_id, version)

    def _sync(self, project_id: str, version: str) -> bool:
        try:
            ok = self._point(project_id, version)
        except (requests.RequestException, LabelStudioAuthError, ValueError) as exc:
            log.warning("project %s: could not set its model version to %s: %s", project_id, version, exc)
            ok = False
        if not ok:
            with self._lock:
                if self._done.get(project_id) == version:
                    del self._done[project_id]  # the next prediction batch tries again
        return ok

    def _point(self, project_id: str, version: str) -> bool:
        url, key = self.credentials(project_id)
        if not url or not key:
            log.warning("project %s: no Label Studio URL and API key, so its Prediction score column keeps "
                        "its model version; set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY", project_id)
            return False
        auth = LabelStudioAuth(url, key, timeout_s=self.timeout_s)
        endpoint = f"{auth.url}/api/projects/{project_id}"
        for attempt in range(self.attempts):
            current = self._call("GET", endpoint, auth)
            current.raise_for_status()
            if current.json().get("model_version") == version:
                return True
            answer = self._call("PATCH", endpoint, auth, json={"model_version": version})
            if answer.ok:
                log.info("project %s: Prediction score column now follows model version %s", project_id, version)
                return True
            if answer.status_code != 400:  # 400: the predictions are not stored yet
                answer.raise_for_status()
            time.sleep(self.retry_delay_s)
        log.warning("project %s: Label Studio did not accept model version %s after %d tries (no prediction "
                    "of it stored?)", project_id, version, self.attempts)
        return False

    def _call(self, method: str, endpoint: str, auth: LabelStudioAuth, **kwargs) -> requests.Response:
        return self.http.request(method, endpoint, headers=auth.headers(), timeout=self.timeout_s, **kwargs)
