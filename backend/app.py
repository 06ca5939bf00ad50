"""HTTP protocol adapter: what Label Studio 1.23.2 calls on an ML backend (see docs/backend.md).

/setup answers from the registry pointer alone (Label Studio gives it 3 s and calls it before
every prediction batch); /predict loads the current model lazily, so it also works right after a
restart when no /setup came first.

Hardening: bodies above MAX_REQUEST_MB get 413 before parsing (backend.body_limit); malformed
fields get a 422 that names them without echoing the input (backend.api_models); with basic auth
on, everything but /health and / needs it, the OpenAPI schema included.
"""
from __future__ import annotations

import logging
import secrets
import time

from fastapi import Depends, FastAPI, HTTPException, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend import metrics
from backend.active_learning import WebhookError, recover_on_startup, training_status
from backend.api_models import (AsciiJSONResponse, PredictRequest, SetupRequest, WebhookRequest, http_error,
                                validation_error)
from backend.body_limit import BodyLimit
from backend.log_redaction import configure_logging
from backend.ml_base import MLBase
from backend.recording_model import RecordingBackend
from backend.registry import ModelRegistry
from backend.settings import Settings, get_settings

log = logging.getLogger(__name__)
NO_MODEL_VERSION = "INITIAL"  # what /setup answers before any model exists (label-studio-ml's default)


def basic_auth_dependency(settings: Settings):
    """Require the configured basic-auth user/password (what Label Studio sends when set up with it)."""
    if not settings.basic_auth_user:
        return lambda: None
    scheme = HTTPBasic(auto_error=False)

    def check(credentials: HTTPBasicCredentials | None = Depends(scheme)) -> None:
        ok = credentials is not None and (
            secrets.compare_digest(credentials.username.encode(), settings.basic_auth_user.encode())
            & secrets.compare_digest(credentials.password.encode(), settings.basic_auth_pass.encode())
        )
        if not ok:
            raise HTTPException(401, "basic authentication required", headers={"WWW-Authenticate": "Basic"})

    return check


def create_app(settings: Settings | None = None, model: MLBase | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.secrets())
    model = model or RecordingBackend(settings)
    app = FastAPI(title="recmeta ML backend", docs_url=None, redoc_url=None, openapi_url=None,
                  default_response_class=AsciiJSONResponse)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_middleware(BodyLimit, max_bytes=int(settings.max_request_mb * (1 << 20)))
    # every worker: a job whose process died with a previous backend is recovered or marked failed
    for project, outcome in recover_on_startup(settings).items():
        if outcome != "idle":
            log.info("training job of project %s after restart: %s", project, outcome)
    registry = ModelRegistry(settings.model_dir)
    app.state.model = model
    auth = [Depends(basic_auth_dependency(settings))]

    @app.get("/health")
    @app.get("/")
    def health() -> dict:
        # open without auth: the container HEALTHCHECK calls it; it tells only the version id
        return {"status": "UP", "model_class": model.model_class, "model_version": model.model_version,
                **model.health()}

    @app.get("/openapi.json", dependencies=auth, include_in_schema=False)
    def openapi_schema() -> dict:
        return app.openapi()

    @app.post("/setup", dependencies=auth)
    def setup(body: SetupRequest) -> dict:
        model.setup(project=body.project, label_config=body.label_config,
                    hostname=body.hostname, access_token=body.access_token)
        return {"model_version": model.model_version or NO_MODEL_VERSION}

    @app.post("/predict", dependencies=auth)
    def predict(body: PredictRequest) -> dict:
        started = time.perf_counter()
        context = (body.params or {}).get("context")
        results = model.predict(body.tasks, context=context if isinstance(context, dict) else None,
                                label_config=body.label_config, project=body.project)
        metrics.PREDICT_SECONDS.observe(time.perf_counter() - started)
        version = next((r["model_version"] for r in results if r.get("model_version")), None)
        return {"results": results, "model_version": version or model.model_version or NO_MODEL_VERSION}

    @app.post("/webhook", dependencies=auth)
    def webhook(body: WebhookRequest) -> dict:
        try:
            return model.fit(body.action, body.model_dump()) or {"status": "ok"}
        except WebhookError as exc:
            raise HTTPException(400, str(exc)[:300]) from exc  # bounded: it may quote the body

    @app.get("/training", dependencies=auth)
    def training() -> dict:
        """Active-learning status: state, progress, last result and why it was (not) promoted."""
        return training_status(settings)

    @app.get("/versions", dependencies=auth)
    @app.post("/versions", dependencies=auth)
    def versions() -> dict:
        return {"versions": [v.version for v in registry.versions()], "current": registry.current()}

    @app.get("/labels", dependencies=auth)
    def labels() -> dict:
        """Per label of the current model: served or withheld by the quality gate, why, and its figures."""
        return model.label_gate()

    @app.get("/metrics", dependencies=auth)
    def prometheus_metrics() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    return app
