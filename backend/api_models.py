"""The request bodies Label Studio 1.23.2 sends (docs/backend.md, Protocol), as pydantic models.

A field of the wrong type is a 422 that names the field (never a 500). Unknown fields are kept
(Label Studio adds some, e.g. /setup's extra_params). Tasks are not modelled here: a malformed
task fails only itself, with a per-task error (backend.task_frames).
"""
from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

MAX_ERRORS = 20  # a 422 lists at most this many problems
MAX_LOC_CHARS = 64  # a key of the input in an error location is cut to this length


class SetupRequest(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    project: str | int | None = None  # "<id>.<created timestamp>"
    label_config: str | None = Field(None, alias="schema")
    hostname: str | None = None
    access_token: str | None = None


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    tasks: list[Any]  # checked one by one: a bad task gets its own error entry
    project: str | int | None = None
    label_config: str | None = None
    params: dict[str, Any] | None = None  # {"login", "password", "context"}


class WebhookRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    action: str = Field(min_length=1)


class AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: a lone surrogate from the input cannot break the encoding."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming where and what is wrong; the input is never echoed (it may be 50 MB, or a secret)."""
    errors = exc.errors()
    detail = [{"loc": [part if isinstance(part, int) else str(part)[:MAX_LOC_CHARS] for part in e["loc"]],
               "type": e["type"], "msg": e["msg"]} for e in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        detail.append({"loc": [], "type": "too_many_errors", "msg": f"{len(errors) - MAX_ERRORS} more errors"})
    return AsciiJSONResponse({"detail": detail}, status_code=422)


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """FastAPI's own handler, but ASCII: a detail quoting the input cannot break the encoding."""
    return AsciiJSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
