"""Our MLBase: task frames -> ONNX model -> joint decoding -> Label Studio results.

A broken task (bad data, unreachable frame, not an image) gets an entry WITHOUT "result": Label
Studio 1.23.2 skips it (stores no prediction), so the annotator sees the task unpredicted and the
next retrieval tries again. Every other task of the batch is predicted normally.
"""
from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from backend import metrics
from backend.active_learning import handle_webhook, training_status
from backend.label_studio_host import ProjectHosts
from backend.live_model import LiveModel, LoadedModel
from backend.log_redaction import redactor
from backend.lru import LRU
from backend.ml_base import MLBase
from backend.project_configs import ProjectConfigs
from backend.project_version import ProjectVersionSync
from backend.quality_gate import gate_log_lines, gate_report, label_gate
from backend.registry import ModelRegistry
from backend.results import ProjectView, project_view, task_results
from backend.settings import Settings
from backend.task_frames import FrameBatchShape, TaskError, TaskFrameLoader, frame_refs, task_id
from training.frame_source import FrameFetcher, FrameSourceConfig
from training.propagation import Rules, load_rules
from training.schema import LabelConfigError

log = logging.getLogger(__name__)
MAX_BATCH = 16  # tasks per ONNX call: bounds memory (16 x 10 x 224^2 floats = 32 MB)
# One decode thread per core: on 2 cores, 2 threads decoded a task's 10 frames in 11.1 ms, 8 in 12.1 ms.
FRAME_THREADS = max(2, os.cpu_count() or 2)
MAX_FETCHERS = 32  # distinct (Label Studio URL, token) pairs with a frame fetcher (and its sessions)


class RecordingBackend(MLBase):
    model_class = "RecordingBackend"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.live = LiveModel(ModelRegistry(settings.model_dir), use_int8=settings.use_int8,
                              threads=settings.onnx_threads or None, spinning=settings.onnx_spinning)
        self.loader = TaskFrameLoader(ThreadPoolExecutor(FRAME_THREADS, thread_name_prefix="frames"))
        self.hosts = ProjectHosts(settings)
        self._project_configs = ProjectConfigs()
        self._fetchers: LRU[tuple, FrameFetcher] = LRU(MAX_FETCHERS)
        self._rules: LRU[str, Rules] = LRU(4)  # per model version
        self._gates: LRU[str, dict] = LRU(4)  # per model version: label -> quality-gate Verdict
        self._logged_missing: LRU[str, bool] = LRU(1024)
        self.project_version = (ProjectVersionSync(self._label_studio_access)
                                if settings.sync_project_model_version else None)

    # --- /setup: fast, no model load ---
    def setup(self, *, project=None, label_config=None, hostname=None, access_token=None) -> None:
        if isinstance(access_token, str):
            redactor().add(access_token)
        outcome = self.hosts.setup(project, hostname, access_token)
        if not outcome.startswith(("token kept", "kept host")):
            log.info("/setup of project %s: %s", project, outcome)
        if project and label_config:
            self._project_configs.remember(project, label_config)

    @property
    def model_version(self) -> str | None:
        return self.live.current_version()

    # --- /webhook: active learning; queues a job, never trains in the request ---
    def fit(self, event: str, data: dict, **kwargs: Any) -> dict:
        return handle_webhook(data, self.settings, self.hosts)

    def health(self) -> dict:
        status = training_status(self.settings)
        return {"training": status["state"], "training_jobs": status["last_jobs"]}

    # --- /predict ---
    def predict(self, tasks: list[dict], context: dict | None = None, **kwargs: Any) -> list[dict]:
        try:
            loaded = self.live.get()
        except Exception as exc:  # a model file that fails to load must not take /predict down
            log.exception("current model cannot be loaded")
            return [self._failed(task, TaskError("model_unavailable", str(exc)), None) for task in tasks]
        if loaded is None:
            return [self._failed(task, TaskError("no_model", "no model in MODEL_DIR yet"), None) for task in tasks]
        try:
            view = self._view(loaded, kwargs.get("label_config"), kwargs.get("project"))
            fetcher = self._fetcher(kwargs.get("project"))
        except TaskError as error:
            return [self._failed(task, error, loaded.version) for task in tasks]
        shape = FrameBatchShape(loaded.model.frames, loaded.model.preprocess)
        results: list[dict] = [{}] * len(tasks)
        deadline = time.monotonic() + self.settings.predict_timeout_s
        chunks = [range(s, min(s + MAX_BATCH, len(tasks))) for s in range(0, len(tasks), MAX_BATCH)]
        # Chunk k+1's frames download while chunk k runs: a 1000-task batch (one Data Manager
        # action) keeps at most two chunks of frames in memory.
        submitted = self._submit(tasks, chunks[0], fetcher, view, shape) if chunks else []
        for k in range(len(chunks)):
            following = self._submit(tasks, chunks[k + 1], fetcher, view, shape) if k + 1 < len(chunks) else []
            # a chunk waits for its frames at most FRAME_TIMEOUT_S, and never past the request's deadline
            frames_due = min(deadline, time.monotonic() + self.settings.frame_timeout_s)
            ready = []
            for i, started in submitted:
                try:
                    if isinstance(started, TaskError):
                        raise started
                    ready.append((i, *self.loader.collect(started, shape, frames_due)))
                except TaskError as exc:
                    results[i] = self._failed(tasks[i], exc, loaded.version)
            if ready:
                self._predict_ready(tasks, ready, results, loaded, view)
            submitted = following
        if self.project_version and any("result" in r for r in results):
            self.project_version.after_predict(kwargs.get("project"), loaded.version)
        return results

    def _predict_ready(self, tasks, ready: list[tuple], results: list[dict], loaded: LoadedModel,
                       view: ProjectView) -> None:
        """Run the model on one chunk's ready tasks and fill their entries of `results`."""
        metrics.FRAMES_FETCHED.inc(int(sum(mask.sum() for _, _, mask in ready)))
        try:
            probs = loaded.model.predict(np.stack([r[1] for r in ready]), np.stack([r[2] for r in ready]))
        except Exception as exc:  # ONNX Runtime failing must not turn into a 500 for the batch
            log.exception("model %s failed on a chunk of %d tasks", loaded.version, len(ready))
            for i, _, _ in ready:
                results[i] = self._failed(tasks[i], TaskError("model_error", type(exc).__name__), loaded.version)
            return
        for row, (i, _, _) in enumerate(ready):
            results[i] = self._answer({name: p[row] for name, p in probs.items()}, loaded, view)

    def _submit(self, tasks, indices, fetcher, view: ProjectView, shape: FrameBatchShape) -> list[tuple]:
        """Start fetching the frames of tasks[indices]: [(index, futures or the TaskError)]."""
        started = []
        for i in indices:
            try:
                started.append((i, self.loader.submit(fetcher, frame_refs(tasks[i], view.value_key), shape)))
            except TaskError as exc:
                started.append((i, exc))
            except Exception as exc:  # an input nobody foresaw fails its own task only
                log.exception("task %s: frames could not be submitted", task_id(tasks[i]))
                started.append((i, TaskError("bad_frames", f"unexpected {type(exc).__name__}")))
        return started

    def _answer(self, probs: dict[str, np.ndarray], loaded: LoadedModel, view: ProjectView) -> dict:
        items, score, held_back = task_results(
            probs, loaded.model.schema, self._rules_for(loaded), view, self.settings.min_score_for)
        metrics.PREDICTIONS.inc()
        metrics.LABELS_SKIPPED.inc(held_back)
        return {"result": items, "score": score, "model_version": loaded.version}

    def _failed(self, task: object, error: TaskError, version: str | None) -> dict:
        log.warning("task %s not predicted (%s): %s", task_id(task), error.reason, error.message)
        metrics.TASKS_FAILED.labels(error.reason).inc()
        entry = {"error": f"{error.reason}: {error.message}"}  # no "result": Label Studio skips it
        if version is not None:
            entry["model_version"] = version
        return entry

    def _view(self, loaded: LoadedModel, label_config: str | None, project: Any) -> ProjectView:
        """What of the model this project can receive; TaskError (for every task) when nothing."""
        try:
            project_schema = self._project_configs.schema(label_config, project) or loaded.model.schema
        except LabelConfigError as exc:
            raise TaskError("bad_label_config", f"project labeling config unusable: {exc}") from None
        gate = self._gate_for(loaded)
        withheld = {n: v.reason for n, v in gate.items() if not v.served}
        predictable = set(loaded.model.output_names) - set(loaded.model.meta.get("untrained") or ())
        view = project_view(loaded.model.schema, predictable, project_schema, withheld)
        if not view.allowed:  # an empty result would look like "the model has no opinion"
            reason = "quality_gate" if set(view.missing) <= set(withheld) else "label_config_mismatch"
            raise TaskError(reason, f"model {loaded.version} predicts none of the project's "
                                    f"questions: {'; '.join(view.why_missing) or 'it has none'}")
        for name, why in zip(view.missing, view.why_missing):
            if (loaded.version, name) not in self._logged_missing:  # once per process and version
                self._logged_missing.put((loaded.version, name), True)
                log.info("label %s is in the project config but model %s cannot predict it: left unpredicted",
                         why, loaded.version)
        return view

    def _gate_for(self, loaded: LoadedModel) -> dict:
        """The quality gate of a model version (logged once per version and process)."""
        def judge() -> dict:
            gate = label_gate(loaded.model.meta, loaded.model.schema, self.settings)
            for line in gate_log_lines(loaded.version, gate):
                log.info("%s", line)
            return gate
        return self._gates.get_or_create(loaded.version, judge)

    def label_gate(self) -> dict:
        """GET /labels: per label of the current model, served or withheld and why (loads the model)."""
        try:
            loaded = self.live.get()
        except Exception as exc:  # reported here and per task by /predict; the backend keeps running
            log.exception("current model cannot be loaded")
            return {"model_version": None, "error": f"current model cannot be loaded: {type(exc).__name__}",
                    "labels": {}}
        if loaded is None:
            return {"model_version": None, "labels": {}}
        return gate_report(loaded.version, loaded.model.meta, self._gate_for(loaded))

    def _rules_for(self, loaded: LoadedModel) -> Rules:
        return self._rules.get_or_create(loaded.version, lambda: load_rules(loaded.model.schema))

    def _label_studio_access(self, project: Any) -> tuple[str | None, str | None]:
        """The project's Label Studio URL and API key (backend/label_studio_host.py)."""
        connection = self.hosts.connection(project)
        return connection.url, connection.api_key

    def _fetcher(self, project: Any) -> FrameFetcher:
        """Frame fetcher for the project's Label Studio host and credential (backend/label_studio_host.py)."""
        s = self.settings
        url, key = self._label_studio_access(project)
        try:
            return self._fetchers.get_or_create((url, key), lambda: FrameFetcher(FrameSourceConfig(
                label_studio_url=url, api_key=key,
                document_root=str(s.local_files_document_root) if s.local_files_document_root else None,
                cache_dir=str(s.frame_cache_dir) if s.frame_cache_dir else None,
                cache_max_bytes=s.frame_cache_max_bytes, timeout_s=s.frame_timeout_s, max_bytes=s.max_frame_bytes,
                allowed_hosts=s.allowed_frame_hosts,
            )))
        except ValueError as exc:  # e.g. a /setup hostname that is not an http(s) URL
            raise TaskError("bad_setup", "the Label Studio URL (LABEL_STUDIO_URL, else /setup's hostname) "
                                         f"cannot be used: {type(exc).__name__}") from None

