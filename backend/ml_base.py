"""MLBase: the shape of label-studio-ml's LabelStudioMLBase, without that package.

(label-studio-ml's only PyPI release does not work against Label Studio 1.23.2, so the HTTP
protocol is implemented in backend.app and models subclass this.)
"""
from __future__ import annotations

from typing import Any


class MLBase:
    """One ML backend model. backend.app calls setup() on /setup, predict() on /predict and
    fit() on /webhook; subclasses override what they support."""

    model_class: str = "MLBase"

    def setup(self, *, project: str | None = None, label_config: str | None = None,
              hostname: str | None = None, access_token: str | None = None) -> None:
        """Remember what /setup told us (must be fast: Label Studio waits at most 3 s)."""

    @property
    def model_version(self) -> str | None:
        """Version id every prediction carries; None when no model is available."""
        return None

    def health(self) -> dict:
        """Extra fields for GET /health (e.g. training state); must be cheap."""
        return {}

    def label_gate(self) -> dict:
        """GET /labels: per label, whether predictions are served and why. Default: nothing to tell."""
        return {"model_version": self.model_version, "labels": {}}

    def predict(self, tasks: list[dict], context: dict | None = None, **kwargs: Any) -> list[dict]:
        """One {"result": [...], "score", "model_version"} per task, in task order.

        An entry without "result" makes Label Studio skip that task (no prediction stored)."""
        raise NotImplementedError

    def fit(self, event: str, data: dict, **kwargs: Any) -> dict | None:
        """Webhook hook point (ANNOTATION_CREATED, START_TRAINING, ...). Default: nothing to do."""
        return None
