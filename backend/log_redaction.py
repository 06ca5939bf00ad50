"""Logging filter that replaces configured secrets (tokens, passwords) with '***'."""
from __future__ import annotations

import logging
import threading

REDACTED = "***"


class SecretRedactor(logging.Filter):
    """Attach to handlers: rewrites message, args and exception text of every record."""

    def __init__(self, secrets: tuple[str, ...] | list[str] = ()):
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Redact one more secret from now on (e.g. the access token /setup brings)."""
        if secret:
            with self._lock:
                self._secrets.add(secret)

    def redact(self, text: str) -> str:
        # longest first: a secret containing another is replaced whole
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
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
        _redactor.add(secret)
    root = logging.getLogger()
    root.setLevel(level)
    if not any(isinstance(f, SecretRedactor) for h in root.handlers for f in h.filters):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"))
        handler.addFilter(_redactor)
        root.addHandler(handler)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
