"""The registry's current model, loaded lazily and swapped when the `current` pointer changes.

Each worker checks the pointer at most once per `check_interval_s` (on request, no background
thread) and loads the new model before dropping the old one, so a switch never fails requests.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from backend.registry import ModelRegistry
from training.onnx_runner import OnnxRecordingModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    version: str
    model: OnnxRecordingModel
    int8: bool


class LiveModel:
    def __init__(self, registry: ModelRegistry, *, use_int8: bool = False, threads: int | None = None,
                 spinning: bool = False, check_interval_s: float = 1.0):
        self.registry = registry
        self.use_int8 = use_int8
        self.threads = threads  # ONNX Runtime intra-op threads; None = its default (all cores)
        self.spinning = spinning
        self.check_interval_s = check_interval_s
        self._lock = threading.Lock()
        self._loaded: LoadedModel | None = None
        self._stamp: tuple[int, str | None] | None = None
        self._checked_at = float("-inf")

    def current_version(self) -> str | None:
        """The pointer's version (no model load; what /setup answers)."""
        return self.registry.current()

    def get(self) -> LoadedModel | None:
        """The current model, reloading it if the pointer changed; None when there is none."""
        now = time.monotonic()
        # Without a model yet, take the lock: requests arriving during the first load wait for it
        # (during a later switch they keep getting the previous model; nothing waits).
        if now - self._checked_at < self.check_interval_s and self._loaded is not None:
            return self._loaded
        with self._lock:
            if now - self._checked_at < self.check_interval_s:
                return self._loaded
            stamp = self.registry.pointer_stamp()
            self._checked_at = time.monotonic()  # a failing load is retried after the interval too
            if stamp != self._stamp:
                self._loaded = self._load(stamp[1])
                self._stamp = stamp
            return self._loaded

    def _load(self, version: str | None) -> LoadedModel | None:
        if version is None:
            return None
        if self._loaded is not None and self._loaded.version == version:
            return self._loaded
        path = self.registry.model_path(version, int8=self.use_int8)
        started = time.perf_counter()
        model = OnnxRecordingModel(path, intra_op_threads=self.threads, spinning=self.spinning)
        log.info("loaded model %s from %s in %.2f s", version, path.name, time.perf_counter() - started)
        return LoadedModel(version, model, int8=path.name != "model.onnx")
