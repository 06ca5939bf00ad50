"""Label Studio API authentication: legacy tokens and personal access tokens.

- Legacy token (e.g. 40 hex characters): sent as ``Authorization: Token <key>``.
- Personal access token (Label Studio's default since 1.14): a long-lived JWT *refresh* token
  (three base64url parts; payload ``token_type == "refresh"``). It is exchanged via
  ``POST {url}/api/token/refresh/ {"refresh": key}`` for a short-lived access token sent as
  ``Authorization: Bearer <access>``, renewed ``refresh_margin_s`` before its ``exp``.
  The JWT payload is decoded without verifying the signature: we only read our own token's
  type and expiry; the server verifies it.

Thread-safe (one lock around renewal). Tokens never appear in reprs, logs or exception messages.
"""
from __future__ import annotations

import base64
import json
import threading
import time
from urllib.parse import urlsplit

import requests
from requests.auth import AuthBase

REFRESH_PATH = "/api/token/refresh/"
DEFAULT_ACCESS_LIFETIME_S = 300.0  # Label Studio's access tokens live 5 minutes


class LabelStudioAuthError(RuntimeError):
    """The token could not be used or renewed (message never contains the token)."""


def jwt_payload(token: str) -> dict | None:
    """The (unverified) payload of a JWT, or None if ``token`` is not one."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


class LabelStudioAuth:
    """Authorization headers for one Label Studio server."""

    def __init__(self, url: str, api_key: str, *, timeout_s: float = 10.0, refresh_margin_s: float = 30.0):
        if not url or not urlsplit(url).scheme.startswith("http"):
            raise ValueError(f"LabelStudioAuth needs an http(s) Label Studio URL, got {url!r}")
        if not api_key or not api_key.strip():
            raise ValueError("LabelStudioAuth needs a non-empty API key")
        self.url = url.rstrip("/")
        self._key = api_key.strip()
        self._timeout_s = timeout_s
        self._margin_s = refresh_margin_s
        payload = jwt_payload(self._key)
        self.kind = "personal access token" if payload and payload.get("token_type") == "refresh" else "legacy token"
        if payload and payload.get("token_type") == "access":
            self.kind = "access token"  # used as is; it cannot be renewed
        self._access: str | None = None
        self._access_expires = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LabelStudioAuth(url={self.url!r}, kind={self.kind!r}, api_key=<redacted>)"

    def headers(self) -> dict[str, str]:
        """The Authorization header, renewing the access token when it is about to expire."""
        if self.kind == "legacy token":
            return {"Authorization": f"Token {self._key}"}
        if self.kind == "access token":
            return {"Authorization": f"Bearer {self._key}"}
        with self._lock:
            if self._access is None or time.time() >= self._access_expires - self._margin_s:
                self._refresh()
            return {"Authorization": f"Bearer {self._access}"}

    def invalidate(self) -> None:
        """Forget the access token (e.g. after a 401) so that the next headers() renews it."""
        with self._lock:
            self._access = None

    def session(self) -> requests.Session:
        """A requests.Session that authenticates requests to this Label Studio host only."""
        session = requests.Session()
        session.auth = _HostAuth(self)
        return session

    def is_label_studio(self, url: str) -> bool:
        """True if ``url`` points at this Label Studio server (scheme, host and port)."""
        return same_origin(url, self.url)

    def _refresh(self) -> None:
        endpoint = self.url + REFRESH_PATH
        try:
            resp = requests.post(endpoint, json={"refresh": self._key}, timeout=self._timeout_s)
        except requests.RequestException as exc:
            raise LabelStudioAuthError(f"token refresh at {endpoint} failed: {type(exc).__name__}") from None
        if resp.status_code != 200:
            hint = " (personal access token revoked or expired?)" if resp.status_code in (401, 403) else ""
            raise LabelStudioAuthError(f"token refresh at {endpoint} failed: HTTP {resp.status_code}{hint}")
        try:
            access = resp.json()["access"]
        except (ValueError, KeyError, TypeError):
            access = None
        if not isinstance(access, str) or not access:
            raise LabelStudioAuthError(f"token refresh at {endpoint} returned no 'access' token")
        exp = (jwt_payload(access) or {}).get("exp")
        now = time.time()
        self._access_expires = float(exp) if isinstance(exp, (int, float)) else now + DEFAULT_ACCESS_LIFETIME_S
        self._access = access


def same_origin(url_a: str, url_b: str) -> bool:
    """True if both URLs have the same scheme, host and port."""

    def origin(url: str) -> tuple[str, str, int | None]:
        parts = urlsplit(url)
        return parts.scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(parts.scheme)

    return origin(url_a) == origin(url_b)


class _HostAuth(AuthBase):
    """Adds the Label Studio Authorization header, but only to requests for the Label Studio host."""

    def __init__(self, auth: LabelStudioAuth):
        self.auth = auth

    def __call__(self, request):
        if self.auth.is_label_studio(request.url):
            request.headers.update(self.auth.headers())
        return request

    def __repr__(self) -> str:
        return f"_HostAuth({self.auth!r})"
