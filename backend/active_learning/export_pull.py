"""Pull a project's full JSON export from Label Studio, with retries and backoff.

Retried: connection errors and timeouts, 5xx, and 401 (a personal access token's short-lived
access token may have expired: a fresh LabelStudioAuth refreshes it). Other 4xx are final. The
export is streamed to a temp file and renamed, so a killed job never leaves a half export behind.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import requests

from training.atomic_write import atomic_path
from .config import ActiveLearningConfig

MAX_DELAY_S = 60.0


class ExportPullError(RuntimeError):
    """The export could not be pulled (after retries where retrying made sense)."""


def export_url(base_url: str, project: str) -> str:
    return f"{base_url.rstrip('/')}/api/projects/{project}/export?exportType=JSON&download_all_tasks=true"


def _headers(cfg: ActiveLearningConfig) -> dict:
    from training.ls_auth import LabelStudioAuth  # torch-free

    return LabelStudioAuth(cfg.label_studio_url, cfg.label_studio_api_key).headers()


def pull_export(cfg: ActiveLearningConfig, project: str, dest: Path,
                on_retry: Callable[[int, str], None] | None = None, sleep: Callable[[float], None] = time.sleep) -> int:
    """Write the export to `dest`; returns the number of tasks. Raises ExportPullError."""
    if not cfg.label_studio_url or not cfg.label_studio_api_key:
        raise ExportPullError(f"no Label Studio host and credential for project {project}: set LABEL_STUDIO_URL "
                              "and LABEL_STUDIO_API_KEY, or let Label Studio call /setup (docs/backend.md)")
    url = export_url(cfg.label_studio_url, project)
    where = f"GET /api/projects/{project}/export on {cfg.label_studio_url}"
    last = ""
    for attempt in range(1, cfg.export_attempts + 1):
        try:
            headers = _headers(cfg)  # may itself call the server (token refresh)
            with requests.get(url, headers=headers, stream=True, timeout=cfg.export_timeout_s) as resp:
                if resp.status_code == 401 or resp.status_code >= 500:
                    last = f"HTTP {resp.status_code}"
                elif resp.status_code != 200:
                    raise ExportPullError(f"{where}: HTTP {resp.status_code} {resp.text[:200]!r} (not retried)")
                else:
                    return _save(resp, dest, where)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        except requests.HTTPError as exc:  # the token refresh answered 401/5xx
            last = f"token refresh failed: {exc}"
        if attempt < cfg.export_attempts:
            delay = min(cfg.export_backoff_s * 2 ** (attempt - 1), MAX_DELAY_S)
            if on_retry:
                on_retry(attempt, last)
            sleep(delay)
    raise ExportPullError(f"{where} failed {cfg.export_attempts} times; last: {last}")


def _save(resp: requests.Response, dest: Path, where: str) -> int:
    try:
        with atomic_path(dest) as tmp:  # replaces dest only when the export is a readable list of tasks
            with open(tmp, "wb") as f:
                for chunk in resp.iter_content(chunk_size=1 << 20):
                    f.write(chunk)
            with open(tmp, encoding="utf-8") as f:
                tasks = json.load(f)
            if not isinstance(tasks, list):
                raise ExportPullError(f"{where}: the export is a {type(tasks).__name__}, not a list of tasks")
        return len(tasks)
    except ValueError as exc:
        raise ExportPullError(f"{where}: the export is not valid JSON ({exc})") from None
