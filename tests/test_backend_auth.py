"""Basic auth, secret redaction in logs, and settings parsing."""
from __future__ import annotations

import io
import logging

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.log_redaction import REDACTED, SecretRedactor, redactor
from backend.settings import Settings, SettingsError
from backend_fixtures import backend_settings, ls_fixture


def test_basic_auth_guards_everything_but_health(tmp_path):
    settings = backend_settings(tmp_path, basic_auth_user="ls", basic_auth_pass="s3cret-pass")
    client = TestClient(create_app(settings))
    assert client.get("/health").status_code == 200
    setup = ls_fixture("setup_request.json")
    for auth in (None, ("ls", "wrong"), ("other", "s3cret-pass")):
        response = client.post("/setup", json=setup, auth=auth)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Basic"
    assert client.get("/metrics").status_code == 401
    assert client.post("/setup", json=setup, auth=("ls", "s3cret-pass")).status_code == 200
    assert client.get("/versions", auth=("ls", "s3cret-pass")).status_code == 200


def logged_text(redactor: SecretRedactor, emit) -> str:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(redactor)
    logger = logging.getLogger("test_backend_auth.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


def test_redactor_hides_secrets_in_messages_args_and_tracebacks():
    redactor = SecretRedactor(["api-key-abcdef", "pass-123456"])
    redactor.add("setup-token-xyz")

    def emit(logger):
        logger.warning("key %s and %s", "api-key-abcdef", {"password": "pass-123456"})
        logger.warning("Authorization: Token setup-token-xyz")
        try:
            raise RuntimeError("failed with api-key-abcdef")
        except RuntimeError:
            logger.exception("boom")

    text = logged_text(redactor, emit)
    for secret in ("api-key-abcdef", "pass-123456", "setup-token-xyz"):
        assert secret not in text
    for redacted in ("key *** and {'password': '***'}", "Token ***", "RuntimeError: failed with ***"):
        assert redacted.replace("***", REDACTED) in text


def test_setup_access_token_and_configured_secrets_never_reach_the_log(tmp_path):
    settings = backend_settings(tmp_path, label_studio_api_key="env-key-000111", basic_auth_user="u",
                                basic_auth_pass="pw-222333")
    client = TestClient(create_app(settings))
    body = dict(ls_fixture("setup_request.json"), access_token="access-from-setup-444")
    client.post("/setup", json=body, auth=("u", "pw-222333"))
    root_filters = [f for h in logging.getLogger().handlers for f in h.filters]
    assert redactor() in root_filters  # create_app installed it on the root handler

    def emit(logger):
        logger.error("debug dump: %s %s %s", "env-key-000111", "pw-222333", "access-from-setup-444")

    text = logged_text(redactor(), emit)
    assert text == f"debug dump: {REDACTED} {REDACTED} {REDACTED}\n"


def test_settings_from_env():
    s = Settings.from_env({
        "MODEL_DIR": "/m", "LABEL_STUDIO_URL": "http://ls:8080/", "MIN_SCORE": "0.3",
        "MIN_SCORE_WEARING_GLASSES": "0.9", "ALLOWED_FRAME_HOSTS": "cdn.example, Files.Example ",
        "USE_INT8": "true", "WORKERS": "2", "LABEL_STUDIO_API_KEY": "key-q9z", "ONNX_SPINNING": "on"})
    assert str(s.model_dir) == "/m" and s.label_studio_url == "http://ls:8080" and s.workers == 2
    assert s.min_score_for("wearing_glasses") == 0.9 and s.min_score_for("gender") == 0.3
    assert s.allowed_frame_hosts == ("cdn.example", "files.example") and s.use_int8 and s.onnx_spinning
    assert "key-q9z" not in repr(s) and s.secrets() == ("key-q9z",)
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize("env, word", [
    ({"WORKERS": "two"}, "WORKERS"), ({"WORKERS": "0"}, "WORKERS"), ({"MIN_SCORE": "1.5"}, "MIN_SCORE"),
    ({"MIN_SCORE_GENDER": "-1"}, "MIN_SCORE_GENDER"), ({"USE_INT8": "maybe"}, "USE_INT8"),
    ({"ONNX_SPINNING": "spin"}, "ONNX_SPINNING"),
    ({"BASIC_AUTH_USER": "u"}, "BASIC_AUTH"), ({"FRAME_TIMEOUT_S": "0"}, "FRAME_TIMEOUT_S"),
    ({"PREDICT_TIMEOUT_S": "-1"}, "PREDICT_TIMEOUT_S"), ({"MAX_REQUEST_MB": "big"}, "MAX_REQUEST_MB")])
def test_bad_settings_name_the_variable(env, word):
    with pytest.raises(SettingsError, match=word):
        Settings.from_env(env)
