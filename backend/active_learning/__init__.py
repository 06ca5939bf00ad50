"""Active learning: retrain on new annotations while the backend keeps serving.

The app wires three calls (see docs/active-learning.md):
`handle_webhook(payload, settings)` for POST /webhook, `training_status(settings)` for a status
endpoint and /health, `recover_on_startup(settings)` once per worker at startup.
"""
from .config import ActiveLearningConfig, ActiveLearningConfigError, config_from_settings
from .status import recover_on_startup, training_status
from .trigger import WebhookError, handle_webhook

__all__ = ["ActiveLearningConfig", "ActiveLearningConfigError", "WebhookError", "config_from_settings",
           "handle_webhook", "recover_on_startup", "training_status"]
