"""Prometheus metrics; multiprocess-safe when PROMETHEUS_MULTIPROC_DIR is set before import
(backend.__main__ does that, so several uvicorn workers add up in one /metrics answer)."""
from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

PREDICTIONS = Counter("recmeta_predictions", "Tasks answered with a prediction")
TASKS_FAILED = Counter("recmeta_tasks_failed", "Tasks left without a prediction, by reason", ["reason"])
FRAMES_FETCHED = Counter("recmeta_frames_fetched", "Frames fetched and decoded")
LABELS_SKIPPED = Counter("recmeta_labels_below_min_score", "Labels left to the annotator (below MIN_SCORE)")
PREDICT_SECONDS = Histogram(
    "recmeta_predict_seconds", "Wall time of one /predict request",
    buckets=(0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60),
)


def render() -> tuple[bytes, str]:
    """(body, content type) for GET /metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
