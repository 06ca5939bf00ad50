import base64
import json
import threading
import time

import pytest
from training import ls_auth
from training.ls_auth import LabelStudioAuth, LabelStudioAuthError, jwt_payload

LEGACY_KEY = "0123456789abcdef0123456789abcdef01234567"


def b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def make_jwt(**payload) -> str:
    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(payload)}.c2lnbmF0dXJl"


REFRESH_KEY = make_jwt(token_type="refresh", exp=int(time.time()) + 10**8, jti="r1", user_id=1)


def serve_refresh(server, lifetime_s=300, delay_s=0.0, status=200):
    issued = []

    def refresh(method, headers, body):
        time.sleep(delay_s)
        if method != "POST" or json.loads(body) != {"refresh": REFRESH_KEY}:
            return 400, {}, b'{"detail": "bad request"}'
        access = make_jwt(token_type="access", exp=int(time.time() + lifetime_s), jti=f"a{len(issued)}")
        issued.append(access)
        return status, {"Content-Type": "application/json"}, json.dumps({"access": access}).encode()

    server.routes["/api/token/refresh/"] = refresh
    return issued


def test_legacy_token_header_without_network():
    auth = LabelStudioAuth("http://127.0.0.1:9", LEGACY_KEY)  # port 9: nothing listens
    assert auth.kind == "legacy token"
    assert auth.headers() == {"Authorization": f"Token {LEGACY_KEY}"}


def test_jwt_payload_detection():
    assert jwt_payload(REFRESH_KEY)["token_type"] == "refresh"
    assert jwt_payload(LEGACY_KEY) is None
    assert jwt_payload("a.b.c") is None  # not base64 JSON
    assert jwt_payload(f"x.{b64([1, 2])}.y") is None  # payload not an object


def test_personal_access_token_is_exchanged_and_cached(local_server):
    issued = serve_refresh(local_server)
    auth = LabelStudioAuth(local_server.url + "/", REFRESH_KEY)
    assert auth.kind == "personal access token"
    first = auth.headers()
    assert first == {"Authorization": f"Bearer {issued[0]}"}
    assert auth.headers() == first and len(issued) == 1  # still valid: no second refresh
    auth.invalidate()
    assert auth.headers() == {"Authorization": f"Bearer {issued[1]}"}


def test_access_token_renewed_before_expiry(local_server, monkeypatch):
    issued = serve_refresh(local_server, lifetime_s=100)
    auth = LabelStudioAuth(local_server.url, REFRESH_KEY, refresh_margin_s=30)
    auth.headers()
    t0 = time.time()
    monkeypatch.setattr(ls_auth.time, "time", lambda: t0 + 60)  # 40 s left > margin
    auth.headers()
    assert len(issued) == 1
    monkeypatch.setattr(ls_auth.time, "time", lambda: t0 + 75)  # 25 s left < margin
    assert auth.headers() == {"Authorization": f"Bearer {issued[1]}"}


def test_concurrent_callers_refresh_once(local_server):
    issued = serve_refresh(local_server, delay_s=0.2)
    auth = LabelStudioAuth(local_server.url, REFRESH_KEY)
    results = []
    threads = [threading.Thread(target=lambda: results.append(auth.headers())) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(issued) == 1 and len(results) == 6
    assert all(r == {"Authorization": f"Bearer {issued[0]}"} for r in results)


@pytest.mark.parametrize("status", [401, 500])
def test_refresh_failure_never_shows_token(local_server, status):
    serve_refresh(local_server, status=status)
    auth = LabelStudioAuth(local_server.url, REFRESH_KEY)
    with pytest.raises(LabelStudioAuthError, match=f"HTTP {status}") as info:
        auth.headers()
    assert REFRESH_KEY not in str(info.value) and REFRESH_KEY not in repr(info.value)


def test_refresh_without_access_and_unreachable_server(local_server):
    local_server.routes["/api/token/refresh/"] = lambda m, h, b: (200, {}, b'{"detail": "ok"}')
    with pytest.raises(LabelStudioAuthError, match="no 'access'"):
        LabelStudioAuth(local_server.url, REFRESH_KEY).headers()
    with pytest.raises(LabelStudioAuthError, match="ConnectionError") as info:
        LabelStudioAuth("http://127.0.0.1:9", REFRESH_KEY, timeout_s=2).headers()
    assert REFRESH_KEY not in str(info.value)


def test_repr_redacts_keys():
    for key in (LEGACY_KEY, REFRESH_KEY):
        auth = LabelStudioAuth("http://ls.example:8080", key)
        assert key not in repr(auth) and "redacted" in repr(auth)
        assert key not in repr(auth.session().auth)


def test_session_sends_auth_only_to_label_studio(local_server, local_server_factory):
    other = local_server_factory()
    ok = lambda m, h, b: (200, {}, b"ok")  # noqa: E731
    local_server.routes["/api/projects"] = ok
    other.routes["/frame.png"] = ok
    session = LabelStudioAuth(local_server.url, LEGACY_KEY).session()
    assert session.get(local_server.url + "/api/projects", timeout=5).status_code == 200
    assert session.get(other.url + "/frame.png", timeout=5).status_code == 200
    assert local_server.requests[-1][2].get("Authorization") == f"Token {LEGACY_KEY}"
    assert "Authorization" not in other.requests[-1][2]


def test_bad_arguments():
    with pytest.raises(ValueError, match="URL"):
        LabelStudioAuth("ls.example", LEGACY_KEY)
    with pytest.raises(ValueError, match="API key"):
        LabelStudioAuth("http://ls.example", "  ")
