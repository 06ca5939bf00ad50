"""Logging filter that replaces secrets with '***': the configured ones (API key, basic-auth
password), the /setup access tokens seen (the last MAX_DYNAMIC_SECRETS), and, by pattern, in any
text, URL user-info (`user:password@`) and token-like query values (`?token=...`, `&sig=...`),
which urllib3's debug lines and exception texts contain.
"""
from __future__ import annotations

import logging
import re
import threading

from backend.lru import LRU

REDACTED = "***"
MAX_DYNAMIC_SECRETS = 256  # /setup access tokens remembered for redaction (older ones are rotated out)
MIN_DYNAMIC_SECRET_CHARS = 8  # shorter "tokens" from requests are no real token; redacting them would garble logs
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s?#]+@")  # greedy: a raw '@' in a password
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&;][^=&;\s\"'#]*(?:token|key|sig|signature|credential|password|auth|secret)[^=&;\s\"'#]*=)"
    r"[^&;\s\"'#]+", re.I)


def redact_patterns(text: str) -> str:
    """URL user-info and token-like query values in `text` replaced by '***'."""
    text = _USERINFO.sub(lambda m: m["scheme"] + REDACTED + "@", text)
    return _QUERY_SECRET.sub(lambda m: m["key"] + REDACTED, text)


class SecretRedactor(logging.Filter):
    """Attach to handlers: rewrites message, args and exception text of every record."""

    def __init__(self, secrets: tuple[str, ...] | list[str] = ()):
        super().__init__()
        self._secrets: set[str] = set()  # configured: kept for the life of the process
        self._seen: LRU[str, bool] = LRU(MAX_DYNAMIC_SECRETS)  # from requests: bounded
        self._lock = threading.Lock()
        for secret in secrets:
            self.add(secret, configured=True)

    def add(self, secret: str | None, *, configured: bool = False) -> None:
        """Redact one more secret from now on (e.g. the access token /setup brings)."""
        if not secret or not isinstance(secret, str):
            return
        if configured:
            with self._lock:
                self._secrets.add(secret)
        elif len(secret) >= MIN_DYNAMIC_SECRET_CHARS:
            self._seen.put(secret, True)

    def redact(self, text: str) -> str:
        with self._lock:
            secrets = self._secrets.union(self._seen.keys())
        # longest first: a secret containing another is replaced whole
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return redact_patterns(text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = self.redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


_redactor = SecretRedactor()


def redactor() -> SecretRedactor:
    """The process-wide redactor installed by configure_logging."""
    return _redactor


def configure_logging(level: str, secrets: tuple[str, ...]) -> None:
    """Root handler with the redactor; uvicorn's loggers propagate to it (log_config=None)."""
    for secret in secrets:
        _redactor.add(secret, configured=True)
    root = logging.getLogger()
    root.setLevel(level)
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"))
        root.addHandler(handler)
    for handler in root.handlers:  # every root handler, also ones a host application installed
        if _redactor not in handler.filters:
            handler.addFilter(_redactor)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
